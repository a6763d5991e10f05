"""The kinds the emulator serves: built-in ones fixed here, custom ones registered by CRDs.

A resource is stored once per group (keyed by group and plural); every served version reads
and writes the same objects, only ``apiVersion`` is rewritten, as with ``conversion: None``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


def now() -> str:
    """A timestamp as the apiserver writes them (RFC 3339, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An HTTP error answered as a ``Status`` object, as kube-apiserver does."""

    def __init__(self, code: int, reason: str, message: str, *,
                 details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details,
                "code": self.code}


@dataclass
class ResourceType:
    """One resource (plural) of one API group, with the versions it is served in."""

    group: str
    versions: list[str]  # storage version first
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_subresource: bool = True
    # per served version: the CRD's additionalPrinterColumns
    printer_columns: dict[str, list[Obj]] = field(default_factory=dict)
    crd_name: str = ""  # set for custom resources
    # the storage version's openAPIV3Schema, for its defaults only (nothing is validated)
    schema: Obj = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def describe(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


# `kubectl get all` lists the resources in this category
_ALL = {"Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
        "CronJob"}


def _core(kind: str, plural: str, *, namespaced: bool = True, short: list[str] | None = None,
          status: bool = True) -> ResourceType:
    return _grp("", "v1", kind, plural, namespaced=namespaced, short=short, status=status)


def _grp(group: str, version: str, kind: str, plural: str, *, namespaced: bool = True,
         short: list[str] | None = None, status: bool = True) -> ResourceType:
    return ResourceType(group, [version], kind, plural, namespaced, kind.lower(), short or [],
                        ["all"] if kind in _ALL else [], status_subresource=status)


# Only what kubectl, helm (including `helm create`'s chart) and kopf touch.
BUILTIN: list[ResourceType] = [
    _core("Namespace", "namespaces", namespaced=False, short=["ns"]),
    _core("Secret", "secrets", status=False),
    _core("ConfigMap", "configmaps", short=["cm"], status=False),
    _core("Service", "services", short=["svc"]),
    _core("ServiceAccount", "serviceaccounts", short=["sa"], status=False),
    _core("Pod", "pods", short=["po"]),
    _core("Event", "events", short=["ev"], status=False),
    _core("Endpoints", "endpoints", short=["ep"], status=False),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short=["pvc"]),
    _grp("apps", "v1", "Deployment", "deployments", short=["deploy"]),
    _grp("apps", "v1", "ReplicaSet", "replicasets", short=["rs"]),
    _grp("apps", "v1", "StatefulSet", "statefulsets", short=["sts"]),
    _grp("apps", "v1", "DaemonSet", "daemonsets", short=["ds"]),
    _grp("batch", "v1", "Job", "jobs"),
    _grp("batch", "v1", "CronJob", "cronjobs", short=["cj"]),
    _grp("networking.k8s.io", "v1", "Ingress", "ingresses", short=["ing"]),
    _grp("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers",
         short=["hpa"]),
    _grp("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short=["pdb"]),
    _grp("coordination.k8s.io", "v1", "Lease", "leases", status=False),
    _grp("events.k8s.io", "v1", "Event", "events", short=["ev"], status=False),
    _grp("rbac.authorization.k8s.io", "v1", "Role", "roles", status=False),
    _grp("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", status=False),
    _grp("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles",
         namespaced=False, status=False),
    _grp("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
         namespaced=False, status=False),
    _grp("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
         namespaced=False, short=["crd", "crds"]),
]

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_KEY = ("", "namespaces")


class Catalog:
    """Every resource currently served, found by group/version/plural."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        for rt in BUILTIN:
            self._types[rt.key] = rt

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def get(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self._types.get((group, plural))
        if rt is None or version not in rt.versions:
            gv = f"{group}/{version}" if group else version
            raise ApiError(404, "NotFound",
                           f"the server could not find the requested resource "
                           f"({plural} in {gv})")
        return rt

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        return self._types.get(key)

    def group_versions(self) -> dict[str, list[str]]:
        """Group -> versions (preferred first), for /apis."""
        out: dict[str, list[str]] = {}
        for rt in self._types.values():
            if not rt.group:
                continue
            versions = out.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in versions:
                    versions.append(v)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values()
                if rt.group == group and version in rt.versions]

    def crd_type(self, crd: Obj) -> ResourceType:
        """The resource a CRD declares (its ``served`` versions); refused if it is unusable."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        # the storage version first, like the apiserver's preferred version
        versions.sort(key=lambda v: not v.get("storage", False))
        rt = ResourceType(
            group=spec.get("group", ""),
            versions=[v["name"] for v in versions],
            kind=names.get("kind", ""),
            plural=names.get("plural", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names.get("kind", "").lower(),
            short_names=list(names.get("shortNames") or []),
            categories=list(names.get("categories") or []),
            status_subresource=any("status" in (v.get("subresources") or {})
                                   for v in versions),
            printer_columns={v["name"]: list(v.get("additionalPrinterColumns") or [])
                             for v in versions},
            crd_name=crd["metadata"]["name"],
            schema=dict(((versions[0].get("schema") or {}).get("openAPIV3Schema") or {})
                        if versions else {}),
        )
        if not rt.plural or not rt.kind or not rt.group or not rt.versions:
            raise ApiError(422, "Invalid",
                           f"CustomResourceDefinition {crd['metadata']['name']!r} needs "
                           "spec.group, spec.names.kind/plural and a served version")
        existing = self._types.get(rt.key)
        if existing is not None and not existing.crd_name:
            raise ApiError(422, "Invalid", f"{rt.describe()} is a built-in resource")
        return rt

    def register_crd(self, crd: Obj) -> ResourceType:
        """Serve the resource a CRD declares from now on."""
        rt = self.crd_type(crd)
        self._types[rt.key] = rt
        return rt

    def unregister_crd(self, crd: Obj) -> ResourceType | None:
        spec = crd.get("spec") or {}
        key = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        rt = self._types.get(key)
        if rt is not None and rt.crd_name:
            del self._types[key]
            return rt
        return None

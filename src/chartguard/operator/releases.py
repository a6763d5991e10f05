"""The Kubernetes side of HelmReleases: helm's release records and the HelmCharts releases own.

- :class:`KubeReleaseStorage`  a :class:`~chartguard.helm.release.ReleaseStorage` reading the
  Secrets helm's storage driver writes (``owner=helm,name=<release>``) straight from the API, so
  knowing a release's state costs one list call and no helm process. Decoded records are kept by
  the Secret's uid and resourceVersion: an unchanged revision is never decoded twice.
- :class:`KubeCharts`  a :class:`~chartguard.reconcile.seams.ChartWriter`: creates the HelmChart a
  release's ``spec.chart`` implies, merge-patches it when the template changes, deletes it.
- :class:`KubeCRDs`  a :class:`~chartguard.helm.crds.CRDApplier`: a chart's CRDs created or
  applied server-side where Flux's CRD policies ask for it and helm's CLI will not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from chartguard.api.meta import SOURCE_GROUP
from chartguard.helm.crds import CRDError
from chartguard.helm.release import (
    ReleaseDecodeError,
    StoredRelease,
    decode_release_manifest,
    decode_release_secret,
    failed_release_secret,
)
from chartguard.operator.caches import Objects
from chartguard.operator.kube import Kube, KubeError
from chartguard.reconcile.outcome import safe
from chartguard.reconcile.seams import ChartWriteError
from chartguard.untrusted import escape

_log = logging.getLogger("chartguard")

HELM_RELEASE_TYPE = "helm.sh/release.v1"


class ReleaseStorageError(Exception):
    """helm's release records could not be read (the API refused or did not answer)."""


class KubeReleaseStorage:
    def __init__(self, kube: Kube, *, max_cached: int = 8192) -> None:
        self._kube = kube
        self._decoded: OrderedDict[tuple[str, str], StoredRelease] = OrderedDict()
        self._max = max_cached
        self._lock = threading.Lock()

    def history(self, namespace: str, name: str) -> list[StoredRelease]:
        try:
            items = self._kube.list_secrets(namespace, f"owner=helm,name={name}")
        except KubeError as err:
            raise ReleaseStorageError(
                f"failed to read the release records of {namespace}/{name}: {safe(err)}"
            ) from None
        out: list[StoredRelease] = []
        for body in items:
            if body.get("type") != HELM_RELEASE_TYPE:
                continue
            record = self._decode(body)
            if record is not None and record.name == name:
                out.append(record)
        out.sort(key=lambda r: r.version, reverse=True)
        return out

    def mark_failed(self, namespace: str, name: str, version: int, description: str, *,
                    as_user: str = "") -> StoredRelease:
        secret = f"sh.helm.release.v1.{name}.v{version}"
        body = self._kube.get_secret_body(namespace, secret)
        if body is None:
            raise ReleaseStorageError(f"revision {version} of {namespace}/{name} is not stored")
        new = failed_release_secret(body, description)
        try:
            # written as the identity helm runs the release as: the operator's own needs no
            # write access to release namespaces
            stored = self._kube.replace_secret(namespace, secret, new, as_user=as_user)
        except KubeError as err:
            raise ReleaseStorageError(f"{secret}: {safe(err)}") from None
        return decode_release_secret(stored)

    def _decode(self, body: Mapping[str, Any]) -> StoredRelease | None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("uid", "")), str(meta.get("resourceVersion", "")))
        with self._lock:
            found = self._decoded.get(key)
            if found is not None:
                self._decoded.move_to_end(key)
                return found
        try:
            record = decode_release_secret(body)
        except ReleaseDecodeError as err:
            _log.warning("helm release record %s/%s cannot be read: %s",
                         meta.get("namespace"), safe(meta.get("name")), safe(err))
            return None
        if key[0] and key[1]:
            with self._lock:
                self._decoded[key] = record
                while len(self._decoded) > self._max:
                    self._decoded.popitem(last=False)
        return record


def read_revision(kube: Kube, namespace: str, name: str,
                  version: int) -> tuple[StoredRelease, str]:
    """Revision ``version`` of helm release ``name`` and its manifest, read from its Secret;
    :class:`ReleaseStorageError` saying why when it cannot be."""
    secret = f"sh.helm.release.v1.{name}.v{version}"
    try:
        body = kube.get_secret_body(namespace, secret)
    except KubeError as err:
        raise ReleaseStorageError(f"{secret}: {safe(err)}") from None
    if body is None:
        raise ReleaseStorageError(f"revision {version} of {namespace}/{name} is not stored")
    try:
        return decode_release_manifest(body)
    except ReleaseDecodeError as err:
        raise ReleaseStorageError(f"{secret}: {safe(err)}") from None


class KubeLiveObjects:
    """A :class:`~chartguard.helm.health.LiveObjects`: release manifests from helm's records,
    objects from the API server (the health checks of ``spec.healthCheckExprs``)."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def manifest(self, namespace: str, name: str, version: int) -> str:
        return read_revision(self._kube, namespace, name, version)[1]

    def get(self, api_version: str, kind: str, namespace: str, name: str, *,
            as_user: str = "") -> Mapping[str, Any] | None:
        return self._kube.get_live(api_version, kind, namespace, name, as_user=as_user)
class KubeCRDs:
    """Applies a chart's CRDs as helm-controller's ``applyCRDs`` does: ``Create`` creates the
    missing ones, ``CreateReplace`` applies all (server-side, conflicts forced; client-side,
    a create or a replace, when the release applies client-side); then waits (up to ``wait``
    seconds, as Flux's 60) until each one written is Established."""

    def __init__(self, kube: Kube, *, wait: float = 60.0, poll: float = 0.5) -> None:
        self._kube = kube
        self._wait = wait
        self._poll = poll

    def apply(self, crds: Sequence[Mapping[str, Any]], *, replace: bool, as_user: str,
              server_side: bool = True) -> int:
        written: list[str] = []
        for crd in crds:
            name = str(crd["metadata"]["name"])
            try:
                if server_side:
                    if not replace and self._kube.get_crd(name, as_user=as_user) is not None:
                        continue  # Create: one that exists is left as it is
                    self._kube.apply_crd(crd, as_user=as_user)
                elif not self._client_side(crd, name, replace=replace, as_user=as_user):
                    continue
            except KubeError as err:
                raise CRDError(f"CustomResourceDefinition {escape(name)}: {safe(err)}") from None
            written.append(name)
        deadline = time.monotonic() + self._wait
        for name in written:
            while not self._established(name, as_user):
                if time.monotonic() > deadline:
                    raise CRDError(f"CustomResourceDefinition {escape(name)} is not "
                                   f"established after {self._wait:.0f}s")
                time.sleep(self._poll)
        return len(written)

    def _client_side(self, crd: Mapping[str, Any], name: str, *, replace: bool,
                     as_user: str) -> bool:
        """Create, or with ``replace`` replace, one CRD client-side; False: left as it is."""
        current = self._kube.get_crd(name, as_user=as_user)
        if current is None:
            self._kube.create_crd(crd, as_user=as_user)
            return True
        if not replace:
            return False  # Create: one that exists is left as it is
        version = str((current.get("metadata") or {}).get("resourceVersion", ""))
        self._kube.replace_crd(crd, version, as_user=as_user)
        return True

    def _established(self, name: str, as_user: str) -> bool:
        try:
            body = self._kube.get_crd(name, as_user=as_user) or {}
        except KubeError as err:
            raise CRDError(f"CustomResourceDefinition {escape(name)}: {safe(err)}") from None
        conditions = (body.get("status") or {}).get("conditions") or []
        return any(isinstance(c, Mapping) and c.get("type") == "Established"
                   and c.get("status") == "True" for c in conditions)


class KubeCharts:
    """Writes HelmCharts through the API and keeps the operator's HelmChart cache current."""

    def __init__(self, kube: Kube, cache: Objects) -> None:
        self._kube = kube
        self._cache = cache

    def apply(self, body: Mapping[str, object]) -> Mapping[str, object]:
        try:
            return self._apply(body)
        except KubeError as err:
            raise ChartWriteError(safe(err)) from None

    def _apply(self, body: Mapping[str, object]) -> Mapping[str, object]:
        meta = body.get("metadata")
        assert isinstance(meta, Mapping)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        current = self._cache.get(namespace, name) or self._kube.get_source(
            "helmcharts", namespace, name)
        if current is None:
            try:
                stored = self._kube.create_custom(SOURCE_GROUP, "v1", "helmcharts", namespace,
                                                  body)
            except KubeError as err:
                if err.status != 409:
                    raise
                # created meanwhile (a stale cache): patch it below
                current = self._kube.get_source("helmcharts", namespace, name) or {}
            else:
                self._cache.put(stored)
                return stored
        old_meta = current.get("metadata") or {}
        metadata = {key: diff for key in ("labels", "annotations")
                    if (diff := merge_patch(old_meta.get(key) or {}, meta.get(key) or {},
                                            keep_unknown=True))}
        patch: dict[str, Any] = {"metadata": metadata} if metadata else {}
        desired_spec = body.get("spec")
        assert isinstance(desired_spec, Mapping)
        spec = merge_patch(current.get("spec") or {}, desired_spec)
        if spec:
            patch["spec"] = spec
        if not patch:
            return current
        stored = self._kube.merge_patch(SOURCE_GROUP, "v1", "helmcharts", namespace, name,
                                        patch)
        self._cache.put(stored)
        return stored

    def delete(self, namespace: str, name: str) -> None:
        try:
            self._kube.delete_custom(SOURCE_GROUP, "v1", "helmcharts", namespace, name)
        except KubeError as err:
            raise ChartWriteError(safe(err)) from None


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any], *,
                keep_unknown: bool = False) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning ``old`` into ``new``; with ``keep_unknown``,
    keys only ``old`` has are left alone (labels another tool added)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value or key not in old:
            patch[key] = value
    if not keep_unknown:
        for key in old:
            if key not in new:
                patch[key] = None
    return patch

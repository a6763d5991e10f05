"""Models of the status chartguard writes, with the field names Flux uses.

``to_status()`` gives the JSON for a status patch (empty fields omitted, as Go's ``omitempty``);
``from_status()`` reads what is stored (unknown fields ignored: another writer may know more).
Conditions stay plain dicts, managed by ``chartguard.api.conditions``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Conditions = tuple[Mapping[str, Any], ...]
_EMPTY: Mapping[str, str] = MappingProxyType({})


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], {}, ())}


def _conditions(raw: Any) -> Conditions:
    if not isinstance(raw, list):
        return ()
    return tuple(MappingProxyType(dict(c)) for c in raw if isinstance(c, Mapping))


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def _int(raw: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


#: the pattern of ``artifact.digest`` in Flux's CRDs (``<algorithm>:<checksum>``)
DIGEST_PATTERN = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


@dataclass(frozen=True)
class Artifact:
    """``status.artifact``: the verified chart in the store. ``revision`` is
    ``<version>@sha256:<manifest digest>``; ``digest`` is the sha256 of the stored file.

    All of path, url, revision, lastUpdateTime and digest are required, as in Flux's current
    CRDs (which the API server enforces), so a malformed artifact fails here, not in a patch.
    """

    path: str
    url: str
    revision: str
    last_update_time: str
    digest: str
    size: int | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        for name in ("path", "url", "revision", "last_update_time"):
            if not getattr(self, name):
                raise ValueError(f"status.artifact: {name} must not be empty")
        if not DIGEST_PATTERN.match(self.digest):
            raise ValueError(f"status.artifact.digest: {self.digest!r} is not "
                             "'<algorithm>:<checksum>', e.g. 'sha256:<64 hex digits>'")

    def to_status(self) -> dict[str, Any]:
        return _drop_empty({
            "path": self.path, "url": self.url, "revision": self.revision,
            "lastUpdateTime": self.last_update_time, "digest": self.digest,
            "size": self.size, "metadata": dict(self.metadata),
        })

    @classmethod
    def from_status(cls, raw: Any) -> Artifact | None:
        """The stored artifact, or None when there is none or it lacks a required field (e.g.
        one written without a digest by an older Flux): the chart is then fetched again."""
        if not isinstance(raw, Mapping):
            return None
        meta = raw.get("metadata")
        try:
            return cls(
                path=_str(raw, "path"), url=_str(raw, "url"), revision=_str(raw, "revision"),
                last_update_time=_str(raw, "lastUpdateTime"), digest=_str(raw, "digest"),
                size=_int(raw, "size") if isinstance(raw.get("size"), int) else None,
                metadata=MappingProxyType({str(k): str(v) for k, v in meta.items()})
                if isinstance(meta, Mapping) else _EMPTY,
            )
        except ValueError:
            return None


@dataclass(frozen=True)
class HelmRepositoryStatus:
    observed_generation: int = -1
    conditions: Conditions = ()
    url: str = ""
    artifact: Artifact | None = None
    last_handled_reconcile_at: str = ""

    def to_status(self) -> dict[str, Any]:
        return _drop_empty({
            "observedGeneration": self.observed_generation,
            "conditions": [dict(c) for c in self.conditions],
            "url": self.url,
            "artifact": self.artifact.to_status() if self.artifact else None,
            "lastHandledReconcileAt": self.last_handled_reconcile_at,
        })

    @classmethod
    def from_status(cls, raw: Any) -> HelmRepositoryStatus:
        raw = raw if isinstance(raw, Mapping) else {}
        return cls(
            observed_generation=_int(raw, "observedGeneration", -1),
            conditions=_conditions(raw.get("conditions")),
            url=_str(raw, "url"),
            artifact=Artifact.from_status(raw.get("artifact")),
            last_handled_reconcile_at=_str(raw, "lastHandledReconcileAt"),
        )


@dataclass(frozen=True)
class HelmChartStatus:
    observed_generation: int = -1
    conditions: Conditions = ()
    artifact: Artifact | None = None
    url: str = ""
    observed_chart_name: str = ""
    observed_source_artifact_revision: str = ""
    observed_values_files: tuple[str, ...] = ()
    last_handled_reconcile_at: str = ""

    def to_status(self) -> dict[str, Any]:
        return _drop_empty({
            "observedGeneration": self.observed_generation,
            "observedSourceArtifactRevision": self.observed_source_artifact_revision,
            "observedChartName": self.observed_chart_name,
            "observedValuesFiles": list(self.observed_values_files),
            "conditions": [dict(c) for c in self.conditions],
            "url": self.url,
            "artifact": self.artifact.to_status() if self.artifact else None,
            "lastHandledReconcileAt": self.last_handled_reconcile_at,
        })

    @classmethod
    def from_status(cls, raw: Any) -> HelmChartStatus:
        raw = raw if isinstance(raw, Mapping) else {}
        files = raw.get("observedValuesFiles")
        return cls(
            observed_generation=_int(raw, "observedGeneration", -1),
            conditions=_conditions(raw.get("conditions")),
            artifact=Artifact.from_status(raw.get("artifact")),
            url=_str(raw, "url"),
            observed_chart_name=_str(raw, "observedChartName"),
            observed_source_artifact_revision=_str(raw, "observedSourceArtifactRevision"),
            observed_values_files=tuple(str(f) for f in files) if isinstance(files, list) else (),
            last_handled_reconcile_at=_str(raw, "lastHandledReconcileAt"),
        )


@dataclass(frozen=True)
class Snapshot:
    """One entry of ``status.history`` (newest first), as helm-controller records a release."""

    name: str
    namespace: str
    version: int
    status: str
    chart_name: str
    chart_version: str
    config_digest: str
    digest: str
    first_deployed: str
    last_deployed: str
    app_version: str = ""
    oci_digest: str = ""
    deleted: str = ""
    action: str = ""
    #: Helm test hooks of this release by name: ``{lastStarted, lastCompleted, phase}``.
    #: None: no test run observed; ``{}``: tested, and the chart has no (selected) test hooks
    #: (helm-controller's nil vs empty map, written as ``testHooks: {}``)
    test_hooks: Mapping[str, Mapping[str, str]] | None = None

    def to_status(self) -> dict[str, Any]:
        out = _drop_empty({
            "name": self.name, "namespace": self.namespace, "version": self.version,
            "status": self.status, "chartName": self.chart_name,
            "chartVersion": self.chart_version, "configDigest": self.config_digest,
            "digest": self.digest, "firstDeployed": self.first_deployed,
            "lastDeployed": self.last_deployed, "appVersion": self.app_version,
            "ociDigest": self.oci_digest, "deleted": self.deleted, "action": self.action,
        })
        if self.test_hooks is not None:
            out["testHooks"] = {k: _drop_empty(dict(v)) for k, v in self.test_hooks.items()}
        return out

    @classmethod
    def from_status(cls, raw: Mapping[str, Any]) -> Snapshot:
        return cls(
            name=_str(raw, "name"), namespace=_str(raw, "namespace"),
            version=_int(raw, "version"), status=_str(raw, "status"),
            chart_name=_str(raw, "chartName"), chart_version=_str(raw, "chartVersion"),
            config_digest=_str(raw, "configDigest"), digest=_str(raw, "digest"),
            first_deployed=_str(raw, "firstDeployed"), last_deployed=_str(raw, "lastDeployed"),
            app_version=_str(raw, "appVersion"), oci_digest=_str(raw, "ociDigest"),
            deleted=_str(raw, "deleted"), action=_str(raw, "action"),
            test_hooks=_test_hooks(raw.get("testHooks")),
        )


def _test_hooks(raw: Any) -> Mapping[str, Mapping[str, str]] | None:
    if not isinstance(raw, Mapping):
        return None
    keys = ("lastStarted", "lastCompleted", "phase")
    return MappingProxyType({
        str(name): MappingProxyType({k: _str(hook, k) for k in keys if _str(hook, k)})
        for name, hook in raw.items() if isinstance(hook, Mapping)})


@dataclass(frozen=True)
class HelmReleaseStatus:
    observed_generation: int = -1
    conditions: Conditions = ()
    #: digests of spec.postRenderers and spec.commonMetadata at the last successful install
    #: or upgrade (``chartguard.api.post_renderers``); a new generation that changes one
    #: upgrades the release, as in helm-controller
    observed_post_renderers_digest: str = ""
    observed_common_metadata_digest: str = ""
    helm_chart: str = ""
    storage_namespace: str = ""
    history: tuple[Snapshot, ...] = ()
    last_attempted_generation: int = 0
    last_attempted_revision: str = ""
    last_attempted_revision_digest: str = ""
    last_attempted_config_digest: str = ""
    last_attempted_release_action: str = ""
    #: v2beta1's field, which ``flux get helmreleases`` of the seed's era shows as REVISION
    last_applied_revision: str = ""
    failures: int = 0
    install_failures: int = 0
    upgrade_failures: int = 0
    last_handled_reconcile_at: str = ""
    last_handled_force_at: str = ""
    last_handled_reset_at: str = ""

    def to_status(self) -> dict[str, Any]:
        return _drop_empty({
            "observedGeneration": self.observed_generation,
            "conditions": [dict(c) for c in self.conditions],
            "observedPostRenderersDigest": self.observed_post_renderers_digest,
            "observedCommonMetadataDigest": self.observed_common_metadata_digest,
            "helmChart": self.helm_chart,
            "storageNamespace": self.storage_namespace,
            "history": [s.to_status() for s in self.history],
            "lastAttemptedGeneration": self.last_attempted_generation or None,
            "lastAttemptedRevision": self.last_attempted_revision,
            "lastAttemptedRevisionDigest": self.last_attempted_revision_digest,
            "lastAttemptedConfigDigest": self.last_attempted_config_digest,
            "lastAttemptedReleaseAction": self.last_attempted_release_action,
            "lastAppliedRevision": self.last_applied_revision,
            "failures": self.failures or None,
            "installFailures": self.install_failures or None,
            "upgradeFailures": self.upgrade_failures or None,
            "lastHandledReconcileAt": self.last_handled_reconcile_at,
            "lastHandledForceAt": self.last_handled_force_at,
            "lastHandledResetAt": self.last_handled_reset_at,
        })

    @classmethod
    def from_status(cls, raw: Any) -> HelmReleaseStatus:
        raw = raw if isinstance(raw, Mapping) else {}
        history = raw.get("history")
        return cls(
            observed_generation=_int(raw, "observedGeneration", -1),
            conditions=_conditions(raw.get("conditions")),
            observed_post_renderers_digest=_str(raw, "observedPostRenderersDigest"),
            observed_common_metadata_digest=_str(raw, "observedCommonMetadataDigest"),
            helm_chart=_str(raw, "helmChart"),
            storage_namespace=_str(raw, "storageNamespace"),
            history=tuple(Snapshot.from_status(s) for s in history if isinstance(s, Mapping))
            if isinstance(history, list) else (),
            last_attempted_generation=_int(raw, "lastAttemptedGeneration"),
            last_attempted_revision=_str(raw, "lastAttemptedRevision"),
            last_attempted_revision_digest=_str(raw, "lastAttemptedRevisionDigest"),
            last_attempted_config_digest=_str(raw, "lastAttemptedConfigDigest"),
            last_attempted_release_action=_str(raw, "lastAttemptedReleaseAction"),
            last_applied_revision=_str(raw, "lastAppliedRevision"),
            failures=_int(raw, "failures"),
            install_failures=_int(raw, "installFailures"),
            upgrade_failures=_int(raw, "upgradeFailures"),
            last_handled_reconcile_at=_str(raw, "lastHandledReconcileAt"),
            last_handled_force_at=_str(raw, "lastHandledForceAt"),
            last_handled_reset_at=_str(raw, "lastHandledResetAt"),
        )

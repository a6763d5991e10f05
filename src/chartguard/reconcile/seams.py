"""What the reconcilers need from the outside world, as Protocols (built once at start-up).

The operator passes real implementations (Kubernetes reads through its caches, registry
clients per HelmRepository, verifiers per policy); unit tests pass small fakes. Nothing here
does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from chartguard.api import HelmRelease
from chartguard.helm.release import StoredRelease
from chartguard.helm.runner import ChartFile
from chartguard.oci import (
    ChartArtifact,
    ChartReference,
    RegistryCredentials,
    ResolvedChart,
    SignatureArtifacts,
    TLSConfig,
)
from chartguard.verify import VerificationPolicy, Verifier


class SecretNotFoundError(Exception):
    """The named Secret does not exist."""


class SecretUnreadableError(Exception):
    """The named Secret could not be read (the API refused it, e.g. 403 Forbidden when the
    operator's RBAC lacks the rule, or did not answer); the message says why, never what the
    Secret holds. Retried like any transient failure."""


class SecretReader(Protocol):
    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        """The Secret's decoded ``data``; ``SecretNotFoundError`` when there is none,
        ``SecretUnreadableError`` when the API would not give it."""
        ...


class ConfigMapNotFoundError(Exception):
    """The named ConfigMap does not exist."""


class ConfigMapReader(Protocol):
    def get(self, namespace: str, name: str) -> Mapping[str, str]:
        """The ConfigMap's ``data``; ``ConfigMapNotFoundError`` when there is none,
        ``SecretUnreadableError`` when the API would not give it."""
        ...


class ChartWriteError(Exception):
    """A HelmChart could not be written or deleted (the API refused it or did not answer); the
    message says why. Retried like any transient failure."""


class ChartWriter(Protocol):
    """Writes the HelmCharts that HelmReleases' ``spec.chart`` imply."""

    def apply(self, body: Mapping[str, object]) -> Mapping[str, object]:
        """Create the HelmChart, or update its labels, annotations and spec; the stored body.
        ``ChartWriteError`` when the API would not take it."""
        ...

    def delete(self, namespace: str, name: str) -> None:
        """Delete it; one that is already gone is not an error. ``ChartWriteError`` when the
        API would not delete it."""
        ...


class ObjectReader(Protocol):
    def get(self, namespace: str, name: str) -> Mapping[str, object] | None:
        """The object's body (e.g. a HelmRepository), or None when it does not exist."""
        ...


class Registry(Protocol):
    """The part of :class:`chartguard.oci.RegistryClient` a chart reconcile uses."""

    def resolve(self, ref: ChartReference, version: str = "*") -> ResolvedChart: ...

    def fetch_chart(self, ref: ChartReference, digest: str, *, provenance: bool = False,
                    version: str | None = None) -> ChartArtifact: ...

    def find_signatures(self, ref: ChartReference, digest: str, *,
                        attestations: bool = False) -> SignatureArtifacts: ...


class RegistryFactory(Protocol):
    def client(self, key: str, *, plain_http: bool, credentials: RegistryCredentials | None,
               tls: TLSConfig | None) -> Registry:
        """A client for one HelmRepository (``key``), reused while its settings are equal."""
        ...


class VerifierFactory(Protocol):
    def verifier(self, policy: VerificationPolicy) -> Verifier:
        """The verifier of ``policy`` (built once per policy fingerprint)."""
        ...


class HelmActions(Protocol):
    """What a HelmRelease reconcile asks of helm (:class:`chartguard.helm.runner.Helm`); each
    raises :class:`chartguard.helm.errors.HelmError` on failure."""

    def install(self, release: HelmRelease, chart: ChartFile, values: Mapping[str, Any], *,
                description: str = "") -> StoredRelease: ...

    def upgrade(self, release: HelmRelease, chart: ChartFile, values: Mapping[str, Any], *,
                description: str = "") -> StoredRelease: ...

    def test(self, release: HelmRelease) -> StoredRelease: ...

    def rollback(self, release: HelmRelease, version: int) -> StoredRelease: ...

    def uninstall(self, release: HelmRelease) -> None: ...

    def identity(self, release: HelmRelease) -> str:
        """The user helm acts as for ``release`` (``system:serviceaccount:…``); "": the
        operator's own. Drift detection reads and writes the release's objects as it."""
        ...

    def unlock(self, release: HelmRelease, version: int, *, description: str) -> StoredRelease:
        """Mark revision ``version``, stuck in a pending-* status (a helm process that died),
        ``failed`` in helm's storage with ``description``, as helm-controller's unlock does (the
        helm CLI has no command for it). Raises ``HelmError(action="unlock")``."""
        ...


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to emit about the object reconciled (Flux's reasons)."""

    type: str  # Normal | Warning
    reason: str
    message: str
    annotations: Mapping[str, str] = field(default_factory=dict)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ClusterError(Exception):
    """A call about a released object failed (the API refused it or did not answer);
    ``status`` is the HTTP status (0: no answer). The message names the object, safe to show,
    never what a Secret holds."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ClusterObjects(Protocol):
    """The released objects, read and written for drift detection (helm-controller's
    ``action.Diff`` and ``ApplyDiff``), each call acting as ``as_user`` when given (the
    identity helm runs the release as; "": the operator's own). Raises :class:`ClusterError`."""

    def namespaced(self, api_version: str, kind: str) -> bool:
        """Whether objects of ``kind`` live in a namespace (API discovery)."""
        ...

    def get(self, obj: Mapping[str, Any], *, as_user: str) -> dict[str, Any] | None:
        """The live object ``obj`` names (apiVersion, kind, namespace, name); None if absent."""
        ...

    def dry_run_apply(self, obj: Mapping[str, Any], *, field_manager: str,
                      as_user: str) -> dict[str, Any]:
        """What a server-side apply of ``obj`` (forcing conflicts) would store: ``dryRun=All``."""
        ...

    def create(self, obj: Mapping[str, Any], *, field_manager: str,
               as_user: str) -> dict[str, Any]: ...

    def json_patch(self, obj: Mapping[str, Any], ops: Sequence[Mapping[str, Any]], *,
                   field_manager: str, as_user: str) -> dict[str, Any]:
        """Apply the JSON patch (RFC 6902) ``ops`` to the live object ``obj`` names."""
        ...

    def release_manifest(self, namespace: str, name: str, version: int) -> tuple[str, str]:
        """(record digest, manifest) of revision ``version`` of helm release ``name``."""
        ...

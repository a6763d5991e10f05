"""HTTP(S) Helm repositories (HelmRepository ``type: default``), as source-controller serves them.

The HelmRepository reconcile fetches ``<url>/index.yaml`` (conditionally: the ETag and
Last-Modified of the last answer are sent back, so an unchanged index is a 304), parses it within
bounds only when its digest is new, and stores it as the repository's artifact (revision
``sha256:<digest of index.yaml>``) in the index store; Ready then says ``stored artifact:
revision 'sha256:…'``. An index whose digest equals the stored artifact's is neither parsed nor
stored again.

A HelmChart of such a repository reads the index from the repository's artifact (never from the
network, as source-controller's ``buildFromHelmRepository``), resolves its version in it, and
downloads the archive the entry names (:meth:`~chartguard.oci.HelmRepositoryClient.fetch_chart`
checks digest, size and archive). Parsed indexes are kept by digest (a few, least recently used
go), so charts of one repository share one parse.

Nothing here verifies a signature: an HTTP repository has no cosign signatures, and ``verify`` on
a chart of one is refused (:data:`VERIFY_NOT_IMPLEMENTED`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chartguard import metrics
from chartguard.api import HelmRepository
from chartguard.api import conditions as c
from chartguard.api.status import Artifact, HelmRepositoryStatus
from chartguard.oci import (
    AuthenticationError,
    HelmIndex,
    HelmRepositoryClient,
    OCIError,
    RegistryCredentials,
    TLSConfig,
    TLSVerificationError,
    parse_index,
    repository_auth,
)
from chartguard.reconcile.outcome import StepFailedError, safe
from chartguard.reconcile.seams import (
    Event,
    SecretNotFoundError,
    SecretReader,
    SecretUnreadableError,
)
from chartguard.store import ArtifactStore, StoreError
from chartguard.untrusted import without_credentials

#: source-controller's HelmChart reason while its HelmRepository has no artifact
NO_SOURCE_ARTIFACT = "NoSourceArtifact"
#: source-controller's Event reason for a new index artifact
NEW_ARTIFACT = "NewArtifact"
#: what source-controller's ChartRepository.VerifyChart answers (BuildError ChartVerificationError)
VERIFY_NOT_IMPLEMENTED = "chart verification error: not implemented"
REVISION_ANNOTATION = "source.toolkit.fluxcd.io/revision"
DIGEST_ANNOTATION = "source.toolkit.fluxcd.io/digest"
_FAILURE_TYPES = (c.FETCH_FAILED, c.STORAGE_OPERATION_FAILED, c.STALLED, c.RECONCILING,
                  c.ARTIFACT_OUTDATED)


@dataclass(frozen=True)
class HTTPConnection:
    """How to reach one HTTP repository; ``key`` changes whenever any setting does."""

    url: str
    credentials: RegistryCredentials | None
    tls: TLSConfig | None
    pass_credentials: bool
    timeout: float
    key: str
    secrets: frozenset[tuple[str, str]] = frozenset()
    #: TLS material came from secretRef (deprecated in Flux: a log line says so)
    deprecated_tls: bool = False


def read_secret(secrets: SecretReader, namespace: str, name: str,
                label: str) -> dict[str, bytes]:
    """A Secret a repository names; ``StepFailedError`` AuthenticationFailed (``failed to get
    <label> 'ns/name'``) when it is missing or unreadable."""
    try:
        return dict(secrets.get(namespace, name))
    except SecretNotFoundError:
        raise StepFailedError(c.FETCH_FAILED, c.AUTHENTICATION_FAILED,
                              f"failed to get {label} '{namespace}/{safe(name)}': not found; "
                              "create it or fix the reference") from None
    except SecretUnreadableError as err:
        raise StepFailedError(c.FETCH_FAILED, c.AUTHENTICATION_FAILED,
                              f"failed to get {label} '{namespace}/{safe(name)}': "
                              f"{safe(err)}") from None


def settings_key(settings: str, credentials: RegistryCredentials | None,
                 tls: TLSConfig | None) -> str:
    """A digest of a repository's connection settings, Secrets' contents included: it
    changes whenever any of them does (one client per key)."""
    hasher = hashlib.sha256(settings.encode())
    if credentials is not None:
        hasher.update(f"|{credentials.username}\0{credentials.password}".encode())
    if tls is not None:
        for part in (tls.ca_pem, tls.cert_pem, tls.key_pem):
            hasher.update(b"|" + (part or b""))
    return hasher.hexdigest()


def http_connection(repo: HelmRepository, secrets: SecretReader) -> HTTPConnection:
    """The settings of a ``type: default`` repository; ``StepFailedError`` saying what is
    wrong (source-controller's words: ``failed to get authentication secret 'ns/name'``)."""
    spec, ns = repo.spec, repo.metadata.namespace
    if not spec.url.startswith(("http://", "https://")):
        raise StepFailedError(c.STALLED, c.INVALID_URL,
                              "invalid Helm repository URL: 'oci' URL scheme cannot be used "
                              "with 'default' HelmRepository type", stalled=True)
    used: set[tuple[str, str]] = set()
    data: dict[str, Mapping[str, bytes] | None] = {"auth": None, "tls": None}
    for what, ref, label in (("tls", spec.cert_secret_ref, "TLS authentication secret"),
                             ("auth", spec.secret_ref, "authentication secret")):
        if ref is not None:
            used.add((ns, ref.name))
            data[what] = read_secret(secrets, ns, ref.name, label)
    try:
        credentials, tls, deprecated = repository_auth(data["auth"], data["tls"])
    except OCIError as err:
        raise StepFailedError(c.FETCH_FAILED, c.AUTHENTICATION_FAILED, safe(err)) from None
    timeout = spec.timeout.total_seconds()
    key = settings_key(
        f"http|{ns}/{repo.metadata.name}|{spec.url}|{spec.pass_credentials}|{timeout}",
        credentials, tls)
    return HTTPConnection(url=spec.url, credentials=credentials, tls=tls,
                          pass_credentials=spec.pass_credentials, timeout=timeout,
                          key=key, secrets=frozenset(used),
                          deprecated_tls=deprecated)


@dataclass
class _Validators:
    """What the last index answer of one repository said, to ask conditionally next time."""

    key: str
    digest: str
    etag: str
    last_modified: str


class HTTPSources:
    """Shared by every reconcile, built once: HTTP repository clients (one per connection),
    parsed indexes by digest, the validators of each repository's last index answer, and the
    store the indexes are written to. Thread-safe."""

    def __init__(self, store: ArtifactStore, *, max_clients: int = 256, max_indexes: int = 8,
                 retries: int = 2,
                 client_factory: Callable[[HTTPConnection], HelmRepositoryClient] | None = None,
                 ) -> None:
        self.store = store
        self._factory = client_factory
        self._retries = retries
        self._max_clients = max_clients
        self._max_indexes = max_indexes
        self._clients: OrderedDict[str, HelmRepositoryClient] = OrderedDict()
        self._indexes: OrderedDict[str, HelmIndex] = OrderedDict()
        self._validators: dict[tuple[str, str], _Validators] = {}
        self._lock = threading.Lock()
        #: index documents parsed by this process (tests read it; /metrics counts them too)
        self.parses = 0

    def client(self, conn: HTTPConnection) -> HelmRepositoryClient:
        with self._lock:
            found = self._clients.get(conn.key)
            if found is not None:
                self._clients.move_to_end(conn.key)
                return found
            client = self._factory(conn) if self._factory is not None else (
                HelmRepositoryClient(conn.url, credentials=conn.credentials, tls=conn.tls,
                                     pass_credentials=conn.pass_credentials,
                                     timeout=conn.timeout, retries=self._retries))
            self._clients[conn.key] = client
            while len(self._clients) > self._max_clients:
                self._clients.popitem(last=False)  # closed when garbage-collected
            return client

    def parse(self, data: bytes, digest: str, where: str) -> HelmIndex:
        """Parse (bounded) and remember the index of ``digest``."""
        index = parse_index(data, where)
        metrics.helm_index("parsed")
        with self._lock:
            self.parses += 1
            self._indexes[digest] = index
            while len(self._indexes) > self._max_indexes:
                self._indexes.popitem(last=False)
        return index

    def index(self, artifact: Artifact, where: str) -> HelmIndex | None:
        """The parsed index of a repository's artifact: remembered, or read from the store
        and parsed; None when the store does not hold it."""
        with self._lock:
            found = self._indexes.get(artifact.digest)
            if found is not None:
                self._indexes.move_to_end(artifact.digest)
                return found
        try:
            data = self.store.read(artifact.digest)
        except StoreError:
            return None
        return self.parse(data, artifact.digest, where)

    def validators(self, key: tuple[str, str]) -> _Validators | None:
        with self._lock:
            return self._validators.get(key)

    def remember(self, key: tuple[str, str], validators: _Validators) -> None:
        with self._lock:
            self._validators[key] = validators

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._validators.pop(key, None)

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()


def fetch_failure(err: OCIError, what: str, reason: str = c.FAILED, *,
                  elsewhere: bool = False) -> StepFailedError:
    """A failed exchange with the repository: credentials and TLS are AuthenticationFailed.
    ``elsewhere``: the request went to another origin than the repository's, without the
    credentials (no ``passCredentials``)."""
    if isinstance(err, (AuthenticationError, TLSVerificationError)):
        reason = c.AUTHENTICATION_FAILED
        hint = ("; the chart's URL is on another host than the repository, which gets no "
                "credentials unless the HelmRepository sets spec.passCredentials: true"
                if elsewhere and isinstance(err, AuthenticationError)
                else "; check the username and password in spec.secretRef"
                if isinstance(err, AuthenticationError)
                else "; give the CA (ca.crt) or client certificate (tls.crt, tls.key) in "
                "spec.certSecretRef")
        return StepFailedError(c.FETCH_FAILED, reason, f"{what}: {safe(err)}{hint}")
    return StepFailedError(c.FETCH_FAILED, reason, f"{what}: {safe(err)}")


def human_size(size: int) -> str:
    """go-units' ``HumanSize``: 4 significant digits, decimal units (``1.234kB``)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    value = float(size)
    n = 0
    while value >= 1000 and n < len(units) - 1:
        value /= 1000
        n += 1
    return f"{value:.4g}{units[n]}"


@dataclass
class RepositoryOutcome:
    """What the HTTP path of a repository reconcile decided (the caller writes it)."""

    status: HelmRepositoryStatus
    events: list[Event] = field(default_factory=list)
    failure: StepFailedError | None = None
    secrets: frozenset[tuple[str, str]] = frozenset()
    #: "parsed", "unchanged" (same digest), "not-modified" (304)
    actions: tuple[str, ...] = ()
    requeue_after: timedelta | None = None
    #: lines for the operator's log (Flux logs them too)
    notes: tuple[str, ...] = ()


def reconcile_http_repository(repo: HelmRepository, status: HelmRepositoryStatus,
                              secrets: SecretReader, sources: HTTPSources, *, now: datetime,
                              artifact_url_base: str, requested_at: str = "",
                              ) -> RepositoryOutcome:
    """The status a ``type: default`` HelmRepository should have now."""
    gen, ns, name = repo.metadata.generation, repo.metadata.namespace, repo.metadata.name
    conds: list[dict[str, Any]] = [dict(x) for x in status.conditions]
    artifact = status.artifact
    events: list[Event] = []
    actions: list[str] = []
    used = frozenset((ns, ref.name) for ref in (repo.spec.secret_ref, repo.spec.cert_secret_ref)
                     if ref is not None)
    failure: StepFailedError | None = None
    notes: list[str] = []
    try:
        conn = http_connection(repo, secrets)
        if conn.deprecated_tls:
            notes.append("warning: specifying TLS authentication data via `.spec.secretRef` is "
                         "deprecated, please use `.spec.certSecretRef` instead")
        artifact, action = _fetch_and_store(repo, conn, artifact, sources, now,
                                            artifact_url_base, events)
        actions.append(action)
    except StepFailedError as err:
        failure = err
    keep = {failure.condition} if failure is not None else set()
    for type_ in _FAILURE_TYPES:
        if type_ not in keep:
            conds = c.remove_condition(conds, type_)
    if artifact is not None and (failure is None or failure.condition != c.STALLED):
        conds = c.set_condition(conds, c.ARTIFACT_IN_STORAGE, c.TRUE, c.SUCCEEDED,
                                f"stored artifact: revision '{artifact.revision}'",
                                observed_generation=gen, now=now)
    else:
        conds = c.remove_condition(conds, c.ARTIFACT_IN_STORAGE)
    if failure is not None:
        conds = c.set_condition(conds, failure.condition, failure.status, failure.reason,
                                failure.message, observed_generation=gen, now=now)
        if failure.stalled and failure.condition != c.STALLED:
            conds = c.set_condition(conds, c.STALLED, c.TRUE, failure.reason, failure.message,
                                    observed_generation=gen, now=now)
        events.append(Event("Warning", failure.reason, failure.message))
    conds = c.summarize_ready(conds, c.HELMREPOSITORY_READY, observed_generation=gen, now=now)
    if failure is not None and not c.get_condition(conds, c.READY):
        conds = c.set_condition(conds, c.READY, c.FALSE, failure.reason, failure.message,
                                observed_generation=gen, now=now)
    done = failure is None or failure.stalled
    new = HelmRepositoryStatus(
        observed_generation=gen if done else status.observed_generation,
        conditions=tuple(conds),
        url=artifact.url if artifact is not None else "",
        artifact=artifact,
        last_handled_reconcile_at=requested_at or status.last_handled_reconcile_at)
    if failure is not None and failure.stalled:
        sources.forget((ns, name))
    return RepositoryOutcome(
        status=new, events=events, failure=failure, secrets=used, actions=tuple(actions),
        notes=tuple(notes),
        requeue_after=None if failure is not None and failure.stalled else repo.spec.interval)


def _fetch_and_store(repo: HelmRepository, conn: HTTPConnection, artifact: Artifact | None,
                     sources: HTTPSources, now: datetime, base: str,
                     events: list[Event]) -> tuple[Artifact, str]:
    key = (repo.metadata.namespace, repo.metadata.name)
    try:
        stored = artifact is not None and sources.store.has(artifact.digest)
    except StoreError:
        stored = False
    known = sources.validators(key)
    conditional = (known is not None and known.key == conn.key and stored
                   and artifact is not None and known.digest == artifact.revision)
    client = sources.client(conn)
    try:
        download = client.fetch_index(etag=known.etag if conditional and known else "",
                                      last_modified=(known.last_modified
                                                     if conditional and known else ""))
    except OCIError as err:
        raise fetch_failure(err, "failed to fetch Helm repository index") from None
    if not download.changed:
        assert artifact is not None
        metrics.helm_index("not_modified")
        return artifact, "not-modified"
    sources.remember(key, _Validators(conn.key, download.digest, download.etag,
                                      download.last_modified))
    if stored and artifact is not None and artifact.revision == download.digest:
        metrics.helm_index("unchanged")
        return artifact, "unchanged"
    where = f"the index of {repo.subject}"
    try:
        sources.parse(download.data, download.digest, where)
    except OCIError as err:
        sources.forget(key)
        raise StepFailedError(c.FETCH_FAILED, c.INDEXATION_FAILED,
                              f"failed to load Helm repository from index YAML: "
                              f"{safe(err)}") from None
    try:
        digest = sources.store.put(download.data)
    except StoreError as err:
        sources.forget(key)
        raise StepFailedError(c.STORAGE_OPERATION_FAILED, c.ARCHIVE_OPERATION_FAILED,
                              f"unable to save artifact to storage: {safe(err)}") from None
    path = sources.store.relative_path(digest)
    new = Artifact(path=path, url=f"{base.rstrip('/')}/{path}", revision=download.digest,
                   last_update_time=c.format_time(now), digest=digest,
                   size=len(download.data))
    events.append(Event(
        "Normal", NEW_ARTIFACT,
        f"stored fetched index of size {human_size(len(download.data))} from "
        f"'{safe(without_credentials(conn.url))}'",
        {REVISION_ANNOTATION: new.revision, DIGEST_ANNOTATION: new.digest}))
    return new, "parsed"

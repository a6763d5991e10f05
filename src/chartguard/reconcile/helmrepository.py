"""HelmRepository: an OCI repository is static (a URL, credentials, TLS): validate it.

Current Flux writes no status on an ``oci`` HelmRepository; chartguard writes what the seed
shows (Flux v0.36): ``Ready=True``, ``Helm repository is ready``, once the URL parses and the
Secrets it names hold usable credentials and TLS material, else ``Ready=False`` saying what is
wrong. No request goes to the registry here; charts find out whether the credentials work.
Type ``default`` (an HTTP ``index.yaml`` repository) fetches and stores its index:
:mod:`chartguard.reconcile.http_source` (without it, e.g. in a caller that did not set one up,
such a repository is ``Stalled``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chartguard.api import HelmRepository
from chartguard.api import conditions as c
from chartguard.api.status import HelmRepositoryStatus
from chartguard.oci import (
    ChartReference,
    OCIError,
    RegistryCredentials,
    TLSConfig,
    credentials_from_secret,
    tls_from_secret,
)
from chartguard.reconcile.http_source import (
    HTTPSources,
    read_secret,
    reconcile_http_repository,
    settings_key,
)
from chartguard.reconcile.outcome import StepFailedError, safe
from chartguard.reconcile.seams import (
    Event,
    SecretReader,
)

UNSUPPORTED_REPOSITORY_TYPE = "UnsupportedRepositoryType"
UNSUPPORTED_PROVIDER = "UnsupportedProvider"


@dataclass(frozen=True)
class Connection:
    """How to talk to a repository's registry; ``key`` changes whenever any setting does."""

    plain_http: bool
    credentials: RegistryCredentials | None
    tls: TLSConfig | None
    key: str
    secrets: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def connection(repo: HelmRepository, secrets: SecretReader) -> Connection:
    """Registry settings of an ``oci`` HelmRepository; ``StepFailedError`` saying what is wrong."""
    spec, ns = repo.spec, repo.metadata.namespace
    if not spec.is_oci:
        raise StepFailedError(c.STALLED, UNSUPPORTED_REPOSITORY_TYPE,
                      f"{repo.subject} is of type '{safe(spec.type)}' (an HTTP index.yaml "
                      "repository), which is not served by chartguard yet: push the charts to "
                      "an OCI registry and use type: oci", stalled=True)
    if spec.provider != "generic":
        raise StepFailedError(c.STALLED, UNSUPPORTED_PROVIDER,
                      f"provider '{safe(spec.provider)}' is not served by chartguard yet: use "
                      "provider: generic with a secretRef", stalled=True)
    try:
        host = ChartReference.parse(spec.url, "chart").host
    except OCIError as err:
        raise StepFailedError(c.STALLED, c.INVALID_URL, f"invalid Helm repository URL: {safe(err)}",
                      stalled=True) from None
    used: set[tuple[str, str]] = set()
    credentials: RegistryCredentials | None = None
    tls: TLSConfig | None = None
    if spec.secret_ref is not None:
        used.add((ns, spec.secret_ref.name))
        data = _secret(secrets, ns, spec.secret_ref.name, "credentials")
        try:
            credentials = credentials_from_secret(data, host)
        except OCIError as err:
            raise StepFailedError(c.FETCH_FAILED, c.AUTHENTICATION_FAILED,
                          f"invalid credentials Secret '{ns}/{safe(spec.secret_ref.name)}': "
                          f"{safe(err)}") from None
    if spec.cert_secret_ref is not None:
        used.add((ns, spec.cert_secret_ref.name))
        data = _secret(secrets, ns, spec.cert_secret_ref.name, "TLS")
        try:
            tls = tls_from_secret(data)
        except OCIError as err:
            raise StepFailedError(c.FETCH_FAILED, c.AUTHENTICATION_FAILED,
                          f"invalid TLS Secret '{ns}/{safe(spec.cert_secret_ref.name)}': "
                          f"{safe(err)}") from None
    key = settings_key(f"{ns}/{repo.metadata.name}|{spec.url}|{spec.insecure}", credentials,
                       tls)
    return Connection(plain_http=spec.insecure, credentials=credentials, tls=tls,
                      key=key, secrets=frozenset(used))


def _secret(secrets: SecretReader, namespace: str, name: str, what: str) -> dict[str, bytes]:
    return read_secret(secrets, namespace, name, f"{what} Secret")


@dataclass(frozen=True)
class RepositoryResult:
    status: HelmRepositoryStatus
    #: when to look again (the Secrets' changes also trigger a reconcile)
    requeue_after: timedelta | None
    secrets: frozenset[tuple[str, str]]
    failure: StepFailedError | None = None
    events: tuple[Event, ...] = ()
    #: what happened to an HTTP repository's index: "parsed", "unchanged", "not-modified"
    actions: tuple[str, ...] = ()
    #: lines for the operator's log
    notes: tuple[str, ...] = ()


def reconcile_helmrepository(repo: HelmRepository, status: HelmRepositoryStatus,
                             secrets: SecretReader, *, now: datetime,
                             requested_at: str = "", http: HTTPSources | None = None,
                             artifact_url_base: str = "file:///") -> RepositoryResult:
    """The status the HelmRepository should have now (``http``: how ``type: default``
    repositories are served; without it they are refused)."""
    if not repo.spec.is_oci and http is not None:
        out = reconcile_http_repository(repo, status, secrets, http, now=now,
                                        artifact_url_base=artifact_url_base,
                                        requested_at=requested_at)
        return RepositoryResult(status=out.status, requeue_after=out.requeue_after,
                                secrets=out.secrets, failure=out.failure,
                                events=tuple(out.events), actions=out.actions,
                                notes=out.notes)
    gen = repo.metadata.generation
    conds: list[dict[str, object]] = [dict(x) for x in status.conditions]
    used: frozenset[tuple[str, str]] = frozenset()
    failure: StepFailedError | None = None
    try:
        conn = connection(repo, secrets)
        used = conn.secrets
    except StepFailedError as err:
        failure = err
        used = frozenset(
            (repo.metadata.namespace, ref.name)
            for ref in (repo.spec.secret_ref, repo.spec.cert_secret_ref) if ref is not None)
    for type_ in (c.FETCH_FAILED, c.STALLED, c.RECONCILING):
        conds = c.remove_condition(conds, type_)
    if failure is None:
        conds = c.set_condition(conds, c.READY, c.TRUE, c.SUCCEEDED,
                                c.HELM_REPOSITORY_READY_MESSAGE, observed_generation=gen, now=now)
    else:
        conds = c.set_condition(conds, failure.condition, failure.status, failure.reason,
                                failure.message, observed_generation=gen, now=now)
        conds = c.set_condition(conds, c.READY, c.FALSE, failure.reason, failure.message,
                                observed_generation=gen, now=now)
    done = failure is None or failure.stalled
    new = HelmRepositoryStatus(
        observed_generation=gen if done else status.observed_generation,
        conditions=tuple(conds),
        url=status.url,
        artifact=status.artifact,
        last_handled_reconcile_at=requested_at or status.last_handled_reconcile_at,
    )
    requeue = None if failure is not None and failure.stalled else repo.spec.interval
    return RepositoryResult(status=new, requeue_after=requeue, secrets=used, failure=failure)

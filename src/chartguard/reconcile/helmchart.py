"""HelmChart from an ``oci`` HelmRepository: resolve, verify, fetch, store; one status at the end.

The steps run in order over one scratch object (source-controller's shape); the first that
cannot go on raises :class:`~chartguard.reconcile.outcome.StepFailedError`, and the status is
summarised once, on every exit path, with Ready derived from the other conditions::

    source    the HelmRepository (oci only), its credentials and TLS; the chart reference
    policy    spec.verify -> keys from every *.pub of the Secret, or keyless identities and a
              trusted root; one verifier per policy fingerprint
    resolve   version (exact or range) -> one manifest digest
    verify    signatures of THAT digest (skipped when this process verified the same digest
              under the same policy and the artifact is in the store)
    fetch     manifest, config and chart layer by that digest, every blob's sha256 checked
              (skipped when the artifact for that digest is already in the store)
    store     the .tgz written atomically, named by its sha256; status.artifact

A failed verification, fetch or store never touches ``status.artifact`` or its file: the last
verified chart stays what the cluster uses. Nothing here imports kopf or the Kubernetes client.

A chart of an HTTP repository (``type: default``, :mod:`chartguard.reconcile.http_source`)
takes the same steps with other sources: the repository's stored index resolves the version
(revision: the version, as Flux writes it), ``verify`` with cosign is refused (there are no
signatures to verify), and the archive the index entry names is downloaded and checked; it is
not downloaded again while the version, the entry's digest, the generation and the keyring stay
the same.

``verify.provider: pgp`` (a chartguard extension) verifies Helm's own provenance instead: the
``.prov`` layer of the chart's manifest (OCI) or the ``<chart url>.prov`` beside the archive
(HTTP), with the OpenPGP keys of ``secretRef`` (:mod:`chartguard.verify.pgp`). The archive is
fetched with its provenance before anything is stored, and what is stored is exactly the archive
whose sha256 the signed provenance names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chartguard import cel, metrics
from chartguard.api import HelmChart, HelmRepository, InvalidSpecError
from chartguard.api import conditions as c
from chartguard.api.status import Artifact, HelmChartStatus, HelmRepositoryStatus
from chartguard.api.verification import PGP
from chartguard.oci import (
    AuthenticationError,
    ChartArtifact,
    ChartReference,
    IndexEntry,
    OCIError,
    RateLimitedError,
    ResolvedChart,
    select_entry,
)
from chartguard.oci.httprepo import chart_url
from chartguard.reconcile.helmrepository import Connection, connection
from chartguard.reconcile.http_source import (
    NO_SOURCE_ARTIFACT,
    VERIFY_NOT_IMPLEMENTED,
    HTTPConnection,
    HTTPSources,
    fetch_failure,
    http_connection,
)
from chartguard.reconcile.outcome import StepFailedError, safe
from chartguard.reconcile.seams import (
    Event,
    ObjectReader,
    Registry,
    RegistryFactory,
    SecretNotFoundError,
    SecretReader,
    SecretUnreadableError,
    VerifierFactory,
    utcnow,
)
from chartguard.reconcile.verification import (
    check_attestation_policy,
    verify_artifacts,
    verify_attestations,
)
from chartguard.store import ArtifactStore, StoreError
from chartguard.verify import (
    AttestationRequirement,
    OIDCIdentity,
    TrustRoot,
    VerificationError,
    VerificationFailedError,
    VerificationPolicy,
    VerificationResult,
    VerifiedCache,
    Verifier,
    public_keys_from_secret,
)
from chartguard.verify.pgp import PGPKeyring, keyring_from_secret, verify_provenance

SOURCE_UNAVAILABLE = "SourceUnavailable"
UNSUPPORTED_SOURCE_KIND = "UnsupportedSourceKind"
CHART_VERIFICATION_ERROR = "ChartVerificationError"
NEW_CHART = "NewChart"
#: Warning Event: keyless signature accepted from any signer (no matchOIDCIdentity)
SIGNER_IDENTITY_UNCHECKED = "SignerIdentityUnchecked"
TRUSTED_ROOT_KEY = "trusted_root.json"
#: Flux's event metadata keys (``<group>/revision``, ``<group>/digest``)
REVISION_ANNOTATION = "source.toolkit.fluxcd.io/revision"
DIGEST_ANNOTATION = "source.toolkit.fluxcd.io/digest"

#: a Retry-After beyond this (seconds, ten years; may be inf) is taken as this: it only has
#: to outlast any interval
_LONGEST_WAIT = 10 * 365 * 86400.0
_FAILURE_TYPES = (c.FETCH_FAILED, c.BUILD_FAILED, c.STORAGE_OPERATION_FAILED, c.STALLED,
                  c.RECONCILING, c.ARTIFACT_OUTDATED)


@dataclass(frozen=True)
class ChartEnv:
    """The I/O a chart reconcile uses, built once at start-up and shared by all charts."""

    secrets: SecretReader
    repositories: ObjectReader
    registries: RegistryFactory
    verifiers: VerifierFactory
    verified: VerifiedCache
    store: ArtifactStore
    require_keyless_identity: bool = False
    #: keyless verification's trust root when spec.verify names none (``chartguard run
    #: --trusted-root``, as cosign's SIGSTORE_ROOT_FILE); None: Sigstore's production root
    default_trust_root: TrustRoot | None = None
    #: ``status.artifact.url`` is this base joined with the artifact's path
    artifact_url_base: str = "file:///"
    now: Callable[[], datetime] = utcnow
    #: HTTP repositories (``type: default``); None: such sources are refused
    http: HTTPSources | None = None


@dataclass(frozen=True)
class Verified:
    """What this process last verified for one object: a manifest digest under a policy, and
    the store digest of the chart layer it fetched and hashed for that manifest itself."""

    digest: str
    policy: str  # the policy fingerprint; "" when spec.verify is not set
    #: the artifact (store) digest bound to ``digest`` by this process; "" before it fetched
    artifact: str = field(default="", compare=False)


@dataclass(frozen=True)
class ChartResult:
    status: HelmChartStatus
    events: tuple[Event, ...] = ()
    #: when to reconcile again (before jitter); None: only when something changes
    requeue_after: timedelta | None = None
    failure: StepFailedError | None = None
    verified: Verified | None = None
    #: the objects this chart read, so their changes re-reconcile it
    secrets: frozenset[tuple[str, str]] = frozenset()
    repository: tuple[str, str] | None = None
    #: what happened, for logs and tests: "unchanged", "verified", "fetched"
    actions: tuple[str, ...] = ()


@dataclass
class _Scratch:
    chart: HelmChart
    status: HelmChartStatus
    env: ChartEnv
    verified_before: Verified | None
    now: datetime
    conds: list[dict[str, Any]]
    events: list[Event] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    secrets: set[tuple[str, str]] = field(default_factory=set)
    repository: tuple[str, str] | None = None
    conn: Connection | None = None
    client: Registry | None = None
    ref: ChartReference | None = None
    policy: VerificationPolicy | None = None
    verifier: Verifier | None = None
    resolved: ResolvedChart | None = None
    result: VerificationResult | None = None
    artifact: Artifact | None = None
    chart_name: str = ""
    verified: Verified | None = None
    outdated: bool = False
    #: an HTTP repository's connection, stored index (its artifact) and the entry resolved
    http: HTTPConnection | None = None
    index: Artifact | None = None
    entry: IndexEntry | None = None
    source_revision: str = ""
    #: provider pgp: the keyring of secretRef, and the OCI chart fetched with its provenance
    keyring: PGPKeyring | None = None
    fetched: ChartArtifact | None = None
    #: an attestation policy the CEL sandbox could not compile now (busy, restarted): raised
    #: only if the chart must be verified again (an unchanged verified chart stays verified)
    policy_unchecked: StepFailedError | None = None

    @property
    def provider(self) -> str:
        verify = self.chart.spec.verify
        if verify is not None and verify.provider == PGP:
            return PGP
        return "cosign keyless" if verify is not None and verify.keyless else "cosign"

    @property
    def fingerprint(self) -> str:
        """What names the loaded verification policy ("" without verify)."""
        if self.keyring is not None:
            return self.keyring.fingerprint
        return self.policy.fingerprint if self.policy is not None else ""


def reconcile_helmchart(chart: HelmChart, status: HelmChartStatus, env: ChartEnv, *,
                        verified_before: Verified | None = None,
                        requested_at: str = "") -> ChartResult:
    """The status ``chart`` should have now, the Events to emit and when to look again."""
    s = _Scratch(chart=chart, status=status, env=env, verified_before=verified_before,
                 now=env.now(), conds=[dict(x) for x in status.conditions],
                 artifact=status.artifact, chart_name=status.observed_chart_name)
    # a failed verification is recalculated, never carried over (as source-controller does)
    if c.is_status(s.conds, c.SOURCE_VERIFIED, c.FALSE):
        s.conds = c.remove_condition(s.conds, c.SOURCE_VERIFIED)
    failure: StepFailedError | None = None
    try:
        for step in (_source, _policy, _resolve, _verify, _fetch):
            step(s)
    except StepFailedError as err:
        failure = err
    return _summarize(s, failure, requested_at)


# -- steps ---------------------------------------------------------------------------------


def _source(s: _Scratch) -> None:
    ref = s.chart.spec.source_ref
    ns = s.chart.metadata.namespace
    if ref.kind != "HelmRepository":
        raise StepFailedError(c.STALLED, UNSUPPORTED_SOURCE_KIND,
                      f"sourceRef kind {ref.kind} is not served by chartguard yet: serve the "
                      "chart from an OCI HelmRepository", stalled=True)
    if s.chart.spec.merged_values_files:
        # source-controller merges them into the chart's values.yaml and packages a new chart:
        # new bytes, not the ones that were signed; chartguard stores exactly what it verified
        raise StepFailedError(c.STALLED, c.VALUES_FILES_ERROR,
                      "spec.valuesFiles (and valuesFile) are not supported by chartguard: it "
                      "stores and installs the chart exactly as it was signed, and merging "
                      "values files would make another chart; remove them and give the values "
                      "in the HelmRelease's values or valuesFrom", stalled=True)
    s.repository = (ns, ref.name)
    body = s.env.repositories.get(ns, ref.name)
    if body is None:
        raise StepFailedError(c.FETCH_FAILED, SOURCE_UNAVAILABLE,
                      f"failed to get source: HelmRepository '{ns}/{ref.name}' not found")
    try:
        repo = HelmRepository.from_object(body, default_namespace=ns)
    except InvalidSpecError as err:
        raise StepFailedError(c.FETCH_FAILED, SOURCE_UNAVAILABLE,
                      f"failed to get source: {safe(err)}") from None
    for secret_ref in (repo.spec.secret_ref, repo.spec.cert_secret_ref):
        if secret_ref is not None:
            s.secrets.add((ns, secret_ref.name))
    if not repo.spec.is_oci and s.env.http is not None:
        _http_source(s, repo, body)
        return
    s.conn = connection(repo, s.env.secrets)
    try:
        s.ref = ChartReference.parse(repo.spec.url, s.chart.spec.chart)
    except OCIError as err:
        raise StepFailedError(c.STALLED, c.INVALID_CHART_REFERENCE,
                      f"invalid chart reference: {safe(err)}", stalled=True) from None
    s.client = s.env.registries.client(s.conn.key, plain_http=s.conn.plain_http,
                                       credentials=s.conn.credentials, tls=s.conn.tls)


def _http_source(s: _Scratch, repo: HelmRepository, body: Any) -> None:
    """An HTTP repository: its connection and its stored index (source-controller waits for
    the repository's artifact: ``NoSourceArtifact``)."""
    assert s.env.http is not None
    s.http = http_connection(repo, s.env.secrets)
    status = body.get("status") if isinstance(body, Mapping) else None
    artifact = HelmRepositoryStatus.from_status(status).artifact
    try:
        stored = artifact is not None and s.env.http.store.has(artifact.digest)
    except StoreError:
        stored = False
    if artifact is None or not stored:
        raise StepFailedError(c.FETCH_FAILED, NO_SOURCE_ARTIFACT,
                              f"no artifact available for HelmRepository source "
                              f"'{safe(repo.metadata.name)}'")
    s.index = artifact
    s.source_revision = artifact.revision


def _policy(s: _Scratch) -> None:
    verify = s.chart.spec.verify
    if verify is None:
        return
    if s.http is not None and verify.provider != PGP:
        # source-controller's ChartRepository.VerifyChart: "not implemented"; the spec must
        # change (nothing unverified is stored or installed meanwhile)
        raise StepFailedError(
            c.SOURCE_VERIFIED, c.VERIFICATION_ERROR,
            f"{VERIFY_NOT_IMPLEMENTED}: spec.verify needs a HelmRepository of type 'oci' "
            f"(cosign signatures live in OCI registries); HelmRepository "
            f"'{s.chart.metadata.namespace}/{s.chart.spec.source_ref.name}' is of type "
            "'default': remove verify, serve the chart from an OCI repository, or sign it "
            "with `helm package --sign` and use provider: pgp",
            status=c.FALSE, stalled=True,
            extra=((c.BUILD_FAILED, c.TRUE, CHART_VERIFICATION_ERROR),))
    ns = s.chart.metadata.namespace
    _check_attestation_policies(s)

    def refuse(why: str, *, stalled: bool = False) -> StepFailedError:
        return StepFailedError(c.SOURCE_VERIFIED, c.VERIFICATION_ERROR,
                       f"failed to verify the signature using provider '{s.provider}': {why}",
                       status=c.FALSE, stalled=stalled)

    def secret(name: str) -> dict[str, bytes]:
        s.secrets.add((ns, name))
        try:
            return dict(s.env.secrets.get(ns, name))
        except SecretNotFoundError:
            raise refuse(f"secret '{ns}/{safe(name)}' not found") from None
        except SecretUnreadableError as err:
            raise refuse(f"secret '{ns}/{safe(name)}' could not be read: {safe(err)}") from None

    if verify.provider == PGP:
        assert verify.secret_ref is not None  # the api model requires it
        name = verify.secret_ref.name
        try:
            s.keyring = keyring_from_secret(secret(name), f"secret '{ns}/{safe(name)}'")
        except VerificationError as err:
            raise refuse(safe(err)) from None
        return
    try:
        keys = (public_keys_from_secret(secret(verify.secret_ref.name))
                if verify.secret_ref is not None else ())
        root = s.env.default_trust_root
        if verify.trusted_root_secret_ref is not None:
            name = verify.trusted_root_secret_ref.name
            data = secret(name).get(TRUSTED_ROOT_KEY)
            if data is None:
                raise refuse(f"secret '{ns}/{safe(name)}' has no key {TRUSTED_ROOT_KEY}")
            root = TrustRoot.from_json(data, f"{ns}/{name}/{TRUSTED_ROOT_KEY}")
        identities = tuple(OIDCIdentity(issuer=m.issuer, subject=m.subject)
                           for m in verify.match_oidc_identity)
        s.policy = VerificationPolicy(
            keys=keys, identities=() if keys else identities, trust_root=root,
            require_identity=s.env.require_keyless_identity and not keys,
            attestations=tuple(AttestationRequirement(a.predicate_type, a.policy)
                               for a in verify.attestations))
        s.verifier = s.env.verifiers.verifier(s.policy)
    except VerificationError as err:
        # a key, trusted root or identity the spec or Secret gives that cannot be used
        raise refuse(safe(err)) from None


def _check_attestation_policies(s: _Scratch) -> None:
    """Compile each ``verify.attestations[].policy`` before anything is fetched: one that is
    not valid CEL (or not boolean) stalls the chart naming its field (the spec must change).
    One the sandbox could not answer for (busy, restarted, past its deadline) is noted: a
    transient sandbox problem must not change the verdict of an unchanged verified chart, so
    :func:`_verify` fails with it only when the chart has to be verified again."""
    verify = s.chart.spec.verify
    for attestation in verify.attestations if verify is not None else ():
        if not attestation.policy:
            continue
        where = f"{attestation.field_path}.policy" if attestation.field_path else "policy"
        try:
            check_attestation_policy(attestation.policy)
        except cel.CompileError as err:
            raise StepFailedError(c.SOURCE_VERIFIED, c.INVALID_CEL_EXPRESSION,
                                  f"invalid spec: {where}: {err}", status=c.FALSE,
                                  stalled=True) from None
        except cel.EvaluationError as err:  # the sandbox could not answer: tried again
            if s.policy_unchecked is None:
                s.policy_unchecked = StepFailedError(
                    c.SOURCE_VERIFIED, c.VERIFICATION_ERROR,
                    f"{where} could not be compiled: {err}", status=c.FALSE)


def _resolve(s: _Scratch) -> None:
    if s.http is not None:
        _http_resolve(s)
        return
    assert s.client is not None
    assert s.ref is not None
    try:
        s.resolved = s.client.resolve(s.ref, s.chart.spec.version)
    except OCIError as err:
        raise _pull_failure(err, "failed to get chart version") from None


def _http_resolve(s: _Scratch) -> None:
    """source-controller's getChartVersion over the repository's stored index."""
    assert s.env.http is not None
    assert s.index is not None
    where = f"the index of HelmRepository '{s.chart.metadata.namespace}/" \
            f"{s.chart.spec.source_ref.name}' ({s.index.revision})"
    try:
        index = s.env.http.index(s.index, where)
    except OCIError as err:
        raise StepFailedError(c.FETCH_FAILED, c.CHART_PULL_ERROR,
                              f"chart pull error: failed to get chart version for remote "
                              f"reference: {safe(err)}") from None
    if index is None:
        raise StepFailedError(c.FETCH_FAILED, NO_SOURCE_ARTIFACT,
                              f"no artifact available for HelmRepository source "
                              f"'{safe(s.chart.spec.source_ref.name)}'")
    try:
        s.entry = select_entry(index, s.chart.spec.chart, s.chart.spec.version, where)
    except OCIError as err:
        # source-controller: ErrChartReference, persistent (a new index re-queues the chart)
        raise StepFailedError(c.FETCH_FAILED, c.INVALID_CHART_REFERENCE,
                              f"invalid chart reference: failed to get chart version for "
                              f"remote reference: {safe(err)}", stalled=True) from None
    s.resolved = ResolvedChart(version=s.entry.version, tag="", digest=s.entry.digest)


def _revision(resolved: ResolvedChart) -> str:
    # an HTTP repository's chart (no tag, no manifest): the version, as Flux writes it
    if not resolved.tag:
        return resolved.version
    return f"{resolved.version}@{resolved.digest}"


def _in_store(s: _Scratch) -> bool:
    """The current artifact is this revision and its file is in the store, intact."""
    assert s.resolved is not None
    art = s.status.artifact
    if art is None or art.revision != _revision(s.resolved):
        return False
    try:
        return s.env.store.has(art.digest)
    except StoreError:
        return False


def _verify(s: _Scratch) -> None:
    if s.http is not None:
        return  # nothing to verify: _policy refused spec.verify
    assert s.resolved is not None
    assert s.client is not None
    assert s.ref is not None
    s.verified = Verified(s.resolved.digest, s.fingerprint)
    if s.verified == s.verified_before and _in_store(s):
        s.actions.append("unchanged")
        if s.fingerprint:  # verified by this object before: not done again
            metrics.verification_cache(hit=True)
        return
    if s.keyring is not None:
        _verify_oci_provenance(s, s.keyring)
        return
    if s.policy is None or s.verifier is None:
        return
    digest = s.resolved.digest
    cached = s.env.verified.get(digest, s.policy)
    metrics.verification_cache(hit=cached is not None)
    if cached is not None:
        s.result = cached
        return
    if s.policy_unchecked is not None:  # a policy this process could not compile now
        s.verified = None
        _outdated(s)
        raise s.policy_unchecked
    try:
        artifacts = s.client.find_signatures(s.ref, digest,
                                             attestations=bool(s.policy.attestations))
    except OCIError as err:
        raise _pull_failure(err, f"failed to read the signatures of {digest}") from None
    what = "signature"
    try:
        s.result = verify_artifacts(s.verifier, artifacts)
        # the signature first: an attestation never stands for it; then each requirement
        what = "attestations"
        verify_attestations(s.verifier, artifacts)
    except VerificationFailedError as err:
        raise _verification_failure(s, digest, "; ".join(err.failures) or str(err),
                                    what) from None
    s.env.verified.put(s.policy, s.result)
    s.actions.append("verified")
    if s.result.identity_unchecked and s.result.identity is not None:
        issuer, subject = s.result.identity
        s.events.append(Event(
            "Warning", SIGNER_IDENTITY_UNCHECKED,
            f"verified keyless signature of version {s.resolved.version} ({digest}) by "
            f"{safe(subject)} (issuer {safe(issuer)}), but spec.verify has no "
            "matchOIDCIdentity: any signer identity was accepted; add matchOIDCIdentity to "
            "pin the signer"))


def _verification_failure(s: _Scratch, digest: str, reasons: str,
                          what: str = "signature") -> StepFailedError:
    """SourceVerified False (and BuildFailed), Flux's words; the stored artifact stays."""
    assert s.resolved is not None
    s.verified = None
    message = (f"chart verification error: failed to verify the {what} of "
               f"'{s.chart.spec.chart}' version '{s.resolved.version}' ({digest}) using "
               f"provider '{s.provider}': {safe(reasons)}")
    _outdated(s)
    return StepFailedError(c.SOURCE_VERIFIED, c.VERIFICATION_ERROR, message, status=c.FALSE,
                           extra=((c.BUILD_FAILED, c.TRUE, CHART_VERIFICATION_ERROR),))


def _check_provenance(s: _Scratch, keyring: PGPKeyring, provenance: bytes | None,
                      chart: bytes, file_name: str, digest: str, where: str) -> None:
    """Helm provenance of one archive, or the SourceVerified failure saying why not."""
    if provenance is None:
        metrics.verification("unsigned", "none")
        raise _verification_failure(
            s, digest, f"no provenance (.prov) for {file_name} ({where}): sign the chart "
            "with `helm package --sign` and publish the .prov with it (`helm push` stores it "
            "in the chart's manifest)")
    try:
        verify_provenance(keyring, provenance, chart, file_name)
    except VerificationFailedError as err:
        metrics.verification("failed", "none")
        raise _verification_failure(s, digest, "; ".join(err.failures) or str(err)) from None
    metrics.verification("verified", "pgp")
    s.actions.append("verified")


def _verify_oci_provenance(s: _Scratch, keyring: PGPKeyring) -> None:
    """Fetch the chart with its provenance layer by the resolved digest and verify it; the
    fetched chart is the one :func:`_fetch` stores."""
    assert s.resolved is not None
    assert s.client is not None
    assert s.ref is not None
    digest = s.resolved.digest
    try:
        chart = s.client.fetch_chart(s.ref, digest, provenance=True,
                                     version=s.resolved.version)
    except OCIError as err:
        _outdated(s)
        raise _pull_failure(err, f"failed to pull {digest}") from None
    _check_provenance(s, keyring, chart.provenance, chart.layer, chart.file_name, digest,
                      f"no provenance layer in manifest {digest}")
    s.fetched = chart


def _http_fetch(s: _Scratch) -> None:
    """Download the entry's archive unless this process stored it for this version, entry
    digest and generation already (source-controller skips a cached chart of the same name
    and version unless the generation changed)."""
    assert s.env.http is not None
    assert s.http is not None
    assert s.entry is not None
    assert s.resolved is not None
    art, entry = s.status.artifact, s.entry
    bound = s.verified_before.artifact if s.verified_before is not None else ""
    policy = s.verified_before.policy if s.verified_before is not None else ""
    if (art is not None and art.revision == entry.version and art.digest == bound
            and policy == s.fingerprint
            and s.status.observed_chart_name == entry.name
            and s.status.observed_generation == s.chart.metadata.generation
            and (not entry.digest or entry.digest == art.digest) and _in_store(s)):
        s.actions.append("unchanged")
        s.verified = Verified(art.digest, s.fingerprint, art.digest)
        if s.keyring is not None:
            metrics.verification_cache(hit=True)
        return
    client = s.env.http.client(s.http)
    try:
        chart = client.fetch_chart(entry, provenance=s.keyring is not None)
    except OCIError as err:
        _outdated(s)
        what = "chart pull error: failed to download chart for remote reference"
        elsewhere = bool(entry.urls) and not client.sends_credentials_to(
            chart_url(s.http.url, entry.urls[0]))
        failure = fetch_failure(err, what, c.CHART_PULL_ERROR, elsewhere=elsewhere)
        if failure.reason == c.AUTHENTICATION_FAILED:
            failure = replace(failure, message="failed to authenticate with the Helm "
                              f"repository: {failure.message}")
        raise failure from None
    if s.keyring is not None:
        _check_provenance(s, s.keyring, chart.provenance, chart.data, chart.file_name,
                          chart.digest, f"{chart.url}.prov answered 404")
    digest = _store(s, chart.data)
    s.verified = Verified(digest, s.fingerprint, digest)
    s.chart_name = safe(chart.name)
    if art is not None and art.digest == digest and art.revision == entry.version:
        return  # the same bytes again: status stays as it was
    s.artifact = _artifact(s, digest, entry.version, len(chart.data))


def _store(s: _Scratch, data: bytes) -> str:
    """Write a checked chart archive to the store; its digest."""
    try:
        digest = s.env.store.put(data)
    except StoreError as err:
        raise StepFailedError(c.STORAGE_OPERATION_FAILED, c.ARCHIVE_OPERATION_FAILED,
                              f"unable to copy Helm chart to storage: {safe(err)}") from None
    s.actions.append("fetched")
    return digest


def _artifact(s: _Scratch, digest: str, revision: str, size: int) -> Artifact:
    path = s.env.store.relative_path(digest)
    return Artifact(path=path, url=f"{s.env.artifact_url_base.rstrip('/')}/{path}",
                    revision=revision, last_update_time=c.format_time(s.now), digest=digest,
                    size=size)


def _fetch(s: _Scratch) -> None:
    if s.http is not None:
        _http_fetch(s)
        return
    assert s.resolved is not None
    assert s.client is not None
    assert s.ref is not None
    bound = s.verified_before.artifact if s.verified_before is not None else ""
    art = s.status.artifact
    if (_in_store(s) and s.verified == s.verified_before and art is not None
            and art.digest == bound):
        # this process fetched this digest's chart itself and stored it under that name
        if s.verified is not None:
            s.verified = replace(s.verified, artifact=bound)
        return
    # first time here (e.g. after a restart): the stored file is taken only once this manifest's
    # layer is fetched and hashed again, so status.artifact.digest (which anyone who may write
    # the status could have changed) never decides alone which file stands for the digest
    try:
        # provider pgp fetched (and verified) the chart with its provenance already
        chart = s.fetched or s.client.fetch_chart(s.ref, s.resolved.digest,
                                                   version=s.resolved.version)
    except OCIError as err:
        _outdated(s)
        raise _pull_failure(err, f"failed to pull {s.resolved.digest}") from None
    digest = _store(s, chart.layer)
    if s.verified is not None:
        s.verified = replace(s.verified, artifact=digest)
    s.chart_name = safe(chart.name)  # from the registry: outside text
    old = s.status.artifact
    if old is not None and old.digest == digest and old.revision == _revision(s.resolved):
        return  # the same bytes stored again (after a restart): status stays as it was
    s.artifact = _artifact(s, digest, _revision(s.resolved), len(chart.layer))


def _pull_failure(err: OCIError, what: str) -> StepFailedError:
    reason = c.AUTHENTICATION_FAILED if isinstance(err, AuthenticationError) else (
        c.CHART_PULL_ERROR)
    # the registry said when to come back: the operator requeues then, not on its backoff
    wait = (timedelta(seconds=min(err.retry_after, _LONGEST_WAIT))
            if isinstance(err, RateLimitedError) else None)
    return StepFailedError(c.FETCH_FAILED, reason, f"chart pull error: {what}: {safe(err)}",
                           retry_after=wait)


def _outdated(s: _Scratch) -> None:
    """A newer revision than the stored one was seen and could not be stored (yet)."""
    assert s.resolved is not None
    if s.status.artifact is not None and s.status.artifact.revision != _revision(s.resolved):
        s.outdated = True
        s.conds = c.set_condition(
            s.conds, c.ARTIFACT_OUTDATED, c.TRUE, NEW_CHART,
            f"new '{s.chart.spec.chart}' chart with version '{s.resolved.version}'",
            observed_generation=s.chart.metadata.generation, now=s.now)


# -- summary -------------------------------------------------------------------------------


def _summarize(s: _Scratch, failure: StepFailedError | None, requested_at: str) -> ChartResult:
    gen, now = s.chart.metadata.generation, s.now
    conds = s.conds
    keep = {failure.condition, *(x[0] for x in failure.extra)} if failure else set()
    if failure is not None and s.outdated:
        keep.add(c.ARTIFACT_OUTDATED)
    for type_ in _FAILURE_TYPES:
        if type_ not in keep:
            conds = c.remove_condition(conds, type_)
    events = list(s.events)
    artifact = s.artifact
    chart_name = s.chart_name or s.status.observed_chart_name or s.chart.spec.chart
    if failure is None:
        assert s.resolved is not None
        assert artifact is not None
        pulled = c.pulled_chart_message(chart_name, s.resolved.version)
        conds = c.set_condition(conds, c.ARTIFACT_IN_STORAGE, c.TRUE, c.CHART_PULL_SUCCEEDED,
                                pulled, observed_generation=gen, now=now)
        if s.chart.spec.verify is not None:
            kinds = tuple(dict.fromkeys(safe(a.predicate_type)
                                        for a in s.chart.spec.verify.attestations))
            conds = c.set_condition(conds, c.SOURCE_VERIFIED, c.TRUE, c.SUCCEEDED,
                                    c.verified_signature_message(s.resolved.version, kinds),
                                    observed_generation=gen, now=now)
        else:
            conds = c.remove_condition(conds, c.SOURCE_VERIFIED)
        old = s.status.artifact
        if old is None or old.digest != artifact.digest or _recovered(s.status.conditions):
            events.append(Event("Normal", c.CHART_PULL_SUCCEEDED, pulled, {
                REVISION_ANNOTATION: artifact.revision, DIGEST_ANNOTATION: artifact.digest}))
    else:
        conds = c.set_condition(conds, failure.condition, failure.status, failure.reason,
                                failure.message, observed_generation=gen, now=now)
        for type_, value, reason in failure.extra:
            conds = c.set_condition(conds, type_, value, reason, failure.message,
                                    observed_generation=gen, now=now)
        if failure.stalled and failure.condition != c.STALLED:
            conds = c.set_condition(conds, c.STALLED, c.TRUE, failure.reason, failure.message,
                                    observed_generation=gen, now=now)
        if s.chart.spec.verify is None:
            conds = c.remove_condition(conds, c.SOURCE_VERIFIED)
        events.append(Event("Warning", failure.reason, failure.message))
    conds = c.summarize_ready(conds, c.HELMCHART_READY, observed_generation=gen, now=now)
    done = failure is None or failure.stalled
    status = HelmChartStatus(
        observed_generation=gen if done else s.status.observed_generation,
        conditions=tuple(conds),
        artifact=artifact,
        url=artifact.url if artifact is not None else s.status.url,
        observed_chart_name=chart_name if artifact is not None else "",
        observed_source_artifact_revision=(s.source_revision
                                           or s.status.observed_source_artifact_revision),
        observed_values_files=s.status.observed_values_files,
        last_handled_reconcile_at=requested_at or s.status.last_handled_reconcile_at,
    )
    requeue = None if failure is not None and failure.stalled else s.chart.spec.interval
    return ChartResult(
        status=status, events=tuple(events), requeue_after=requeue, failure=failure,
        verified=s.verified if failure is None else (
            None if failure.condition == c.SOURCE_VERIFIED else s.verified_before),
        secrets=frozenset(s.secrets), repository=s.repository, actions=tuple(s.actions))


def _recovered(before: tuple[Any, ...]) -> bool:
    """The previous status recorded a failure (Flux notifies on recovery)."""
    return any(x.get("type") in (c.FETCH_FAILED, c.BUILD_FAILED, c.STORAGE_OPERATION_FAILED)
               and x.get("status") == c.TRUE for x in before) or c.is_status(
        before, c.SOURCE_VERIFIED, c.FALSE)

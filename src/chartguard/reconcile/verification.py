"""Glue between what :mod:`chartguard.oci` found and what :mod:`chartguard.verify` checks.

Used by ``chartguard verify`` now and by the HelmChart reconciler: the same signature
artifacts (from a registry or an OCI layout) become the verifier's inputs the same way, and
"no signature" says where it was looked for.

Candidates are verified one signature manifest at a time, so that a manifest with thousands of
layers yields a few lines ("first 5 failures ...; N more"), not thousands; candidates that
could not even be read (``SignatureArtifacts.failures``) are listed after the ones tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chartguard import cel, metrics
from chartguard.api.verification import ATTESTATION_VARIABLES
from chartguard.oci import SignatureArtifacts
from chartguard.untrusted import escape
from chartguard.verify import (
    COSIGN_SIGN_PREDICATE,
    AttestationRequirement,
    BundleCandidate,
    InvalidPolicyError,
    LegacySignature,
    NoSignatureError,
    OIDCIdentity,
    PublicKey,
    TrustRoot,
    VerificationFailedError,
    VerificationPolicy,
    VerificationResult,
    VerifiedAttestation,
    Verifier,
    public_keys_from_pem,
)

__all__ = [
    "FAILURES_SHOWN",
    "MAX_POLICY_EVALUATIONS",
    "MAX_POLICY_EVALUATIONS_TOTAL",
    "AttestationNotMetError",
    "MetRequirement",
    "NoSignatureFoundError",
    "attestation_inputs",
    "build_policy",
    "check_attestation_policy",
    "signature_format",
    "signature_inputs",
    "verify_artifacts",
    "verify_attestations",
]


#: failure lines shown per signature manifest; the rest are counted
FAILURES_SHOWN = 5
#: CEL evaluations of one attestation requirement's policy per verification (one per distinct
#: verified statement of its type); the statements beyond are not evaluated
MAX_POLICY_EVALUATIONS = 32
#: CEL evaluations of all the requirements of one verification together
MAX_POLICY_EVALUATIONS_TOTAL = 128


class NoSignatureFoundError(NoSignatureError):
    """No signature for the digest, and the places that were looked at."""

    def __init__(self, digest: str, looked_at: tuple[str, ...]) -> None:
        self.looked_at = looked_at
        super().__init__(digest)

    def _message(self) -> str:
        places = list(self.looked_at)
        where = (" and ".join(places) if len(places) <= 2
                 else ", ".join(places[:-1]) + " and " + places[-1])
        return f"no signature for {self.digest}" + (f" (looked at {where})" if where else "")


def signature_inputs(
    artifacts: SignatureArtifacts,
) -> tuple[tuple[LegacySignature, ...], tuple[BundleCandidate, ...]]:
    """Every legacy layer and every bundle layer, each named by where it came from.

    Nothing is filtered here: a layer of an unexpected type is still handed over so that it
    fails with its own reason instead of disappearing from the failure list.
    """
    legacy = tuple(
        LegacySignature(payload=layer.data, annotations=dict(layer.annotations),
                        source=layer.source)
        for layer in artifacts.legacy)
    bundles = tuple(
        BundleCandidate(data=layer.data, source=layer.source or referrer.source)
        for referrer in artifacts.referrers for layer in referrer.layers)
    return legacy, bundles


@dataclass(frozen=True)
class _Group:
    """The candidates of one signature manifest (legacy ``.sig`` or one referrer)."""

    name: str
    legacy: tuple[LegacySignature, ...] = ()
    bundles: tuple[BundleCandidate, ...] = ()


def _groups(artifacts: SignatureArtifacts) -> list[_Group]:
    legacy, bundles = signature_inputs(artifacts)
    by_manifest: dict[str, list[LegacySignature]] = {}
    for sig in legacy:  # "tag sha256-….sig layer 3" belongs to "tag sha256-….sig"
        by_manifest.setdefault(sig.source.rpartition(" layer ")[0] or sig.source,
                               []).append(sig)
    groups = [_Group(name, legacy=tuple(sigs)) for name, sigs in by_manifest.items()]
    start = 0
    for referrer in artifacts.referrers:
        count = len(referrer.layers)
        groups.append(_Group(referrer.source + f" referrer {referrer.manifest_digest}",
                             bundles=bundles[start:start + count]))
        start += count
    return groups


def _summarised(group: str, failures: tuple[str, ...], noun: str = "signatures") -> list[str]:
    if len(failures) <= FAILURES_SHOWN:
        return list(failures)
    more = len(failures) - FAILURES_SHOWN
    return [*failures[:FAILURES_SHOWN],
            f"{group}: {len(failures):,} {noun} failed; the first {FAILURES_SHOWN} are "
            f"shown, {more:,} more"]


def verify_artifacts(verifier: Verifier, artifacts: SignatureArtifacts) -> VerificationResult:
    """Verify ``artifacts.digest``; raise ``VerificationFailedError`` (reasons, summarised).

    Any one signature that verifies is enough; a candidate that failed to download does not
    hide the others. With nothing to try at all, ``NoSignatureFoundError`` says where chartguard
    looked.
    """
    failures: list[str] = []
    for group in _groups(artifacts):
        if not group.legacy and not group.bundles:
            continue
        try:
            result = verifier.verify(artifacts.digest, group.legacy, group.bundles)
        except NoSignatureError:
            continue
        except VerificationFailedError as err:
            failures.extend(_summarised(group.name, err.failures))
        else:
            metrics.verification("verified", signature_format(result))
            return result
    failures.extend(artifacts.failures)
    if not failures:
        metrics.verification("unsigned", "none")
        raise NoSignatureFoundError(artifacts.digest, tuple(artifacts.looked_at))
    metrics.verification("failed", "none")
    raise VerificationFailedError(artifacts.digest, tuple(failures))


# -- attestations (a chartguard extension of verify) -------------------------------------------

class AttestationNotMetError(VerificationFailedError):
    """An attestation requirement was not met; ``failures``: one line per requirement not
    met, then why each attestation of its type failed."""


@dataclass(frozen=True)
class MetRequirement:
    """A requirement and the attestations that met it (at least one)."""

    requirement: AttestationRequirement
    attestations: tuple[VerifiedAttestation, ...]


def attestation_inputs(
    artifacts: SignatureArtifacts,
) -> tuple[tuple[LegacySignature, ...], tuple[BundleCandidate, ...]]:
    """The legacy ``.att`` layers and every bundle referrer, as the verifier takes them."""
    legacy = tuple(LegacySignature(payload=layer.data, annotations=dict(layer.annotations),
                                   source=layer.source) for layer in artifacts.attestations)
    return legacy, signature_inputs(artifacts)[1]


#: policy texts that compiled in this process (a text that compiled compiles again: the
#: sandbox is not asked twice), at most this many remembered
_COMPILED_KEPT = 1024
_compiled: dict[str, None] = {}


def check_attestation_policy(policy: str) -> None:
    """Compile an attestation's CEL policy (boolean, its variables declared):
    ``cel.CompileError`` when it is not valid, ``cel.EvaluationError`` when the sandbox could
    not answer. A text that compiled before in this process is not compiled again."""
    if policy in _compiled:
        return
    cel.check(policy, variables=ATTESTATION_VARIABLES, boolean=True)
    _compiled[policy] = None
    while len(_compiled) > _COMPILED_KEPT:
        del _compiled[next(iter(_compiled))]


def _statement_variables(found: VerifiedAttestation) -> dict[str, object]:
    return {"predicate": found.statement.get("predicate"),
            "predicateType": found.statement.get("predicateType"),
            "subject": found.statement.get("subject")}


@dataclass(frozen=True)
class _Outcome:
    """Why a policy does not hold for a statement ("" when it does; escaped, without the
    attestation's source: a statement evaluated once may stand for several); ``limit``: the
    sandbox ended the evaluation at one of its limits."""

    why: str = ""
    limit: bool = False


def _policy_outcome(requirement: AttestationRequirement,
                    found: VerifiedAttestation) -> _Outcome:
    if not requirement.policy:
        return _Outcome()
    try:
        if cel.evaluate_boolean(requirement.policy, _statement_variables(found),
                                variables=ATTESTATION_VARIABLES):
            return _Outcome()
        return _Outcome(f"policy '{cel.quote(requirement.policy)}' is false")
    except cel.LimitError as err:  # escaped by chartguard.cel
        return _Outcome(str(err), limit=True)
    except cel.CelError as err:  # a compile error, a missing field, ...
        return _Outcome(str(err))


def verify_attestations(verifier: Verifier, artifacts: SignatureArtifacts,
                        requirements: Sequence[AttestationRequirement] | None = None,
                        *, every: bool = False) -> tuple[MetRequirement, ...]:
    """Check every attestation requirement of the verifier's policy (or ``requirements``)
    against ``artifacts`` (found with ``attestations=True``); each must be met by at least one
    attestation. ``AttestationNotMetError`` names each requirement not met and why each
    attestation of its type failed (signer, subject, policy false or CEL error); fails
    closed. Call it after the signature verified: an attestation never stands for one.

    Each distinct statement is verified and evaluated once (copies are passed over). A
    requirement's policy is evaluated until one attestation meets it (``every``: the CLI's
    listing, on through the distinct ones), for at most :data:`MAX_POLICY_EVALUATIONS`
    attestations per requirement and :data:`MAX_POLICY_EVALUATIONS_TOTAL` per call; a
    requirement not met within them is not met, saying how many were not evaluated."""
    wanted = tuple(requirements if requirements is not None
                   else verifier.policy.attestations)
    if not wanted:
        return ()
    legacy, bundles = attestation_inputs(artifacts)
    found = verifier.attestations(artifacts.digest, legacy, bundles,
                                  tuple(dict.fromkeys(r.predicate_type for r in wanted)))
    met: list[MetRequirement] = []
    failures: list[str] = []
    outcomes: dict[tuple[str, str], _Outcome] = {}  # (policy, statement) -> outcome
    budget = MAX_POLICY_EVALUATIONS_TOTAL
    for requirement in wanted:
        of_type = [a for a in found.verified if a.predicate_type == requirement.predicate_type]
        reasons = list(found.failures.get(requirement.predicate_type, ()))
        meeting: list[VerifiedAttestation] = []
        evaluated = unevaluated = 0
        limited = False
        for index, attestation in enumerate(of_type):
            if meeting and (not every or len(meeting) >= MAX_POLICY_EVALUATIONS):
                break
            if limited:  # the policy reached a sandbox limit: not evaluated again
                unevaluated = len(of_type) - index
                break
            key = (requirement.policy, attestation.payload_sha256)
            if key not in outcomes:
                if requirement.policy:
                    if evaluated >= MAX_POLICY_EVALUATIONS or budget <= 0:
                        unevaluated = len(of_type) - index
                        break
                    evaluated += 1
                    budget -= 1
                outcomes[key] = _policy_outcome(requirement, attestation)
            outcome = outcomes[key]
            limited = outcome.limit
            if not outcome.why:
                meeting.append(attestation)
            else:
                reasons.append(f"{attestation.result.source}: "
                               f"signed by {attestation.result.signer}: {outcome.why}")
        if meeting:
            met.append(MetRequirement(requirement, tuple(meeting)))
            continue
        name = escape(requirement.predicate_type)
        if not reasons and not unevaluated:
            unread = len(found.failures.get("", ()))
            failures.append(f"attestation {name} not met: no attestation of that type for "
                            f"{artifacts.digest}" + (
                                f" ({unread} could not be read, below)" if unread else ""))
            continue
        limit = "" if not unevaluated else (
            f"; {unevaluated} more of that type not evaluated (" + (
                "the policy reached a limit of the CEL sandbox)" if limited else
                f"at most {MAX_POLICY_EVALUATIONS} policy evaluations per requirement, "
                f"{MAX_POLICY_EVALUATIONS_TOTAL} per verification)"))
        failures.append(f"attestation {name} not met: {len(reasons)} attestation"
                        f"{'s' if len(reasons) != 1 else ''} of that type, none meets it"
                        f"{limit}:")
        failures.extend(_summarised(f"attestation {name}", tuple(reasons), "attestations"))
    if failures:
        # what could not be read may have hidden the one that meets it: said too
        failures.extend(found.failures.get("", ()))
        failures.extend(artifacts.failures)
        raise AttestationNotMetError(artifacts.digest, tuple(failures))
    return tuple(met)


def signature_format(result: VerificationResult) -> str:
    """``legacy_key``, ``legacy_keyless``, ``bundle_key`` or ``bundle_keyless``: what verified."""
    return f"{result.format}_{'key' if result.key is not None else 'keyless'}"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise InvalidPolicyError(f"{what} {path}: cannot be read ({err.strerror})") from None


def _keys_in_file(path: Path) -> tuple[PublicKey, ...]:
    """Every public key of a PEM file (a rotation may hold several; none is dropped)."""
    return public_keys_from_pem(_read(path, "public key"), path.name)


def build_policy(*, key_files: Sequence[Path] = (),
                 identities: Sequence[tuple[str, str]] = (),
                 trusted_root: Path | None = None,
                 require_identity: bool = False,
                 bundle_predicate_types: Sequence[str] = (),
                 attestations: Sequence[AttestationRequirement] = ()) -> VerificationPolicy:
    """A policy from command-line style inputs: key files, (issuer, subject) regexps, a root.

    Keys are named by their file name, as failures and results show them.
    ``bundle_predicate_types`` are in-toto predicate types accepted in bundles besides cosign's
    signature type (e.g. an attestation type meant to approve the artifact). Raises
    ``VerificationError`` subclasses (bad file, bad expression, keys with identities).
    """
    keys = tuple(key for path in key_files for key in _keys_in_file(path))
    ids = tuple(OIDCIdentity(issuer=issuer, subject=subject) for issuer, subject in identities)
    root = (TrustRoot.from_json(_read(trusted_root, "trusted root"), trusted_root.name)
            if trusted_root is not None else None)
    predicates = (COSIGN_SIGN_PREDICATE,
                  *(t for t in bundle_predicate_types if t != COSIGN_SIGN_PREDICATE))
    return VerificationPolicy(keys=keys, identities=ids, trust_root=root,
                              require_identity=require_identity,
                              bundle_predicate_types=predicates,
                              attestations=tuple(attestations))

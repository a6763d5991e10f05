"""``verify``: how a chart's signature must be checked (HelmChart ``spec.verify`` and the
HelmRelease ``spec.chart.spec.verify`` template).

Identity matchers are Go regular expressions (RE2), as in Flux. They are compiled here, once,
by the same :class:`chartguard.identity.IdentityMatcher` the verifier runs, so a bad pattern is
reported at its field path before anything is fetched, and constructs Go refuses (look-around,
back-references) are refused too. Matching is unanchored, as Go's ``MatchString`` is: write
``^...$`` to pin a value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from chartguard.api._fields import Fields
from chartguard.api.meta import LocalObjectReference, local_reference
from chartguard.identity import IdentityExpressionError, IdentityMatcher, identity_set

COSIGN = "cosign"
NOTATION = "notation"
#: chartguard extension: Helm's own provenance (``helm package --sign``, a ``.prov`` file)
PGP = "pgp"
#: the enum of Flux's CRD (both accepted by the schema), and chartguard's pgp
PROVIDERS = (COSIGN, NOTATION, PGP)

#: One keyless identity matcher (issuer and subject expressions; both must match). The name
#: of the api model; the class is the verifier's too.
OIDCIdentityMatch = IdentityMatcher


#: the in-toto predicate type of a cosign *signature* bundle (``cosign sign``): never an
#: attestation requirement (``chartguard.verify`` names it ``COSIGN_SIGN_PREDICATE``)
SIGNATURE_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
#: the variables an attestation's CEL policy reads (the in-toto statement's fields)
ATTESTATION_VARIABLES = ("predicate", "predicateType", "subject")
#: longest predicateType accepted (a URI)
MAX_PREDICATE_TYPE = 1024
#: attestation requirements per verify block
MAX_ATTESTATIONS = 16


@dataclass(frozen=True)
class AttestationPolicy:
    """One ``verify.attestations`` entry (a chartguard extension): an attestation of
    ``predicate_type`` the chart must carry, signed as the signature is, for which the CEL
    expression ``policy`` is true (empty: its presence is enough).

    The expression is compiled by the reconcilers before anything is fetched (the api layer
    does not run the CEL sandbox): a bad one is refused naming ``field_path``."""

    predicate_type: str
    policy: str = ""
    #: where it was written (``spec.verify.attestations[0]``), for messages
    field_path: str = ""

    def to_spec(self) -> dict[str, object]:
        out: dict[str, object] = {"predicateType": self.predicate_type}
        if self.policy:
            out["policy"] = self.policy
        return out


@dataclass(frozen=True)
class Verification:
    """Signature policy. No ``secret_ref`` means keyless (Fulcio certificate + Rekor);
    ``provider`` ``pgp``: Helm provenance with the OpenPGP keys of ``secret_ref``."""

    provider: str = COSIGN
    secret_ref: LocalObjectReference | None = None
    match_oidc_identity: tuple[OIDCIdentityMatch, ...] = ()
    #: Secret holding ``trusted_root.json`` for a private Sigstore (None: public-good Sigstore)
    trusted_root_secret_ref: LocalObjectReference | None = None
    #: attestations the chart must also carry (chartguard extension; cosign only)
    attestations: tuple[AttestationPolicy, ...] = ()

    @property
    def keyless(self) -> bool:
        return self.secret_ref is None and self.provider == COSIGN

    def to_spec(self) -> dict[str, object]:
        """The ``verify`` object as it is written in a spec."""
        out: dict[str, object] = {"provider": self.provider}
        if self.secret_ref:
            out["secretRef"] = {"name": self.secret_ref.name}
        if self.match_oidc_identity:
            out["matchOIDCIdentity"] = [
                {"issuer": m.issuer, "subject": m.subject} for m in self.match_oidc_identity
            ]
        if self.trusted_root_secret_ref:
            out["trustedRootSecretRef"] = {"name": self.trusted_root_secret_ref.name}
        if self.attestations:
            out["attestations"] = [a.to_spec() for a in self.attestations]
        return out


def policy_digest(document: object) -> str:
    """``sha256:<hex>`` of ``document`` as canonical JSON: the one rule naming a policy.

    Used by :func:`verify_policy_digest` (the spec) and by
    ``chartguard.verify.VerificationPolicy.fingerprint`` (the loaded policy).
    """
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def attestation_set(requirements: Iterable[tuple[str, str]]) -> list[list[str]]:
    """(predicateType, policy) pairs as a policy digest lists them: order and repetition do
    not count (each must be met). Shared by :func:`verify_policy_digest` and the loaded
    policy's fingerprint."""
    return [list(pair) for pair in sorted(set(requirements))]


def verify_policy_digest(verification: Verification | None) -> str:
    """``sha256:<hex>`` naming a verify *spec*, so a reconciler can tell "spec unchanged".

    Stable across processes and releases of chartguard (canonical JSON, versioned). The order and
    repetition of ``matchOIDCIdentity`` entries do not count (any one must match, so the policy is
    the same set). ``None`` (no verification) has its own digest. Only the spec is covered: the
    *contents* of the referenced Secrets are not, so a reconciler that caches a verdict must also
    key it on those Secrets (e.g. their resourceVersion).

    Why two names exist: this one is computable from the spec alone, before any Secret is read
    (for status and "did the spec change"); ``VerificationPolicy.fingerprint`` names the loaded
    policy (keys by SPKI, the trust root's bytes) and is the only key under which a
    verification result may be reused. Both are :func:`policy_digest` of a document listing
    identities by :func:`chartguard.identity.identity_set`.
    """
    policy: dict[str, object] | None = None
    if verification is not None:
        policy = {
            "provider": verification.provider,
            "secretRef": verification.secret_ref.name if verification.secret_ref else None,
            "matchOIDCIdentity": identity_set(verification.match_oidc_identity),
            "trustedRootSecretRef": (verification.trusted_root_secret_ref.name
                                     if verification.trusted_root_secret_ref else None),
        }
        if verification.attestations:  # only then: specs without keep their digest
            policy["attestations"] = attestation_set(
                (a.predicate_type, a.policy) for a in verification.attestations)
    return policy_digest({"v": 1, "verify": policy})


def parse_verification(parent: Fields, key: str = "verify") -> Verification | None:
    """Read ``verify`` under ``parent``; ``notation`` is refused (chartguard verifies cosign);
    ``pgp`` (Helm provenance) needs ``secretRef`` and refuses the keyless fields."""
    section = parent.section(key)
    if section is None:
        return None
    section.reject_unknown(
        ("provider", "secretRef", "matchOIDCIdentity", "trustedRootSecretRef", "attestations"),
        "verify"
    )
    provider = section.string("provider", default=COSIGN, enum=PROVIDERS)
    if provider == NOTATION:
        section.error("provider", "notation signatures are not supported by chartguard yet; "
                                  "sign the chart with cosign and use provider: cosign")
    if provider == PGP:
        _pgp_fields(section)
    matchers = section.each("matchOIDCIdentity", _identity)
    return Verification(
        provider=PGP if provider == PGP else COSIGN,
        secret_ref=local_reference(section, "secretRef"),
        match_oidc_identity=matchers,
        trusted_root_secret_ref=local_reference(section, "trustedRootSecretRef"),
        attestations=_attestations(section, provider),
    )


def _pgp_fields(section: Fields) -> None:
    """provider pgp: keys from secretRef only; the cosign-only fields are refused by name."""
    if not section.has("secretRef"):
        section.error("secretRef", "provider pgp needs secretRef: a Secret whose *.gpg "
                                   "(gpg --export) or *.asc (gpg --armor --export) keys hold "
                                   "the OpenPGP public keys that signed the chart's .prov")
    for key in ("matchOIDCIdentity", "trustedRootSecretRef"):
        if section.has(key):
            section.error(key, "is for cosign keyless signatures; provider pgp verifies Helm "
                               "provenance with the keys of secretRef: remove it")
def _attestations(section: Fields, provider: str | None) -> tuple[AttestationPolicy, ...]:
    """``verify.attestations``: cosign attestations only (a provider without them, e.g. a
    future ``pgp``, is refused here naming the field)."""
    if not section.has("attestations"):
        return ()
    if provider != COSIGN:
        section.error("attestations", f"attestations are cosign attestations: not supported "
                                      f"with provider {provider}; remove attestations")
        return ()
    if not section.has("secretRef") and not section.has("matchOIDCIdentity"):
        # keyless with any identity: whoever writes the attestation writes the predicate the
        # policy reads, and without an identity anyone with a Sigstore certificate may
        section.error("attestations", "need secretRef (keys) or matchOIDCIdentity: keyless "
                                      "without an identity accepts an attestation by anyone "
                                      "with a Sigstore certificate, who also writes the "
                                      "predicate the policy reads; add matchOIDCIdentity")
        return ()
    entries = section.sections("attestations")
    if len(entries) > MAX_ATTESTATIONS:
        section.error("attestations", f"at most {MAX_ATTESTATIONS} entries, "
                                      f"{len(entries)} given")
        return ()
    parsed = []
    for item in entries:
        item.reject_unknown(("predicateType", "policy"), "an attestations entry")
        predicate_type = item.string("predicateType", required=True)
        policy = item.string("policy") or ""
        if predicate_type is not None and not predicate_type.strip():
            item.error("predicateType", "must not be empty (the in-toto predicate type URI, "
                                        "e.g. https://slsa.dev/provenance/v1)")
            continue
        if predicate_type is not None and len(predicate_type) > MAX_PREDICATE_TYPE:
            item.error("predicateType", f"at most {MAX_PREDICATE_TYPE} characters")
            continue
        if predicate_type == SIGNATURE_PREDICATE_TYPE:
            item.error("predicateType", f"{SIGNATURE_PREDICATE_TYPE} is cosign's signature "
                                        "type, checked as the signature already; require an "
                                        "attestation's type (e.g. "
                                        "https://slsa.dev/provenance/v1)")
            continue
        if predicate_type is not None:
            parsed.append(AttestationPolicy(predicate_type, policy, item.path))
    return tuple(parsed)


def _identity(item: Fields) -> IdentityMatcher | None:
    item.reject_unknown(("issuer", "subject"), "a matchOIDCIdentity entry")
    issuer = item.string("issuer", required=True)
    subject = item.string("subject", required=True)
    if issuer is None or subject is None:
        return None
    try:
        return IdentityMatcher(issuer=issuer, subject=subject)
    except IdentityExpressionError as exc:
        for key, reason in exc.problems:
            item.error(key, reason)
        return None

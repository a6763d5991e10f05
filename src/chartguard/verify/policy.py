"""What a signature must satisfy: keys, or a keyless identity policy and a trust root.

Identity matching follows Flux's `matchOIDCIdentity`, which hands the expressions to cosign:
each entry is an (issuer, subject) pair of Go regular expressions; any entry matching is
enough; the subject expression is tried against every subject alternative name of the
certificate (email, URI, DNS, IP and Fulcio's username). cosign compiles them with Go's
`regexp` and calls `MatchString`, an unanchored search: `example.com` matches
`me@example.com.evil`. The one matcher, :class:`chartguard.identity.IdentityMatcher`, runs
them with RE2 as Go does (linear time; anchor with `^...$` for an exact match).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from chartguard.api.verification import attestation_set, policy_digest
from chartguard.identity import IdentityExpressionError, IdentityMatcher, identity_set
from chartguard.untrusted import escape
from chartguard.verify.errors import InvalidPolicyError
from chartguard.verify.keys import PublicKey
from chartguard.verify.model import COSIGN_SIGN_PREDICATE, AttestationRequirement
from chartguard.verify.trust import TrustRoot


@dataclass(frozen=True)
class OIDCIdentity(IdentityMatcher):
    """An :class:`IdentityMatcher` whose bad expression is an :class:`InvalidPolicyError`.

    A policy takes any ``IdentityMatcher``, e.g. ``chartguard.api``'s parsed matchers as they are.
    """

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except IdentityExpressionError as exc:
            raise InvalidPolicyError(str(exc)) from None


@dataclass(frozen=True)
class IdentityMatch:
    """The outcome of an identity check: the (issuer, subject) accepted, or why not."""

    identity: tuple[str, str] | None
    reason: str


def _unsafe(value: str) -> bool:
    """Control characters, bidi overrides and the like: what :func:`escape` would rewrite.

    Such a name could forge lines in a message and no CA should issue one: never matched.
    """
    return escape(value, limit=len(value)) != value


def _names(values: tuple[str, ...]) -> str:
    return ", ".join(escape(v) for v in values) or "(none)"


def match_identity(
    identities: tuple[IdentityMatcher, ...], issuer: str, subjects: tuple[str, ...]
) -> IdentityMatch:
    """Check a certificate's issuer and subjects against the policy's identities.

    Call it only on a certificate whose chain was verified: its claims appear in the reason.
    """
    odd = next((value for value in (issuer, *subjects) if _unsafe(value)), None)
    if odd is not None:
        return IdentityMatch(
            None,
            f"certificate identity '{escape(odd)}' contains a control character: never matched",
        )
    if not identities:
        first = subjects[0] if subjects else ""
        return IdentityMatch((issuer, first), "no identity policy given")
    for entry in identities:
        subject = entry.matching_subject(issuer, subjects)
        if subject is not None:
            return IdentityMatch((issuer, subject), "matched")
    issuer_ok = [entry for entry in identities if entry.issuer_matches(issuer)]
    if not issuer_ok:
        wanted = " or ".join(escape(entry.issuer) for entry in identities)
        return IdentityMatch(
            None, f"certificate issuer {escape(issuer) or '(none)'} not matched by {wanted}"
        )
    wanted = " or ".join(escape(entry.subject) for entry in issuer_ok)
    return IdentityMatch(None, f"certificate identity {_names(subjects)} not matched by {wanted}")


@dataclass(frozen=True)
class VerificationPolicy:
    """Keys given: key-based. No keys: keyless against `trust_root` (default production).

    `require_identity` refuses a keyless policy without identities, for operators that do not
    want Flux's "any Fulcio identity" default. `bundle_predicate_types` are the in-toto
    predicate types a bundle may carry to count as a signature: by default only cosign's
    signature predicate, so that an SBOM or provenance attestation made by the same key or
    identity (possibly for builds nobody approved) does not pass as a signature.
    `attestations` must each be met as well (signed under this same signer policy); they
    never make an attestation count as a signature.
    """

    keys: tuple[PublicKey, ...] = ()
    identities: tuple[IdentityMatcher, ...] = ()
    trust_root: TrustRoot | None = None
    require_identity: bool = False
    bundle_predicate_types: tuple[str, ...] = (COSIGN_SIGN_PREDICATE,)
    attestations: tuple[AttestationRequirement, ...] = ()

    def __post_init__(self) -> None:
        if any(not a.predicate_type for a in self.attestations):
            raise InvalidPolicyError("an attestation requirement needs a predicate type")
        both = sorted({a.predicate_type for a in self.attestations}
                      & set(self.bundle_predicate_types))
        if both:
            raise InvalidPolicyError(
                f"{escape(both[0])} is both accepted as a signature type and required as an "
                "attestation: one attestation would stand for both; require it as an "
                "attestation only")
        if self.keys and self.identities:
            raise InvalidPolicyError(
                "give either public keys or identities (matchOIDCIdentity), not both"
            )
        if not self.bundle_predicate_types or not all(self.bundle_predicate_types):
            raise InvalidPolicyError(
                "bundle predicate types are empty; give at least cosign's signature type "
                f"{COSIGN_SIGN_PREDICATE}"
            )
        if not self.keys and self.require_identity and not self.identities:
            raise InvalidPolicyError(
                "keyless verification needs at least one identity (issuer and subject "
                "regular expressions) because an identity is required"
            )

    @property
    def keyless(self) -> bool:
        return not self.keys

    @cached_property
    def fingerprint(self) -> str:
        """``sha256:…`` naming everything that decides a verification under this policy.

        Equal fingerprints mean equal decisions for the same signatures, so a result may be
        reused for a digest already verified (see :class:`chartguard.verify.VerifiedCache`).
        Keys count by their SPKI fingerprint (not their names), the trust root by the sha256
        of its JSON (the default, production, included); order and duplicates do not count.
        Computed by the one policy rule, ``chartguard.api.verification.policy_digest``; unlike
        the spec's ``verify_policy_digest`` it covers what the referenced Secrets held.
        """
        root = self.trust_root.raw if self.trust_root is not None else None
        document: dict[str, object] = {
            "keys": sorted({key.fingerprint for key in self.keys}),
            "identities": identity_set(self.identities),
            "trust_root": hashlib.sha256(root).hexdigest() if root is not None else "default",
            "require_identity": self.require_identity,
            "bundle_predicate_types": sorted(set(self.bundle_predicate_types)),
        }
        if self.attestations:  # only then: policies without any keep their fingerprint
            document["attestations"] = attestation_set(
                (a.predicate_type, a.policy) for a in self.attestations)
        return policy_digest(document)


"""What a signature must satisfy: keys, or a keyless identity policy and a trust root.

Identity matching follows Flux's `matchOIDCIdentity`, which hands the expressions to cosign:
each entry is an (issuer, subject) pair of regular expressions; any entry matching is enough;
the subject expression is tried against every subject alternative name of the certificate
(email, URI, DNS, IP and Fulcio's username). cosign compiles them with Go's `regexp` and
calls `MatchString`, which is an unanchored search: `example.com` matches
`me@example.com.evil`. chartguard keeps that meaning (`re.search`) so that policies written
for Flux behave the same; anchor with `^...$` for an exact match.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property

from chartguard.verify.errors import InvalidPolicyError
from chartguard.verify.keys import PublicKey
from chartguard.verify.model import COSIGN_SIGN_PREDICATE
from chartguard.verify.trust import TrustRoot


@dataclass(frozen=True)
class OIDCIdentity:
    """One accepted (issuer, subject) pair of regular expressions (Go `MatchString` semantics)."""

    issuer: str
    subject: str
    _issuer_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _subject_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_issuer_re", _compile("issuer", self.issuer))
        object.__setattr__(self, "_subject_re", _compile("subject", self.subject))

    def matches(self, issuer: str, subjects: tuple[str, ...]) -> str | None:
        """The first subject that matches along with the issuer, or None."""
        if self._issuer_re.search(issuer) is None:
            return None
        return next((s for s in subjects if self._subject_re.search(s) is not None), None)


def _compile(what: str, expression: str) -> re.Pattern[str]:
    if not expression:
        raise InvalidPolicyError(
            f"identity {what} is empty; give a regular expression (use '.*' to accept any)"
        )
    try:
        return re.compile(expression)
    except re.error as exc:
        raise InvalidPolicyError(
            f"identity {what} {expression!r} is not a valid regular expression: {exc}"
        ) from None


@dataclass(frozen=True)
class IdentityMatch:
    """The outcome of an identity check: the (issuer, subject) accepted, or why not."""

    identity: tuple[str, str] | None
    reason: str


# Python's `$` also matches before a final newline, Go's does not: `^me@example\.com$` would
# accept "me@example.com\n" here and not in cosign. No CA should issue such names; refuse them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def match_identity(
    identities: tuple[OIDCIdentity, ...], issuer: str, subjects: tuple[str, ...]
) -> IdentityMatch:
    """Check a certificate's issuer and subjects against the policy's identities."""
    odd = next((value for value in (issuer, *subjects) if _CONTROL.search(value)), None)
    if odd is not None:
        return IdentityMatch(
            None, f"certificate identity {odd!r} contains a control character: never matched"
        )
    shown = ", ".join(subjects) or "(none)"
    if not identities:
        first = subjects[0] if subjects else ""
        return IdentityMatch((issuer, first), "no identity policy given")
    for entry in identities:
        subject = entry.matches(issuer, subjects)
        if subject is not None:
            return IdentityMatch((issuer, subject), "matched")
    if not any(entry._issuer_re.search(issuer) for entry in identities):
        wanted = " or ".join(entry.issuer for entry in identities)
        return IdentityMatch(
            None, f"certificate issuer {issuer or '(none)'} not matched by {wanted}"
        )
    wanted = " or ".join(entry.subject for entry in identities if entry._issuer_re.search(issuer))
    return IdentityMatch(None, f"certificate identity {shown} not matched by {wanted}")


@dataclass(frozen=True)
class VerificationPolicy:
    """Keys given: key-based. No keys: keyless against `trust_root` (default production).

    `require_identity` refuses a keyless policy without identities, for operators that do not
    want Flux's "any Fulcio identity" default. `bundle_predicate_types` are the in-toto
    predicate types a bundle may carry to count as a signature: by default only cosign's
    signature predicate, so that an SBOM or provenance attestation made by the same key or
    identity (possibly for builds nobody approved) does not pass as a signature.
    """

    keys: tuple[PublicKey, ...] = ()
    identities: tuple[OIDCIdentity, ...] = ()
    trust_root: TrustRoot | None = None
    require_identity: bool = False
    bundle_predicate_types: tuple[str, ...] = (COSIGN_SIGN_PREDICATE,)

    def __post_init__(self) -> None:
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
        """
        root = self.trust_root.raw if self.trust_root is not None else None
        doc = {
            "keys": sorted({key.fingerprint for key in self.keys}),
            "identities": sorted({(i.issuer, i.subject) for i in self.identities}),
            "trust_root": hashlib.sha256(root).hexdigest() if root is not None else "default",
            "require_identity": self.require_identity,
            "bundle_predicate_types": sorted(set(self.bundle_predicate_types)),
        }
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(canonical).hexdigest()

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


@dataclass(frozen=True)
class Verification:
    """Signature policy. No ``secret_ref`` means keyless (Fulcio certificate + Rekor);
    ``provider`` ``pgp``: Helm provenance with the OpenPGP keys of ``secret_ref``."""

    provider: str = COSIGN
    secret_ref: LocalObjectReference | None = None
    match_oidc_identity: tuple[OIDCIdentityMatch, ...] = ()
    #: Secret holding ``trusted_root.json`` for a private Sigstore (None: public-good Sigstore)
    trusted_root_secret_ref: LocalObjectReference | None = None

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
        return out


def policy_digest(document: object) -> str:
    """``sha256:<hex>`` of ``document`` as canonical JSON: the one rule naming a policy.

    Used by :func:`verify_policy_digest` (the spec) and by
    ``chartguard.verify.VerificationPolicy.fingerprint`` (the loaded policy).
    """
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


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
    return policy_digest({"v": 1, "verify": policy})


def parse_verification(parent: Fields, key: str = "verify") -> Verification | None:
    """Read ``verify`` under ``parent``; ``notation`` is refused (chartguard verifies cosign);
    ``pgp`` (Helm provenance) needs ``secretRef`` and refuses the keyless fields."""
    section = parent.section(key)
    if section is None:
        return None
    section.reject_unknown(
        ("provider", "secretRef", "matchOIDCIdentity", "trustedRootSecretRef"), "verify"
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

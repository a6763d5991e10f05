"""``verify``: how a chart's signature must be checked (HelmChart ``spec.verify`` and the
HelmRelease ``spec.chart.spec.verify`` template).

Identity matchers are regular expressions (Go RE2 in Flux). They are compiled here, once, so a
bad pattern is reported at its field path before anything is fetched; constructs RE2 rejects
(look-around, back-references) are refused too, so a manifest that works here also works in Flux.
Matching is unanchored, as Go's ``MatchString`` is: write ``^...$`` to pin a value.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from chartguard.api._fields import Fields
from chartguard.api.meta import LocalObjectReference, local_reference

COSIGN = "cosign"
NOTATION = "notation"
#: the enum of Flux's CRD (both accepted by the schema)
PROVIDERS = (COSIGN, NOTATION)

_NOT_RE2 = re.compile(r"\(\?(?:=|!|<=|<!)|\\[1-9]|\(\?P=")


@dataclass(frozen=True)
class OIDCIdentityMatch:
    """One keyless identity matcher: both regular expressions must match."""

    issuer: str
    subject: str
    issuer_re: re.Pattern[str] = field(compare=False, repr=False)
    subject_re: re.Pattern[str] = field(compare=False, repr=False)

    def matches(self, issuer: str, subject: str) -> bool:
        return bool(self.issuer_re.search(issuer)) and bool(self.subject_re.search(subject))


@dataclass(frozen=True)
class Verification:
    """Signature policy. No ``secret_ref`` means keyless (Fulcio certificate + Rekor)."""

    provider: str = COSIGN
    secret_ref: LocalObjectReference | None = None
    match_oidc_identity: tuple[OIDCIdentityMatch, ...] = ()
    #: Secret holding ``trusted_root.json`` for a private Sigstore (None: public-good Sigstore)
    trusted_root_secret_ref: LocalObjectReference | None = None

    @property
    def keyless(self) -> bool:
        return self.secret_ref is None

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


def verify_policy_digest(verification: Verification | None) -> str:
    """``sha256:<hex>`` naming a verify policy, so a reconciler can tell "policy unchanged".

    Stable across processes and releases of chartguard (canonical JSON, versioned). The order and
    repetition of ``matchOIDCIdentity`` entries do not count (any one must match, so the policy is
    the same set). ``None`` (no verification) has its own digest. Only the spec is covered: the
    *contents* of the referenced Secrets are not, so a reconciler that caches a verdict must also
    key it on those Secrets (e.g. their resourceVersion).
    """
    policy: dict[str, object] | None = None
    if verification is not None:
        policy = {
            "provider": verification.provider,
            "secretRef": verification.secret_ref.name if verification.secret_ref else None,
            "matchOIDCIdentity": sorted({(m.issuer, m.subject)
                                         for m in verification.match_oidc_identity}),
            "trustedRootSecretRef": (verification.trusted_root_secret_ref.name
                                     if verification.trusted_root_secret_ref else None),
        }
    canonical = json.dumps({"v": 1, "verify": policy}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def compile_identity_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a matcher; ``ValueError`` says why it is not a usable (RE2-compatible) regex."""
    if not pattern:
        raise ValueError("must not be empty: use '.*' to accept any value, or better, pin it")
    if _NOT_RE2.search(pattern):
        raise ValueError(f"invalid regular expression {pattern!r}: look-around and "
                         "back-references are not supported by Go's RE2 syntax")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


def parse_verification(parent: Fields, key: str = "verify") -> Verification | None:
    """Read ``verify`` under ``parent``; ``notation`` is refused (chartguard verifies cosign)."""
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
    matchers = section.each("matchOIDCIdentity", _identity)
    return Verification(
        provider=COSIGN,
        secret_ref=local_reference(section, "secretRef"),
        match_oidc_identity=matchers,
        trusted_root_secret_ref=local_reference(section, "trustedRootSecretRef"),
    )


def _identity(item: Fields) -> OIDCIdentityMatch | None:
    item.reject_unknown(("issuer", "subject"), "a matchOIDCIdentity entry")
    compiled: dict[str, tuple[str, re.Pattern[str]]] = {}
    for key in ("issuer", "subject"):
        text = item.string(key, required=True)
        if text is None:
            continue
        try:
            compiled[key] = (text, compile_identity_pattern(text))
        except ValueError as exc:
            item.error(key, str(exc))
    if len(compiled) != 2:
        return None
    return OIDCIdentityMatch(
        issuer=compiled["issuer"][0],
        subject=compiled["subject"][0],
        issuer_re=compiled["issuer"][1],
        subject_re=compiled["subject"][1],
    )

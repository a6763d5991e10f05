"""cosign's new format: a Sigstore bundle (v0.3) holding a DSSE in-toto statement.

Keyless bundles go through sigstore's `Verifier.verify_dsse` (chain, SCT, inclusion proof,
checkpoint, SET, DSSE signature, entry consistency); the statement must then be a signature
(predicate type `https://sigstore.dev/cosign/sign/v1` unless the policy accepts more) whose
subject is the digest being verified, and the identity policy is applied with Flux's regex
semantics.
Key-signed bundles (`verificationMaterial.publicKey`) carry no certificate, which sigstore's
Bundle refuses, so they are checked here: DSSE signature over PAE with the policy's keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle
from sigstore.verify import Verifier as SigstoreVerifier

from chartguard.identity import IdentityMatcher
from chartguard.verify._common import (
    Rejected,
    b64decode,
    check_in_toto_subject,
    json_object,
    pae,
)
from chartguard.verify._fulcio import FulcioChecker, certificate_identity
from chartguard.verify._rekor import check_dsse_body, entry_from_bundle, known_log, verify_set
from chartguard.verify.keys import PublicKey
from chartguard.verify.model import BundleCandidate, VerificationResult
from chartguard.verify.policy import match_identity
from chartguard.verify.trust import TrustRoot


class _IdentityCheckedAfterwards:
    """sigstore's policy hook: identity is matched by chartguard after all crypto checks."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


_ACCEPT_THEN_MATCH = _IdentityCheckedAfterwards()
# Exactly the bundle versions sigstore's own parser knows (0.1, 0.2, 0.3 and 0.3's alias), so
# the key path accepts no format the keyless path would refuse.
_BUNDLE_MEDIA_TYPES = frozenset(kind.value for kind in Bundle.BundleType)


def _material(document: dict[str, Any]) -> dict[str, Any]:
    media_type = document.get("mediaType")
    if media_type not in _BUNDLE_MEDIA_TYPES:
        raise Rejected(f"not a Sigstore bundle (mediaType {media_type!r})")
    material = document.get("verificationMaterial")
    if not isinstance(material, dict):
        raise Rejected("bundle has no verificationMaterial")
    return material


def _explain_unparsable(data: bytes, exc: Exception) -> NoReturn:
    """sigstore refused to parse it: say why in terms of what the bundle is."""
    material = _material(json_object(data, "bundle"))
    if "publicKey" in material:
        raise Rejected(
            "bundle is signed with a public key, not a Fulcio certificate: "
            "verify with that public key"
        )
    raise Rejected(f"not a valid Sigstore bundle: {exc}")


def _diagnose(bundle: Bundle, fulcio: FulcioChecker) -> None:
    """After sigstore refused a bundle: say why in our words when it is the certificate."""
    integrated = bundle.log_entry._inner.integrated_time
    if integrated:  # 0 or absent: no Rekor time to judge the certificate by (TSA-only bundles)
        when = datetime.fromtimestamp(integrated, tz=UTC)
        fulcio.check(bundle.signing_certificate, [], when)  # raises Rejected with the reason


def verify_keyless(
    candidate: BundleCandidate,
    digest: str,
    identities: tuple[IdentityMatcher, ...],
    verifier: SigstoreVerifier,
    fulcio: FulcioChecker,
    predicate_types: tuple[str, ...],
) -> VerificationResult:
    try:
        try:
            bundle = Bundle.from_json(candidate.data)
        except Exception as exc:  # sigstore, pydantic and json errors all mean "unusable"
            _explain_unparsable(candidate.data, exc)
        try:
            payload_type, payload = verifier.verify_dsse(bundle, _ACCEPT_THEN_MATCH)
        except SigstoreError as exc:
            _diagnose(bundle, fulcio)
            raise Rejected(f"bundle does not verify: {exc}") from None
        check_in_toto_subject(payload_type, payload, digest, predicate_types)
        issuer, subjects = certificate_identity(bundle.signing_certificate)
        matched = match_identity(identities, issuer, subjects)
        if matched.identity is None:
            raise Rejected(matched.reason)
        log_index = bundle.log_entry._inner.log_index
    except Rejected as exc:
        raise Rejected(f"{candidate.source}: {exc}") from None
    return VerificationResult(
        digest=digest,
        format="bundle",
        identity=matched.identity,
        rekor_log_index=log_index,
        identity_unchecked=not identities,
        source=candidate.source,
    )


def verify_with_keys(
    candidate: BundleCandidate,
    digest: str,
    keys: tuple[PublicKey, ...],
    trust_root: TrustRoot,
    predicate_types: tuple[str, ...],
) -> VerificationResult:
    try:
        document = json_object(candidate.data, "bundle")
        material = _material(document)
        if "publicKey" not in material:
            raise Rejected(
                "bundle is signed with a certificate (keyless), not a public key: "
                "verify it keyless with an identity"
            )
        envelope = document.get("dsseEnvelope")
        if not isinstance(envelope, dict):
            raise Rejected("bundle holds no DSSE envelope (message signatures are not images)")
        payload_type = envelope.get("payloadType")
        payload = b64decode(envelope.get("payload"), "DSSE payload")
        signatures = envelope.get("signatures")
        if not isinstance(payload_type, str) or not isinstance(signatures, list) or not signatures:
            raise Rejected("DSSE envelope lacks payloadType or signatures")
        signed = pae(payload_type, payload)
        sigs = [
            b64decode(s.get("sig") if isinstance(s, dict) else None, "DSSE signature")
            for s in signatures
        ]
        key = next((k for k in keys if any(k.matches(s, signed) for s in sigs)), None)
        if key is None:
            raise Rejected(*(f"key {k.name}: signature does not match" for k in keys))
        try:
            check_in_toto_subject(payload_type, payload, digest, predicate_types)
            log_index = _check_optional_tlog(material, payload, sigs, trust_root)
        except Rejected as exc:
            raise Rejected(f"key {key.name}: {exc}") from None
    except Rejected as exc:
        raise Rejected(*(f"{candidate.source}: {line}" for line in exc.lines)) from None
    return VerificationResult(
        digest=digest,
        format="bundle",
        key=key.label,
        rekor_log_index=log_index,
        source=candidate.source,
    )


def _check_optional_tlog(
    material: dict[str, Any], payload: bytes, signatures: list[bytes], trust_root: TrustRoot
) -> int | None:
    """A key-signed bundle's log entry, like a legacy layer's SET: checked when its log is known.

    The key signature alone decides validity; a SET from a log of the trust root must then
    verify and be about this payload and signature, and only then is its index reported.
    """
    entries = material.get("tlogEntries") or []
    if not isinstance(entries, list):
        raise Rejected("bundle tlogEntries is not a list")
    for raw in entries:
        entry = entry_from_bundle(raw)
        if entry is None:
            continue
        log = known_log(entry, trust_root)
        if log is None:
            continue
        verify_set(entry, log, trust_root)
        check_dsse_body(entry, payload=payload, signatures=signatures)
        return entry.log_index
    return None

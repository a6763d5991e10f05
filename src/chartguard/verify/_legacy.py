"""cosign's legacy signatures: one layer of a `sha256-<hex>.sig` manifest.

The signature (annotation `dev.cosignproject.cosign/signature`) is over the layer's raw
bytes, never a re-serialisation. Key-based: any key of the policy may match. Keyless: the
certificate annotation's key must match, and the certificate must be proven by Fulcio and
Rekor at the time Rekor integrated the entry before any claim of the payload or the
certificate (digest, type, identity) is read or quoted.
"""

from __future__ import annotations

from cryptography import x509

from chartguard.identity import IdentityMatcher
from chartguard.untrusted import escape
from chartguard.verify._common import Rejected, b64decode, check_simple_signing_claims
from chartguard.verify._fulcio import FulcioChecker, certificate_identity
from chartguard.verify._rekor import (
    check_hashedrekord_body,
    known_log,
    parse_cosign_bundle,
    verify_set,
)
from chartguard.verify.keys import PublicKey, signature_matches
from chartguard.verify.model import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    LegacySignature,
    VerificationResult,
)
from chartguard.verify.policy import match_identity
from chartguard.verify.trust import TrustRoot


def _signature(sig: LegacySignature) -> bytes:
    value = sig.annotations.get(SIGNATURE_ANNOTATION)
    return b64decode(value, f"annotation {SIGNATURE_ANNOTATION}")


def verify_with_keys(
    sig: LegacySignature, digest: str, keys: tuple[PublicKey, ...], trust_root: TrustRoot
) -> VerificationResult:
    source = escape(sig.source)
    try:
        signature = _signature(sig)
    except Rejected as exc:
        raise Rejected(f"{source}: {exc}") from None
    key = next((k for k in keys if k.matches(signature, sig.payload)), None)
    if key is None:
        raise Rejected(*(f"{source}: key {k.name}: signature does not match" for k in keys))
    try:
        check_simple_signing_claims(sig.payload, digest)
        log_index = _check_optional_set(sig, signature, key, trust_root)
    except Rejected as exc:
        raise Rejected(f"{source}: key {key.name}: {exc}") from None
    return VerificationResult(
        digest=digest,
        format="legacy",
        key=key.label,
        rekor_log_index=log_index,
        source=escape(sig.source),
    )


def _check_optional_set(
    sig: LegacySignature, signature: bytes, key: PublicKey, trust_root: TrustRoot
) -> int | None:
    """A key-signed layer may carry a SET: checked when its log is in the trust root."""
    annotation = sig.annotations.get(BUNDLE_ANNOTATION)
    if annotation is None:
        return None
    entry = parse_cosign_bundle(annotation)
    log = known_log(entry, trust_root)
    if log is None:
        # An unknown log proves nothing either way; the key signature stands alone and the
        # result reports no log index.
        return None
    verify_set(entry, log, trust_root)
    check_hashedrekord_body(
        entry, signature=signature, payload=sig.payload, key_fingerprint=key.fingerprint
    )
    return entry.log_index


def verify_keyless(
    sig: LegacySignature,
    digest: str,
    identities: tuple[IdentityMatcher, ...],
    trust_root: TrustRoot,
    fulcio: FulcioChecker,
) -> VerificationResult:
    try:
        return _verify_keyless(sig, digest, identities, trust_root, fulcio)
    except Rejected as exc:
        raise Rejected(f"{escape(sig.source)}: {exc}") from None


def _verify_keyless(
    sig: LegacySignature,
    digest: str,
    identities: tuple[IdentityMatcher, ...],
    trust_root: TrustRoot,
    fulcio: FulcioChecker,
) -> VerificationResult:
    signature = _signature(sig)
    cert_pem = sig.annotations.get(CERTIFICATE_ANNOTATION)
    if not cert_pem:
        raise Rejected(
            f"no certificate (annotation {CERTIFICATE_ANNOTATION}): signed with a key? "
            "verify with that public key instead"
        )
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem.encode())
        chain_pem = sig.annotations.get(CHAIN_ANNOTATION) or ""
        intermediates = x509.load_pem_x509_certificates(chain_pem.encode()) if chain_pem else []
    except ValueError as exc:
        raise Rejected(f"certificate or chain annotation is not PEM: {escape(exc)}") from None
    if not signature_matches(leaf.public_key(), signature, sig.payload):
        raise Rejected("signature does not match the certificate's key")

    annotation = sig.annotations.get(BUNDLE_ANNOTATION)
    if annotation is None:
        raise Rejected(
            f"no Rekor bundle (annotation {BUNDLE_ANNOTATION}): a keyless signature needs "
            "its transparency log entry"
        )
    entry = parse_cosign_bundle(annotation)
    log = known_log(entry, trust_root)
    if log is None:
        raise Rejected(
            f"Rekor log {entry.log_id.hex()} is not in {trust_root.name} "
            "(give the trusted root of the Sigstore instance that signed it)"
        )
    verify_set(entry, log, trust_root)
    check_hashedrekord_body(entry, signature=signature, payload=sig.payload, certificate=leaf)
    fulcio.check(leaf, intermediates, entry.integrated_at)

    # the certificate is proven: only now are the payload's and its claims read
    check_simple_signing_claims(sig.payload, digest)
    issuer, subjects = certificate_identity(leaf)
    matched = match_identity(identities, issuer, subjects)
    if matched.identity is None:
        raise Rejected(matched.reason)
    return VerificationResult(
        digest=digest,
        format="legacy",
        identity=matched.identity,
        rekor_log_index=entry.log_index,
        identity_unchecked=not identities,
        source=escape(sig.source),
    )

"""cosign's legacy attestations: one layer of a ``sha256-<hex>.att`` manifest (``cosign attest``
without ``--new-bundle-format``).

The layer (media type ``application/vnd.dsse.envelope.v1+json``) is a DSSE envelope whose
payload is an in-toto statement; its annotations are those of a ``.sig`` layer (an empty
``dev.cosignproject.cosign/signature``, and for keyless the certificate, chain and Rekor SET).
The signature is over the envelope's PAE. The SET's entry is ``dsse/0.0.1`` (cosign v2.6's
default ``--rekor-entry-type``) or ``intoto/0.0.2``; it must name this payload and signature,
and for keyless this certificate. As for signatures, the signer is proven first (key, or
certificate by Fulcio at Rekor's integrated time) and only then is the statement read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chartguard.identity import IdentityMatcher
from chartguard.untrusted import escape
from chartguard.verify._common import (
    Rejected,
    b64decode,
    check_in_toto_subject,
    dsse_parts,
    json_object,
    pae,
)
from chartguard.verify._fulcio import FulcioChecker, certificate_identity
from chartguard.verify._rekor import (
    RekorEntry,
    check_dsse_body,
    known_log,
    parse_cosign_bundle,
    verify_set,
)
from chartguard.verify.keys import PublicKey, signature_matches, spki_fingerprint
from chartguard.verify.model import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    LegacySignature,
    VerificationResult,
)
from chartguard.verify.policy import match_identity
from chartguard.verify.trust import TrustRoot

_WHAT = "attestation"


def _envelope(layer: LegacySignature) -> tuple[str, bytes, list[bytes]]:
    return dsse_parts(json_object(layer.payload, "DSSE envelope"))


@dataclass(frozen=True)
class Peeked:
    """What a DSSE envelope *claims* before anything is verified: the statement's predicate
    type (None when it cannot be read, ``problem`` saying why), and the sha256 of its payload
    (None when there is no payload), which names the statement for de-duplication. Only
    compared with the policy's types and with other candidates, never quoted."""

    kind: str | None
    payload_sha256: str | None
    problem: str = ""


def peek(data: bytes, *, bundle: bool = False) -> Peeked:
    """The predicate type and payload hash of a DSSE envelope (``bundle``: a Sigstore
    bundle's)."""
    digest = None
    try:
        envelope: object = json_object(data, "DSSE envelope")
        if bundle and isinstance(envelope, dict):
            envelope = envelope.get("dsseEnvelope")
        if not isinstance(envelope, dict):
            return Peeked(None, None, "not a DSSE envelope")
        payload = b64decode(envelope.get("payload"), "DSSE payload")
        digest = hashlib.sha256(payload).hexdigest()
        statement = json_object(payload, "in-toto statement")
    except Rejected as exc:
        return Peeked(None, digest, "; ".join(exc.lines))
    kind = statement.get("predicateType")
    if not isinstance(kind, str):
        return Peeked(None, digest, "in-toto statement has no predicateType")
    return Peeked(kind, digest)


def check_logged_body(entry: RekorEntry, *, payload: bytes, signatures: list[bytes],
                      signer_pem: bytes | None = None,
                      key_fingerprint: str | None = None) -> None:
    """The SET's entry (dsse/0.0.1 or intoto/0.0.2) is about this payload and signature, and,
    when given, this certificate (PEM) or key."""
    body = json_object(entry.body, "Rekor entry body")
    kind = body.get("kind")
    if kind == "dsse":
        check_dsse_body(entry, payload=payload, signatures=signatures)
        spec = body.get("spec")
        logged = spec.get("signatures") if isinstance(spec, dict) else None
        verifiers = [b64decode(s.get("verifier"), "Rekor entry verifier")
                     for s in logged if isinstance(s, dict)] if isinstance(logged, list) else []
    elif kind == "intoto" and body.get("apiVersion") == "0.0.2":
        spec = body.get("spec")
        content = spec.get("content") if isinstance(spec, dict) else None
        payload_hash = content.get("payloadHash") if isinstance(content, dict) else None
        envelope = content.get("envelope") if isinstance(content, dict) else None
        logged = envelope.get("signatures") if isinstance(envelope, dict) else None
        if not isinstance(payload_hash, dict) or not isinstance(logged, list):
            raise Rejected("Rekor entry body lacks spec.content.payloadHash or signatures")
        if payload_hash.get("algorithm") != "sha256" or payload_hash.get("value") != (
                hashlib.sha256(payload).hexdigest()):
            raise Rejected("Rekor entry is for another payload (hash differs)")
        # intoto/0.0.2 stores each signature base64-encoded twice (the envelope's text, again)
        logged_sigs = {b64decode(b64decode(s.get("sig"), "Rekor entry signature").decode(
            "ascii", "replace"), "Rekor entry signature")
            for s in logged if isinstance(s, dict)}
        if not logged_sigs.intersection(signatures):
            raise Rejected("Rekor entry is for another signature")
        verifiers = [b64decode(s.get("publicKey"), "Rekor entry public key")
                     for s in logged if isinstance(s, dict)]
    else:
        raise Rejected(f"Rekor entry is {escape(kind)}/{escape(body.get('apiVersion'))}, "
                       "expected dsse/0.0.1 or intoto/0.0.2")
    if signer_pem is not None and not any(_same_certificate(v, signer_pem) for v in verifiers):
        raise Rejected("Rekor entry is for another certificate")
    if key_fingerprint is not None and not any(_key_fingerprint(v) == key_fingerprint
                                               for v in verifiers):
        raise Rejected("Rekor entry is for another public key")


def _same_certificate(logged: bytes, pem: bytes) -> bool:
    try:
        return x509.load_pem_x509_certificate(logged) == x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False


def _key_fingerprint(logged: bytes) -> str | None:
    try:
        return spki_fingerprint(serialization.load_pem_public_key(logged))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


def verify_with_keys(
    layer: LegacySignature, digest: str, keys: tuple[PublicKey, ...], trust_root: TrustRoot,
    predicate_types: tuple[str, ...],
) -> tuple[VerificationResult, dict[str, Any]]:
    source = escape(layer.source)
    try:
        payload_type, payload, sigs = _envelope(layer)
    except Rejected as exc:
        raise Rejected(f"{source}: {exc}") from None
    signed = pae(payload_type, payload)
    key = next((k for k in keys if any(k.matches(s, signed) for s in sigs)), None)
    if key is None:
        raise Rejected(*(f"{source}: key {k.name}: signature does not match" for k in keys))
    try:
        statement = check_in_toto_subject(payload_type, payload, digest, predicate_types,
                                          what=_WHAT)
        log_index = None
        annotation = layer.annotations.get(BUNDLE_ANNOTATION)
        if annotation is not None:
            entry = parse_cosign_bundle(annotation)
            log = known_log(entry, trust_root)
            if log is not None:  # an unknown log proves nothing either way (as for .sig)
                verify_set(entry, log, trust_root)
                check_logged_body(entry, payload=payload, signatures=sigs,
                                  key_fingerprint=key.fingerprint)
                log_index = entry.log_index
    except Rejected as exc:
        raise Rejected(f"{source}: key {key.name}: {exc}") from None
    return VerificationResult(digest=digest, format="legacy", key=key.label,
                              rekor_log_index=log_index, source=source), statement


def verify_keyless(
    layer: LegacySignature, digest: str, identities: tuple[IdentityMatcher, ...],
    trust_root: TrustRoot, fulcio: FulcioChecker, predicate_types: tuple[str, ...],
) -> tuple[VerificationResult, dict[str, Any]]:
    try:
        return _verify_keyless(layer, digest, identities, trust_root, fulcio, predicate_types)
    except Rejected as exc:
        raise Rejected(f"{escape(layer.source)}: {exc}") from None


def _verify_keyless(
    layer: LegacySignature, digest: str, identities: tuple[IdentityMatcher, ...],
    trust_root: TrustRoot, fulcio: FulcioChecker, predicate_types: tuple[str, ...],
) -> tuple[VerificationResult, dict[str, Any]]:
    payload_type, payload, sigs = _envelope(layer)
    cert_pem = layer.annotations.get(CERTIFICATE_ANNOTATION)
    if not cert_pem:
        raise Rejected(f"no certificate (annotation {CERTIFICATE_ANNOTATION}): signed with a "
                       "key? verify with that public key instead")
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem.encode())
        chain_pem = layer.annotations.get(CHAIN_ANNOTATION) or ""
        intermediates = x509.load_pem_x509_certificates(chain_pem.encode()) if chain_pem else []
    except ValueError as exc:
        raise Rejected(f"certificate or chain annotation is not PEM: {escape(exc)}") from None
    signed = pae(payload_type, payload)
    if not any(signature_matches(leaf.public_key(), s, signed) for s in sigs):
        raise Rejected("signature does not match the certificate's key")
    annotation = layer.annotations.get(BUNDLE_ANNOTATION)
    if annotation is None:
        raise Rejected(f"no Rekor bundle (annotation {BUNDLE_ANNOTATION}): a keyless "
                       "attestation needs its transparency log entry")
    entry = parse_cosign_bundle(annotation)
    log = known_log(entry, trust_root)
    if log is None:
        raise Rejected(f"Rekor log {entry.log_id.hex()} is not in {trust_root.name} "
                       "(give the trusted root of the Sigstore instance that signed it)")
    verify_set(entry, log, trust_root)
    check_logged_body(entry, payload=payload, signatures=sigs, signer_pem=cert_pem.encode())
    fulcio.check(leaf, intermediates, entry.integrated_at)
    # the certificate is proven: only now are the statement and its claims read
    statement = check_in_toto_subject(payload_type, payload, digest, predicate_types, what=_WHAT)
    issuer, subjects = certificate_identity(leaf)
    matched = match_identity(identities, issuer, subjects)
    if matched.identity is None:
        raise Rejected(matched.reason)
    return VerificationResult(digest=digest, format="legacy", identity=matched.identity,
                              rekor_log_index=entry.log_index,
                              identity_unchecked=not identities,
                              source=escape(layer.source)), statement

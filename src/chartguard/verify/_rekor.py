"""Rekor evidence in cosign's legacy format: the `dev.sigstore.cosign/bundle` annotation.

The annotation holds a Signed Entry Timestamp (SET): Rekor's signature over the RFC 8785
canonical JSON of {body, integratedTime, logID, logIndex}. The SET proves the entry was logged
at `integratedTime`; the entry body (a `hashedrekord`) must then name the very signature,
signer and payload hash being verified, or the SET proves nothing about them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chartguard.untrusted import escape
from chartguard.verify._common import Rejected, b64decode, json_object
from chartguard.verify.keys import signature_matches, spki_fingerprint
from chartguard.verify.trust import LogKey, TrustRoot

# 9999-12-31T23:59:59Z, the last second a datetime can hold
_LATEST = 253402300799


@dataclass(frozen=True)
class RekorEntry:
    body_b64: str
    body: bytes
    integrated_time: int
    log_index: int
    log_id: bytes
    signed_entry_timestamp: bytes

    def __post_init__(self) -> None:
        # a time no datetime can hold would raise later, far from where it was read
        if not 0 <= self.integrated_time <= _LATEST:
            raise Rejected(f"Rekor integratedTime {self.integrated_time} is out of range")

    @property
    def integrated_at(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time, tz=UTC)

    def canonical(self) -> bytes:
        return bytes(
            rfc8785.dumps(
                {
                    "body": self.body_b64,
                    "integratedTime": self.integrated_time,
                    "logID": self.log_id.hex(),
                    "logIndex": self.log_index,
                }
            )
        )


def parse_cosign_bundle(annotation: str) -> RekorEntry:
    document = json_object(annotation, "Rekor bundle annotation")
    payload = document.get("Payload")
    if not isinstance(payload, dict):
        raise Rejected("Rekor bundle annotation has no Payload")
    body_b64 = payload.get("body")
    integrated, index, log_id = (
        payload.get("integratedTime"),
        payload.get("logIndex"),
        payload.get("logID"),
    )
    if not (
        isinstance(body_b64, str)
        and type(integrated) is int
        and type(index) is int
        and isinstance(log_id, str)
    ):
        raise Rejected("Rekor bundle annotation lacks body, integratedTime, logIndex or logID")
    try:
        log_id_bytes = bytes.fromhex(log_id)
    except ValueError:
        raise Rejected("Rekor bundle logID is not hex") from None
    return RekorEntry(
        body_b64=body_b64,
        body=b64decode(body_b64, "Rekor entry body"),
        integrated_time=integrated,
        log_index=index,
        log_id=log_id_bytes,
        signed_entry_timestamp=b64decode(
            document.get("SignedEntryTimestamp"), "Rekor SignedEntryTimestamp"
        ),
    )


def known_log(entry: RekorEntry, trust_root: TrustRoot) -> LogKey | None:
    return trust_root.rekor_keys.get(entry.log_id)


def verify_set(entry: RekorEntry, log: LogKey, trust_root: TrustRoot) -> None:
    """The SET must verify with the log's key, which must have been valid at that time."""
    if not signature_matches(log.key, entry.signed_entry_timestamp, entry.canonical()):
        raise Rejected(
            f"Rekor SET (log index {entry.log_index}) does not verify with the key of log "
            f"{escape(log.base_url)} in {trust_root.name}"
        )
    if not log.valid.contains(entry.integrated_at):
        raise Rejected(
            f"Rekor log {escape(log.base_url)} key was not valid at the integrated time "
            f"{entry.integrated_at.isoformat()}"
        )


def check_hashedrekord_body(
    entry: RekorEntry,
    *,
    signature: bytes,
    payload: bytes,
    certificate: x509.Certificate | None = None,
    key_fingerprint: str | None = None,
) -> None:
    """The logged entry must be about this signature, this payload and this signer."""
    body = json_object(entry.body, "Rekor entry body")
    if body.get("kind") != "hashedrekord" or body.get("apiVersion") != "0.0.1":
        raise Rejected(
            f"Rekor entry is {escape(body.get('kind'))}/{escape(body.get('apiVersion'))}, "
            "expected hashedrekord/0.0.1"
        )
    spec = body.get("spec")
    data = spec.get("data") if isinstance(spec, dict) else None
    digest = data.get("hash") if isinstance(data, dict) else None
    sig = spec.get("signature") if isinstance(spec, dict) else None
    if not (isinstance(digest, dict) and isinstance(sig, dict)):
        raise Rejected("Rekor entry body lacks spec.data.hash or spec.signature")
    if digest.get("algorithm") != "sha256" or digest.get("value") != (
        hashlib.sha256(payload).hexdigest()
    ):
        raise Rejected("Rekor entry is for another payload (hash differs)")
    if b64decode(sig.get("content"), "Rekor entry signature") != signature:
        raise Rejected("Rekor entry is for another signature")
    public = sig.get("publicKey")
    pem = b64decode(public.get("content") if isinstance(public, dict) else None, "Rekor key")
    if certificate is not None:
        try:
            logged = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise Rejected("Rekor entry does not hold a certificate") from None
        if logged != certificate:
            raise Rejected("Rekor entry is for another certificate")
    if key_fingerprint is not None:
        try:
            logged_key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            raise Rejected("Rekor entry does not hold a public key") from None
        if spki_fingerprint(logged_key) != key_fingerprint:  # type: ignore[arg-type]
            raise Rejected("Rekor entry is for another public key")


def entry_from_bundle(tlog_entry: object) -> RekorEntry | None:
    """A bundle's `tlogEntries[]` element as a RekorEntry; None when it has no SET."""
    if not isinstance(tlog_entry, dict):
        raise Rejected("bundle tlog entry is not an object")
    promise = tlog_entry.get("inclusionPromise")
    if not isinstance(promise, dict):
        return None
    log_id = tlog_entry.get("logId")
    body_b64 = tlog_entry.get("canonicalizedBody")
    try:
        integrated = int(tlog_entry.get("integratedTime", ""))
        index = int(tlog_entry.get("logIndex", ""))
    except (TypeError, ValueError):
        raise Rejected("bundle tlog entry lacks integratedTime or logIndex") from None
    if not isinstance(body_b64, str) or not isinstance(log_id, dict):
        raise Rejected("bundle tlog entry lacks canonicalizedBody or logId")
    return RekorEntry(
        body_b64=body_b64,
        body=b64decode(body_b64, "Rekor entry body"),
        integrated_time=integrated,
        log_index=index,
        log_id=b64decode(log_id.get("keyId"), "Rekor log ID"),
        signed_entry_timestamp=b64decode(
            promise.get("signedEntryTimestamp"), "Rekor signedEntryTimestamp"
        ),
    )


def check_dsse_body(entry: RekorEntry, *, payload: bytes, signatures: list[bytes]) -> None:
    """A dsse/0.0.1 entry must be about this payload and carry one of these signatures."""
    body = json_object(entry.body, "Rekor entry body")
    if body.get("kind") != "dsse" or body.get("apiVersion") != "0.0.1":
        raise Rejected(
            f"Rekor entry is {escape(body.get('kind'))}/{escape(body.get('apiVersion'))}, "
            "expected dsse/0.0.1"
        )
    spec = body.get("spec")
    payload_hash = spec.get("payloadHash") if isinstance(spec, dict) else None
    logged = spec.get("signatures") if isinstance(spec, dict) else None
    if not isinstance(payload_hash, dict) or not isinstance(logged, list):
        raise Rejected("Rekor entry body lacks spec.payloadHash or spec.signatures")
    if payload_hash.get("algorithm") != "sha256" or payload_hash.get("value") != (
        hashlib.sha256(payload).hexdigest()
    ):
        raise Rejected("Rekor entry is for another payload (hash differs)")
    logged_sigs = {
        b64decode(s.get("signature"), "Rekor entry signature")
        for s in logged
        if isinstance(s, dict)
    }
    if not logged_sigs.intersection(signatures):
        raise Rejected("Rekor entry is for another signature")

"""cosign's new format: a Sigstore bundle (v0.3) holding a DSSE in-toto statement.

Keyless bundles go through sigstore's `Verifier.verify_dsse` (chain, SCT, inclusion proof,
checkpoint, SET, DSSE signature, entry consistency). sigstore accepts a Fulcio CA, a Rekor key
or a CT log key of the trust root whatever its `validFor` says, so the windows are then judged
as on the legacy path: the SET must verify with the key of the log it names, valid at the
integrated time, and the certificate must chain to a CA and carry an SCT from a CT log valid at
that time. Only then is the statement read: a signature (predicate type
`https://sigstore.dev/cosign/sign/v1` unless the policy accepts more) whose subject is the
digest being verified; last, the identity policy.
Key-signed bundles (`verificationMaterial.publicKey`) carry no certificate, which sigstore's
Bundle refuses, so they are checked here: DSSE signature over PAE with the policy's keys.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle
from sigstore.verify import Verifier as SigstoreVerifier

from chartguard.identity import IdentityMatcher
from chartguard.untrusted import escape
from chartguard.verify import _sigstore_compat as compat
from chartguard.verify._attest import check_logged_body
from chartguard.verify._common import (
    Rejected,
    check_in_toto_subject,
    dsse_parts,
    json_object,
    pae,
    shown,
)
from chartguard.verify._fulcio import FulcioChecker, certificate_identity
from chartguard.verify._rekor import (
    RekorEntry,
    check_dsse_body,
    entry_from_bundle,
    known_log,
    verify_set,
)
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
        raise Rejected(f"not a Sigstore bundle (mediaType {shown(media_type)})")
    material = document.get("verificationMaterial")
    if not isinstance(material, dict):
        raise Rejected("bundle has no verificationMaterial")
    return material


def _rekor_entry(document: dict[str, Any]) -> RekorEntry | None:
    """The bundle's transparency log entry when it carries a SET (sigstore requires exactly one
    entry, so it is the one sigstore verified); None for a bundle timed by a TSA only."""
    entries = document["verificationMaterial"].get("tlogEntries")
    if not isinstance(entries, list) or len(entries) != 1:
        raise Rejected("bundle does not hold exactly one transparency log entry")
    entry = entry_from_bundle(entries[0])
    if entry is not None:
        json_object(entry.body, "Rekor entry body")  # depth-guarded before sigstore parses it
    return entry


def _check_windows(
    entry: RekorEntry | None, bundle: Bundle, trust_root: TrustRoot, fulcio: FulcioChecker
) -> None:
    """What sigstore leaves out: each trust root piece valid at the Rekor integrated time.

    A bundle timed only by a timestamp authority (no inclusion promise, e.g. Rekor v2) has no
    integrated time to judge the windows at: refused, so that verification fails closed.
    """
    if entry is None or not entry.integrated_time:
        raise Rejected(
            "bundle has no Rekor inclusion promise with an integrated time (timed by a "
            "timestamp authority only): not supported yet, the trust root's validity windows "
            "cannot be judged"
        )
    log = known_log(entry, trust_root)
    if log is None:
        raise Rejected(
            f"Rekor log {entry.log_id.hex()} is not in {trust_root.name} "
            "(give the trusted root of the Sigstore instance that signed it)"
        )
    verify_set(entry, log, trust_root)
    fulcio.check_windows(bundle.signing_certificate, entry.integrated_at)


def _diagnose(entry: RekorEntry | None, bundle: Bundle, fulcio: FulcioChecker) -> None:
    """After sigstore refused a bundle: say why in our words when it is the certificate."""
    if entry is not None and entry.integrated_time:
        # the time is not authenticated yet: it only chooses which reason to give
        fulcio.check(bundle.signing_certificate, [], entry.integrated_at)


def verify_keyless(
    candidate: BundleCandidate,
    digest: str,
    identities: tuple[IdentityMatcher, ...],
    verifier: SigstoreVerifier,
    fulcio: FulcioChecker,
    trust_root: TrustRoot,
    predicate_types: tuple[str, ...],
) -> VerificationResult:
    return keyless_statement(candidate, digest, identities, verifier, fulcio, trust_root,
                             predicate_types)[0]


def keyless_statement(
    candidate: BundleCandidate,
    digest: str,
    identities: tuple[IdentityMatcher, ...],
    verifier: SigstoreVerifier,
    fulcio: FulcioChecker,
    trust_root: TrustRoot,
    predicate_types: tuple[str, ...],
    what: str = "bundle",
) -> tuple[VerificationResult, dict[str, Any]]:
    """:func:`verify_keyless`, also returning the verified in-toto statement."""
    try:
        # ours first: depth guard and duplicate keys, which sigstore's parser lets through
        document = json_object(candidate.data, "bundle")
        if "publicKey" in _material(document):
            raise Rejected(
                "bundle is signed with a public key, not a Fulcio certificate: "
                "verify with that public key"
            )
        try:
            bundle = Bundle.from_json(candidate.data)
        except Exception as exc:  # sigstore and pydantic errors all mean "unusable"
            raise Rejected(f"not a valid Sigstore bundle: {escape(exc)}") from None
        entry = _rekor_entry(document)
        try:
            payload_type, payload = verifier.verify_dsse(bundle, _ACCEPT_THEN_MATCH)
        except SigstoreError as exc:
            _diagnose(entry, bundle, fulcio)
            raise Rejected(f"bundle does not verify: {escape(exc)}") from None
        _check_windows(entry, bundle, trust_root, fulcio)
        # the certificate is proven: only now are the payload's and its claims read
        statement = check_in_toto_subject(payload_type, payload, digest, predicate_types,
                                          what=what)
        issuer, subjects = certificate_identity(bundle.signing_certificate)
        matched = match_identity(identities, issuer, subjects)
        if matched.identity is None:
            raise Rejected(matched.reason)
        log_index = compat.bundle_log_index(bundle)
    except Rejected as exc:
        raise Rejected(f"{escape(candidate.source)}: {exc}") from None
    return VerificationResult(
        digest=digest,
        format="bundle",
        identity=matched.identity,
        rekor_log_index=log_index,
        identity_unchecked=not identities,
        source=escape(candidate.source),
    ), statement


def verify_with_keys(
    candidate: BundleCandidate,
    digest: str,
    keys: tuple[PublicKey, ...],
    trust_root: TrustRoot,
    predicate_types: tuple[str, ...],
) -> VerificationResult:
    return key_statement(candidate, digest, keys, trust_root, predicate_types)[0]


def key_statement(
    candidate: BundleCandidate,
    digest: str,
    keys: tuple[PublicKey, ...],
    trust_root: TrustRoot,
    predicate_types: tuple[str, ...],
    what: str = "bundle",
) -> tuple[VerificationResult, dict[str, Any]]:
    """:func:`verify_with_keys`, also returning the verified in-toto statement."""
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
        payload_type, payload, sigs = dsse_parts(envelope)
        signed = pae(payload_type, payload)
        key = next((k for k in keys if any(k.matches(s, signed) for s in sigs)), None)
        if key is None:
            raise Rejected(*(f"key {k.name}: signature does not match" for k in keys))
        try:
            statement = check_in_toto_subject(payload_type, payload, digest,
                                              predicate_types, what=what)
            log_index = _check_optional_tlog(
                material, payload, sigs, trust_root,
                key_fingerprint=key.fingerprint if what == "attestation" else None)
        except Rejected as exc:
            raise Rejected(f"key {key.name}: {exc}") from None
    except Rejected as exc:
        raise Rejected(*(f"{escape(candidate.source)}: {line}" for line in exc.lines)) from None
    return VerificationResult(
        digest=digest,
        format="bundle",
        key=key.label,
        rekor_log_index=log_index,
        source=escape(candidate.source),
    ), statement


def _check_optional_tlog(
    material: dict[str, Any], payload: bytes, signatures: list[bytes], trust_root: TrustRoot,
    *, key_fingerprint: str | None = None,
) -> int | None:
    """A key-signed bundle's log entry, like a legacy layer's SET: checked when its log is known.

    The key signature alone decides validity; a SET from a log of the trust root must then
    verify and be about this payload and signature, and only then is its index reported.
    ``key_fingerprint`` (an attestation): the entry may also be intoto/0.0.2 (cosign v2's
    ``attest --new-bundle-format --rekor-entry-type intoto``), checked as an ``.att`` layer's
    is, for this key too.
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
        if key_fingerprint is None:
            check_dsse_body(entry, payload=payload, signatures=signatures)
        else:
            check_logged_body(entry, payload=payload, signatures=signatures,
                              key_fingerprint=key_fingerprint)
        return entry.log_index
    return None

"""Sigstore bundles v0.3 (cosign's new format) from the local Sigstore."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from verify_helpers import DIGEST, IDENTITY, ISSUER, OTHER_DIGEST

from chartguard.verify import (
    BundleCandidate,
    PublicKey,
    TrustRoot,
    VerificationFailedError,
    VerificationPolicy,
    Verifier,
)
from chartguard_testing.cosign_signer import (
    generate_key_pair,
    sign_bundle_keyless,
    sign_bundle_with_key,
)
from chartguard_testing.sigstore_local import LocalSigstore


def _failure(verifier: Verifier, data: bytes) -> str:
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(DIGEST, [], [BundleCandidate(data, "referrer sha256-abc")])
    assert len(err.value.failures) == 1
    return err.value.failures[0]


def test_keyless_bundle_verifies_with_identity_and_log_index(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    data = sign_bundle_keyless(local_sigstore, DIGEST)
    result = keyless_verifier.verify(DIGEST, [], [BundleCandidate(data, "referrer")])
    assert result.format == "bundle"
    assert result.identity == (ISSUER, IDENTITY)
    assert result.rekor_log_index is not None


def test_bundle_whose_subject_is_another_digest_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    data = sign_bundle_keyless(local_sigstore, DIGEST, subject_digest=OTHER_DIGEST)
    assert _failure(keyless_verifier, data) == (
        f"referrer sha256-abc: bundle subject is {OTHER_DIGEST}, not {DIGEST} "
        "(bundle made for another artifact)"
    )


def test_bundle_identity_mismatch_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    data = sign_bundle_keyless(local_sigstore, DIGEST, identity="other@example.com")
    assert _failure(keyless_verifier, data) == (
        f"referrer sha256-abc: certificate identity other@example.com not matched by ^{IDENTITY}$"
    )


def test_bundle_from_a_foreign_ca_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    data = sign_bundle_keyless(local_sigstore, DIGEST, foreign=True)
    assert _failure(keyless_verifier, data) == (
        "referrer sha256-abc: certificate does not chain to a Fulcio CA of local "
        "trusted_root.json: its issuer CN=foreign-fulcio intermediate,O=foreign-fulcio is not "
        "one of them (another Sigstore instance? give its trusted root)"
    )


def test_bundle_certificate_expired_at_integration_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    issued = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    data = sign_bundle_keyless(
        local_sigstore, DIGEST, not_before=issued, not_after=issued + timedelta(minutes=10)
    )
    assert "was expired at the Rekor integrated time" in _failure(keyless_verifier, data)


def test_bundle_with_a_tampered_inclusion_proof_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    document = json.loads(sign_bundle_keyless(local_sigstore, DIGEST))
    proof = document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["rootHash"] = base64.b64encode(b"\x00" * 32).decode()
    assert "bundle does not verify" in _failure(keyless_verifier, json.dumps(document).encode())


def test_garbage_bundle_fails_closed(keyless_verifier: Verifier) -> None:
    assert "bundle is not valid JSON" in _failure(keyless_verifier, b"\x00not json")
    assert "not a Sigstore bundle" in _failure(keyless_verifier, b'{"mediaType": "x"}')


def test_key_signed_bundle_is_refused_by_a_keyless_policy(keyless_verifier: Verifier) -> None:
    data = sign_bundle_with_key(generate_key_pair("ecdsa-p256"), DIGEST)
    assert "signed with a public key, not a Fulcio certificate" in _failure(keyless_verifier, data)


def test_keyless_bundle_is_refused_by_a_key_policy(local_sigstore: LocalSigstore) -> None:
    pair = generate_key_pair("ecdsa-p256")
    verifier = Verifier(VerificationPolicy(keys=(PublicKey.from_pem(pair.public_pem, "k.pub"),)))
    data = sign_bundle_keyless(local_sigstore, DIGEST)
    assert "signed with a certificate (keyless)" in _failure(verifier, data)


def test_legacy_and_bundle_failures_are_all_reported(
    local_sigstore: LocalSigstore, local_root: TrustRoot, keyless_verifier: Verifier
) -> None:
    from chartguard_testing.cosign_signer import sign_legacy_keyless, simple_signing_payload

    legacy = sign_legacy_keyless(
        local_sigstore, simple_signing_payload("r", OTHER_DIGEST), source="tag sha256-x.sig"
    )
    bundle = BundleCandidate(
        sign_bundle_keyless(local_sigstore, DIGEST, subject_digest=OTHER_DIGEST), "referrer"
    )
    with pytest.raises(VerificationFailedError) as err:
        keyless_verifier.verify(DIGEST, [legacy], [bundle])
    assert [line.split(":")[0] for line in err.value.failures] == ["tag sha256-x.sig", "referrer"]
    assert err.value.digest == DIGEST


# -- security review: what a registry can serve must not pass -----------------------------------

SBOM = "https://cyclonedx.org/bom"


def test_keyless_attestation_of_the_same_identity_is_not_a_signature(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    """An SBOM attested by the signer (e.g. for every CI build) must not approve the chart."""
    data = sign_bundle_keyless(local_sigstore, DIGEST, predicate_type=SBOM)
    assert _failure(keyless_verifier, data) == (
        f"referrer sha256-abc: bundle predicate type is {SBOM!r}, not "
        "'https://sigstore.dev/cosign/sign/v1' (an attestation, not a signature; accept its "
        "type in the policy if it is meant to approve the artifact)"
    )


def test_key_signed_attestation_is_not_a_signature_unless_the_policy_accepts_it() -> None:
    pair = generate_key_pair("ecdsa-p256")
    key = PublicKey.from_pem(pair.public_pem, "k.pub")
    data = sign_bundle_with_key(pair, DIGEST, predicate_type=SBOM)
    failure = _failure(Verifier(VerificationPolicy(keys=(key,))), data)
    assert failure.startswith(f"referrer sha256-abc: key k.pub: bundle predicate type is {SBOM!r}")
    widened = VerificationPolicy(keys=(key,), bundle_predicate_types=(SBOM,))
    assert Verifier(widened).verify(DIGEST, [], [BundleCandidate(data, "r")]).key is not None


def test_an_empty_list_of_predicate_types_is_refused() -> None:
    from chartguard.verify import InvalidPolicyError

    with pytest.raises(InvalidPolicyError, match="bundle predicate types are empty"):
        VerificationPolicy(bundle_predicate_types=())


def test_key_signed_bundle_with_an_unknown_media_type_fails() -> None:
    pair = generate_key_pair("ecdsa-p256")
    verifier = Verifier(VerificationPolicy(keys=(PublicKey.from_pem(pair.public_pem, "k.pub"),)))
    document = json.loads(sign_bundle_with_key(pair, DIGEST))
    document["mediaType"] = "application/vnd.dev.sigstore.bundle.v9+json"
    assert _failure(verifier, json.dumps(document).encode()) == (
        "referrer sha256-abc: not a Sigstore bundle "
        "(mediaType 'application/vnd.dev.sigstore.bundle.v9+json')"
    )


def test_statement_with_a_duplicate_subject_key_fails(local_sigstore: LocalSigstore) -> None:
    """Duplicate keys in signed JSON: two parsers could read two statements from one signature."""
    import base64 as b64

    from chartguard_testing.cosign_signer import KeyPair

    pair: KeyPair = generate_key_pair("ecdsa-p256")
    key = PublicKey.from_pem(pair.public_pem, "k.pub")
    other_hex = OTHER_DIGEST.split(":")[1]
    statement = (
        '{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"c","digest":'
        f'{{"sha256":"{other_hex}","sha256":"{DIGEST.split(":")[1]}"}}}}],'
        '"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    ).encode()
    kind = b"application/vnd.in-toto+json"
    signed = b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(statement), statement)
    document = json.loads(sign_bundle_with_key(pair, DIGEST))
    document["dsseEnvelope"]["payload"] = b64.b64encode(statement).decode()
    document["dsseEnvelope"]["signatures"][0]["sig"] = b64.b64encode(pair.sign(signed)).decode()
    assert _failure(Verifier(VerificationPolicy(keys=(key,))), json.dumps(document).encode()) == (
        "referrer sha256-abc: key k.pub: in-toto statement has the key 'sha256' more than once"
    )

"""Policies and trust roots: built once, refuse bad input with messages that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigstore.models import TrustedRoot as SigstoreTrustedRoot
from verify_helpers import DIGEST

from chartguard.verify import (
    InvalidPolicyError,
    InvalidTrustRootError,
    OIDCIdentity,
    PublicKey,
    TrustRoot,
    VerificationError,
    VerificationPolicy,
    Verifier,
)
from chartguard_testing.sigstore_local import LocalSigstore


def test_production_root_loads_offline_from_the_wheel() -> None:
    root = TrustRoot.production()
    assert root.name == "sigstore production"
    assert len(root.certificate_authorities) >= 1
    # The production Rekor key (log ID c0d23d6a...) is there for legacy SETs.
    assert any(log_id.hex().startswith("c0d23d6a") for log_id in root.rekor_keys)


def test_local_trusted_root_is_accepted_by_sigstores_own_loader(
    local_sigstore: LocalSigstore, tmp_path: Path
) -> None:
    path = tmp_path / "trusted_root.json"
    path.write_bytes(local_sigstore.trusted_root_json())
    loaded = SigstoreTrustedRoot.from_file(str(path))
    assert len(loaded.get_fulcio_certs()) == 2
    assert TrustRoot.from_json(path.read_bytes()).rekor_keys.keys() == {local_sigstore.rekor_log_id}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not a Sigstore trusted root"),
        (json.dumps({"mediaType": "application/x-other"}).encode(), "not a Sigstore trusted root"),
    ],
)
def test_bad_trusted_root_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidTrustRootError, match=reason):
        TrustRoot.from_json(data, name="mine.json")


def test_trusted_root_without_fulcio_is_refused_for_keyless(
    local_sigstore: LocalSigstore,
) -> None:
    document = json.loads(local_sigstore.trusted_root_json())
    document["certificateAuthorities"] = []
    root = TrustRoot.from_json(json.dumps(document).encode(), name="mine.json")
    with pytest.raises(InvalidTrustRootError, match=r"mine\.json has no certificate authority"):
        Verifier(VerificationPolicy(trust_root=root))


@pytest.mark.parametrize(
    ("issuer", "subject", "bad"), [("(", ".*", "issuer"), (".*", "[", "subject")]
)
def test_bad_identity_expression_names_the_bad_one(issuer: str, subject: str, bad: str) -> None:
    with pytest.raises(InvalidPolicyError, match=f"identity {bad}: invalid regular expression"):
        OIDCIdentity(issuer=issuer, subject=subject)


def test_empty_identity_expression_is_refused() -> None:
    with pytest.raises(InvalidPolicyError, match="identity subject: must not be empty"):
        OIDCIdentity(issuer=".*", subject="")


def test_keys_and_identities_together_are_refused() -> None:
    from chartguard_testing.cosign_signer import generate_key_pair

    key = PublicKey.from_pem(generate_key_pair().public_pem, "cosign.pub")
    with pytest.raises(InvalidPolicyError, match="either public keys or identities"):
        VerificationPolicy(keys=(key,), identities=(OIDCIdentity(".*", ".*"),))


def test_a_malformed_digest_is_refused_before_any_signature_is_tried(
    keyless_verifier: Verifier,
) -> None:
    with pytest.raises(VerificationError, match="not a sha256 manifest digest"):
        keyless_verifier.verify("latest", [], [])
    with pytest.raises(VerificationError, match="not a sha256 manifest digest"):
        keyless_verifier.verify(DIGEST.upper(), [], [])


def test_result_summary_is_one_line(
    keyless_verifier: Verifier, local_sigstore: LocalSigstore
) -> None:
    from chartguard_testing.cosign_signer import sign_legacy_keyless, simple_signing_payload

    sig = sign_legacy_keyless(local_sigstore, simple_signing_payload("r", DIGEST))
    summary = keyless_verifier.verify(DIGEST, [sig], []).summary()
    assert "\n" not in summary
    assert "Rekor log index" in summary

"""Keyless legacy signatures from the local Sigstore, through the production code."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from verify_helpers import DIGEST, IDENTITY, ISSUER, OTHER_DIGEST, REPOSITORY

from chartguard.verify import (
    InvalidPolicyError,
    LegacySignature,
    NoSignatureError,
    OIDCIdentity,
    TrustRoot,
    VerificationFailedError,
    VerificationPolicy,
    Verifier,
)
from chartguard_testing.cosign_signer import (
    hashedrekord_body,
    sign_legacy_keyless,
    simple_signing_payload,
)
from chartguard_testing.sigstore_local import LocalSigstore

PAYLOAD = simple_signing_payload(REPOSITORY, DIGEST)


def _only_failure(verifier: Verifier, *sigs: object, digest: str = DIGEST) -> str:
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(digest, list(sigs), [])  # type: ignore[arg-type]
    assert len(err.value.failures) == 1
    return err.value.failures[0]


def test_identity_match_verifies_and_reports_identity_and_log_index(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    result = keyless_verifier.verify(DIGEST, [sign_legacy_keyless(local_sigstore, PAYLOAD)], [])
    assert result.identity == (ISSUER, IDENTITY)
    assert result.rekor_log_index is not None
    assert result.identity_unchecked is False
    assert result.summary().startswith(
        f"verified {DIGEST}: legacy signature by identity {IDENTITY}"
    )


def test_subject_mismatch_fails_with_the_subject_and_expression(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, identity="intruder@example.com")
    assert _only_failure(keyless_verifier, sig) == (
        f"test signer: certificate identity intruder@example.com not matched by ^{IDENTITY}$"
    )


def test_issuer_mismatch_fails_with_the_issuer_and_expression(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, issuer="https://evil.example.org")
    assert _only_failure(keyless_verifier, sig) == (
        f"test signer: certificate issuer https://evil.example.org not matched by ^{ISSUER}$"
    )


def test_uri_identity_of_a_ci_workflow_matches(
    local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    workflow = "https://github.com/acme/charts/.github/workflows/release.yml@refs/tags/v1.0.0"
    policy = VerificationPolicy(
        identities=(
            OIDCIdentity("^https://token.actions.githubusercontent.com$", "^nobody$"),
            OIDCIdentity(
                "^https://token.actions.githubusercontent.com$",
                r"^https://github\.com/acme/charts/\.github/workflows/release\.yml@refs/tags/v",
            ),
        ),
        trust_root=local_root,
    )
    sig = sign_legacy_keyless(
        local_sigstore, PAYLOAD, workflow, "https://token.actions.githubusercontent.com"
    )
    assert Verifier(policy).verify(DIGEST, [sig], []).identity == (
        "https://token.actions.githubusercontent.com",
        workflow,
    )


def test_identity_expressions_search_like_cosign_unless_anchored(
    local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    """cosign/Flux use Go's unanchored MatchString: `example.com` matches a longer name."""
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, identity="me@example.com.evil.org")
    loose = VerificationPolicy(
        identities=(OIDCIdentity("example", r"@example\.com"),), trust_root=local_root
    )
    assert Verifier(loose).verify(DIGEST, [sig], []).identity is not None
    anchored = VerificationPolicy(
        identities=(OIDCIdentity("example", r"@example\.com$"),), trust_root=local_root
    )
    with pytest.raises(VerificationFailedError, match="not matched by"):
        Verifier(anchored).verify(DIGEST, [sig], [])


def test_no_identity_accepts_any_fulcio_identity_but_flags_it(
    local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, identity="anyone@example.net")
    result = Verifier(VerificationPolicy(trust_root=local_root)).verify(DIGEST, [sig], [])
    assert result.identity_unchecked is True
    assert result.identity == (ISSUER, "anyone@example.net")


def test_required_identity_refuses_a_policy_without_one(local_root: TrustRoot) -> None:
    with pytest.raises(InvalidPolicyError, match="needs at least one identity"):
        VerificationPolicy(trust_root=local_root, require_identity=True)


def test_certificate_from_another_ca_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, foreign=True)
    failure = _only_failure(keyless_verifier, sig)
    assert failure == (
        "test signer: certificate does not chain to a Fulcio CA of local trusted_root.json: "
        "its issuer CN=foreign-fulcio intermediate,O=foreign-fulcio is not one of them "
        "(another Sigstore instance? give its trusted root)"
    )


def test_certificate_expired_at_the_integrated_time_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    issued = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    sig = sign_legacy_keyless(
        local_sigstore, PAYLOAD, not_before=issued, not_after=issued + timedelta(minutes=10)
    )
    failure = _only_failure(keyless_verifier, sig)
    assert "was expired at the Rekor integrated time" in failure


def test_entry_integrated_before_the_certificate_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    early = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, integrated_time=early)
    assert "was expired at the Rekor integrated time" in _only_failure(keyless_verifier, sig)


def test_signature_copied_from_another_chart_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, simple_signing_payload(REPOSITORY, OTHER_DIGEST))
    assert _only_failure(keyless_verifier, sig) == (
        f"test signer: signed payload is for {OTHER_DIGEST}, not {DIGEST} "
        "(signature copied from another artifact)"
    )


def test_payload_of_the_wrong_type_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    payload = simple_signing_payload(REPOSITORY, DIGEST, type_="atomic container signature")
    sig = sign_legacy_keyless(local_sigstore, payload)
    assert _only_failure(keyless_verifier, sig) == (
        "test signer: signed payload type is 'atomic container signature', not "
        "'cosign container image signature' (not a cosign image signature)"
    )


def test_no_signature_at_all(keyless_verifier: Verifier) -> None:
    with pytest.raises(NoSignatureError) as err:
        keyless_verifier.verify(DIGEST, [], [])
    assert str(err.value) == f"no signature for {DIGEST}"


def test_without_rekor_bundle_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, with_bundle=False)
    assert "no Rekor bundle" in _only_failure(keyless_verifier, sig)


def test_without_chain_annotation_still_chains_through_the_trust_root(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, with_chain=False)
    assert keyless_verifier.verify(DIGEST, [sig], []).identity == (ISSUER, IDENTITY)


def test_rekor_entry_for_another_payload_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    good = sign_legacy_keyless(local_sigstore, PAYLOAD)
    other = sign_legacy_keyless(local_sigstore, simple_signing_payload(REPOSITORY, OTHER_DIGEST))
    # A valid SET, but for another entry: it must not vouch for this signature.
    annotations = {
        **good.annotations,
        "dev.sigstore.cosign/bundle": other.annotations["dev.sigstore.cosign/bundle"],
    }
    failure = _only_failure(keyless_verifier, replace(good, annotations=annotations))
    assert "Rekor entry is for another payload" in failure


def test_certificate_without_sct_fails(
    local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    key, cert = local_sigstore.issue_certificate(IDENTITY, ISSUER, embed_sct=False)
    signature = key.sign(PAYLOAD, ec.ECDSA(hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    entry = local_sigstore.log(hashedrekord_body(signature, PAYLOAD, cert_pem))
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD)
    annotations = {
        **sig.annotations,
        "dev.cosignproject.cosign/signature": base64.b64encode(signature).decode(),
        "dev.sigstore.cosign/certificate": cert_pem.decode(),
        "dev.sigstore.cosign/bundle": entry.cosign_bundle_annotation(),
    }
    verifier = Verifier(VerificationPolicy(trust_root=local_root))
    failure = _only_failure(verifier, replace(sig, annotations=annotations))
    assert "certificate transparency (SCT) check failed" in failure


def test_several_layers_where_one_is_valid_reports_only_on_failure(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    bad = sign_legacy_keyless(local_sigstore, PAYLOAD, identity="x@example.com", source="layer 0")
    good = sign_legacy_keyless(local_sigstore, PAYLOAD, source="layer 1")
    assert keyless_verifier.verify(DIGEST, [bad, good], []).source == "layer 1"
    with pytest.raises(VerificationFailedError) as err:
        keyless_verifier.verify(DIGEST, [bad, bad], [])
    assert len(err.value.failures) == 2


def test_set_annotation_that_is_not_json_fails_closed(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD)
    broken = replace(sig, annotations={**sig.annotations, "dev.sigstore.cosign/bundle": "{"})
    assert "Rekor bundle annotation is not valid JSON" in _only_failure(keyless_verifier, broken)
    assert json.loads(sig.annotations["dev.sigstore.cosign/bundle"])  # the original was fine


# -- security review: forged evidence from a registry the attacker controls ----------------------


def _manual_keyless(
    local_sigstore: LocalSigstore,
    *,
    identity: str = IDENTITY,
    code_signing: bool = True,
) -> LegacySignature:
    """A keyless layer built step by step, for certificates sign_legacy_keyless cannot make."""
    key, cert = local_sigstore.issue_certificate(identity, ISSUER, code_signing=code_signing)
    signature = key.sign(PAYLOAD, ec.ECDSA(hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    entry = local_sigstore.log(hashedrekord_body(signature, PAYLOAD, cert_pem))
    return LegacySignature(
        payload=PAYLOAD,
        annotations={
            "dev.cosignproject.cosign/signature": base64.b64encode(signature).decode(),
            "dev.sigstore.cosign/certificate": cert_pem.decode(),
            "dev.sigstore.cosign/chain": local_sigstore.chain_pem(),
            "dev.sigstore.cosign/bundle": entry.cosign_bundle_annotation(),
        },
        source="test signer",
    )


def test_an_attackers_own_sigstore_is_refused_even_claiming_the_trusted_log_id(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    evil = LocalSigstore.create()
    sig = sign_legacy_keyless(evil, PAYLOAD)
    assert "is not in local trusted_root.json" in _only_failure(keyless_verifier, sig)
    bundle = json.loads(sig.annotations["dev.sigstore.cosign/bundle"])
    bundle["Payload"]["logID"] = local_sigstore.rekor_log_id.hex()
    forged = replace(
        sig, annotations={**sig.annotations, "dev.sigstore.cosign/bundle": json.dumps(bundle)}
    )
    assert "Rekor SET (log index" in _only_failure(keyless_verifier, forged)
    assert "does not verify with the key of log" in _only_failure(keyless_verifier, forged)


def test_a_chain_annotation_cannot_bring_its_own_root(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    """The foreign CA's root rides in the chain annotation: it must not become an anchor."""
    sig = sign_legacy_keyless(local_sigstore, PAYLOAD, foreign=True)
    assert sig.annotations["dev.sigstore.cosign/chain"].count("BEGIN CERTIFICATE") == 2
    assert "does not chain to a Fulcio CA" in _only_failure(keyless_verifier, sig)


def test_certificate_without_code_signing_usage_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = _manual_keyless(local_sigstore, code_signing=False)
    assert "code signing" in _only_failure(keyless_verifier, sig).lower()


def test_rekor_entry_for_another_signature_of_the_same_payload_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    good = sign_legacy_keyless(local_sigstore, PAYLOAD)
    other = sign_legacy_keyless(local_sigstore, PAYLOAD)
    annotations = {
        **good.annotations,
        "dev.sigstore.cosign/bundle": other.annotations["dev.sigstore.cosign/bundle"],
    }
    failure = _only_failure(keyless_verifier, replace(good, annotations=annotations))
    assert failure == "test signer: Rekor entry is for another signature"


def test_identity_with_a_trailing_newline_does_not_match_an_anchored_expression(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    """A name with a newline is never matched, and shown escaped (one line per failure)."""
    sig = _manual_keyless(local_sigstore, identity=IDENTITY + "\n")
    assert _only_failure(keyless_verifier, sig) == (
        f"test signer: certificate identity '{IDENTITY}\\x0a' contains a control "
        "character: never matched"
    )


def test_sct_from_a_ct_log_outside_the_trust_root_fails(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    """The trusted CA and Rekor, but the SCT signed by a CT log the trust root does not list."""
    other_ct = replace(local_sigstore, ct_key=ec.generate_private_key(ec.SECP256R1()))
    sig = sign_legacy_keyless(other_ct, PAYLOAD)
    assert "certificate transparency (SCT) check failed" in _only_failure(keyless_verifier, sig)

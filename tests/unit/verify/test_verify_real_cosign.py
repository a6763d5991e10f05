"""Signatures made by the real cosign verify through the production code, and only intact.

The fixtures (tests/fixtures/cosign-real, each with its SOURCE.txt) are never special-cased:
they go through the same `Verifier` as everything else.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from verify_helpers import REAL, digest_of, real_legacy

from chartguard.verify import (
    COSIGN_SIGN_PREDICATE,
    BundleCandidate,
    OIDCIdentity,
    PublicKey,
    TrustRoot,
    VerificationFailedError,
    VerificationPolicy,
    Verifier,
)

KEY_COSIGN = "containers-image-ci-key-cosign-valid"
KEY_REKOR = "containers-image-ci-key-rekor-valid"
KEYLESS = "containers-image-ci-keyless-fulcio-rekor"
BUNDLE = "cosign-oci-attestation-bundle-v0.3"
GITHUB = "^https://github\\.com/login/oauth$"
# The real bundle is an attestation (`cosign attest --new-bundle-format`, predicate type
# cosign's custom one), not a `cosign sign` signature: its tests accept that type explicitly.
ATTESTATION = "https://cosign.sigstore.dev/attestation/v1"


def _key_verifier(folder: str, pub: str = "cosign.pub") -> Verifier:
    key = PublicKey.from_pem((REAL / folder / pub).read_bytes(), pub)
    return Verifier(VerificationPolicy(keys=(key,)))


def _manifest_digest(folder: str, name: str = "manifest.json") -> str:
    return digest_of((REAL / folder / name).read_bytes())


def _keyless(
    subject: str,
    issuer: str = GITHUB,
    root: TrustRoot | None = None,
    predicates: tuple[str, ...] = (COSIGN_SIGN_PREDICATE, ATTESTATION),
) -> Verifier:
    return Verifier(
        VerificationPolicy(
            identities=(OIDCIdentity(issuer, subject),),
            trust_root=root,
            bundle_predicate_types=predicates,
        )
    )


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _flip_b64(value: str, index: int = 10) -> str:
    return base64.b64encode(_flip(base64.b64decode(value), index)).decode()


def _bundle() -> BundleCandidate:
    return BundleCandidate((REAL / BUNDLE / "oci-attestation.sigstore.json").read_bytes(), "bundle")


BUNDLE_DIGEST = _manifest_digest(BUNDLE, "manifest.reconstructed-empty-image.json")


# -- they verify ---------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [KEY_COSIGN, KEY_REKOR])
def test_real_key_signed_signature_verifies(folder: str) -> None:
    result = _key_verifier(folder).verify(_manifest_digest(folder), [real_legacy(folder)], [])
    assert result.format == "legacy"
    assert result.key is not None
    assert result.key.startswith("cosign.pub (sha256:")
    assert result.identity is None


def test_real_key_signed_with_rekor_set_reports_the_production_log_index() -> None:
    result = _key_verifier(KEY_REKOR).verify(
        _manifest_digest(KEY_REKOR), [real_legacy(KEY_REKOR)], []
    )
    assert result.rekor_log_index == 11608800


def test_real_keyless_legacy_verifies_against_the_production_root_in_the_wheel() -> None:
    result = _keyless("^mitr@redhat\\.com$").verify(
        _manifest_digest(KEYLESS), [real_legacy(KEYLESS)], []
    )
    assert result.identity == ("https://github.com/login/oauth", "mitr@redhat.com")
    assert result.rekor_log_index == 11605770
    assert result.identity_unchecked is False


def test_real_keyless_legacy_chain_ends_at_the_fixture_fulcio_root() -> None:
    """The chain annotation's root is the fixture's fulcio_v1.crt.pem (same production CA)."""
    annotations = json.loads((REAL / KEYLESS / "annotations.json").read_text())
    fulcio_root = (REAL / KEYLESS / "fulcio_v1.crt.pem").read_text().strip()
    assert annotations["dev.sigstore.cosign/chain"].strip().endswith(fulcio_root.split("\n", 1)[1])


def test_real_v03_bundle_verifies_through_sigstore_and_subject_check() -> None:
    result = _keyless("^cody@soyland\\.com$").verify(BUNDLE_DIGEST, [], [_bundle()])
    assert result.format == "bundle"
    assert result.identity == ("https://github.com/login/oauth", "cody@soyland.com")
    assert result.rekor_log_index == 175508996


def test_real_attestation_bundle_is_not_a_signature_by_default() -> None:
    """An attestation by the right identity must not pass as the image's signature."""
    verifier = _keyless("^cody@soyland\\.com$", predicates=(COSIGN_SIGN_PREDICATE,))
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(BUNDLE_DIGEST, [], [_bundle()])
    assert err.value.failures == (
        f"bundle: bundle predicate type is {ATTESTATION!r}, not {COSIGN_SIGN_PREDICATE!r} "
        "(an attestation, not a signature; accept its type in the policy if it is meant to "
        "approve the artifact)",
    )


def test_real_keyless_without_identity_passes_but_is_flagged() -> None:
    result = Verifier(VerificationPolicy()).verify(
        _manifest_digest(KEYLESS), [real_legacy(KEYLESS)], []
    )
    assert result.identity_unchecked is True
    assert "no identity policy" in result.summary()


# -- one flipped byte ----------------------------------------------------------------------


@pytest.mark.parametrize("folder", [KEY_COSIGN, KEY_REKOR])
def test_real_key_signed_payload_with_one_flipped_byte_fails(folder: str) -> None:
    sig = real_legacy(folder)
    tampered = replace(sig, payload=_flip(sig.payload, 40))
    with pytest.raises(VerificationFailedError) as err:
        _key_verifier(folder).verify(_manifest_digest(folder), [tampered], [])
    assert "key cosign.pub: signature does not match" in str(err.value)


@pytest.mark.parametrize("folder", [KEY_COSIGN, KEY_REKOR, KEYLESS])
def test_real_signature_with_one_flipped_byte_fails(folder: str) -> None:
    sig = real_legacy(folder)
    annotations = dict(sig.annotations)
    name = "dev.cosignproject.cosign/signature"
    annotations[name] = _flip_b64(annotations[name], 20)
    verifier = _keyless("^mitr@redhat\\.com$") if folder == KEYLESS else _key_verifier(folder)
    with pytest.raises(VerificationFailedError, match="signature does not match"):
        verifier.verify(_manifest_digest(folder), [replace(sig, annotations=annotations)], [])


def test_real_key_signed_set_with_one_flipped_byte_fails() -> None:
    sig = real_legacy(KEY_REKOR)
    bundle = json.loads(sig.annotations["dev.sigstore.cosign/bundle"])
    bundle["SignedEntryTimestamp"] = _flip_b64(bundle["SignedEntryTimestamp"])
    annotations = {**sig.annotations, "dev.sigstore.cosign/bundle": json.dumps(bundle)}
    with pytest.raises(VerificationFailedError, match=r"Rekor SET .* does not verify"):
        _key_verifier(KEY_REKOR).verify(
            _manifest_digest(KEY_REKOR), [replace(sig, annotations=annotations)], []
        )


def test_real_keyless_set_with_one_flipped_byte_fails() -> None:
    sig = real_legacy(KEYLESS)
    bundle = json.loads(sig.annotations["dev.sigstore.cosign/bundle"])
    bundle["SignedEntryTimestamp"] = _flip_b64(bundle["SignedEntryTimestamp"])
    annotations = {**sig.annotations, "dev.sigstore.cosign/bundle": json.dumps(bundle)}
    with pytest.raises(VerificationFailedError, match=r"Rekor SET .* does not verify"):
        _keyless(".*").verify(
            _manifest_digest(KEYLESS), [replace(sig, annotations=annotations)], []
        )


def test_real_keyless_certificate_with_one_flipped_byte_fails() -> None:
    sig = real_legacy(KEYLESS)
    pem = sig.annotations["dev.sigstore.cosign/certificate"]
    lines = pem.strip().split("\n")
    der = base64.b64decode("".join(lines[1:-1]))
    # A byte inside the certificate's signature value: still parses, no longer verifies.
    flipped = base64.b64encode(_flip(der, len(der) - 5)).decode()
    body = "\n".join(flipped[i : i + 64] for i in range(0, len(flipped), 64))
    tampered_pem = f"{lines[0]}\n{body}\n{lines[-1]}\n"
    annotations = {**sig.annotations, "dev.sigstore.cosign/certificate": tampered_pem}
    with pytest.raises(VerificationFailedError) as err:
        _keyless(".*").verify(
            _manifest_digest(KEYLESS), [replace(sig, annotations=annotations)], []
        )
    # The logged entry names the original certificate, so the tampered one is refused.
    assert "certificate" in str(err.value)


def test_real_keyless_payload_with_one_flipped_byte_fails() -> None:
    sig = real_legacy(KEYLESS)
    with pytest.raises(VerificationFailedError, match="signature does not match the certificate"):
        _keyless(".*").verify(
            _manifest_digest(KEYLESS), [replace(sig, payload=_flip(sig.payload, 30))], []
        )


def test_real_bundle_with_one_flipped_payload_byte_fails() -> None:
    document = json.loads(_bundle().data)
    envelope = document["dsseEnvelope"]
    envelope["payload"] = _flip_b64(envelope["payload"], 30)
    candidate = BundleCandidate(json.dumps(document).encode(), "bundle")
    with pytest.raises(VerificationFailedError, match="bundle: bundle does not verify"):
        _keyless(".*").verify(BUNDLE_DIGEST, [], [candidate])


def test_real_bundle_with_one_flipped_signature_byte_fails() -> None:
    document = json.loads(_bundle().data)
    signature = document["dsseEnvelope"]["signatures"][0]
    signature["sig"] = _flip_b64(signature["sig"], 12)
    candidate = BundleCandidate(json.dumps(document).encode(), "bundle")
    with pytest.raises(VerificationFailedError, match="bundle does not verify"):
        _keyless(".*").verify(BUNDLE_DIGEST, [], [candidate])


# -- wrong key, wrong identity ---------------------------------------------------------------


def test_real_key_signed_fails_with_another_real_key() -> None:
    # Each containers-image fixture's key is the other one's wrong key.
    other = PublicKey.from_pem((REAL / KEY_REKOR / "cosign.pub").read_bytes(), "cosign2.pub")
    verifier = Verifier(VerificationPolicy(keys=(other,)))
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(_manifest_digest(KEY_COSIGN), [real_legacy(KEY_COSIGN)], [])
    assert err.value.failures == (
        f"{KEY_COSIGN} layer 0: key cosign2.pub: signature does not match",
    )


def test_real_keyless_signature_fails_with_a_key() -> None:
    """A key-based policy never accepts a certificate-signed layer."""
    verifier = _key_verifier(KEY_REKOR)
    with pytest.raises(VerificationFailedError, match=r"key cosign\.pub: signature does not match"):
        verifier.verify(_manifest_digest(KEYLESS), [real_legacy(KEYLESS)], [])


def test_real_keyless_fails_with_another_subject() -> None:
    with pytest.raises(VerificationFailedError) as err:
        _keyless("^someone@redhat\\.com$").verify(
            _manifest_digest(KEYLESS), [real_legacy(KEYLESS)], []
        )
    assert "certificate identity mitr@redhat.com not matched by ^someone@redhat\\.com$" in str(
        err.value
    )


def test_real_keyless_fails_with_another_issuer() -> None:
    with pytest.raises(VerificationFailedError) as err:
        _keyless(".*", issuer="^https://token\\.actions\\.githubusercontent\\.com$").verify(
            _manifest_digest(KEYLESS), [real_legacy(KEYLESS)], []
        )
    assert "certificate issuer https://github.com/login/oauth not matched by" in str(err.value)


def test_real_bundle_fails_with_another_identity() -> None:
    with pytest.raises(VerificationFailedError, match=r"cody@soyland\.com not matched by"):
        _keyless("^mitr@redhat\\.com$").verify(BUNDLE_DIGEST, [], [_bundle()])


def test_real_keyless_fails_against_a_trust_root_without_its_ca(local_root: TrustRoot) -> None:
    with pytest.raises(VerificationFailedError, match=r"is not in local trusted_root\.json"):
        _keyless(".*", root=local_root).verify(
            _manifest_digest(KEYLESS), [real_legacy(KEYLESS)], []
        )


def test_real_bundle_against_its_own_pgi_trusted_root_file() -> None:
    """cosign's test trusted root (public-good instance) is accepted as a user file."""
    root = TrustRoot.from_json((REAL / BUNDLE / "trusted_root_pgi.json").read_bytes())
    result = _keyless("^cody@soyland\\.com$", root=root).verify(BUNDLE_DIGEST, [], [_bundle()])
    assert result.rekor_log_index == 175508996


def test_real_legacy_signature_for_the_other_fixture_digest_fails() -> None:
    with pytest.raises(VerificationFailedError, match="signed payload is for sha256:0489"):
        _key_verifier(KEY_REKOR).verify(_manifest_digest(KEY_COSIGN), [real_legacy(KEY_REKOR)], [])


@pytest.mark.parametrize("folder", [KEY_COSIGN, KEY_REKOR, KEYLESS])
def test_real_payload_bytes_are_the_served_layer_and_name_the_manifest(folder: str) -> None:
    """payload.json is the layer cosign pushed (its digest) and signs manifest.json's digest."""
    descriptor = json.loads((REAL / folder / "layer-descriptor.json").read_text())
    sig = real_legacy(folder)
    assert descriptor["layer_digest"] == digest_of(sig.payload)
    assert descriptor["signed_manifest_digest"] == _manifest_digest(folder)

"""Key-based verification: every key type cosign uses, several keys, Secrets, cosign.key."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from verify_helpers import DIGEST, REPOSITORY

from chartguard.verify import (
    BundleCandidate,
    InvalidKeyError,
    LegacySignature,
    PublicKey,
    TrustRoot,
    VerificationFailedError,
    VerificationPolicy,
    Verifier,
    public_keys_from_secret,
)
from chartguard.verify.keys import MAX_PUBLIC_KEYS, public_keys_from_pem
from chartguard_testing.cosign_signer import (
    KEY_KINDS,
    KeyKind,
    KeyPair,
    encrypt_cosign_key,
    generate_key_pair,
    load_cosign_key,
    sign_bundle_with_key,
    sign_legacy_with_key,
    simple_signing_payload,
)
from chartguard_testing.sigstore_local import LocalSigstore

PAYLOAD = simple_signing_payload(REPOSITORY, DIGEST)


@pytest.fixture(scope="module")
def pairs() -> dict[KeyKind, KeyPair]:
    return {kind: generate_key_pair(kind) for kind in KEY_KINDS}


def _verifier(*pairs_: KeyPair, names: tuple[str, ...] = ()) -> Verifier:
    names = names or tuple(f"{p.kind}.pub" for p in pairs_)
    keys = tuple(PublicKey.from_pem(p.public_pem, n) for p, n in zip(pairs_, names, strict=True))
    return Verifier(VerificationPolicy(keys=keys))


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_each_key_type_verifies_a_legacy_signature(
    pairs: dict[KeyKind, KeyPair], kind: KeyKind
) -> None:
    result = _verifier(pairs[kind]).verify(DIGEST, [sign_legacy_with_key(pairs[kind], PAYLOAD)], [])
    assert result.key == PublicKey.from_pem(pairs[kind].public_pem, f"{kind}.pub").label
    assert result.format == "legacy"


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_each_key_type_verifies_a_key_signed_bundle(
    pairs: dict[KeyKind, KeyPair], kind: KeyKind
) -> None:
    bundle = BundleCandidate(sign_bundle_with_key(pairs[kind], DIGEST), "referrer bundle")
    result = _verifier(pairs[kind]).verify(DIGEST, [], [bundle])
    assert result.format == "bundle"
    assert result.key is not None
    assert result.key.startswith(f"{kind}.pub")


@pytest.mark.parametrize("kind", ["ecdsa-p384", "ecdsa-p521"])
def test_older_cosign_sha256_over_big_curves_is_accepted(
    pairs: dict[KeyKind, KeyPair], kind: KeyKind
) -> None:
    sig = sign_legacy_with_key(pairs[kind], PAYLOAD, hashes.SHA256)
    assert _verifier(pairs[kind]).verify(DIGEST, [sig], []).key is not None


def test_p256_with_another_hash_is_refused(pairs: dict[KeyKind, KeyPair]) -> None:
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], PAYLOAD, hashes.SHA512)
    with pytest.raises(VerificationFailedError, match="signature does not match"):
        _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [sig], [])


def test_several_keys_where_only_the_last_matches(pairs: dict[KeyKind, KeyPair]) -> None:
    signer = pairs["ed25519"]
    verifier = _verifier(
        pairs["ecdsa-p256"], pairs["rsa"], signer, names=("a.pub", "b.pub", "c.pub")
    )
    result = verifier.verify(DIGEST, [sign_legacy_with_key(signer, PAYLOAD)], [])
    assert result.key is not None
    assert result.key.startswith("c.pub (sha256:")


def test_every_key_tried_is_reported_when_none_matches(pairs: dict[KeyKind, KeyPair]) -> None:
    verifier = _verifier(pairs["ecdsa-p256"], pairs["rsa"], names=("a.pub", "b.pub"))
    sig = sign_legacy_with_key(pairs["ed25519"], PAYLOAD, source="sha256-x.sig layer 0")
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(DIGEST, [sig], [])
    assert err.value.failures == (
        "sha256-x.sig layer 0: key a.pub: signature does not match",
        "sha256-x.sig layer 0: key b.pub: signature does not match",
    )
    assert str(err.value) == "\n".join(err.value.failures)


def test_several_layers_where_only_one_is_valid(pairs: dict[KeyKind, KeyPair]) -> None:
    key = pairs["ecdsa-p256"]
    wrong_signer = sign_legacy_with_key(pairs["rsa"], PAYLOAD, source="layer 0")
    other_digest = sign_legacy_with_key(
        key, simple_signing_payload(REPOSITORY, "sha256:" + "1" * 64), source="layer 1"
    )
    good = sign_legacy_with_key(key, PAYLOAD, source="layer 2")
    result = _verifier(key).verify(DIGEST, [wrong_signer, other_digest, good], [])
    assert result.source == "layer 2"


def test_key_signed_set_is_checked_when_its_log_is_in_the_trust_root(
    pairs: dict[KeyKind, KeyPair], local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    key = pairs["ecdsa-p256"]
    sig = sign_legacy_with_key(key, PAYLOAD, rekor=local_sigstore)
    public = PublicKey.from_pem(key.public_pem, "cosign.pub")
    verifier = Verifier(VerificationPolicy(keys=(public,), trust_root=local_root))
    assert verifier.verify(DIGEST, [sig], []).rekor_log_index is not None

    bundle = json.loads(sig.annotations["dev.sigstore.cosign/bundle"])
    bundle["Payload"]["integratedTime"] += 1  # the SET no longer covers the entry
    tampered = replace(
        sig, annotations={**sig.annotations, "dev.sigstore.cosign/bundle": json.dumps(bundle)}
    )
    with pytest.raises(VerificationFailedError, match=r"Rekor SET .* does not verify"):
        verifier.verify(DIGEST, [tampered], [])


def test_key_signed_set_from_an_unknown_log_is_ignored_and_not_reported(
    pairs: dict[KeyKind, KeyPair], local_sigstore: LocalSigstore
) -> None:
    key = pairs["ecdsa-p256"]
    sig = sign_legacy_with_key(key, PAYLOAD, rekor=local_sigstore)
    # Default trust root (production) does not know the local log.
    result = _verifier(key).verify(DIGEST, [sig], [])
    assert result.rekor_log_index is None


def test_key_bundle_subject_for_another_digest_fails(pairs: dict[KeyKind, KeyPair]) -> None:
    other = "sha256:" + "2" * 64
    bundle = BundleCandidate(
        sign_bundle_with_key(pairs["ecdsa-p256"], DIGEST, subject_digest=other), "referrer"
    )
    with pytest.raises(VerificationFailedError) as err:
        _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [], [bundle])
    assert err.value.failures == (
        f"referrer: key ecdsa-p256.pub: bundle subject is {other}, not {DIGEST} "
        "(bundle made for another artifact)",
    )


def test_secret_keys_ending_in_pub_are_all_loaded_by_name(pairs: dict[KeyKind, KeyPair]) -> None:
    data = {
        "team-b.pub": pairs["rsa"].public_pem,
        "cosign.pub": pairs["ecdsa-p256"].public_pem,
        "cosign.key": b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n...",
        "README": b"not a key",
    }
    keys = public_keys_from_secret(data)
    assert [k.name for k in keys] == ["cosign.pub", "team-b.pub"]
    assert (
        keys[0].fingerprint == PublicKey.from_pem(pairs["ecdsa-p256"].public_pem, "x").fingerprint
    )


def test_bad_pem_in_a_secret_names_the_key() -> None:
    with pytest.raises(InvalidKeyError, match=r"key broken\.pub: not a PEM public key"):
        public_keys_from_secret({"broken.pub": b"-----BEGIN PUBLIC KEY-----\nAAAA\n"})


def test_weak_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 - the point
    pem = weak.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidKeyError, match="1024 bits is too weak"):
        PublicKey.from_pem(pem, "old.pub")


def test_cosign_key_round_trips_through_the_encrypted_format(pairs: dict[KeyKind, KeyPair]) -> None:
    pem = encrypt_cosign_key(pairs["ecdsa-p256"].private_key, b"s3cret")
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    loaded = load_cosign_key(pem, b"s3cret")
    signer = KeyPair("ecdsa-p256", loaded)
    assert _verifier(pairs["ecdsa-p256"]).verify(
        DIGEST, [sign_legacy_with_key(signer, PAYLOAD)], []
    )
    old_label = pem.replace(b"SIGSTORE PRIVATE KEY", b"COSIGN PRIVATE KEY")
    assert load_cosign_key(old_label, b"s3cret").public_key() == loaded.public_key()
    with pytest.raises(ValueError, match="wrong password"):
        load_cosign_key(pem, b"not-the-password")


def test_key_signed_signature_copied_from_another_chart_says_so(
    pairs: dict[KeyKind, KeyPair],
) -> None:
    other = "sha256:" + "3" * 64
    sig = sign_legacy_with_key(
        pairs["ecdsa-p256"], simple_signing_payload(REPOSITORY, other), source="layer 0"
    )
    with pytest.raises(VerificationFailedError) as err:
        _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [sig], [])
    assert err.value.failures == (
        f"layer 0: key ecdsa-p256.pub: signed payload is for {other}, not {DIGEST} "
        "(signature copied from another artifact)",
    )


def test_key_signed_payload_of_the_wrong_type_says_so(pairs: dict[KeyKind, KeyPair]) -> None:
    payload = simple_signing_payload(REPOSITORY, DIGEST, type_="something else")
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], payload, source="layer 0")
    with pytest.raises(VerificationFailedError, match="signed payload type is 'something else'"):
        _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [sig], [])


def test_unexpected_errors_fail_closed_with_a_reason(pairs: dict[KeyKind, KeyPair]) -> None:
    """Whatever a library raises for one signature rejects that signature, never passes it."""
    broken = LegacySignature(payload=PAYLOAD, annotations=None, source="layer 0")  # type: ignore[arg-type]
    good = sign_legacy_with_key(pairs["ecdsa-p256"], PAYLOAD, source="layer 1")
    verifier = _verifier(pairs["ecdsa-p256"])
    assert verifier.verify(DIGEST, [broken, good], []).source == "layer 1"
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(DIGEST, [broken], [])
    assert err.value.failures[0].startswith("layer 0: could not be verified (AttributeError")


def test_missing_or_garbage_signature_annotation_is_a_reason(
    pairs: dict[KeyKind, KeyPair],
) -> None:
    verifier = _verifier(pairs["ecdsa-p256"])
    missing = LegacySignature(payload=PAYLOAD, annotations={}, source="layer 0")
    garbage = LegacySignature(
        payload=PAYLOAD,
        annotations={"dev.cosignproject.cosign/signature": "%%%"},
        source="layer 1",
    )
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(DIGEST, [missing, garbage], [])
    assert err.value.failures == (
        "layer 0: annotation dev.cosignproject.cosign/signature is missing or not a string",
        "layer 1: annotation dev.cosignproject.cosign/signature is not valid base64",
    )


def test_secret_without_any_pub_key_is_an_error_not_keyless() -> None:
    with pytest.raises(InvalidKeyError, match=r"no public key in the Secret \(keys: cosign\.key\)"):
        public_keys_from_secret({"cosign.key": b"..."})


def test_key_signed_bundle_log_entry_is_checked_when_its_log_is_known(
    pairs: dict[KeyKind, KeyPair], local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    key = pairs["ecdsa-p256"]
    public = PublicKey.from_pem(key.public_pem, "cosign.pub")
    verifier = Verifier(VerificationPolicy(keys=(public,), trust_root=local_root))
    data = sign_bundle_with_key(key, DIGEST, rekor=local_sigstore)
    result = verifier.verify(DIGEST, [], [BundleCandidate(data, "referrer")])
    assert result.rekor_log_index is not None
    # Unknown to the production root: the key signature stands alone, no index claimed.
    assert _verifier(key).verify(DIGEST, [], [BundleCandidate(data, "r")]).rekor_log_index is None

    document = json.loads(data)
    entry = document["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    with pytest.raises(VerificationFailedError, match=r"referrer: key cosign\.pub: Rekor SET"):
        verifier.verify(DIGEST, [], [BundleCandidate(json.dumps(document).encode(), "referrer")])


# -- security review: payloads two parsers could read differently --------------------------------

OTHER = "sha256:" + "4" * 64


def _ambiguous_payload(first_key: str, first: str, second_key: str, second: str) -> bytes:
    return (
        '{"critical":{"identity":{"docker-reference":"r"},"image":{'
        f'"{first_key}":"{first}","{second_key}":"{second}"'
        '},"type":"cosign container image signature"},"optional":null}'
    ).encode()


@pytest.mark.parametrize(
    ("second_key", "verified"),
    [
        # Python's json keeps the last key, which would verify OTHER.
        ("docker-manifest-digest", OTHER),
        # Go's encoding/json (cosign) matches field names case-insensitively and would read
        # OTHER where Python reads DIGEST.
        ("Docker-Manifest-Digest", DIGEST),
    ],
)
def test_signed_payload_with_a_digest_given_twice_is_refused(
    pairs: dict[KeyKind, KeyPair], second_key: str, verified: str
) -> None:
    payload = _ambiguous_payload("docker-manifest-digest", DIGEST, second_key, OTHER)
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], payload, source="layer 0")
    with pytest.raises(VerificationFailedError) as err:
        _verifier(pairs["ecdsa-p256"]).verify(verified, [sig], [])
    assert err.value.failures == (
        f"layer 0: key ecdsa-p256.pub: signed payload has the key {second_key!r} more than once",
    )


def test_signed_payload_that_is_not_utf8_is_refused(pairs: dict[KeyKind, KeyPair]) -> None:
    """cosign reads UTF-8 JSON only; Python's json.loads would also accept UTF-16 bytes."""
    payload = simple_signing_payload(REPOSITORY, DIGEST).decode().encode("utf-16")
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], payload, source="layer 0")
    with pytest.raises(VerificationFailedError) as err:
        _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [sig], [])
    assert err.value.failures == (
        "layer 0: key ecdsa-p256.pub: signed payload is not UTF-8 JSON",
    )


def test_digest_with_a_trailing_newline_is_not_a_digest(pairs: dict[KeyKind, KeyPair]) -> None:
    from chartguard.verify import VerificationError

    digest = DIGEST + "\n"
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], simple_signing_payload(REPOSITORY, digest))
    with pytest.raises(VerificationError, match="is not a sha256 manifest digest"):
        _verifier(pairs["ecdsa-p256"]).verify(digest, [sig], [])


def test_optional_annotations_equal_but_for_case_are_still_accepted(
    pairs: dict[KeyKind, KeyPair],
) -> None:
    """`optional` is a free map in cosign (`-a Team=x -a team=y`): only struct fields fold case."""
    payload = simple_signing_payload(REPOSITORY, DIGEST).replace(
        b'"optional":null', b'"optional":{"Team":"a","team":"b"}'
    )
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], payload)
    assert _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [sig], []).format == "legacy"


def test_a_key_type_cosign_never_signs_with_simply_does_not_match() -> None:
    """A certificate annotation may carry any key type: DSA/Ed448 must not raise TypeError."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ed448

    from chartguard.verify.keys import signature_matches

    for private in (dsa.generate_private_key(2048), ed448.Ed448PrivateKey.generate()):
        key = private.public_key()
        assert signature_matches(key, b"\x30\x00", PAYLOAD) is False


@pytest.mark.parametrize(
    "signed",
    [
        DIGEST.upper(),
        "SHA256:" + DIGEST.split(":")[1],
        DIGEST.split(":")[1],
        DIGEST + "0",
        DIGEST[:-1],
        " " + DIGEST,
    ],
)
def test_signed_digest_must_be_exactly_the_digest(
    pairs: dict[KeyKind, KeyPair], signed: str
) -> None:
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], simple_signing_payload(REPOSITORY, signed))
    with pytest.raises(VerificationFailedError, match="signature copied from another artifact"):
        _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [sig], [])


def test_deeply_nested_payload_is_a_failure_reason_not_a_crash(
    pairs: dict[KeyKind, KeyPair],
) -> None:
    payload = b"[" * 200_000 + b"]" * 200_000
    sig = sign_legacy_with_key(pairs["ecdsa-p256"], payload, source="layer 0")
    with pytest.raises(VerificationFailedError) as err:
        _verifier(pairs["ecdsa-p256"]).verify(DIGEST, [sig], [])
    assert err.value.failures == (
        "layer 0: key ecdsa-p256.pub: signed payload is nested deeper than 64 levels",
    )


def test_a_secret_entry_with_several_pem_keys_uses_every_one() -> None:
    pems = [ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        for _ in range(3)]
    keys = public_keys_from_secret({"rotation.pub": b"".join(pems), "cosign.pub": pems[0]})
    assert [k.name for k in keys] == ["cosign.pub", "rotation.pub#1", "rotation.pub#2",
                                      "rotation.pub#3"]
    assert len({k.fingerprint for k in keys[1:]}) == 3


def test_a_megabyte_of_unterminated_pem_lines_is_read_in_one_pass() -> None:
    """A back-referencing BEGIN..END pattern took minutes on this (quadratic); finishing is
    the check."""
    data = b"-----BEGIN PUBLIC KEY-----\n" * 150_000
    with pytest.raises(InvalidKeyError, match="not a PEM public key"):
        public_keys_from_pem(data, "cosign.pub")


def test_thousands_of_keys_in_one_secret_are_refused_naming_the_limit() -> None:
    pem = generate_key_pair().public_pem
    many = {f"k{n}.pub": pem for n in range(MAX_PUBLIC_KEYS + 1)}
    with pytest.raises(InvalidKeyError, match=r"65 entries ending in \.pub, more than 64"):
        public_keys_from_secret(many)
    with pytest.raises(InvalidKeyError, match="more than 64 PEM blocks"):
        public_keys_from_secret({"cosign.pub": pem * (MAX_PUBLIC_KEYS + 1)})
    # no .pub among thousands of entries: a few of their names, and how many more
    with pytest.raises(InvalidKeyError, match=r"k0, k1, .* and 1,990 more\); store each") as err:
        public_keys_from_secret({f"k{n}": b"x" for n in range(2000)})
    assert len(str(err.value)) < 400


def test_a_certificate_or_a_private_key_where_a_public_key_belongs_is_named() -> None:
    sigstore = LocalSigstore.create()
    _, cert = sigstore.issue_certificate("signer@example.com", "https://accounts.example.com")
    with pytest.raises(InvalidKeyError, match=r"key cosign\.pub: a certificate, not a public"):
        public_keys_from_secret({"cosign.pub": cert.public_bytes(serialization.Encoding.PEM)})
    private = generate_key_pair().private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(InvalidKeyError, match="a private key, not a public key") as err:
        public_keys_from_secret({"cosign.pub": private})
    assert private.decode().splitlines()[1] not in str(err.value)

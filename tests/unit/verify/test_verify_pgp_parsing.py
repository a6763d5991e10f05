"""What :mod:`chartguard.verify.pgp` reads itself, without processes: ASCII armor (RFC 4880
§6), OpenPGP packet headers (old and new formats), key fingerprints, gpgv's status lines and
Helm's signed message. Real keys and gpgv: tests/integration/verify/test_pgp_provenance.py."""

from __future__ import annotations

import base64
import hashlib

import pytest

from chartguard.verify import InvalidKeyError, VerificationFailedError
from chartguard.verify.pgp import (
    _crc24,
    _gpgv_failure,
    _signed_parts,
    keyring_from_secret,
)

BODY = b"\x04\x00\x00\x00\x01\x01\x00\x08\x61\x00\x08\x03"
V4_FINGERPRINT = hashlib.sha1(b"\x99" + len(BODY).to_bytes(2, "big") + BODY,
                              usedforsecurity=False).hexdigest().upper()


def old_packet(tag: int, body: bytes) -> bytes:
    return bytes([0x80 | (tag << 2), len(body)]) + body


def new_packet(tag: int, body: bytes) -> bytes:
    assert 192 <= len(body) < 8384 or len(body) < 192
    if len(body) < 192:
        return bytes([0xC0 | tag, len(body)]) + body
    n = len(body) - 192
    return bytes([0xC0 | tag, (n >> 8) + 192, n & 0xFF]) + body


def armor(data: bytes, *, crc: bool = True, headers: bytes = b"") -> bytes:
    lines = [b"-----BEGIN PGP PUBLIC KEY BLOCK-----", headers.rstrip(b"\n"), b""] if headers \
        else [b"-----BEGIN PGP PUBLIC KEY BLOCK-----", b""]
    encoded = base64.b64encode(data)
    lines += [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    if crc:
        lines.append(b"=" + base64.b64encode(_crc24(data)))
    lines.append(b"-----END PGP PUBLIC KEY BLOCK-----")
    return b"\n".join(lines) + b"\n"


def test_crc24_is_rfc4880s() -> None:
    # RFC 4880 §6.1's CRC-24 of the empty input is its initial value
    assert _crc24(b"") == bytes.fromhex("b704ce")
    assert _crc24(b"123456789") == bytes.fromhex("21cf02")  # the standard check value


def test_old_and_new_packet_formats_give_the_same_fingerprint() -> None:
    for packet in (old_packet(6, BODY), new_packet(6, BODY)):
        keyring = keyring_from_secret({"k.gpg": packet + old_packet(13, b"uid")})
        assert keyring.keys == (V4_FINGERPRINT,)
        assert keyring.data == packet + old_packet(13, b"uid")
    # a subkey (tag 14) is not a primary key of its own
    assert keyring_from_secret({"k.gpg": old_packet(6, BODY) + old_packet(14, BODY)}).keys == (
        V4_FINGERPRINT,)


def test_v6_keys_are_fingerprinted_with_sha256() -> None:
    body = b"\x06" + BODY[1:]
    expected = hashlib.sha256(b"\x9b" + len(body).to_bytes(4, "big") + body).hexdigest()
    assert keyring_from_secret({"k.gpg": old_packet(6, body)}).keys == (expected.upper(),)


def test_armor_with_headers_crc_and_several_blocks() -> None:
    one, two = old_packet(6, BODY), old_packet(6, b"\x04" + BODY[1:-1] + b"\x04")
    text = armor(one, headers=b"Comment: exported\nVersion: GnuPG") + b"\n" + armor(two,
                                                                                  crc=False)
    keyring = keyring_from_secret({"keys.asc": text})
    assert len(keyring.keys) == 2
    assert keyring.data == one + two
    # the same packets, binary: the same policy
    assert keyring_from_secret({"keys.gpg": one + two}).fingerprint == keyring.fingerprint


@pytest.mark.parametrize(("data", "words"), [
    (b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n", "holds an OpenPGP private key"),
    (b"hello", "no '-----BEGIN PGP PUBLIC KEY BLOCK-----'"),
    (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n", "has no END line"),
    (armor(old_packet(6, BODY)).replace(
        b"=" + base64.b64encode(_crc24(old_packet(6, BODY))), b"=AAAA"), "fails its checksum"),
    (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
     "not valid base64"),
    (armor(old_packet(5, BODY)), "holds an OpenPGP private key"),
    (armor(old_packet(13, b"uid only")), "holds no OpenPGP public key"),
    (armor(old_packet(6, b"\x03" + BODY[1:])), "version 3, which is not supported"),
    (armor(old_packet(6, BODY)[:-3]), "cut short"),
], ids=["private", "not-armored", "no-end", "crc", "base64", "secret-packet", "no-key",
        "v3", "cut-short"])
def test_armored_keys_that_cannot_be_used_are_refused_naming_the_key(data: bytes,
                                                                      words: str) -> None:
    with pytest.raises(InvalidKeyError) as caught:
        keyring_from_secret({"signer.asc": data}, "secret 'ns/keys'")
    assert str(caught.value).startswith("secret 'ns/keys' key signer.asc: ")
    assert words in str(caught.value)


def test_binary_garbage_and_indeterminate_lengths_are_refused() -> None:
    with pytest.raises(InvalidKeyError, match="not an OpenPGP keyring"):
        keyring_from_secret({"k.gpg": b"\x00\x01"})
    with pytest.raises(InvalidKeyError, match="indeterminate length"):
        keyring_from_secret({"k.gpg": bytes([0x80 | (6 << 2) | 3]) + BODY})
    with pytest.raises(InvalidKeyError, match="cut short"):
        keyring_from_secret({"k.gpg": bytes([0xC6, 0xFF])})


def test_other_secret_keys_are_ignored_and_the_key_name_is_escaped() -> None:
    keyring = keyring_from_secret({"README": b"not a key", "k.gpg": old_packet(6, BODY)})
    assert keyring.sources == ("secret key k.gpg",)
    with pytest.raises(InvalidKeyError) as caught:
        keyring_from_secret({"evil\x1b[31m.gpg": b"x"})
    assert "\x1b" not in str(caught.value)


@pytest.mark.parametrize(("status", "words"), [
    ({"NO_PUBKEY": ["1BE5D84C33BC3E8A"], "ERRSIG": ["x"]},
     "signed by key 1BE5D84C33BC3E8A, which is not in the keyring"),
    ({"BADSIG": ["1BE5D84C33BC3E8A Someone"]}, "BAD signature"),
    ({"EXPKEYSIG": ["1BE5 Someone"]}, "signed by an expired key"),
    ({"REVKEYSIG": ["1BE5 Someone"]}, "signed by a revoked key"),
    ({"NODATA": ["1"]}, "holds no OpenPGP signature"),
    ({"ERRSIG": ["x"]}, "cannot be checked"),
    ({"ERRSIG": ["1BE5 1 2 01 1700000000 5 -"]}, "algorithm that is not accepted (e.g. a SHA-1"),
    ({"ERRSIG": ["1BE5 1 10 01 1700000000 125 -"]}, "a key that may not sign"),
    ({"NEWSIG": [""]}, "gpgv refused the provenance (exit status 1)"),
], ids=["no-pubkey", "bad", "expired", "revoked", "nodata", "errsig", "errsig-sha1",
        "errsig-not-signing", "other"])
def test_gpgv_status_lines_become_one_reason(status: dict[str, list[str]], words: str) -> None:
    assert words in _gpgv_failure(status, 1)


def test_the_key_id_gpgv_reports_is_escaped() -> None:
    assert "\x1b" not in _gpgv_failure({"NO_PUBKEY": ["\x1b[31mEVIL"]}, 2)


def test_helms_signed_message_is_split_at_its_document_end_marker() -> None:
    metadata, files = _signed_parts(
        b"apiVersion: v2\nname: demo\nversion: 1.0.0\n\n...\nfiles:\n  demo-1.0.0.tgz: "
        b"sha256:" + b"a" * 64 + b"\n", "sha256:x")
    assert metadata["name"] == "demo"
    assert files == {"files": {"demo-1.0.0.tgz": "sha256:" + "a" * 64}}
    for text, words in ((b"name: demo\n", "is not Helm's"),
                        (b"a\n...\nb\n...\nc\n", "is not Helm's"),
                        (b"- a list\n...\nfiles: {}\n", "chart metadata is not a YAML map"),
                        (b"name: x\n...\nfiles: &a {x: *a}\n", "uses YAML aliases"),
                        (b"name: x\n...\n[unclosed\n", "files section is not a YAML map")):
        with pytest.raises(VerificationFailedError) as caught:
            _signed_parts(text, "sha256:x")
        assert words in caught.value.failures[0]

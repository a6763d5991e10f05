"""Helm provenance verified by :mod:`chartguard.verify.pgp`: charts signed by the real
``helm package --sign`` with keys made by the real ``gpg`` (a GNUPGHOME per test), checked by
the real ``gpgv``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chartguard.verify import InvalidKeyError, VerificationFailedError
from chartguard.verify.pgp import (
    PGPKeyring,
    keyring_from_files,
    keyring_from_secret,
    verify_provenance,
)
from chartguard_testing.charts import HelmEnv
from chartguard_testing.pgp_signer import (
    PGPKey,
    add_uid,
    clearsign,
    gpg,
    package_signed,
    stop_agent,
)


@pytest.fixture
def key(pgp_keys: Callable[..., PGPKey]) -> PGPKey:
    return pgp_keys()


@pytest.fixture
def signed(helm_env: HelmEnv, key: PGPKey, tmp_path: Path) -> tuple[bytes, bytes]:
    """(archive, .prov) of podinfo 1.2.3 signed with ``key``."""
    archive = package_signed(helm_env, helm_env.create("podinfo", "1.2.3"), key,
                             tmp_path / "out")
    assert archive.name == "podinfo-1.2.3.tgz"
    return archive.read_bytes(), Path(str(archive) + ".prov").read_bytes()


def _refused(keyring: PGPKeyring, prov: bytes, chart: bytes,
             name: str = "podinfo-1.2.3.tgz") -> str:
    with pytest.raises(VerificationFailedError) as caught:
        verify_provenance(keyring, prov, chart, name)
    (line,) = caught.value.failures
    return line


def test_binary_and_armored_keyrings_verify_helms_provenance(
        key: PGPKey, signed: tuple[bytes, bytes]) -> None:
    chart, prov = signed
    binary = keyring_from_secret({"signer.gpg": key.public}, "secret 'ns/keys'")
    armored = keyring_from_secret({"signer.asc": key.armored}, "secret 'ns/keys'")
    # the fingerprints read from the packets are gpg's own
    assert binary.keys == armored.keys == (key.fingerprint,)
    # the same keys, binary or armored: the same policy
    assert binary.fingerprint == armored.fingerprint
    for keyring in (binary, armored):
        started = time.perf_counter()
        result = verify_provenance(keyring, prov, chart, "podinfo-1.2.3.tgz")
        elapsed = time.perf_counter() - started
        assert result.key == key.fingerprint
        assert result.signer == key.uid
        assert (result.name, result.version, result.file) == ("podinfo", "1.2.3",
                                                              "podinfo-1.2.3.tgz")
        assert elapsed < 5  # measured: ~15 ms (one gpgv process)


def test_a_flipped_byte_in_the_archive_or_the_provenance_is_refused(
        key: PGPKey, signed: tuple[bytes, bytes]) -> None:
    chart, prov = signed
    keyring = keyring_from_secret({"signer.gpg": key.public})
    flipped = bytearray(chart)
    flipped[len(flipped) // 2] ^= 0x01
    line = _refused(keyring, prov, bytes(flipped))
    assert "but the signed provenance says sha256:" in line
    assert "the archive was altered" in line
    # a byte of the signed text (the version in the chart metadata)
    text = bytearray(prov)
    at = text.index(b"version: 1.2.3")
    text[at + len("version: 1.2.")] = ord("4")
    assert "BAD signature" in _refused(keyring, bytes(text), chart)
    # a byte of the signature itself
    sig = bytearray(prov)
    at = sig.index(b"-----END PGP SIGNATURE-----") - 20
    sig[at] = ord("A") if sig[at] != ord("A") else ord("B")
    assert _refused(keyring, bytes(sig), chart)


def test_another_key_is_refused_naming_the_signing_key(
        tmp_path: Path, key: PGPKey, signed: tuple[bytes, bytes],
        pgp_keys: Callable[..., PGPKey]) -> None:
    chart, prov = signed
    other = pgp_keys(name="Someone Else")
    line = _refused(keyring_from_secret({"other.asc": other.armored}), prov, chart)
    assert "which is not in the keyring" in line
    assert key.fingerprint[-16:] in line
    # both keys in the Secret: the one that signed verifies
    both = keyring_from_secret({"a-other.asc": other.armored, "b-signer.gpg": key.public})
    assert both.keys == (other.fingerprint, key.fingerprint)
    assert verify_provenance(both, prov, chart, "podinfo-1.2.3.tgz").key == key.fingerprint


def test_a_provenance_signed_by_the_key_for_another_file_or_sha_is_refused(
        key: PGPKey, signed: tuple[bytes, bytes]) -> None:
    chart, prov = signed
    keyring = keyring_from_secret({"signer.gpg": key.public})
    body = prov.split(b"\n\n", 1)[1].split(b"\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    other_name = clearsign(key, body.replace(b"podinfo-1.2.3.tgz:", b"podinfo-9.9.9.tgz:"))
    line = _refused(keyring, other_name, chart)
    assert "names the file(s) podinfo-9.9.9.tgz, not podinfo-1.2.3.tgz" in line
    other_sha = clearsign(key, _with_sha(body, "0" * 64))
    assert "but the signed provenance says sha256:" + "0" * 64 in _refused(
        keyring, other_sha, chart)
    # the archive under another name than the one that was signed
    assert "not podinfo-1.2.4.tgz" in _refused(keyring, prov, chart, "podinfo-1.2.4.tgz")
    # a re-signed message that is not Helm's
    assert "is not Helm's" in _refused(keyring, clearsign(key, b"hello\n"), chart)


def _with_sha(body: bytes, hexdigest: str) -> bytes:
    head, _, tail = body.rpartition(b"sha256:")
    return head + b"sha256:" + hexdigest.encode() + tail[64:]


def test_only_the_signed_text_counts(key: PGPKey, signed: tuple[bytes, bytes]) -> None:
    chart, prov = signed
    keyring = keyring_from_secret({"signer.gpg": key.public})
    # unsigned text before the signed block is not read (gpgv writes only what was signed)
    prefixed = b"files:\n  podinfo-6.6.6.tgz: sha256:" + b"1" * 64 + b"\n\n" + prov
    assert verify_provenance(keyring, prefixed, chart, "podinfo-1.2.3.tgz").file == \
        "podinfo-1.2.3.tgz"
    # two signed messages: which one would count? refused
    assert "not one OpenPGP clearsigned message" in _refused(keyring, prov + b"\n" + prov,
                                                             chart)
    assert "not one OpenPGP clearsigned message" in _refused(keyring, b"just text\n", chart)


def test_keyrings_that_cannot_be_used_are_refused_by_name(key: PGPKey, tmp_path: Path) -> None:
    with pytest.raises(InvalidKeyError, match=r"has no \*\.gpg .* or \*\.asc"):
        keyring_from_secret({"cosign.pub": b"-----BEGIN PUBLIC KEY-----\n"}, "secret 'ns/k'")
    with pytest.raises(InvalidKeyError, match=r"key secring\.gpg: holds an OpenPGP private key"):
        keyring_from_secret({"secring.gpg": key.secring.read_bytes()})
    with pytest.raises(InvalidKeyError, match=r"key bad\.gpg: not an OpenPGP keyring"):
        keyring_from_secret({"bad.gpg": b"hello"})
    with pytest.raises(InvalidKeyError, match=r"key bad\.asc: no .-----BEGIN PGP PUBLIC KEY"):
        keyring_from_secret({"bad.asc": key.public})
    broken = key.armored.replace(key.armored.splitlines()[3], b"!!!!")
    with pytest.raises(InvalidKeyError, match=r"key bad\.asc: an armored key block"):
        keyring_from_secret({"bad.asc": broken})
    # files: armored ones are recognised by their content, whatever their name
    (tmp_path / "k.pub").write_bytes(key.armored)
    (tmp_path / "k.bin").write_bytes(key.public)
    assert keyring_from_files([tmp_path / "k.pub"]).keys == (key.fingerprint,)
    assert keyring_from_files([tmp_path / "k.bin"]).keys == (key.fingerprint,)
    with pytest.raises(InvalidKeyError, match="cannot be read"):
        keyring_from_files([tmp_path / "missing.gpg"])


def test_the_policy_fingerprint_follows_the_keys(tmp_path: Path, key: PGPKey,
                                                 pgp_keys: Callable[..., PGPKey]) -> None:
    other = pgp_keys(name="Second Signer")
    one = keyring_from_secret({"a.gpg": key.public})
    two = keyring_from_secret({"a.gpg": key.public, "b.gpg": other.public})
    assert one.fingerprint != two.fingerprint
    assert one.fingerprint == keyring_from_secret({"x.asc": key.armored}).fingerprint
    # the same key with another user id: the same fingerprint, another keyring
    after = keyring_from_secret({"a.gpg": add_uid(key, "Renamed <renamed@example.com>")})
    assert after.keys == one.keys
    assert after.fingerprint != one.fingerprint


def test_a_sha1_signature_is_refused(key: PGPKey, signed: tuple[bytes, bytes]) -> None:
    """Helm signs with SHA-512; a .prov re-signed with a SHA-1 digest (collisions are
    practical) is refused by gpgv's --weak-digest, with a message saying so."""
    chart, prov = signed
    keyring = keyring_from_secret({"signer.gpg": key.public})
    body = prov.split(b"\n\n", 1)[1].split(b"\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    try:
        sha1 = gpg(key.home, "--pinentry-mode", "loopback", "--passphrase", "", "--local-user",
                   key.fingerprint, "--digest-algo", "SHA1", "--clearsign", stdin=body + b"\n")
    finally:
        stop_agent(key.home)
    assert b"Hash: SHA1" in sha1
    assert "an algorithm that is not accepted (e.g. a SHA-1 digest)" in _refused(
        keyring, sha1, chart)
    # the same text signed with SHA-512 verifies: the digest algorithm is what was refused
    assert verify_provenance(keyring, clearsign(key, body + b"\n"), chart,
                             "podinfo-1.2.3.tgz").key == key.fingerprint


def test_a_gpgv_that_cannot_run_is_a_failure_not_a_crash(
        key: PGPKey, signed: tuple[bytes, bytes], tmp_path: Path) -> None:
    chart, prov = signed
    keyring = keyring_from_secret({"signer.gpg": key.public})
    not_a_program = tmp_path / "gpgv"
    not_a_program.write_text("not an executable")  # no x bit: PermissionError
    with pytest.raises(VerificationFailedError) as caught:
        verify_provenance(keyring, prov, chart, "podinfo-1.2.3.tgz", gpgv=str(not_a_program))
    (line,) = caught.value.failures
    assert "gpgv could not be run: Permission denied" in line


def test_a_secret_key_beside_a_public_key_is_refused(key: PGPKey) -> None:
    secret = gpg(key.home, "--pinentry-mode", "loopback", "--passphrase", "", "--armor",
                 "--export-secret-keys", key.fingerprint)
    stop_agent(key.home)
    with pytest.raises(InvalidKeyError, match="holds an OpenPGP private key"):
        keyring_from_secret({"signer.asc": key.armored + b"\n" + secret})

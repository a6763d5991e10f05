"""Helm provenance (``.prov``): OpenPGP clearsigned chart metadata and the sha256 of the archive.

``helm package --sign`` writes ``<chart>-<version>.tgz.prov``: a clearsigned message holding
the chart's ``Chart.yaml``, a line ``...``, and a ``files:`` map from the archive's file name
to ``sha256:<hex>``. ``helm push`` stores it as a layer of the chart's OCI manifest; an HTTP
repository serves it at ``<chart url>.prov``. A chart verifies when

1. the signature verifies with a key of the keyring: GnuPG's ``gpgv`` checks it (a maintained
   OpenPGP implementation, made for exactly this: verify against a given keyring, no trust
   database, no key import; its ``--status-fd`` lines are machine-readable), and
2. the text that signature covers (what ``gpgv --output`` writes, never the file around it)
   names the archive's file name with the sha256 of the archive's bytes.

Keyrings come from a Secret (every ``*.gpg`` key: binary, as ``gpg --export`` writes; every
``*.asc`` key: ASCII-armored, as ``gpg --armor --export``) or from files. Armor is removed here
(``gpgv`` 2.2 reads binary keyrings only) and every key's fingerprint is read from its packets,
so the policy fingerprint (:attr:`PGPKeyring.fingerprint`) changes with the keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from chartguard.untrusted import escape
from chartguard.verify.errors import InvalidKeyError, VerificationFailedError

__all__ = [
    "MAX_KEYRING_BYTES",
    "MAX_PROVENANCE_BYTES",
    "PGPKeyring",
    "ProvenanceResult",
    "keyring_from_files",
    "keyring_from_secret",
    "verify_provenance",
]

#: a .prov is a few hundred bytes; anything past this is refused unread
MAX_PROVENANCE_BYTES = 1 << 20
#: the keys of one Secret or of the CLI's files, together
MAX_KEYRING_BYTES = 4 << 20
#: seconds gpgv may take
GPGV_TIMEOUT = 30.0
_ARMOR_BEGIN = re.compile(rb"^-----BEGIN PGP PUBLIC KEY BLOCK-----[ \t\r]*$", re.MULTILINE)
_ARMOR_END = b"-----END PGP PUBLIC KEY BLOCK-----"
_SIGNED_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
_PUBLIC_KEY, _PUBLIC_SUBKEY, _SECRET_KEY, _SECRET_SUBKEY = 6, 14, 5, 7
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class PGPKeyring:
    """OpenPGP public keys, as one binary keyring (``data``) and their fingerprints."""

    data: bytes
    #: the primary keys' fingerprints (upper-case hex), in the order they were read
    keys: tuple[str, ...]
    #: where they came from (Secret keys or file names), for messages
    sources: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """``pgp:sha256:<hex>`` naming these keys: their fingerprints and the keyring's bytes
        (a revocation or a new user id changes the bytes, not the fingerprints)."""
        hasher = hashlib.sha256(b"chartguard-pgp-keyring-v1\0")
        for key in sorted(set(self.keys)):
            hasher.update(key.encode() + b"\0")
        hasher.update(hashlib.sha256(self.data).digest())
        return "pgp:sha256:" + hasher.hexdigest()


@dataclass(frozen=True)
class ProvenanceResult:
    """A verified provenance: what was signed and by which key."""

    #: the archive's file name as the signed ``files:`` names it
    file: str
    #: ``sha256:<hex>`` of the archive (equal to what was signed)
    digest: str
    #: fingerprint of the primary key that made the signature (upper-case hex)
    key: str
    #: the signer's user id as gpgv reports it (outside text: escaped)
    signer: str
    #: the chart's name and version in the signed metadata
    name: str
    version: str


# -- keyrings ----------------------------------------------------------------------------


def _dearmor(text: bytes, source: str) -> bytes:
    """The binary packets of every ``PUBLIC KEY BLOCK`` in ``text`` (RFC 4880 §6, CRC24
    checked when present)."""
    out = bytearray()
    blocks = list(_ARMOR_BEGIN.finditer(text))
    if b"PRIVATE KEY BLOCK" in text:
        # beside public blocks too: the secret key must leave the Secret, not be passed over
        raise InvalidKeyError(f"{source}: holds an OpenPGP private key; give only public "
                              "keys (gpg --armor --export KEYID)")
    if not blocks:
        raise InvalidKeyError(f"{source}: no '-----BEGIN PGP PUBLIC KEY BLOCK-----' in it: "
                              "export the key with gpg --armor --export KEYID")
    for block in blocks:
        end = text.find(_ARMOR_END, block.end())
        if end < 0:
            raise InvalidKeyError(f"{source}: an armored key block has no END line")
        lines = text[block.end():end].replace(b"\r", b"").split(b"\n")
        body: list[bytes] = []
        crc: bytes | None = None
        in_headers = True
        for line in lines[1:]:  # lines[0] is the rest of the BEGIN line
            line = line.strip()
            if in_headers:
                if not line:
                    in_headers = False
                elif b":" not in line:  # no header lines and no blank line: data already
                    in_headers = False
                    body.append(line)
                continue
            if line.startswith(b"=") and len(line) == 5:
                crc = line[1:]
            elif line:
                body.append(line)
        try:
            packets = base64.b64decode(b"".join(body), validate=True)
            if crc is not None and base64.b64decode(crc, validate=True) != _crc24(packets):
                raise InvalidKeyError(f"{source}: an armored key block fails its checksum")
        except (binascii.Error, ValueError):
            raise InvalidKeyError(f"{source}: an armored key block is not valid base64") \
                from None
        out += packets
    return bytes(out)


def _crc24_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
        table.append(crc & 0xFFFFFF)
    return tuple(table)


_CRC24 = _crc24_table()


def _crc24(data: bytes) -> bytes:
    """RFC 4880 §6.1's CRC-24 (table-driven: a keyring Secret is read at every reconcile)."""
    crc = 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24[(crc >> 16) ^ byte]
    return crc.to_bytes(3, "big")


def _packets(data: bytes, source: str) -> Iterable[tuple[int, bytes]]:
    """(tag, body) of every OpenPGP packet (RFC 4880 §4.2: old and new formats)."""
    pos = 0
    while pos < len(data):
        ctb = data[pos]
        if not ctb & 0x80:
            raise InvalidKeyError(f"{source}: not an OpenPGP keyring (byte {pos} is not a "
                                  "packet header): export the key with gpg --export KEYID "
                                  "(binary, *.gpg) or gpg --armor --export KEYID (*.asc)")
        pos += 1
        if ctb & 0x40:  # new format
            tag = ctb & 0x3F
            body = bytearray()
            while True:
                if pos >= len(data):
                    raise InvalidKeyError(f"{source}: an OpenPGP packet is cut short")
                first = data[pos]
                if first < 192:
                    length, pos = first, pos + 1
                elif first < 224:
                    if pos + 1 >= len(data):
                        raise InvalidKeyError(f"{source}: an OpenPGP packet is cut short")
                    length, pos = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
                elif first == 255:
                    length, pos = int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5
                else:  # partial body length: only for data packets, never in a keyring
                    partial = 1 << (first & 0x1F)
                    body += data[pos + 1:pos + 1 + partial]
                    pos += 1 + partial
                    continue
                body += data[pos:pos + length]
                pos += length
                break
        else:  # old format
            tag = (ctb >> 2) & 0x0F
            kind = ctb & 0x03
            if kind == 3:
                raise InvalidKeyError(f"{source}: an OpenPGP packet of indeterminate length")
            size = 1 << kind
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
            body = bytearray(data[pos:pos + length])
            pos += length
        if pos > len(data):
            raise InvalidKeyError(f"{source}: an OpenPGP packet is cut short")
        yield tag, bytes(body)


def _key_fingerprint(body: bytes, source: str) -> str:
    """RFC 4880 §12.2 (v4: SHA-1), RFC 9580 §5.5.4 (v6: SHA-256) and v5 (SHA-256)."""
    version = body[0] if body else 0
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body,
                            usedforsecurity=False).hexdigest().upper()
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    raise InvalidKeyError(f"{source}: an OpenPGP key of version {version}, which is not "
                          "supported (v4, v5 and v6 keys are)")


def _keys(data: bytes, source: str) -> tuple[str, ...]:
    keys = []
    for tag, body in _packets(data, source):
        if tag in (_SECRET_KEY, _SECRET_SUBKEY):
            raise InvalidKeyError(f"{source}: holds an OpenPGP private key; give only public "
                                  "keys (gpg --export KEYID)")
        if tag == _PUBLIC_KEY:
            keys.append(_key_fingerprint(body, source))
    if not keys:
        raise InvalidKeyError(f"{source}: holds no OpenPGP public key")
    return tuple(keys)


def _keyring(parts: Iterable[tuple[str, bytes, bool]]) -> PGPKeyring:
    data = bytearray()
    keys: list[str] = []
    sources: list[str] = []
    for source, raw, armored in parts:
        packets = _dearmor(raw, source) if armored else raw
        keys.extend(_keys(packets, source))
        data += packets
        sources.append(source)
        if len(data) > MAX_KEYRING_BYTES:
            raise InvalidKeyError(f"{source}: the keys are larger than "
                                  f"{MAX_KEYRING_BYTES // (1 << 20)} MiB together")
    return PGPKeyring(data=bytes(data), keys=tuple(keys), sources=tuple(sources))


def keyring_from_secret(data: Mapping[str, bytes], name: str = "secret") -> PGPKeyring:
    """Every ``*.gpg`` (binary) and ``*.asc`` (armored) key of a Secret's data, in key order;
    ``InvalidKeyError`` naming the key that cannot be used, or saying there is none."""
    parts = [(f"{name} key {escape(key)}", value, key.endswith(".asc"))
             for key, value in sorted(data.items()) if key.endswith((".gpg", ".asc"))]
    if not parts:
        raise InvalidKeyError(f"{name} has no *.gpg (gpg --export KEYID) or *.asc "
                              "(gpg --armor --export KEYID) key holding OpenPGP public keys")
    return _keyring(parts)


def keyring_from_files(paths: Iterable[Path]) -> PGPKeyring:
    """The keys of keyring files (armored ones are recognised by their content)."""
    parts = []
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise InvalidKeyError(f"keyring {path}: cannot be read ({err.strerror})") from None
        parts.append((f"keyring {path.name}", raw, raw.lstrip().startswith(b"-----BEGIN")))
    if not parts:
        raise InvalidKeyError("no keyring file given")
    return _keyring(parts)


# -- provenance --------------------------------------------------------------------------


def _failed(digest: str, why: str) -> VerificationFailedError:
    return VerificationFailedError(digest, (why,))


def gpgv_path() -> str:
    """The ``gpgv`` binary (``CHARTGUARD_GPGV`` overrides the one on PATH)."""
    return os.environ.get("CHARTGUARD_GPGV") or shutil.which("gpgv") or "gpgv"


def _run_gpgv(keyring: PGPKeyring, provenance: bytes, digest: str,
              gpgv: str | None, timeout: float) -> tuple[bytes, dict[str, list[str]]]:
    """The signed text and gpgv's status lines by keyword."""
    try:
        return _gpgv_in(keyring, provenance, digest, gpgv, timeout)
    except VerificationFailedError:
        raise
    except OSError as err:  # not executable, another architecture, no space for the files
        raise _failed(digest, f"gpgv could not be run: {escape(err.strerror or str(err))}: "
                      "check the gpgv binary (CHARTGUARD_GPGV or PATH) and the temporary "
                      "directory") from None


def _gpgv_in(keyring: PGPKeyring, provenance: bytes, digest: str,
             gpgv: str | None, timeout: float) -> tuple[bytes, dict[str, list[str]]]:
    with tempfile.TemporaryDirectory(prefix="chartguard-gpgv-") as tmp:
        home = Path(tmp, "home")
        home.mkdir(mode=0o700)
        ring = Path(tmp, "keyring.gpg")
        ring.write_bytes(keyring.data)
        prov = Path(tmp, "chart.prov")
        prov.write_bytes(provenance)
        out = Path(tmp, "signed.txt")
        # SHA-1 signatures are refused (helm signs with SHA-512; SHA-1 collisions are real)
        argv = [gpgv or gpgv_path(), "--homedir", str(home), "--keyring", str(ring),
                "--weak-digest", "SHA1",
                "--status-fd", "1", "--output", str(out), str(prov)]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False,
                                  stdin=subprocess.DEVNULL, env={"LC_ALL": "C", "PATH":
                                                                 os.environ.get("PATH", "")})
        except FileNotFoundError:
            raise _failed(digest, f"gpgv ({escape(argv[0])}) is not installed: install "
                          "GnuPG's gpgv to verify Helm provenance") from None
        except subprocess.TimeoutExpired:
            raise _failed(digest, f"gpgv did not finish within {timeout:g}s") from None
        status: dict[str, list[str]] = {}
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("[GNUPG:] "):
                word, _, rest = line[9:].partition(" ")
                status.setdefault(word, []).append(rest)
        signed = out.read_bytes() if done.returncode == 0 and out.exists() else b""
        if done.returncode != 0 or "GOODSIG" not in status or "VALIDSIG" not in status:
            raise _failed(digest, _gpgv_failure(status, done.returncode))
        return signed, status


def _gpgv_failure(status: Mapping[str, list[str]], code: int) -> str:
    if "NO_PUBKEY" in status:
        key = status["NO_PUBKEY"][0].split(" ")[0]
        return (f"the provenance is signed by key {escape(key, 40)}, which is not in the "
                "keyring: add the signer's public key to the keyring Secret")
    if "BADSIG" in status:
        return ("the provenance's signature does not verify (BAD signature): the .prov was "
                "altered or signed by another key")
    if "EXPKEYSIG" in status or "REVKEYSIG" in status or "EXPSIG" in status:
        if "REVKEYSIG" in status:
            return ("the provenance is signed by a revoked key: sign the chart again with a "
                    "valid key")
        return ("the provenance is signed by an expired key, or its signature expired: sign "
                "the chart again with a valid key")
    if "NODATA" in status or "NOTHING" in status or not status:
        return ("the provenance holds no OpenPGP signature gpgv can read: it is not a .prov "
                "written by `helm package --sign`")
    if "ERRSIG" in status:
        fields = status["ERRSIG"][0].split(" ")
        rc = fields[5] if len(fields) > 5 else ""
        if rc in ("4", "5"):  # GPG_ERR_PUBKEY_ALGO, GPG_ERR_DIGEST_ALGO (SHA-1 is refused)
            return ("the provenance's signature uses an algorithm that is not accepted (e.g. "
                    "a SHA-1 digest): sign the chart again (helm signs with SHA-512)")
        if rc == "125":  # GPG_ERR_WRONG_KEY_USAGE
            return ("the provenance is signed by a key that may not sign (no signing "
                    "capability): sign with a signing key or subkey")
        return (f"the provenance's signature cannot be checked (gpgv: ERRSIG, code "
                f"{escape(rc, 8) or 'none'})")
    return f"gpgv refused the provenance (exit status {code})"


def _signed_parts(signed: bytes, digest: str) -> tuple[dict[str, object], dict[str, object]]:
    """Helm's message: Chart.yaml, ``...``, the ``files:`` YAML (each refused if not a map)."""
    text = signed.replace(b"\r\n", b"\n")
    parts = text.split(b"\n...\n")
    if len(parts) != 2:
        raise _failed(digest, "the signed provenance is not Helm's (chart metadata, '...', "
                      "files): sign the chart with `helm package --sign`")
    docs: list[dict[str, object]] = []
    for part, what in ((parts[0], "chart metadata"), (parts[1], "files section")):
        try:
            if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(part)):
                raise _failed(digest, f"the signed provenance's {what} uses YAML aliases")
            doc = yaml.safe_load(part)
        except yaml.YAMLError:
            doc = None
        if not isinstance(doc, dict):
            raise _failed(digest, f"the signed provenance's {what} is not a YAML map")
        docs.append(doc)
    return docs[0], docs[1]


def verify_provenance(keyring: PGPKeyring, provenance: bytes, chart: bytes, file_name: str,
                      *, gpgv: str | None = None,
                      timeout: float = GPGV_TIMEOUT) -> ProvenanceResult:
    """Check ``provenance`` (a ``.prov``) for the archive ``chart`` named ``file_name``.

    Raises ``VerificationFailedError`` (one line saying why) unless the signature verifies with
    a key of ``keyring`` and the signed ``files:`` give ``file_name`` the sha256 of ``chart``.
    """
    digest = "sha256:" + hashlib.sha256(chart).hexdigest()
    if len(provenance) > MAX_PROVENANCE_BYTES:
        raise _failed(digest, f"the provenance is larger than {MAX_PROVENANCE_BYTES:,} bytes")
    if provenance.count(_SIGNED_BEGIN) != 1:
        raise _failed(digest, "the provenance is not one OpenPGP clearsigned message: it is "
                      "not a .prov written by `helm package --sign`")
    signed, status = _run_gpgv(keyring, provenance, digest, gpgv, timeout)
    if len(status.get("NEWSIG", ())) != 1 or len(status["GOODSIG"]) != 1:
        raise _failed(digest, "the provenance holds more than one signature")
    metadata, sums = _signed_parts(signed, digest)
    files = sums.get("files")
    if not isinstance(files, dict):
        raise _failed(digest, "the signed provenance has no files section")
    named = files.get(file_name)
    if named is None:
        others = ", ".join(sorted(escape(str(k), 100) for k in files)[:5]) or "none"
        raise _failed(digest, f"the signed provenance names the file(s) {others}, not "
                      f"{escape(file_name, 200)}: it was made for another chart archive")
    if not isinstance(named, str) or not _SHA256.fullmatch(named):
        raise _failed(digest, f"the signed provenance gives {escape(file_name, 200)} no "
                      "sha256 digest")
    if named != digest:
        raise _failed(digest, f"the archive {escape(file_name, 200)} has sha256 {digest}, but "
                      f"the signed provenance says {named}: the archive was altered or the "
                      ".prov belongs to another build")
    valid = status["VALIDSIG"][0].split(" ")
    key = valid[-1] if len(valid) >= 10 else valid[0]
    signer = status["GOODSIG"][0].partition(" ")[2]
    name, version = metadata.get("name"), metadata.get("version")
    return ProvenanceResult(file=file_name, digest=digest, key=escape(key, 80),
                            signer=escape(signer, 200), name=escape(str(name or ""), 200),
                            version=escape(str(version or ""), 100))

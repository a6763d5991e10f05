"""A local Sigstore instance, so keyless paths are tested through the production code.

Test equipment, not used by the operator. It holds in memory what the public Sigstore
services hold: a Fulcio-like CA (root + intermediate) issuing short-lived code-signing
certificates with an embedded SCT from a CT log key, and a Rekor-like append-only Merkle log
signing entries (SETs), inclusion proofs and checkpoints. `trusted_root_json()` describes it
in the format sigstore and cosign read, so `TrustRoot.from_json` and sigstore's own loader
accept it. A second, foreign CA issues certificates that must NOT verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_ORIGIN = "rekor.chartguard.test"


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 0x80:
        return bytes([0x0C, len(raw)]) + raw
    size = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + raw


def _der_octet_string(raw: bytes) -> bytes:
    if len(raw) < 0x80:
        return bytes([0x04, len(raw)]) + raw
    size = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(size)]) + size + raw


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _tree_hash(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _node_hash(_tree_hash(leaves[:split]), _tree_hash(leaves[split:]))


def _audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 PATH(m, D[n]): sibling hashes from the leaf up."""
    if len(leaves) <= 1:
        return []
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < split:
        return [*_audit_path(index, leaves[:split]), _tree_hash(leaves[split:])]
    return [*_audit_path(index - split, leaves[split:]), _tree_hash(leaves[:split])]


@dataclass
class _CA:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    @classmethod
    def create(cls, name: str, not_before: datetime, not_after: datetime) -> _CA:
        root_key = ec.generate_private_key(ec.SECP384R1())
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(root_key, hashes.SHA384())
        )
        inter_key = ec.generate_private_key(ec.SECP384R1())
        inter_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} intermediate"),
            ]
        )
        intermediate = (
            x509.CertificateBuilder()
            .subject_name(inter_name)
            .issuer_name(root_name)
            .public_key(inter_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(root_key, hashes.SHA384())
        )
        return cls(root_key, root, inter_key, intermediate)

    def chain_pem(self) -> str:
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode()
            for c in (self.intermediate, self.root)
        )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class LogEntry:
    """A Rekor entry as both formats carry it."""

    body: bytes
    log_index: int
    integrated_time: int
    log_id: bytes
    signed_entry_timestamp: bytes
    root_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str

    def cosign_bundle_annotation(self) -> str:
        """The legacy `dev.sigstore.cosign/bundle` annotation value."""
        return json.dumps(
            {
                "SignedEntryTimestamp": _b64(self.signed_entry_timestamp),
                "Payload": {
                    "body": _b64(self.body),
                    "integratedTime": self.integrated_time,
                    "logIndex": self.log_index,
                    "logID": self.log_id.hex(),
                },
            }
        )

    def tlog_entry(self, kind: str, version: str = "0.0.1") -> dict[str, Any]:
        """The `tlogEntries[]` element of a Sigstore bundle."""
        return {
            "logIndex": str(self.log_index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": kind, "version": version},
            "integratedTime": str(self.integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(self.signed_entry_timestamp)},
            "inclusionProof": {
                "logIndex": str(self.log_index),
                "rootHash": _b64(self.root_hash),
                "treeSize": str(self.tree_size),
                "hashes": [_b64(h) for h in self.hashes],
                "checkpoint": {"envelope": self.checkpoint},
            },
            "canonicalizedBody": _b64(self.body),
        }


@dataclass
class LocalSigstore:
    """Fulcio + CT log + Rekor, in memory. Build with `LocalSigstore.create()`."""

    ca: _CA
    foreign_ca: _CA
    ct_key: ec.EllipticCurvePrivateKey
    rekor_key: ec.EllipticCurvePrivateKey
    valid_from: datetime
    _leaves: list[bytes] = field(default_factory=list)

    @classmethod
    def create(cls) -> LocalSigstore:
        now = datetime.now(UTC).replace(microsecond=0)
        start, end = now - timedelta(days=3650), now + timedelta(days=3650)
        return cls(
            ca=_CA.create("chartguard-test-fulcio", start, end),
            foreign_ca=_CA.create("foreign-fulcio", start, end),
            ct_key=ec.generate_private_key(ec.SECP256R1()),
            rekor_key=ec.generate_private_key(ec.SECP256R1()),
            valid_from=start,
        )

    @property
    def rekor_log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.rekor_key.public_key())).digest()

    @property
    def ct_log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.ct_key.public_key())).digest()

    def rekor_public_pem(self) -> bytes:
        return self.rekor_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def chain_pem(self, *, foreign: bool = False) -> str:
        """Intermediate then root, as cosign's `dev.sigstore.cosign/chain` annotation."""
        return (self.foreign_ca if foreign else self.ca).chain_pem()

    # -- Fulcio ---------------------------------------------------------------------------

    def issue_certificate(
        self,
        identity: str,
        issuer: str,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        foreign: bool = False,
        code_signing: bool = True,
        embed_sct: bool = True,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A Fulcio-style leaf: SAN = identity (email or URI), OIDC issuer extensions, SCT."""
        ca = self.foreign_ca if foreign else self.ca
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        end = not_after or start + timedelta(minutes=10)
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity)
            if "://" in identity
            else x509.RFC822Name(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        ExtendedKeyUsageOID.CODE_SIGNING
                        if code_signing
                        else ExtendedKeyUsageOID.CLIENT_AUTH
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca.intermediate_key.public_key()
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(_ISSUER_V1, issuer.encode()), False)
            .add_extension(x509.UnrecognizedExtension(_ISSUER_V2, _der_utf8(issuer)), False)
        )
        if embed_sct:
            # The SCT signs the certificate's TBS without the SCT extension: build that first.
            pre = builder.sign(ca.intermediate_key, hashes.SHA384())
            sct = self._sct(pre.tbs_certificate_bytes, ca.intermediate_key.public_key(), start)
            builder = builder.add_extension(x509.UnrecognizedExtension(_SCT_LIST, sct), False)
        return key, builder.sign(ca.intermediate_key, hashes.SHA384())

    def _sct(self, tbs: bytes, issuer_key: ec.EllipticCurvePublicKey, when: datetime) -> bytes:
        timestamp = int(when.timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(_spki(issuer_key)).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)  # v1, certificate_timestamp, precert
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)  # no extensions
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            struct.pack("!B", 0)
            + self.ct_log_id
            + struct.pack("!QH", timestamp, 0)
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )
        sct_list = struct.pack("!H", len(sct)) + sct
        return _der_octet_string(struct.pack("!H", len(sct_list)) + sct_list)

    # -- Rekor ----------------------------------------------------------------------------

    def log(self, body: dict[str, Any], *, integrated_time: int | None = None) -> LogEntry:
        """Append an entry (a hashedrekord/dsse body) and return its SET and proof."""
        canonical = bytes(rfc8785.dumps(body))
        self._leaves.append(_leaf_hash(canonical))
        index = len(self._leaves) - 1
        when = (
            integrated_time if integrated_time is not None else int(datetime.now(UTC).timestamp())
        )
        payload: dict[str, str | int] = {
            "body": _b64(canonical),
            "integratedTime": when,
            "logID": self.rekor_log_id.hex(),
            "logIndex": index,
        }
        sig = self.rekor_key.sign(bytes(rfc8785.dumps(payload)), ec.ECDSA(hashes.SHA256()))
        root = _tree_hash(self._leaves)
        note = f"{_ORIGIN} - 1\n{len(self._leaves)}\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 {_ORIGIN} {_b64(self.rekor_log_id[:4] + note_sig)}\n"
        return LogEntry(
            body=canonical,
            log_index=index,
            integrated_time=when,
            log_id=self.rekor_log_id,
            signed_entry_timestamp=sig,
            root_hash=root,
            tree_size=len(self._leaves),
            hashes=tuple(_audit_path(index, self._leaves)),
            checkpoint=checkpoint,
        )

    # -- trust root -------------------------------------------------------------------------

    def trusted_root_json(self) -> bytes:
        """This instance as a `trusted_root.json` (sigstore's protobuf-specs JSON)."""
        start = self.valid_from.strftime("%Y-%m-%dT%H:%M:%SZ")

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            spki = _spki(key.public_key())
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": _b64(hashlib.sha256(spki).digest())},
            }

        document = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key, "https://rekor.chartguard.test")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "chartguard-test-fulcio", "commonName": "fulcio"},
                    "uri": "https://fulcio.chartguard.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                            for c in (self.ca.intermediate, self.ca.root)
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ctfe.chartguard.test")],
            "timestampAuthorities": [],
        }
        return json.dumps(document, indent=2).encode()

"""A signer writing exactly what cosign writes, to test verification end to end.

Test equipment, not used by the operator. It produces:
- key pairs of every type cosign signs with, and `cosign.key` in cosign's encrypted format
  (PKCS#8 under scrypt + nacl/secretbox, PEM `ENCRYPTED SIGSTORE PRIVATE KEY`);
- legacy `.sig` layers (simple-signing payload + annotations), key-based or keyless (Fulcio
  certificate, chain, Rekor SET) from a :class:`LocalSigstore`;
- Sigstore bundles v0.3 with a DSSE in-toto statement, keyless or key-signed.
Knobs produce the bad cases: other digest, wrong payload type, expired or foreign certificate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from nacl.secret import SecretBox

from chartguard.verify.model import (
    BUNDLE_ANNOTATION,
    BUNDLE_MEDIA_TYPE,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    COSIGN_SIGN_PREDICATE,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_TYPE,
    LegacySignature,
)
from chartguard_testing.sigstore_local import LocalSigstore

KeyKind = Literal["ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa", "rsa-pss", "ed25519"]
KEY_KINDS: tuple[KeyKind, ...] = (
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa",
    "rsa-pss",
    "ed25519",
)
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_PEM_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
_OLD_PEM_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
# cosign's scrypt parameters (sigstore/sigstore pkg/encrypted): N=2^16, r=8, p=1.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 65536, 8, 1
_IN_TOTO = "application/vnd.in-toto+json"
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


@dataclass(frozen=True)
class KeyPair:
    """A private key and how cosign signs with it (`rsa-pss` differs from `rsa` only there)."""

    kind: KeyKind
    private_key: PrivateKey

    @property
    def public_pem(self) -> bytes:
        """What `cosign.pub` holds."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes, hash: type[hashes.HashAlgorithm] | None = None) -> bytes:
        key = self.private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            algorithm = hash or _CURVE_HASH[key.curve.name]
            return key.sign(data, ec.ECDSA(algorithm()))
        if self.kind == "rsa-pss":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(data, pss, hashes.SHA256())
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def generate_key_pair(kind: KeyKind = "ecdsa-p256") -> KeyPair:
    key: PrivateKey
    if kind == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ecdsa-p384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind == "ecdsa-p521":
        key = ec.generate_private_key(ec.SECP521R1())
    elif kind in ("rsa", "rsa-pss"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown key kind {kind!r}; one of {', '.join(KEY_KINDS)}")
    return KeyPair(kind, key)


# -- cosign.key ------------------------------------------------------------------------------


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def encrypt_cosign_key(private_key: PrivateKey, password: bytes) -> bytes:
    """`cosign.key` as `cosign generate-key-pair` writes it."""
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, nonce = os.urandom(32), os.urandom(SecretBox.NONCE_SIZE)
    box = SecretBox(_scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P))
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(box.encrypt(der, nonce).ciphertext).decode(),
    }
    body = base64.encodebytes(json.dumps(document).encode()).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = f"-----BEGIN {_PEM_LABEL}-----\n" + "\n".join(lines) + f"\n-----END {_PEM_LABEL}-----\n"
    return text.encode()


def load_cosign_key(pem: bytes, password: bytes) -> PrivateKey:
    """Read an encrypted cosign key (either PEM label); ValueError on a wrong password."""
    text = pem.decode()
    for label in (_PEM_LABEL, _OLD_PEM_LABEL):
        begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
        if begin in text:
            body = text.split(begin, 1)[1].split(end, 1)[0]
            break
    else:
        raise ValueError("not an encrypted cosign private key (PEM label)")
    document = json.loads(base64.b64decode("".join(body.split())))
    kdf, cipher = document["kdf"], document["cipher"]
    if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
        raise ValueError(f"unsupported cosign key encryption {kdf['name']}/{cipher['name']}")
    params = kdf["params"]
    box = SecretBox(
        _scrypt(password, base64.b64decode(kdf["salt"]), params["N"], params["r"], params["p"])
    )
    try:
        der = box.decrypt(
            base64.b64decode(document["ciphertext"]), base64.b64decode(cipher["nonce"])
        )
    except Exception as exc:  # nacl's CryptoError: wrong password or corrupted file
        raise ValueError("cannot decrypt cosign key: wrong password?") from exc
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    return key


# -- legacy .sig layers ------------------------------------------------------------------------


def simple_signing_payload(
    repository: str, digest: str, *, type_: str = SIMPLE_SIGNING_TYPE
) -> bytes:
    """cosign's exact simple-signing JSON (Go's field order, no spaces, no newline)."""
    reference, manifest, kind = json.dumps(repository), json.dumps(digest), json.dumps(type_)
    return (
        f'{{"critical":{{"identity":{{"docker-reference":{reference}}},'
        f'"image":{{"docker-manifest-digest":{manifest}}},"type":{kind}}},"optional":null}}'
    ).encode()


def hashedrekord_body(signature: bytes, payload: bytes, signer_pem: bytes) -> dict[str, Any]:
    """The Rekor entry cosign logs for a `.sig` layer (signer: certificate or key PEM)."""
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(signer_pem).decode()},
            },
        },
    }


def sign_legacy_with_key(
    key: KeyPair,
    payload: bytes,
    hash: type[hashes.HashAlgorithm] | None = None,
    *,
    rekor: LocalSigstore | None = None,
    source: str = "test signer",
) -> LegacySignature:
    """A key-signed `.sig` layer; with `rekor`, also logged and carrying the SET annotation."""
    signature = key.sign(payload, hash)
    annotations = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    if rekor is not None:
        entry = rekor.log(hashedrekord_body(signature, payload, key.public_pem))
        annotations[BUNDLE_ANNOTATION] = entry.cosign_bundle_annotation()
    return LegacySignature(payload=payload, annotations=annotations, source=source)


def sign_legacy_keyless(
    sigstore: LocalSigstore,
    payload: bytes,
    identity: str = "signer@example.com",
    issuer: str = "https://accounts.example.com",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    integrated_time: int | None = None,
    foreign: bool = False,
    with_chain: bool = True,
    with_bundle: bool = True,
    source: str = "test signer",
) -> LegacySignature:
    """A keyless `.sig` layer: Fulcio certificate + chain + Rekor SET, as cosign writes it."""
    private_key, cert = sigstore.issue_certificate(
        identity, issuer, not_before=not_before, not_after=not_after, foreign=foreign
    )
    signature = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    annotations = {
        SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(),
        CERTIFICATE_ANNOTATION: cert_pem.decode(),
    }
    if with_chain:
        annotations[CHAIN_ANNOTATION] = sigstore.chain_pem(foreign=foreign)
    if with_bundle:
        entry = sigstore.log(
            hashedrekord_body(signature, payload, cert_pem), integrated_time=integrated_time
        )
        annotations[BUNDLE_ANNOTATION] = entry.cosign_bundle_annotation()
    return LegacySignature(payload=payload, annotations=annotations, source=source)


# -- Sigstore bundles v0.3 -----------------------------------------------------------------------


def in_toto_statement(
    digest: str, repository: str = "chart", *, predicate_type: str = COSIGN_SIGN_PREDICATE,
    predicate: Any = None,
) -> bytes:
    """What cosign v3 signs for an image: a statement whose subject is the manifest digest.

    Another `predicate_type` makes an attestation (`cosign attest`) instead of a signature;
    `predicate` is its content (default `{}`).
    """
    algorithm, _, hexdigest = digest.partition(":")
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": repository, "digest": {algorithm: hexdigest}}],
            "predicateType": predicate_type,
            "predicate": {} if predicate is None else predicate,
        },
        separators=(",", ":"),
    ).encode()


def _pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _envelope(payload: bytes, signature: bytes) -> dict[str, Any]:
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": _IN_TOTO,
        "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
    }


def sign_bundle_keyless(
    sigstore: LocalSigstore,
    digest: str,
    identity: str = "signer@example.com",
    issuer: str = "https://accounts.example.com",
    *,
    subject_digest: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    foreign: bool = False,
    predicate_type: str = COSIGN_SIGN_PREDICATE,
    predicate: Any = None,
) -> bytes:
    """A v0.3 bundle: DSSE in-toto statement (subject `subject_digest or digest`), logged."""
    return _sign_bundle_keyless(
        sigstore,
        subject_digest or digest,
        identity,
        issuer,
        not_before,
        not_after,
        foreign,
        predicate_type,
        predicate,
    )


def _sign_bundle_keyless(
    sigstore: LocalSigstore,
    subject: str,
    identity: str,
    issuer: str,
    not_before: datetime | None,
    not_after: datetime | None,
    foreign: bool,
    predicate_type: str,
    predicate: Any = None,
) -> bytes:
    private_key, cert = sigstore.issue_certificate(
        identity, issuer, not_before=not_before, not_after=not_after, foreign=foreign
    )
    payload = in_toto_statement(subject, predicate_type=predicate_type, predicate=predicate)
    signature = private_key.sign(_pae(_IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    envelope = _envelope(payload, signature)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    body = _dsse_body(envelope, payload, signature, cert_pem)
    entry = sigstore.log(body)
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {
                "rawBytes": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
            },
            "tlogEntries": [entry.tlog_entry("dsse")],
        },
        "dsseEnvelope": envelope,
    }
    return json.dumps(bundle).encode()


def _dsse_body(
    envelope: dict[str, Any], payload: bytes, signature: bytes, verifier_pem: bytes
) -> dict[str, Any]:
    """The Rekor dsse/0.0.1 entry for an envelope (verifier: certificate or key PEM)."""
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [
                {
                    "signature": base64.b64encode(signature).decode(),
                    "verifier": base64.b64encode(verifier_pem).decode(),
                }
            ],
        },
    }


def sign_bundle_with_key(
    key: KeyPair,
    digest: str,
    *,
    subject_digest: str | None = None,
    rekor: LocalSigstore | None = None,
    predicate_type: str = COSIGN_SIGN_PREDICATE,
    predicate: Any = None,
    rekor_kind: str = "dsse",
) -> bytes:
    """A key-signed v0.3 bundle (`verificationMaterial.publicKey`); with `rekor`, logged (as
    ``rekor_kind`` dsse/0.0.1 or intoto/0.0.2: cosign v2's ``attest --new-bundle-format
    --rekor-entry-type intoto``)."""
    payload = in_toto_statement(subject_digest or digest, predicate_type=predicate_type,
                                predicate=predicate)
    signature = key.sign(_pae(_IN_TOTO, payload))
    der = key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    envelope = _envelope(payload, signature)
    entries = []
    if rekor is not None:
        if rekor_kind == "dsse":
            entry = rekor.log(_dsse_body(envelope, payload, signature, key.public_pem))
            entries.append(entry.tlog_entry("dsse"))
        else:
            entry = rekor.log(_intoto_body(envelope, payload, signature, key.public_pem))
            entries.append(entry.tlog_entry("intoto", "0.0.2"))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": base64.b64encode(hashlib.sha256(der).digest()).decode()},
            "tlogEntries": entries,
        },
        "dsseEnvelope": envelope,
    }
    return json.dumps(bundle).encode()


# -- legacy .att layers (`cosign attest` without --new-bundle-format) ------------------------------


def _intoto_body(envelope: dict[str, Any], payload: bytes, signature: bytes,
                 verifier_pem: bytes) -> dict[str, Any]:
    """The Rekor intoto/0.0.2 entry cosign logs with ``--rekor-entry-type intoto`` (each
    signature base64-encoded twice: the envelope's text, encoded again)."""
    sig_text = base64.b64encode(signature)
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {"content": {
            "envelope": {"payloadType": _IN_TOTO, "signatures": [
                {"sig": base64.b64encode(sig_text).decode(),
                 "publicKey": base64.b64encode(verifier_pem).decode()}]},
            "hash": {"algorithm": "sha256",
                     "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        }},
    }


def attestation_layer_keyless(
    sigstore: LocalSigstore,
    digest: str,
    predicate_type: str,
    predicate: Any = None,
    identity: str = "signer@example.com",
    issuer: str = "https://accounts.example.com",
    *,
    rekor_kind: str = "dsse",
    source: str = "test attester",
) -> LegacySignature:
    """A keyless ``.att`` layer as ``cosign attest`` writes it: the DSSE envelope as the
    layer, certificate, chain and Rekor SET (``rekor_kind`` dsse or intoto) as annotations."""
    private_key, cert = sigstore.issue_certificate(identity, issuer)
    payload = in_toto_statement(digest, predicate_type=predicate_type, predicate=predicate)
    signature = private_key.sign(_pae(_IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    envelope = _envelope(payload, signature)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    body = (_dsse_body(envelope, payload, signature, cert_pem) if rekor_kind == "dsse"
            else _intoto_body(envelope, payload, signature, cert_pem))
    entry = sigstore.log(body)
    return LegacySignature(
        payload=json.dumps(envelope).encode(),
        annotations={SIGNATURE_ANNOTATION: "", CERTIFICATE_ANNOTATION: cert_pem.decode(),
                     CHAIN_ANNOTATION: sigstore.chain_pem(),
                     BUNDLE_ANNOTATION: entry.cosign_bundle_annotation(),
                     "predicateType": predicate_type},
        source=source)


def attestation_layer_with_key(
    key: KeyPair, digest: str, predicate_type: str, predicate: Any = None, *,
    source: str = "test attester",
) -> LegacySignature:
    """A key-signed ``.att`` layer (``--tlog-upload=false``: no SET)."""
    payload = in_toto_statement(digest, predicate_type=predicate_type, predicate=predicate)
    envelope = _envelope(payload, key.sign(_pae(_IN_TOTO, payload)))
    return LegacySignature(payload=json.dumps(envelope).encode(),
                           annotations={SIGNATURE_ANNOTATION: "",
                                        "predicateType": predicate_type},
                           source=source)

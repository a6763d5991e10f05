"""Public keys as cosign uses them: loading PEM, fingerprints, and raw signature checks.

cosign signs with ECDSA (P-256/P-384/P-521), RSA (PKCS#1 v1.5 or PSS) and Ed25519. Its hash
for ECDSA changed over time (older releases: always SHA-256; current: the curve's hash), so
both are accepted, as cosign's own verifier does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from chartguard.untrusted import escape
from chartguard.verify.errors import InvalidKeyError

_SupportedKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

_CURVE_HASHES: dict[str, tuple[type[hashes.HashAlgorithm], ...]] = {
    "secp256r1": (hashes.SHA256,),
    "secp384r1": (hashes.SHA384, hashes.SHA256),
    "secp521r1": (hashes.SHA512, hashes.SHA256),
}

# The smallest RSA modulus accepted: anything weaker is refused at load time.
_MIN_RSA_BITS = 2048


def spki_fingerprint(key: _SupportedKey) -> str:
    """sha256 of the key's SubjectPublicKeyInfo DER, hex (what `cosign public-key` pins)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def signature_matches(key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
    """True when `signature` over `data` verifies with `key` under a scheme cosign uses.

    `key` may be any type (a certificate annotation can carry DSA, Ed448, ...): those match
    nothing instead of raising.
    """
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            # cosign verifies pure Ed25519 for images (DESIGN §5).
            key.verify(signature, data)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            for algorithm in _CURVE_HASHES.get(key.curve.name, ()):
                try:
                    key.verify(signature, data, ec.ECDSA(algorithm()))
                    return True
                except InvalidSignature:
                    continue
            return False
        if not isinstance(key, rsa.RSAPublicKey):
            # e.g. a DSA or Ed448 key in a certificate annotation: no scheme cosign uses.
            return False
        for pad in (
            padding.PKCS1v15(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        ):
            try:
                key.verify(signature, data, pad, hashes.SHA256())
                return True
            except InvalidSignature:
                continue
        return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        # Malformed signatures (bad DER, wrong length) are simply non-matching.
        return False


def load_public_key(pem: bytes, name: str) -> _SupportedKey:
    """Load a PEM public key of a type cosign signs with, or raise InvalidKeyError."""
    if b"-----BEGIN CERTIFICATE-----" in pem:
        raise InvalidKeyError(
            f"key {name}: a certificate, not a public key: give the signer's public key (the "
            "cosign.pub of `cosign generate-key-pair`; of a certificate, `openssl x509 -pubkey "
            "-noout`), or verify keyless with matchOIDCIdentity instead of secretRef")
    if b"PRIVATE KEY-----" in pem:
        raise InvalidKeyError(
            f"key {name}: a private key, not a public key: give the public key (cosign.pub) "
            "and keep the private one out of the cluster")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise InvalidKeyError(
            f"key {name}: not a PEM public key ({exc}); give the cosign.pub written by "
            "`cosign generate-key-pair` or `cosign public-key`"
        ) from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASHES:
            raise InvalidKeyError(
                f"key {name}: ECDSA curve {key.curve.name} is not one cosign uses "
                "(P-256, P-384, P-521)"
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise InvalidKeyError(
                f"key {name}: RSA key of {key.key_size} bits is too weak (at least {_MIN_RSA_BITS})"
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidKeyError(
        f"key {name}: {type(key).__name__} is not a key type cosign signs with "
        "(ECDSA P-256/P-384/P-521, RSA, Ed25519)"
    )


@dataclass(frozen=True)
class PublicKey:
    """A named public key; `fingerprint` is the sha256 of its SPKI DER, hex."""

    name: str
    fingerprint: str
    _key: _SupportedKey = field(repr=False, compare=False)

    @classmethod
    def from_pem(cls, pem: bytes, name: str) -> PublicKey:
        key = load_public_key(pem, name)
        return cls(name=name, fingerprint=spki_fingerprint(key), _key=key)

    @property
    def label(self) -> str:
        """How results and failures name this key: its name and a short fingerprint."""
        return f"{self.name} (sha256:{self.fingerprint[:16]})"

    def matches(self, signature: bytes, data: bytes) -> bool:
        return signature_matches(self._key, signature, data)

    def same_key(self, other: _SupportedKey) -> bool:
        """True when `other` is this very key (compared by SPKI)."""
        return spki_fingerprint(other) == self.fingerprint


# BEGIN and END lines only, found in one linear pass; a pattern spanning from BEGIN to its END
# (with a back-reference) costs quadratic time on a Secret of a megabyte of BEGIN lines
_PEM_LINE = re.compile(rb"-----(BEGIN|END) ([A-Z0-9 ]{1,64})-----")

#: public keys taken from one Secret or file: every signature is checked against each, so a
#: Secret of thousands of keys would make each verification thousands of times slower
MAX_PUBLIC_KEYS = 64


def _pem_blocks(data: bytes) -> list[bytes]:
    """Each BEGIN ... END block with matching labels, in order (an unmatched line is skipped)."""
    blocks: list[bytes] = []
    begin: re.Match[bytes] | None = None
    for line in _PEM_LINE.finditer(data):
        if line.group(1) == b"BEGIN":
            begin = line
        elif begin is not None and line.group(2) == begin.group(2):
            blocks.append(data[begin.start():line.end()])
            begin = None
            if len(blocks) > MAX_PUBLIC_KEYS:
                break
    return blocks


def public_keys_from_pem(data: bytes, name: str) -> tuple[PublicKey, ...]:
    """Every public key of one PEM file or Secret entry: ``name``, or ``name#1``, ``name#2``...

    A file may hold several keys (a rotation): each is used, none is silently dropped, and a
    block that is no usable key is an error naming it. Data with no PEM block is handed over
    whole, so the key loader says what is wrong with it.
    """
    blocks = _pem_blocks(data)
    if len(blocks) > MAX_PUBLIC_KEYS:
        raise InvalidKeyError(f"key {name}: more than {MAX_PUBLIC_KEYS} PEM blocks; give the "
                              "public keys of the signers only")
    if len(blocks) <= 1:
        return (PublicKey.from_pem(blocks[0] if blocks else data, name),)
    return tuple(PublicKey.from_pem(block, f"{name}#{n}") for n, block in enumerate(blocks, 1))


def public_keys_from_secret(data: Mapping[str, bytes]) -> tuple[PublicKey, ...]:
    """Every key of a Secret whose name ends in `.pub` (Flux semantics), named by its key.

    The keys come back sorted by name so that results and messages are stable. An entry with
    several PEM keys yields all of them. A Secret without any `.pub` entry is an error: an
    empty key list would mean keyless verification.
    """
    entries = sorted(name for name in data if name.endswith(".pub"))
    if len(entries) > MAX_PUBLIC_KEYS:
        raise InvalidKeyError(
            f"the Secret has {len(entries):,} entries ending in .pub, more than "
            f"{MAX_PUBLIC_KEYS}: every signature is checked against each key; keep the "
            "public keys of the signers only")
    keys = tuple(key for name in entries for key in public_keys_from_pem(data[name], name))
    if len(keys) > MAX_PUBLIC_KEYS:
        raise InvalidKeyError(f"the Secret holds {len(keys):,} public keys, more than "
                              f"{MAX_PUBLIC_KEYS}; keep the public keys of the signers only")
    if not keys:
        names = sorted(data)
        shown = ", ".join(escape(n, 80) for n in names[:10]) or "none"
        if len(names) > 10:
            shown += f" and {len(names) - 10:,} more"
        raise InvalidKeyError(
            f"no public key in the Secret (keys: {shown}); store each cosign public key "
            "under a name ending in .pub, e.g. cosign.pub"
        )
    return keys

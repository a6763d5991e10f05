"""Sigstore trust roots: the production root shipped in the sigstore wheel, or a user's own.

A trust root says which Fulcio CAs issue signing certificates (and when), which CT log keys
sign SCTs and which Rekor keys sign entries (SETs, checkpoints), each with a `validFor`
window. sigstore parses the `trusted_root.json`; this module keeps what our own checks need in
plain form, windows included: sigstore's verifier accepts a retired CA or log key at any time,
so both the legacy and the bundle path judge the windows here, at the Rekor integrated time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sigstore.models import TrustedRoot

from chartguard.untrusted import UntrustedInputError, escape, loads_json
from chartguard.verify import _sigstore_compat as compat
from chartguard.verify.errors import InvalidTrustRootError
from chartguard.verify.keys import _SupportedKey

_SUPPORTED_KEYS = (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)
_FAR_PAST = datetime.min.replace(tzinfo=UTC)
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def contains(self, when: datetime) -> bool:
        return self.start <= when <= self.end


@dataclass(frozen=True)
class LogKey:
    """A transparency or CT log's key, by its log ID (sha256 of the key's SPKI DER)."""

    log_id: bytes
    key: _SupportedKey
    valid: TimeRange
    base_url: str


@dataclass(frozen=True)
class CertificateAuthority:
    certificates: tuple[x509.Certificate, ...]
    valid: TimeRange


def _time(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _range(valid_for: compat.TimeRangeModel | None) -> TimeRange:
    if valid_for is None:
        return TimeRange(_FAR_PAST, _FAR_FUTURE)
    return TimeRange(_time(valid_for.start, _FAR_PAST), _time(valid_for.end, _FAR_FUTURE))


@dataclass(frozen=True)
class TrustRoot:
    """A parsed Sigstore `trusted_root.json` (media type ...trustedroot+json;version=0.1)."""

    raw: bytes = field(repr=False)
    name: str
    _sigstore: TrustedRoot = field(repr=False, compare=False)

    @classmethod
    def production(cls) -> TrustRoot:
        """The production root embedded in the sigstore wheel: no network, no cache written."""
        return cls.from_json(compat.production_trusted_root_json(), name="sigstore production")

    @classmethod
    def from_json(cls, data: bytes, name: str = "trusted_root.json") -> TrustRoot:
        """Parse a ``trusted_root.json``; ``name`` says where it came from in messages."""
        name = escape(name)
        hint = ("give a trusted_root.json as `cosign trusted-root create` or the sigstore TUF "
                "repository writes it")
        try:
            # depth-guarded first: sigstore's parser would meet a hostile nesting unprepared
            loads_json(data, what=name)
            parsed = compat.trusted_root_from_json(data)
        except UntrustedInputError as exc:
            raise InvalidTrustRootError(f"{exc}: not a Sigstore trusted root; {hint}") from None
        except Exception as exc:  # sigstore/pydantic raise many types; all mean "bad file"
            raise InvalidTrustRootError(
                f"{name}: not a Sigstore trusted root ({escape(exc)}); {hint}"
            ) from None
        root = cls(raw=data, name=name, _sigstore=parsed)
        # Parse the parts our own checks need now, so a broken file fails here.
        try:
            _ = root.certificate_authorities, root.rekor_keys, root.ct_logs
        except Exception as exc:
            raise InvalidTrustRootError(f"{name}: unusable trusted root: {escape(exc)}") from None
        return root

    @property
    def sigstore_root(self) -> TrustedRoot:
        return self._sigstore

    @cached_property
    def certificate_authorities(self) -> tuple[CertificateAuthority, ...]:
        return tuple(
            CertificateAuthority(
                tuple(
                    x509.load_der_x509_certificate(bytes(c.raw_bytes))
                    for c in ca.cert_chain.certificates
                ),
                _range(ca.valid_for),
            )
            for ca in compat.certificate_authorities(self._sigstore)
        )

    @cached_property
    def rekor_keys(self) -> dict[bytes, LogKey]:
        return _log_keys(compat.rekor_logs(self._sigstore))

    @cached_property
    def ct_logs(self) -> dict[bytes, TimeRange]:
        """Every CT log's key window, by log ID (the key ID an SCT names)."""
        return {
            bytes(log.log_id.key_id): _range(log.public_key.valid_for)
            for log in compat.ct_logs(self._sigstore)
        }

    @cached_property
    def ct_keyring(self) -> compat.CTKeyring:
        """Every CT log's key, as sigstore's SCT check takes them (windows judged apart)."""
        return compat.ct_keyring(compat.ct_logs(self._sigstore))


def _log_keys(logs: list[compat.TransparencyLogInstance]) -> dict[bytes, LogKey]:
    keys: dict[bytes, LogKey] = {}
    for log in logs:
        try:
            key = serialization.load_der_public_key(log.public_key.raw_bytes or b"")
        except (ValueError, UnsupportedAlgorithm):
            continue  # a key we cannot load is skipped, as sigstore's keyring does
        if not isinstance(key, _SUPPORTED_KEYS):
            continue
        log_id = bytes(log.log_id.key_id)
        keys[log_id] = LogKey(log_id, key, _range(log.public_key.valid_for), log.base_url)
    return keys

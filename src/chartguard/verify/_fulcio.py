"""Fulcio signing certificates: chain to the trust root at a given time, SCT, profile, identity.

The chain is built with cryptography's X.509 verifier, exactly as sigstore's bundle verifier
does (every CA certificate of the trust root is an anchor; code-signing EKU allowed); then the
CA that issued it and the CT log that signed its embedded SCT must both have been valid (their
`validFor` in the trust root) at the given time, which sigstore itself does not check. The SCT
is checked with sigstore's `verify_sct` (private: see `_sigstore_compat`).
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from sigstore.errors import Error as SigstoreError

from chartguard.untrusted import escape
from chartguard.verify import _sigstore_compat as compat
from chartguard.verify._common import Rejected
from chartguard.verify.errors import InvalidTrustRootError
from chartguard.verify.trust import CertificateAuthority, TrustRoot

_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw string
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String
_FULCIO_USERNAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")  # otherName SAN


def _der_utf8(value: bytes) -> str:
    """Decode a DER UTF8String (tag 0x0c) as Fulcio writes its v2 extensions."""
    if len(value) < 2 or value[0] != 0x0C:
        raise ValueError("not a DER UTF8String")
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(value[2 : 2 + count], "big")
        offset = 2 + count
    return value[offset : offset + length].decode()


def certificate_identity(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """The OIDC issuer and every subject alternative name, as cosign reads them."""
    issuer = ""
    for ext in cert.extensions:
        if ext.oid == _ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            issuer = _der_utf8(ext.value.value)
            break
        if ext.oid == _ISSUER_V1 and isinstance(ext.value, x509.UnrecognizedExtension):
            issuer = ext.value.value.decode()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return issuer, ()
    subjects: list[str] = [
        *san.get_values_for_type(x509.RFC822Name),
        *san.get_values_for_type(x509.UniformResourceIdentifier),
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    ]
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == _FULCIO_USERNAME:
            subjects.append(_der_utf8(other.value))
    return issuer, tuple(subjects)


class FulcioChecker:
    """Everything about a signing certificate except the identity policy."""

    def __init__(self, trust_root: TrustRoot) -> None:
        self._root = trust_root
        if not trust_root.certificate_authorities:
            raise InvalidTrustRootError(
                f"{trust_root.name} has no certificate authority (Fulcio): it cannot verify "
                "keyless signatures"
            )
        certs = [c for ca in trust_root.certificate_authorities for c in ca.certificates]
        self._store = Store(certs)
        # a certificate listed by several CAs (re-listed with another window) has each of them
        self._cas_of: dict[x509.Certificate, list[CertificateAuthority]] = {}
        for ca in trust_root.certificate_authorities:
            for cert in ca.certificates:
                self._cas_of.setdefault(cert, []).append(ca)
        # Fulcio leaves carry code-signing, not client-auth: allow any EKU here, then
        # require code-signing explicitly below (sigstore's bundle verifier does the same).
        self._ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        self._ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )

    def check(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], at: datetime
    ) -> None:
        """Chain, SCT, the CA and CT log valid at ``at``, profile; Rejected otherwise.

        ``at`` must be an authenticated time (the Rekor integrated time of a verified SET).
        """
        if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
            raise Rejected(
                f"certificate valid {leaf.not_valid_before_utc.isoformat()} to "
                f"{leaf.not_valid_after_utc.isoformat()} was expired at the Rekor "
                f"integrated time {at.isoformat()}"
            )
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(at)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier()
        )
        try:
            chain = verifier.verify(leaf, intermediates).chain[1:]
        except (VerificationError, x509.UnsupportedGeneralNameType, ValueError) as exc:
            if not any(ca_cert.subject == leaf.issuer for ca_cert in self._cas_of):
                raise Rejected(
                    f"certificate does not chain to a Fulcio CA of {self._root.name}: its "
                    f"issuer {escape(leaf.issuer.rfc4514_string())} is not one of them "
                    "(another Sigstore instance? give its trusted root)"
                ) from None
            raise Rejected(
                f"certificate does not chain to a Fulcio CA of {self._root.name} "
                f"at {at.isoformat()}: {escape(exc)}"
            ) from None
        try:
            compat.verify_sct(leaf, chain, self._root.ct_keyring)
        except (SigstoreError, ValueError) as exc:
            raise Rejected(f"certificate transparency (SCT) check failed: {escape(exc)}") from None
        self._check_windows(leaf, chain[-1], at)
        _check_profile(leaf)

    def check_windows(self, leaf: x509.Certificate, at: datetime) -> None:
        """For a certificate whose chain and SCT sigstore verified: the windows it does not judge.

        A bundle carries no intermediates, so sigstore's chain ended at a CA certificate of the
        trust root named by the leaf's issuer; only when two share that name is the signature
        checked to tell them apart.
        """
        named = [cert for cert in self._cas_of if cert.subject == leaf.issuer]
        issuer = named[0] if len(named) == 1 else next(
            (cert for cert in named if _issued(cert, leaf)), None)
        if issuer is None:
            raise Rejected(
                f"certificate was not issued by a Fulcio CA certificate of {self._root.name}"
            )
        self._check_windows(leaf, issuer, at)

    def _check_windows(self, leaf: x509.Certificate, anchor: x509.Certificate,
                       at: datetime) -> None:
        """The CA of the ``anchor`` the leaf's chain ends at, and the CT log that signed its SCT
        (verified already, with the key its log ID names), must have been valid at ``at``."""
        if not any(ca.valid.contains(at) for ca in self._cas_of.get(anchor, ())):
            raise Rejected(
                f"the Fulcio CA of {self._root.name} that issued the certificate was not "
                f"valid at {at.isoformat()}"
            )
        log_id = _sct_log_id(leaf)
        window = self._root.ct_logs.get(log_id)
        if window is None or not window.contains(at):
            raise Rejected(
                f"the certificate transparency log {log_id.hex()[:16]} that signed the SCT was "
                f"not valid at {at.isoformat()} in {self._root.name}"
            )


def _sct_log_id(leaf: x509.Certificate) -> bytes:
    """The log ID of the certificate's one embedded SCT (sigstore refuses more or fewer)."""
    try:
        scts = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound:
        raise Rejected("certificate has no embedded SCT") from None
    if len(scts) != 1:
        raise Rejected(f"certificate has {len(scts)} SCTs, not one")
    return bytes(scts[0].log_id)


def _issued(issuer: x509.Certificate, leaf: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_profile(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise Rejected(f"certificate is not a Fulcio signing certificate: {escape(exc)}") from None
    if not usage.digital_signature:
        raise Rejected("certificate key usage lacks digitalSignature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise Rejected("certificate extended key usage lacks code signing")

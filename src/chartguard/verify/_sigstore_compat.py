"""Every private piece of sigstore-python that chartguard.verify uses, in one place.

sigstore's ``_internal``/``_utils`` modules, its ``_inner`` attributes and the constructors it
marks "@api private" carry no stability promise (nor do the ``sigstore_models`` types behind
``_inner``, a distribution sigstore pins); ``sigstore~=4.5.1`` pins the minor and
``tests/unit/verify/test_verify_sigstore_compat.py`` has one test per symbol below, named for
it, so an upgrade that moves or reshapes one fails by name. Nothing else in chartguard reaches
into sigstore's privates (a test greps for it).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from sigstore._internal.sct import verify_sct as _verify_sct
from sigstore._internal.trust import CTKeyring, Keyring
from sigstore._internal.tuf import DEFAULT_TUF_URL
from sigstore._utils import read_embedded
from sigstore.models import Bundle, TrustedRoot
from sigstore_models.common.v1 import TimeRange as TimeRangeModel
from sigstore_models.trustroot.v1 import CertificateAuthority as CertificateAuthorityModel
from sigstore_models.trustroot.v1 import TransparencyLogInstance
from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel

__all__ = [
    "CTKeyring",
    "CertificateAuthorityModel",
    "TimeRangeModel",
    "TransparencyLogInstance",
    "bundle_log_index",
    "certificate_authorities",
    "ct_keyring",
    "ct_logs",
    "production_trusted_root_json",
    "rekor_logs",
    "trusted_root_from_json",
    "verify_sct",
]


def production_trusted_root_json() -> bytes:
    """The production ``trusted_root.json`` embedded in the sigstore wheel (no network)."""
    return read_embedded("trusted_root.json", DEFAULT_TUF_URL)


def trusted_root_from_json(data: bytes) -> TrustedRoot:
    """sigstore's TrustedRoot from JSON (its constructor is marked private; no public from_json)."""
    return TrustedRoot(TrustedRootModel.from_json(data))


def certificate_authorities(root: TrustedRoot) -> list[CertificateAuthorityModel]:
    """The Fulcio CAs of ``root`` as written, with their ``validFor`` windows."""
    return list(root._inner.certificate_authorities)


def rekor_logs(root: TrustedRoot) -> list[TransparencyLogInstance]:
    """The transparency (Rekor) logs of ``root`` as written, with their key windows."""
    return list(root._inner.tlogs)


def ct_logs(root: TrustedRoot) -> list[TransparencyLogInstance]:
    """The certificate transparency logs of ``root`` as written, with their key windows."""
    return list(root._inner.ctlogs)


def ct_keyring(logs: Sequence[TransparencyLogInstance]) -> CTKeyring:
    """A keyring of exactly these CT logs (sigstore's own keeps every log, retired or not)."""
    return CTKeyring(Keyring([log.public_key for log in logs]))


def verify_sct(leaf: x509.Certificate, chain: list[x509.Certificate], keyring: CTKeyring) -> None:
    """sigstore's embedded-SCT check; raises ``sigstore.errors.VerificationError``."""
    _verify_sct(leaf, chain, keyring)


def bundle_log_index(bundle: Bundle) -> int:
    """The Rekor log index of the bundle's (only) transparency log entry."""
    return int(bundle.log_entry._inner.log_index)

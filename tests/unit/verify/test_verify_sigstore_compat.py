"""The private sigstore pieces chartguard.verify relies on: one test per symbol, named for it.

When a sigstore release moves, renames or reshapes one of them, the test named for it fails;
fix ``chartguard.verify._sigstore_compat`` (and only it) to follow.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from chartguard.verify import TrustRoot, _sigstore_compat
from chartguard_testing.cosign_signer import sign_bundle_keyless
from chartguard_testing.sigstore_local import LocalSigstore

SRC = Path(__file__).resolve().parents[3] / "src" / "chartguard"


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_sigstore_private_internal_sct_verify_sct_takes_cert_chain_keyring() -> None:
    from sigstore._internal.sct import verify_sct

    assert _parameters(verify_sct) == ["cert", "chain", "ct_keyring"]


def test_sigstore_private_internal_trust_keyring_is_built_from_public_keys() -> None:
    from sigstore._internal.trust import CTKeyring, Keyring

    assert _parameters(Keyring.__init__) == ["self", "public_keys"]
    assert _parameters(Keyring.verify) == ["self", "key_id", "signature", "data"]
    assert CTKeyring(Keyring([])) is not None  # a NewType over Keyring


def test_sigstore_private_keyring_verify_tries_only_the_key_its_key_id_names() -> None:
    """chartguard judges a CT log's window by the log ID an SCT names: that holds only while
    sigstore's keyring, given a known key ID, tries that key alone."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sigstore._internal.trust import Keyring
    from sigstore.errors import VerificationError
    from sigstore_models.common.v1 import PublicKey, PublicKeyDetails

    named, signer = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def public(key: ec.EllipticCurvePrivateKey) -> tuple[PublicKey, bytes]:
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        model = PublicKey(raw_bytes=base64.b64encode(der),  # the model decodes base64 itself
                          key_details=PublicKeyDetails.PKIX_ECDSA_P256_SHA_256)
        return model, hashlib.sha256(der).digest()

    (named_key, named_id), (signer_key, signer_id) = public(named), public(signer)
    keyring = Keyring([named_key, signer_key])
    signature = signer.sign(b"data", ec.ECDSA(hashes.SHA256()))
    keyring.verify(key_id=signer_id, signature=signature, data=b"data")
    with pytest.raises(VerificationError):
        keyring.verify(key_id=named_id, signature=signature, data=b"data")


def test_sigstore_private_internal_tuf_default_tuf_url_names_the_embedded_root() -> None:
    from sigstore._internal.tuf import DEFAULT_TUF_URL

    assert DEFAULT_TUF_URL == "https://tuf-repo-cdn.sigstore.dev"


def test_sigstore_private_utils_read_embedded_reads_the_production_root() -> None:
    from sigstore._utils import read_embedded

    assert _parameters(read_embedded) == ["name", "url"]
    assert b"certificateAuthorities" in _sigstore_compat.production_trusted_root_json()


def test_sigstore_private_trusted_root_constructor_and_inner_lists(
    local_sigstore: LocalSigstore,
) -> None:
    from sigstore.models import TrustedRoot

    assert _parameters(TrustedRoot.__init__) == ["self", "inner"]
    root = _sigstore_compat.trusted_root_from_json(local_sigstore.trusted_root_json())
    assert set(vars(root)) >= {"_inner"}
    (ca,) = _sigstore_compat.certificate_authorities(root)
    assert ca.valid_for is not None
    assert len(ca.cert_chain.certificates) == 2
    (rekor,) = _sigstore_compat.rekor_logs(root)
    (ct,) = _sigstore_compat.ct_logs(root)
    assert bytes(rekor.log_id.key_id) == local_sigstore.rekor_log_id
    assert bytes(ct.log_id.key_id) == local_sigstore.ct_log_id
    assert rekor.public_key.valid_for is not None


def test_sigstore_private_ct_keyring_holds_exactly_the_logs_given(
    local_sigstore: LocalSigstore,
) -> None:
    root = _sigstore_compat.trusted_root_from_json(local_sigstore.trusted_root_json())
    keyring = _sigstore_compat.ct_keyring(_sigstore_compat.ct_logs(root))
    assert len(keyring._keyring) == 1
    assert len(_sigstore_compat.ct_keyring([])._keyring) == 0


def test_sigstore_private_bundle_log_entry_inner_log_index(local_sigstore: LocalSigstore) -> None:
    from sigstore.models import Bundle

    bundle = Bundle.from_json(sign_bundle_keyless(local_sigstore, "sha256:" + "a" * 64))
    inner = bundle.log_entry._inner
    assert isinstance(inner.log_index, int)
    assert _sigstore_compat.bundle_log_index(bundle) == inner.log_index


def test_the_production_root_loads_through_the_compat_module() -> None:
    root = TrustRoot.production()
    assert root.ct_logs
    assert root.rekor_keys


def test_no_other_module_reaches_into_sigstore_privates() -> None:
    private = re.compile(r"sigstore\._|\._inner\b|sigstore_models")
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "_sigstore_compat.py"
        and any(private.search(line) for line in path.read_text().splitlines()
                if not line.lstrip().startswith("#"))
    ]
    assert offenders == []

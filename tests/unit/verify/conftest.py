"""Shared material for the verification tests: one local Sigstore per session."""

from __future__ import annotations

import pytest
from verify_helpers import IDENTITY, ISSUER

from chartguard.verify import OIDCIdentity, TrustRoot, VerificationPolicy, Verifier
from chartguard_testing.sigstore_local import LocalSigstore


@pytest.fixture(scope="session")
def local_sigstore() -> LocalSigstore:
    return LocalSigstore.create()


@pytest.fixture(scope="session")
def local_root(local_sigstore: LocalSigstore) -> TrustRoot:
    return TrustRoot.from_json(local_sigstore.trusted_root_json(), name="local trusted_root.json")


@pytest.fixture(scope="session")
def keyless_verifier(local_root: TrustRoot) -> Verifier:
    """Keyless against the local Sigstore, identity pinned with anchored expressions."""
    identity = OIDCIdentity(issuer=f"^{ISSUER}$", subject=f"^{IDENTITY}$")
    return Verifier(VerificationPolicy(identities=(identity,), trust_root=local_root))

"""Policy fingerprints and the cache of successful verifications by (digest, policy)."""

from __future__ import annotations

import threading

import pytest
from verify_helpers import DIGEST, OTHER_DIGEST

from chartguard.verify import (
    OIDCIdentity,
    PublicKey,
    TrustRoot,
    VerificationPolicy,
    VerificationResult,
    VerifiedCache,
)
from chartguard_testing import cosign_signer
from chartguard_testing.sigstore_local import LocalSigstore


def _key(name: str, kind: cosign_signer.KeyKind = "ecdsa-p256") -> PublicKey:
    return PublicKey.from_pem(cosign_signer.generate_key_pair(kind).public_pem, name)


def _result(digest: str = DIGEST) -> VerificationResult:
    return VerificationResult(digest=digest, format="legacy", key="cosign.pub")


def test_fingerprint_ignores_key_names_order_and_duplicates() -> None:
    pem = cosign_signer.generate_key_pair("ecdsa-p256").public_pem
    a, b = PublicKey.from_pem(pem, "a.pub"), _key("b.pub")
    renamed = PublicKey.from_pem(pem, "renamed.pub")
    one = VerificationPolicy(keys=(a, b))
    assert VerificationPolicy(keys=(b, a, b)).fingerprint == one.fingerprint
    assert VerificationPolicy(keys=(renamed, b)).fingerprint == one.fingerprint
    assert one.fingerprint.startswith("sha256:")
    assert len(one.fingerprint) == len("sha256:") + 64


def test_fingerprint_changes_with_everything_that_decides(local_sigstore: LocalSigstore,
                                                          local_root: TrustRoot) -> None:
    ident = OIDCIdentity(issuer="^https://issuer$", subject="^me@example.com$")
    base = VerificationPolicy(identities=(ident,), trust_root=local_root)
    other_root = TrustRoot.from_json(LocalSigstore.create().trusted_root_json())
    variants = [
        VerificationPolicy(identities=(ident,)),  # production root instead of the local one
        VerificationPolicy(identities=(ident,), trust_root=other_root),
        VerificationPolicy(identities=(OIDCIdentity("^https://issuer$", "^you@example.com$"),),
                           trust_root=local_root),
        VerificationPolicy(identities=(ident,), trust_root=local_root, require_identity=True),
        VerificationPolicy(identities=(ident,), trust_root=local_root,
                           bundle_predicate_types=("https://example.com/other/v1",)),
        VerificationPolicy(keys=(_key("cosign.pub"),)),
    ]
    prints = {base.fingerprint, *(v.fingerprint for v in variants)}
    assert len(prints) == len(variants) + 1


def test_cache_returns_a_success_only_for_the_same_digest_and_policy() -> None:
    policy = VerificationPolicy(keys=(_key("cosign.pub"),))
    other_policy = VerificationPolicy(keys=(_key("other.pub"),))
    cache = VerifiedCache()
    assert cache.get(DIGEST, policy) is None
    cache.put(policy, _result())
    assert cache.get(DIGEST, policy) == _result()
    # the same policy rebuilt from the same keys (e.g. next reconcile) hits too
    assert cache.get(DIGEST, VerificationPolicy(keys=policy.keys)) == _result()
    assert cache.get(OTHER_DIGEST, policy) is None
    assert cache.get(DIGEST, other_policy) is None


def test_cache_evicts_the_least_recently_used() -> None:
    policy = VerificationPolicy(keys=(_key("cosign.pub"),))
    cache = VerifiedCache(max_entries=2)
    cache.put(policy, _result(DIGEST))
    cache.put(policy, _result(OTHER_DIGEST))
    assert cache.get(DIGEST, policy) is not None  # DIGEST is now the most recent
    third = "sha256:" + "3" * 64
    cache.put(policy, _result(third))
    assert len(cache) == 2
    assert cache.get(OTHER_DIGEST, policy) is None
    assert cache.get(DIGEST, policy) is not None
    assert cache.get(third, policy) is not None


def test_cache_is_safe_to_share_between_threads() -> None:
    policy = VerificationPolicy(keys=(_key("cosign.pub"),))
    cache = VerifiedCache(max_entries=64)
    digests = [f"sha256:{i:064x}" for i in range(400)]

    def work(offset: int) -> None:
        for d in digests[offset::4]:
            cache.put(policy, _result(d))
            cache.get(d, policy)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 64


def test_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        VerifiedCache(max_entries=0)

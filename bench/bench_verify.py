"""Cost of one signature verification after start-up, key-based and keyless (`make bench`).

Start-up (imports, trust root, verifier construction) is measured once and reported apart:
the operator pays it once. Then each case is verified many times with a built `Verifier`,
and the median and 95th percentile per signature are printed, with the process's peak RSS
and the Python heap growth over the loop. Target: under 1 ms per signature.

Cases: key-based legacy (ECDSA P-256, plus a real cosign signature), keyless legacy (local
Sigstore, plus the real Fulcio/Rekor signature against the production root) and keyless
bundle v0.3 (local Sigstore, plus the real cosign bundle).
"""

from __future__ import annotations

import hashlib
import json
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROUNDS = 300
TARGET_MS = 1.0
REAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cosign-real"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    t0 = time.perf_counter()
    from chartguard.verify import (
        BundleCandidate,
        LegacySignature,
        OIDCIdentity,
        PublicKey,
        TrustRoot,
        VerificationPolicy,
        Verifier,
    )
    from chartguard_testing.cosign_signer import (
        generate_key_pair,
        sign_bundle_keyless,
        sign_legacy_keyless,
        sign_legacy_with_key,
        simple_signing_payload,
    )
    from chartguard_testing.sigstore_local import LocalSigstore

    import_ms = (time.perf_counter() - t0) * 1000

    digest = "sha256:" + hashlib.sha256(b"bench chart").hexdigest()
    payload = simple_signing_payload("127.0.0.1:5000/charts/bench", digest)
    local = LocalSigstore.create()
    pair = generate_key_pair("ecdsa-p256")

    t1 = time.perf_counter()
    local_root = TrustRoot.from_json(local.trusted_root_json(), "local")
    key_verifier = Verifier(
        VerificationPolicy(keys=(PublicKey.from_pem(pair.public_pem, "cosign.pub"),))
    )
    anyone = (OIDCIdentity(".*", ".*"),)
    keyless_verifier = Verifier(VerificationPolicy(identities=anyone, trust_root=local_root))
    # The real bundle is an attestation (cosign attest): accepted here by its predicate type.
    production_verifier = Verifier(
        VerificationPolicy(
            identities=anyone,
            bundle_predicate_types=(
                "https://sigstore.dev/cosign/sign/v1",
                "https://cosign.sigstore.dev/attestation/v1",
            ),
        )
    )
    startup_ms = (time.perf_counter() - t1) * 1000

    def real(folder: str) -> tuple[str, LegacySignature]:
        base = REAL / folder
        sig = LegacySignature(
            (base / "payload.json").read_bytes(),
            json.loads((base / "annotations.json").read_text()),
            folder,
        )
        return "sha256:" + hashlib.sha256((base / "manifest.json").read_bytes()).hexdigest(), sig

    real_key_digest, real_key_sig = real("containers-image-ci-key-rekor-valid")
    real_key_verifier = Verifier(
        VerificationPolicy(
            keys=(
                PublicKey.from_pem(
                    (REAL / "containers-image-ci-key-rekor-valid" / "cosign.pub").read_bytes(),
                    "cosign.pub",
                ),
            )
        )
    )
    real_keyless_digest, real_keyless_sig = real("containers-image-ci-keyless-fulcio-rekor")
    bundle_dir = REAL / "cosign-oci-attestation-bundle-v0.3"
    real_bundle = BundleCandidate((bundle_dir / "oci-attestation.sigstore.json").read_bytes(), "b")
    real_bundle_digest = (
        "sha256:"
        + hashlib.sha256(
            (bundle_dir / "manifest.reconstructed-empty-image.json").read_bytes()
        ).hexdigest()
    )

    from sigstore.models import Bundle
    from sigstore.verify import Verifier as SigstoreVerifier
    from sigstore.verify.policy import Identity

    raw_verifier = SigstoreVerifier(trusted_root=TrustRoot.production().sigstore_root)
    raw_policy = Identity(identity="cody@soyland.com", issuer="https://github.com/login/oauth")

    def sigstore_alone(data: bytes) -> object:
        return raw_verifier.verify_dsse(Bundle.from_json(data), raw_policy)

    key_sig = sign_legacy_with_key(pair, payload)
    keyless_sig = sign_legacy_keyless(local, payload)
    bundle = BundleCandidate(sign_bundle_keyless(local, digest), "bundle")

    cases: list[tuple[str, Callable[[], object]]] = [
        ("key-based legacy, ECDSA P-256", lambda: key_verifier.verify(digest, [key_sig], [])),
        (
            "key-based legacy + Rekor SET (real cosign)",
            lambda: real_key_verifier.verify(real_key_digest, [real_key_sig], []),
        ),
        (
            "keyless legacy (local Sigstore)",
            lambda: keyless_verifier.verify(digest, [keyless_sig], []),
        ),
        (
            "keyless legacy (real, production root)",
            lambda: production_verifier.verify(real_keyless_digest, [real_keyless_sig], []),
        ),
        (
            "keyless bundle v0.3 (local Sigstore)",
            lambda: keyless_verifier.verify(digest, [], [bundle]),
        ),
        (
            "keyless bundle v0.3 (real, production root)",
            lambda: production_verifier.verify(real_bundle_digest, [], [real_bundle]),
        ),
        # The floor under the bundle rows: sigstore alone, no subject or identity checks.
        ("  baseline: sigstore verify_dsse alone (real)", lambda: sigstore_alone(real_bundle.data)),
    ]

    print(f"start-up: imports {import_ms:.0f} ms, trust roots + 4 verifiers {startup_ms:.0f} ms")
    print(f"{'case':48} {'median ms':>10} {'p95 ms':>8}")
    worst = 0.0
    for name, fn in cases:
        for _ in range(20):  # warm caches (cryptography key objects, regex)
            fn()
        samples = sorted(_timed(fn) for _ in range(ROUNDS))
        median, p95 = statistics.median(samples), samples[int(len(samples) * 0.95)]
        if not name.startswith("  baseline"):
            worst = max(worst, median)
        print(f"{name:48} {median:10.3f} {p95:8.3f}")
    # Memory in a second pass: tracemalloc slows allocation, so it stays out of the timings.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _, fn in cases:
        for _ in range(ROUNDS):
            fn()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    grown, peak_kib = (after - before) / 1024, (peak - before) / 1024
    print(
        f"memory: peak RSS {rss_mb:.0f} MB; Python heap +{grown:.0f} KiB after "
        f"{ROUNDS * len(cases)} verifications (transient peak +{peak_kib:.0f} KiB)"
    )
    verdict = "OK" if worst < TARGET_MS else "OVER TARGET"
    print(f"worst median {worst:.3f} ms per signature: {verdict} (target < {TARGET_MS} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

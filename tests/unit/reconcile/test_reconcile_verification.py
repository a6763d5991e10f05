"""From found artifacts to a verdict: a broken candidate never hides a valid signature, and a
manifest with thousands of bad signatures gives a few lines, not thousands."""

from __future__ import annotations

import pytest

from chartguard import metrics
from chartguard.oci import (
    BUNDLE_ARTIFACT_TYPE,
    COSIGN_SIGNATURE_LAYER,
    ChartReference,
    RegistryClient,
    SignatureArtifacts,
    signature_tag,
)
from chartguard.reconcile.verification import (
    FAILURES_SHOWN,
    NoSignatureFoundError,
    signature_format,
    verify_artifacts,
)
from chartguard.verify import (
    PublicKey,
    VerificationFailedError,
    VerificationPolicy,
    VerificationResult,
    Verifier,
)
from chartguard_testing.cosign_signer import (
    generate_key_pair,
    sign_legacy_with_key,
    simple_signing_payload,
)
from chartguard_testing.memory_registry import MemoryRegistry, MockTransport
from chartguard_testing.scrape import Samples

REPO = "charts/demo"
GONE = "sha256:" + "cd" * 32
DIGEST = "sha256:" + "ab" * 32


def _registry_with_a_signed_chart_and_a_broken_referrer(
        ) -> tuple[MemoryRegistry, str, ChartReference, bytes]:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    key = generate_key_pair()
    sig = sign_legacy_with_key(key, simple_signing_payload(f"{registry.host}/{REPO}", digest))
    registry.push_artifact(REPO, signature_tag(digest), artifact_type=COSIGN_SIGNATURE_LAYER,
                           layers=[(COSIGN_SIGNATURE_LAYER, sig.payload, sig.annotations)])
    # the referrers tag lists a bundle the registry does not have
    registry.push_manifest(REPO, digest.replace(":", "-"), {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": GONE, "size": 99, "artifactType": BUNDLE_ARTIFACT_TYPE}]})
    ref = ChartReference.parse(f"oci://{registry.host}/charts", "demo")
    return registry, digest, ref, key.public_pem


def _verifier(pem: bytes) -> Verifier:
    return Verifier(VerificationPolicy(keys=(PublicKey.from_pem(pem, "cosign.pub"),)))


def test_valid_sig_verifies_despite_a_broken_referrer() -> None:
    registry, digest, ref, pem = _registry_with_a_signed_chart_and_a_broken_referrer()
    artifacts = RegistryClient(transport=MockTransport(registry.handle)).find_signatures(
        ref, digest)
    assert len(artifacts.failures) == 1
    result = verify_artifacts(_verifier(pem), artifacts)
    assert result.digest == digest


def test_when_nothing_verifies_the_broken_referrer_is_among_the_reasons() -> None:
    registry, digest, ref, _ = _registry_with_a_signed_chart_and_a_broken_referrer()
    artifacts = RegistryClient(transport=MockTransport(registry.handle)).find_signatures(
        ref, digest)
    with pytest.raises(VerificationFailedError) as caught:
        verify_artifacts(_verifier(generate_key_pair().public_pem), artifacts)
    failures = caught.value.failures
    assert len(failures) == 2
    assert failures[0].startswith(f"tag {signature_tag(digest)} layer 0")
    assert failures[1].startswith(f"referrers tag {digest.replace(':', '-')} referrer {GONE}")


def test_thousands_of_bad_signatures_give_a_summary() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    key = generate_key_pair()
    sig = sign_legacy_with_key(key, simple_signing_payload(f"{registry.host}/{REPO}", digest))
    layers = [(COSIGN_SIGNATURE_LAYER, sig.payload, dict(sig.annotations))] * 3000
    registry.push_artifact(REPO, signature_tag(digest), artifact_type=COSIGN_SIGNATURE_LAYER,
                           layers=layers)
    ref = ChartReference.parse(f"oci://{registry.host}/charts", "demo")
    artifacts = RegistryClient(transport=MockTransport(registry.handle)).find_signatures(
        ref, digest)
    with pytest.raises(VerificationFailedError) as caught:
        verify_artifacts(_verifier(generate_key_pair().public_pem), artifacts)
    failures = caught.value.failures
    assert len(failures) == FAILURES_SHOWN + 2
    assert failures[FAILURES_SHOWN] == (
        f"tag {signature_tag(digest)}: 64 signatures failed; the first 5 are shown, 59 more")
    assert failures[-1] == (f"tag {signature_tag(digest)}: 3,000 layers; only the first 64 "
                            "were considered (the limit), 2,936 were not")


@pytest.mark.parametrize(("result", "label"), [
    (VerificationResult(DIGEST, "legacy", key="cosign.pub"), "legacy_key"),
    (VerificationResult(DIGEST, "legacy", identity=("issuer", "subject")), "legacy_keyless"),
    (VerificationResult(DIGEST, "bundle", key="cosign.pub"), "bundle_key"),
    (VerificationResult(DIGEST, "bundle", identity=("issuer", "subject")), "bundle_keyless"),
])
def test_the_signature_format_label_says_legacy_or_bundle_and_key_or_keyless(
        result: VerificationResult, label: str) -> None:
    assert signature_format(result) == label


def test_each_verdict_is_counted_once_for_metrics() -> None:
    registry, digest, ref, pem = _registry_with_a_signed_chart_and_a_broken_referrer()
    artifacts = RegistryClient(transport=MockTransport(registry.handle)).find_signatures(
        ref, digest)
    before = Samples.parse(metrics.exposition())
    verify_artifacts(_verifier(pem), artifacts)  # the legacy .sig verifies
    with pytest.raises(VerificationFailedError):
        verify_artifacts(_verifier(generate_key_pair().public_pem), artifacts)
    with pytest.raises(NoSignatureFoundError):
        verify_artifacts(_verifier(pem), SignatureArtifacts(digest=digest))
    moved = Samples.parse(metrics.exposition()).since(before)
    name = "chartguard_verifications_total"
    assert moved.total(name, outcome="verified", format="legacy_key") == 1
    assert moved.total(name, outcome="failed", format="none") == 1
    assert moved.total(name, outcome="unsigned", format="none") == 1
    assert moved.total(name) == 3


def test_an_attestation_policy_that_compiled_is_not_compiled_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy text that compiled in this process is not sent to the sandbox again (a busy
    sandbox cannot then fail it); one that did not compile is asked again."""
    from chartguard import cel
    from chartguard.reconcile.verification import check_attestation_policy
    asked: list[str] = []

    def check(expression: str, **kwargs: object) -> None:
        asked.append(expression)
        if "bad" in expression:
            raise cel.CompileError("not valid")

    monkeypatch.setattr(cel, "check", check)
    good = f"predicate.id == '{id(asked)}'"
    check_attestation_policy(good)
    check_attestation_policy(good)
    for _ in range(2):
        with pytest.raises(cel.CompileError):
            check_attestation_policy(f"bad {id(asked)}")
    assert asked == [good, f"bad {id(asked)}", f"bad {id(asked)}"]

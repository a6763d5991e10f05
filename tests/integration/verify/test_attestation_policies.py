"""Attestation requirements with CEL policies (the sandbox process of ``chartguard.cel``):
evaluated over the verified statement by
``chartguard.reconcile.verification.verify_attestations``; met, false, several requirements,
errors and budgets."""

from __future__ import annotations

import hashlib
import time

import pytest

from chartguard.oci import SignatureArtifacts
from chartguard.oci.signatures import Referrer, SignatureLayer
from chartguard.reconcile.verification import (
    AttestationNotMetError,
    verify_attestations,
)
from chartguard.verify import (
    DSSE_MEDIA_TYPE,
    AttestationRequirement,
    LegacySignature,
    PublicKey,
    VerificationPolicy,
    Verifier,
    public_keys_from_pem,
)
from chartguard_testing import cosign_signer as cs

DIGEST = "sha256:" + hashlib.sha256(b"chart manifest").hexdigest()
SLSA = "https://slsa.dev/provenance/v1"
BUILDER = "https://github.com/org/charts/.github/workflows/release.yml@refs/heads/main"
PREDICATE = {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"},
             "runDetails": {"builder": {"id": BUILDER}}}
POLICY = ('predicate.buildDefinition.buildType.startsWith("https://actions.github.io/") && '
          f'predicate.runDetails.builder.id == "{BUILDER}"')


def key_of(pair: cs.KeyPair, name: str = "release.pub") -> PublicKey:
    (key,) = public_keys_from_pem(pair.public_pem, name)
    return key


def artifacts(*, att: tuple[LegacySignature, ...] = (), bundles: tuple[bytes, ...] = (),
              digest: str = DIGEST) -> SignatureArtifacts:
    layers = tuple(SignatureLayer(data=a.payload, media_type=DSSE_MEDIA_TYPE,
                                  annotations=a.annotations, source=a.source) for a in att)
    referrers = tuple(Referrer(artifact_type="application/vnd.dev.sigstore.bundle.v0.3+json",
                               manifest_digest=f"sha256:{n:064x}",
                               layers=(SignatureLayer(data=b, media_type="", annotations={},
                                                      source=f"referrer {n} layer 0"),),
                               source="referrers API")
                      for n, b in enumerate(bundles))
    return SignatureArtifacts(digest=digest, referrers=referrers, attestations=layers)


def keyed(pair: cs.KeyPair, *requirements: AttestationRequirement) -> Verifier:
    return Verifier(VerificationPolicy(keys=(key_of(pair),), attestations=requirements))


@pytest.fixture(scope="module")
def release_key() -> cs.KeyPair:
    return cs.generate_key_pair()


# -- keys -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["att", "bundle"])
def test_key_attestation_meets_the_policy_and_is_listed(release_key: cs.KeyPair,
                                                        form: str) -> None:
    verifier = keyed(release_key, AttestationRequirement(SLSA, POLICY))
    if form == "att":
        found = artifacts(att=(cs.attestation_layer_with_key(release_key, DIGEST, SLSA,
                                                             PREDICATE),))
    else:
        found = artifacts(bundles=(cs.sign_bundle_with_key(release_key, DIGEST,
                                                           predicate_type=SLSA,
                                                           predicate=PREDICATE),))
    (met,) = verify_attestations(verifier, found)
    assert met.requirement == AttestationRequirement(SLSA, POLICY)
    (attestation,) = met.attestations
    assert attestation.predicate_type == SLSA
    assert attestation.result.key is not None
    assert attestation.result.key.startswith("release.pub")
    assert attestation.result.format == ("legacy" if form == "att" else "bundle")


def test_policy_false_names_the_type_and_why(release_key: cs.KeyPair) -> None:
    verifier = keyed(release_key, AttestationRequirement(SLSA, POLICY.replace("main", "dev")))
    found = artifacts(att=(cs.attestation_layer_with_key(release_key, DIGEST, SLSA,
                                                         PREDICATE),))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, found)
    first, reason = caught.value.failures
    assert first == f"attestation {SLSA} not met: 1 attestation of that type, none meets it:"
    assert reason.startswith("test attester: signed by key release.pub")
    assert reason.endswith("refs/heads/dev\"' is false")


def test_every_requirement_must_be_met(release_key: cs.KeyPair) -> None:
    review = "https://chartguard.example/review/v1"
    verifier = keyed(release_key, AttestationRequirement(SLSA, POLICY),
                     AttestationRequirement(review, "predicate.approved == true"))
    slsa = cs.attestation_layer_with_key(release_key, DIGEST, SLSA, PREDICATE)
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, artifacts(att=(slsa,)))
    assert caught.value.failures == (
        f"attestation {review} not met: no attestation of that type for {DIGEST}",)
    approved = cs.attestation_layer_with_key(release_key, DIGEST, review, {"approved": True})
    met = verify_attestations(verifier, artifacts(att=(slsa, approved)))
    assert [m.requirement.predicate_type for m in met] == [SLSA, review]


def test_cel_errors_and_budgets_are_reasons_not_crashes(release_key: cs.KeyPair) -> None:
    deps = [{"uri": f"git+https://example/{n}"} for n in range(500)]
    predicate = {**PREDICATE, "deps": deps}
    layer = cs.attestation_layer_with_key(release_key, DIGEST, SLSA, predicate)
    missing = keyed(release_key, AttestationRequirement(SLSA, "predicate.nothing.here == 1"))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(missing, artifacts(att=(layer,)))
    assert "failed to evaluate the CEL expression" in caught.value.failures[1]
    nested = ("predicate.deps.all(a, predicate.deps.all(b, predicate.deps.all(c, "
              "a.uri + b.uri != c.uri)))")
    expensive = keyed(release_key, AttestationRequirement(SLSA, nested))
    start = time.monotonic()
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(expensive, artifacts(att=(layer,)))
    assert time.monotonic() - start < 10
    assert "Iteration budget exceeded" in caught.value.failures[1]


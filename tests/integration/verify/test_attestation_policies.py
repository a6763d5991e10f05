"""Attestation requirements with CEL policies (the sandbox process of ``chartguard.cel``):
evaluated over the verified statement by
``chartguard.reconcile.verification.verify_attestations``; met, false, several requirements,
errors and budgets."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from chartguard import cel
from chartguard.cel._worker import SETS_BUDGET
from chartguard.oci import SignatureArtifacts
from chartguard.oci.signatures import Referrer, SignatureLayer
from chartguard.reconcile.verification import (
    MAX_POLICY_EVALUATIONS,
    MAX_POLICY_EVALUATIONS_TOTAL,
    AttestationNotMetError,
    attestation_inputs,
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



# -- cost: copies, stopping once met, caps -------------------------------------------------------

def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every CEL evaluation made (its expression), counted on its way to the sandbox."""
    evaluated: list[str] = []
    real = cel.evaluate_boolean

    def counted(expression: str, *args: Any, **kwargs: Any) -> bool:
        evaluated.append(expression)
        return real(expression, *args, **kwargs)

    monkeypatch.setattr(cel, "evaluate_boolean", counted)
    return evaluated


def _replayed(layer: LegacySignature, n: int) -> LegacySignature:
    """The same signed statement in another envelope (the signatures' keyid changed): other
    bytes, same statement."""
    envelope = json.loads(layer.payload)
    envelope["signatures"] = [{**s, "keyid": f"copy {n}"} for s in envelope["signatures"]]
    return LegacySignature(payload=json.dumps(envelope).encode(),
                           annotations=layer.annotations, source=f"copy {n}")


def test_a_replayed_attestation_is_verified_and_evaluated_once(
        release_key: cs.KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone who may push can copy one signed attestation into every .att layer and
    referrer: each statement is verified and evaluated once, whatever the copies."""
    layer = cs.attestation_layer_with_key(release_key, DIGEST, SLSA, PREDICATE,
                                          source="tag att layer 0")
    bundle = cs.sign_bundle_with_key(release_key, DIGEST, predicate_type=SLSA,
                                     predicate=PREDICATE)
    copies = (layer, *(LegacySignature(layer.payload, layer.annotations, f"layer {n}")
                       for n in range(1, 32)),
              *(_replayed(layer, n) for n in range(32)))
    found = artifacts(att=copies, bundles=(bundle,) * 64)
    requirements = tuple(AttestationRequirement(SLSA, f"{POLICY} && {n} >= 0")
                         for n in range(4))
    verifier = keyed(release_key, *requirements)
    attempts: list[str] = []
    real = Verifier._legacy_attestation

    def attempt(self: Verifier, candidate: LegacySignature, *args: Any) -> Any:
        attempts.append(candidate.source)
        return real(self, candidate, *args)

    monkeypatch.setattr(Verifier, "_legacy_attestation", attempt)
    evaluated = _counting(monkeypatch)
    met = verify_attestations(verifier, found)
    assert [m.requirement for m in met] == list(requirements)
    assert all(len(m.attestations) == 1 for m in met)
    assert attempts == ["tag att layer 0"]  # the copies are not verified again
    assert len(evaluated) == 4  # once per requirement (not 4 x 128)
    # the bundle holds the same statement in another envelope: verified once, not evaluated
    # (stopped once met); the CLI's listing goes on through the distinct ones
    (listed, *_) = verify_attestations(verifier, found, every=True)
    assert [a.result.format for a in listed.attestations] == ["legacy"]
    found_all = verifier.attestations(DIGEST, *attestation_inputs(found), (SLSA,))
    assert len(found_all.verified) == 1
    assert found_all.duplicates == 63 + 64


def test_policy_evaluations_stop_once_met_and_are_capped(
        release_key: cs.KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    many = tuple(cs.attestation_layer_with_key(
        release_key, DIGEST, SLSA, {**PREDICATE, "run": n}, source=f"tag att layer {n}")
        for n in range(MAX_POLICY_EVALUATIONS + 8))
    evaluated = _counting(monkeypatch)
    anyone = keyed(release_key, AttestationRequirement(SLSA, "predicate.run >= 0"))
    (met,) = verify_attestations(anyone, artifacts(att=many))
    assert len(met.attestations) == 1
    assert len(evaluated) == 1
    (listed,) = verify_attestations(anyone, artifacts(att=many), every=True)
    assert len(listed.attestations) == MAX_POLICY_EVALUATIONS  # bounded listing
    evaluated.clear()
    # only the last one meets it: past the cap, not met (fail closed), and said so
    last = keyed(release_key, AttestationRequirement(
        SLSA, f"predicate.run == {MAX_POLICY_EVALUATIONS + 7}"))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(last, artifacts(att=many))
    assert len(evaluated) == MAX_POLICY_EVALUATIONS
    assert caught.value.failures[0] == (
        f"attestation {SLSA} not met: {MAX_POLICY_EVALUATIONS} attestations of that type, none "
        f"meets it; 8 more of that type not evaluated (at most {MAX_POLICY_EVALUATIONS} policy "
        f"evaluations per requirement, {MAX_POLICY_EVALUATIONS_TOTAL} per verification):")
    assert caught.value.failures[-1] == (
        f"attestation {SLSA}: {MAX_POLICY_EVALUATIONS} attestations failed; the first 5 are "
        f"shown, {MAX_POLICY_EVALUATIONS - 5} more")
    # all requirements together: at most MAX_POLICY_EVALUATIONS_TOTAL
    evaluated.clear()
    several = keyed(release_key, *(AttestationRequirement(
        SLSA, f"predicate.run == {MAX_POLICY_EVALUATIONS + 7} && {n} >= 0") for n in range(6)))
    with pytest.raises(AttestationNotMetError):
        verify_attestations(several, artifacts(att=many))
    assert len(evaluated) == MAX_POLICY_EVALUATIONS_TOTAL


@pytest.mark.parametrize("policy", [
    "sets.intersects(predicate.a, predicate.b)",
    "predicate.a.all(x, sets.contains(predicate.b, [x]) || true)",
])
def test_sets_functions_cannot_use_the_whole_deadline(release_key: cs.KeyPair,
                                                      policy: str) -> None:
    """sets.* run in Python, outside the runtime's iteration budget: they count their own
    work and end the evaluation past their budget, well within the deadline."""
    layers = tuple(cs.attestation_layer_with_key(
        release_key, DIGEST, SLSA, {"a": list(range(5000)), "b": list(range(5000, 10000)),
                                    "run": n}, source=f"tag att layer {n}") for n in range(3))
    verifier = keyed(release_key, AttestationRequirement(SLSA, policy))
    started = cel.sandbox_processes_started()
    start = time.monotonic()
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, artifacts(att=layers))
    assert time.monotonic() - start < cel.DEADLINE / 2
    # past its budget the evaluation ends and the sandbox restarts; a policy that reached a
    # limit is not evaluated for the other attestations
    assert caught.value.failures[0] == (
        f"attestation {SLSA} not met: 1 attestation of that type, none meets it; 2 more of "
        "that type not evaluated (the policy reached a limit of the CEL sandbox):")
    assert (f"the sets functions exceeded their budget of {SETS_BUDGET:,} values and "
            "comparisons per evaluation") in caught.value.failures[1]
    assert cel.sandbox_processes_started() - started <= 2
    # the sandbox answers the next request (a fresh process)
    assert cel.evaluate_boolean("sets.contains([1, 2], [2])", {}, variables=())

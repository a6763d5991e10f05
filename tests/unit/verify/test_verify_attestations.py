"""Attestation requirements: the verifier's attestation path (legacy ``.att`` layers and bundle
referrers, keys and keyless against the local Sigstore), through
``chartguard.reconcile.verification.verify_attestations`` with presence-only requirements (the
CEL policies run in the sandbox process: tests/integration/verify/test_attestation_policies.py).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from verify_helpers import DIGEST, IDENTITY, ISSUER, OTHER_DIGEST

from chartguard.api.verification import policy_digest
from chartguard.oci import SignatureArtifacts
from chartguard.oci.signatures import Referrer, SignatureLayer
from chartguard.reconcile.verification import (
    AttestationNotMetError,
    verify_attestations,
)
from chartguard.verify import (
    COSIGN_SIGN_PREDICATE,
    DSSE_MEDIA_TYPE,
    AttestationRequirement,
    BundleCandidate,
    InvalidPolicyError,
    LegacySignature,
    OIDCIdentity,
    PublicKey,
    TrustRoot,
    VerificationPolicy,
    Verifier,
    public_keys_from_pem,
)
from chartguard.verify.model import BUNDLE_ANNOTATION
from chartguard_testing import cosign_signer as cs
from chartguard_testing.sigstore_local import LocalSigstore

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


# -- keys ----------------------------------------------------------------------------------------

def test_presence_is_enough_without_a_policy(release_key: cs.KeyPair) -> None:
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    found = artifacts(att=(cs.attestation_layer_with_key(release_key, DIGEST, SLSA),))
    assert len(verify_attestations(verifier, found)) == 1


def test_other_key_other_digest_and_other_type_do_not_count(release_key: cs.KeyPair) -> None:
    other = cs.generate_key_pair()
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    found = artifacts(
        att=(cs.attestation_layer_with_key(other, DIGEST, SLSA, PREDICATE, source="by other"),
             cs.attestation_layer_with_key(release_key, OTHER_DIGEST, SLSA, PREDICATE,
                                           source="for other digest"),
             cs.attestation_layer_with_key(release_key, DIGEST, "https://example/other/v1",
                                           source="other type")),
        bundles=(cs.sign_bundle_with_key(release_key, DIGEST),))  # the signature itself
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, found)
    text = "\n".join(caught.value.failures)
    assert f"attestation {SLSA} not met: 2 attestations of that type, none meets it:" in text
    assert "by other: key release.pub: signature does not match" in text
    assert f"for other digest: key release.pub: attestation subject is {OTHER_DIGEST}" in text
    # neither the other type nor the signature bundle is an attempt at this requirement
    assert "other type" not in text
    assert "referrer 0" not in text


def test_no_attestation_of_the_type(release_key: cs.KeyPair) -> None:
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, artifacts())
    assert caught.value.failures == (
        f"attestation {SLSA} not met: no attestation of that type for {DIGEST}",)


def test_an_attestation_is_never_a_signature(release_key: cs.KeyPair) -> None:
    """The signature path still refuses attestation bundles (the default predicate types)."""
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    assert verifier.policy.bundle_predicate_types == (COSIGN_SIGN_PREDICATE,)
    bundle = cs.sign_bundle_with_key(release_key, DIGEST, predicate_type=SLSA)
    with pytest.raises(Exception, match="an attestation, not a signature"):
        verifier.verify(DIGEST, (), (BundleCandidate(bundle, "referrer"),))


# -- keyless --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyless(local_root: TrustRoot) -> Verifier:
    identity = OIDCIdentity(issuer=f"^{ISSUER}$", subject=f"^{IDENTITY}$")
    # presence only: a unit test starts no CEL sandbox (policies: tests/integration/verify/
    # test_attestation_policies.py)
    return Verifier(VerificationPolicy(identities=(identity,), trust_root=local_root,
                                       attestations=(AttestationRequirement(SLSA),)))


@pytest.mark.parametrize("kind", ["dsse", "intoto"])
def test_keyless_att_layer_with_its_rekor_entry(keyless: Verifier, local_sigstore: LocalSigstore,
                                                kind: str) -> None:
    layer = cs.attestation_layer_keyless(local_sigstore, DIGEST, SLSA, PREDICATE,
                                         IDENTITY, ISSUER, rekor_kind=kind)
    (met,) = verify_attestations(keyless, artifacts(att=(layer,)))
    (attestation,) = met.attestations
    assert attestation.result.identity == (ISSUER, IDENTITY)
    assert attestation.result.rekor_log_index is not None


def test_keyless_bundle_attestation(keyless: Verifier, local_sigstore: LocalSigstore) -> None:
    bundle = cs.sign_bundle_keyless(local_sigstore, DIGEST, IDENTITY, ISSUER,
                                    predicate_type=SLSA, predicate=PREDICATE)
    (met,) = verify_attestations(keyless, artifacts(bundles=(bundle,)))
    assert met.attestations[0].result.format == "bundle"


def test_keyless_attestation_by_another_identity_does_not_count(
        keyless: Verifier, local_sigstore: LocalSigstore) -> None:
    layer = cs.attestation_layer_keyless(local_sigstore, DIGEST, SLSA, PREDICATE,
                                         "intruder@example.com", ISSUER)
    bundle = cs.sign_bundle_keyless(local_sigstore, DIGEST, "intruder@example.com", ISSUER,
                                    predicate_type=SLSA, predicate=PREDICATE)
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(keyless, artifacts(att=(layer,), bundles=(bundle,)))
    text = "\n".join(caught.value.failures)
    assert "2 attestations of that type, none meets it" in text
    assert text.count("certificate identity intruder@example.com not matched") == 2


def test_keyless_att_layer_whose_log_entry_is_for_another_signature(
        keyless: Verifier, local_sigstore: LocalSigstore) -> None:
    layer = cs.attestation_layer_keyless(local_sigstore, DIGEST, SLSA, PREDICATE,
                                         IDENTITY, ISSUER)
    other = cs.attestation_layer_keyless(local_sigstore, DIGEST, SLSA, PREDICATE,
                                         IDENTITY, ISSUER)
    # this layer's envelope and certificate, the other one's Rekor entry
    swapped = LegacySignature(payload=layer.payload,
                              annotations={**layer.annotations,
                                           BUNDLE_ANNOTATION:
                                               other.annotations[BUNDLE_ANNOTATION]},
                              source="swapped")
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(keyless, artifacts(att=(swapped,)))
    assert "swapped: Rekor entry is for another" in "\n".join(caught.value.failures)


# -- the policy's names -------------------------------------------------------------------------

def test_fingerprint_changes_only_when_attestations_are_given(release_key: cs.KeyPair) -> None:
    key = key_of(release_key)
    plain = VerificationPolicy(keys=(key,))
    one = VerificationPolicy(keys=(key,), attestations=(AttestationRequirement(SLSA, POLICY),))
    other = VerificationPolicy(keys=(key,),
                               attestations=(AttestationRequirement(SLSA, POLICY + " "),))
    twice = VerificationPolicy(keys=(key,), attestations=(
        AttestationRequirement(SLSA, POLICY), AttestationRequirement(SLSA, POLICY)))
    assert len({plain.fingerprint, one.fingerprint, other.fingerprint}) == 3
    assert twice.fingerprint == one.fingerprint
    # the fingerprint of a policy without attestations is what it was before the extension
    expected: dict[str, Any] = {
        "keys": [key.fingerprint], "identities": [], "trust_root": "default",
        "require_identity": False, "bundle_predicate_types": [COSIGN_SIGN_PREDICATE]}
    assert plain.fingerprint == policy_digest(expected)


def test_a_type_cannot_be_both_a_signature_and_a_required_attestation(
        release_key: cs.KeyPair) -> None:
    with pytest.raises(InvalidPolicyError, match="one attestation would stand for both"):
        VerificationPolicy(keys=(key_of(release_key),),
                           bundle_predicate_types=(COSIGN_SIGN_PREDICATE, SLSA),
                           attestations=(AttestationRequirement(SLSA),))


def test_unreadable_att_layers_and_unfetched_candidates_are_said(
        release_key: cs.KeyPair) -> None:
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    broken = LegacySignature(payload=b"{not json", annotations={}, source="tag x.att layer 0")
    found = artifacts(att=(broken,))
    found = SignatureArtifacts(digest=found.digest, attestations=found.attestations,
                               failures=("tag x.att layer 1: blob not found",))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, found)
    assert caught.value.failures == (
        f"attestation {SLSA} not met: no attestation of that type for {DIGEST} "
        "(1 could not be read, below)",
        "tag x.att layer 0: not read as an in-toto attestation: DSSE envelope is not "
        "valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1))",
        "tag x.att layer 1: blob not found")


# -- ambiguous statements -------------------------------------------------------------------

def _signed_statement(pair: cs.KeyPair, statement: str, source: str) -> LegacySignature:
    """A key-signed .att layer over exactly ``statement`` (JSON text, as written)."""
    payload = statement.encode()
    kind = "application/vnd.in-toto+json"
    signed = b"DSSEv1 %d %b %d %b" % (len(kind), kind.encode(), len(payload), payload)
    envelope = {"payloadType": kind, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": "", "sig": base64.b64encode(pair.sign(signed)).decode()}]}
    return LegacySignature(payload=json.dumps(envelope).encode(), annotations={},
                           source=source)


_SUBJECT = f'[{{"name": "chart", "digest": {{"sha256": "{DIGEST.split(":")[1]}"}}}}]'
_OTHER = f'{{"sha256": "{OTHER_DIGEST.split(":")[1]}"}}'


@pytest.mark.parametrize(("extra", "keys"), [
    (f', "PredicateType": "{SLSA}"', "'predicateType' and 'PredicateType'"),
    (', "Predicate": {"ok": false}', "'predicate' and 'Predicate'"),
    (f', "predicate_type": "{SLSA}"', "'predicateType' and 'predicate_type'"),
    (', "type": "https://in-toto.io/Statement/v0.1"', "'_type' and 'type'"),
])
def test_keys_one_field_to_go_or_protojson_are_refused(release_key: cs.KeyPair, extra: str,
                                                       keys: str) -> None:
    """Go's encoding/json matches field names case-insensitively, protojson takes the proto
    name too: such a statement reads as two statements; refused, saying which keys."""
    statement = (f'{{"_type": "https://in-toto.io/Statement/v1", "subject": {_SUBJECT}, '
                 f'"predicateType": "{SLSA}", "predicate": {{"ok": true}}{extra}}}')
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, artifacts(att=(_signed_statement(
            release_key, statement, "ambiguous"),)))
    assert (f"ambiguous: key release.pub: in-toto statement has the keys {keys}, one field to "
            "Go's and protobuf's JSON readers") in caught.value.failures


def test_a_subject_with_digest_twice_but_for_case_is_refused(release_key: cs.KeyPair) -> None:
    subject = (f'[{{"name": "chart", "digest": {{"sha256": "{DIGEST.split(":")[1]}"}}, '
               f'"Digest": {_OTHER}}}]')
    statement = (f'{{"_type": "https://in-toto.io/Statement/v1", "subject": {subject}, '
                 f'"predicateType": "{SLSA}", "predicate": {{}}}}')
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, artifacts(att=(_signed_statement(
            release_key, statement, "ambiguous"),)))
    assert "in-toto statement has the keys 'digest' and 'Digest'" in caught.value.failures[1]


def test_a_key_given_twice_is_the_reason_said(release_key: cs.KeyPair) -> None:
    statement = (f'{{"_type": "https://in-toto.io/Statement/v1", "subject": {_SUBJECT}, '
                 f'"predicateType": "{SLSA}", "predicate": {{}}, "predicateType": "{SLSA}"}}')
    verifier = keyed(release_key, AttestationRequirement(SLSA))
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, artifacts(att=(_signed_statement(
            release_key, statement, "twice"),)))
    assert caught.value.failures == (
        f"attestation {SLSA} not met: no attestation of that type for {DIGEST} (1 could not "
        "be read, below)",
        "twice: not read as an in-toto attestation: in-toto statement has the key "
        "'predicateType' more than once")


# -- key-signed bundle attestations logged in Rekor --------------------------------------------

@pytest.mark.parametrize("kind", ["dsse", "intoto"])
def test_key_signed_bundle_attestation_with_its_rekor_entry(
        release_key: cs.KeyPair, local_root: TrustRoot, local_sigstore: LocalSigstore,
        kind: str) -> None:
    """cosign v2's ``attest --new-bundle-format --rekor-entry-type intoto`` logs an
    intoto/0.0.2 entry (as for .att layers); checked, for this key, when the log is known."""
    verifier = Verifier(VerificationPolicy(keys=(key_of(release_key),), trust_root=local_root,
                                           attestations=(AttestationRequirement(SLSA),)))
    bundle = cs.sign_bundle_with_key(release_key, DIGEST, rekor=local_sigstore,
                                     predicate_type=SLSA, predicate=PREDICATE, rekor_kind=kind)
    (met,) = verify_attestations(verifier, artifacts(bundles=(bundle,)))
    assert met.attestations[0].result.rekor_log_index is not None


def test_key_signed_bundle_attestation_logged_for_another_key_is_refused(
        release_key: cs.KeyPair, local_root: TrustRoot, local_sigstore: LocalSigstore) -> None:
    other = cs.generate_key_pair()
    verifier = Verifier(VerificationPolicy(keys=(key_of(release_key),), trust_root=local_root,
                                           attestations=(AttestationRequirement(SLSA),)))
    bundle = json.loads(cs.sign_bundle_with_key(release_key, DIGEST, predicate_type=SLSA,
                                                predicate=PREDICATE))
    # the same envelope, logged (intoto/0.0.2) as signed by another key
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    body = cs._intoto_body(envelope, payload, signature, other.public_pem)
    bundle["verificationMaterial"]["tlogEntries"] = [
        local_sigstore.log(body).tlog_entry("intoto", "0.0.2")]
    with pytest.raises(AttestationNotMetError) as caught:
        verify_attestations(verifier, artifacts(bundles=(json.dumps(bundle).encode(),)))
    assert "referrer 0 layer 0: key release.pub: Rekor entry is for another public key" in (
        caught.value.failures)

"""Every signature case, three ways: library over the registry, the CLI, the CLI on a layout.

Each scenario pushes a chart with real helm, signs it with the test signer, stores the
signature as cosign does (``.sig`` tag or referrer + fallback tag) and states the verdict and
the words the verdict must contain. The same scenario then runs through
``RegistryClient.find_signatures`` + ``verify_artifacts``, through ``chartguard verify
oci://...`` and through ``chartguard verify --local-image`` on a layout copied from the
registry: all three must agree, with the same reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from verify_support import IDENTITY, ISSUER, Outcome, Policy, Signing

from chartguard_testing import cosign_signer as cs


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[Signing], Policy]
    ok: bool
    says: tuple[str, ...]  # each must appear in what the verifier said


def _key_kind(kind: cs.KeyKind) -> Callable[[Signing], Policy]:
    def setup(s: Signing) -> Policy:
        pub = s.key("cosign.pub", kind)
        s.push_legacy(cs.sign_legacy_with_key(s.keys["cosign.pub"], s.payload()))
        return Policy(keys=(pub,))
    return setup


def _several_keys_last_matches(s: Signing) -> Policy:
    keys = tuple(s.key(name) for name in ("a.pub", "b.pub", "c.pub"))
    s.push_legacy(cs.sign_legacy_with_key(s.keys["c.pub"], s.payload()))
    return Policy(keys=keys)


def _several_keys_none_matches(s: Signing) -> Policy:
    keys = tuple(s.key(name) for name in ("a.pub", "b.pub"))
    s.key("stranger.pub")
    s.push_legacy(cs.sign_legacy_with_key(s.keys["stranger.pub"], s.payload()))
    return Policy(keys=keys)


def _several_layers_one_valid(s: Signing) -> Policy:
    pub = s.key("cosign.pub")
    s.key("stranger.pub")
    s.push_legacy(
        cs.sign_legacy_with_key(s.keys["stranger.pub"], s.payload()),  # other key
        cs.sign_legacy_with_key(s.keys["cosign.pub"], s.payload(s.other().digest)),  # other
        cs.sign_legacy_with_key(s.keys["cosign.pub"], s.payload()),  # the good one
    )
    return Policy(keys=(pub,))


def _copied_from_other_chart(s: Signing) -> Policy:
    pub = s.key("cosign.pub")
    # a valid signature of another chart, filed under this chart's .sig tag
    s.push_legacy(cs.sign_legacy_with_key(s.keys["cosign.pub"], s.payload(s.other().digest)))
    return Policy(keys=(pub,))


def _wrong_payload_type(s: Signing) -> Policy:
    pub = s.key("cosign.pub")
    s.push_legacy(cs.sign_legacy_with_key(
        s.keys["cosign.pub"], s.payload(type_="cosign container image attestation")))
    return Policy(keys=(pub,))


def _unsigned(s: Signing) -> Policy:
    return Policy(keys=(s.key("cosign.pub"),))


def _keyless(identity: str = IDENTITY, issuer: str = ISSUER,
             **kw: object) -> Callable[[Signing], Policy]:
    def setup(s: Signing) -> Policy:
        s.push_legacy(cs.sign_legacy_keyless(s.sigstore, s.payload(), identity, issuer,
                                             **kw))  # type: ignore[arg-type]
        return s.keyless_policy()
    return setup


_PAST = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def _bundle_keyless(s: Signing) -> Policy:
    s.push_bundle(cs.sign_bundle_keyless(s.sigstore, s.chart.digest))
    return s.keyless_policy()


def _bundle_keyless_as(identity: str = IDENTITY, foreign: bool = False,
                       ) -> Callable[[Signing], Policy]:
    def setup(s: Signing) -> Policy:
        s.push_bundle(cs.sign_bundle_keyless(s.sigstore, s.chart.digest, identity,
                                             foreign=foreign))
        return s.keyless_policy()
    return setup


def _bundle_with_key(s: Signing) -> Policy:
    pub = s.key("cosign.pub")
    s.push_bundle(cs.sign_bundle_with_key(s.keys["cosign.pub"], s.chart.digest))
    return Policy(keys=(pub,))


def _bundle_other_subject(s: Signing) -> Policy:
    other = s.other().digest
    # a bundle about another chart, listed (and even stored with its subject) under ours
    s.push_bundle(cs.sign_bundle_keyless(s.sigstore, s.chart.digest, subject_digest=other))
    return s.keyless_policy()


def _bundle_referrer_of_other_digest(s: Signing) -> Policy:
    other = s.other()
    # a correct bundle for the other chart, whose referrer manifest points at the other chart,
    # listed in our fallback tag: the subject check of the referrer must drop it
    s.push_bundle(cs.sign_bundle_keyless(s.sigstore, other.digest), subject=other)
    return s.keyless_policy()


SCENARIOS = [
    *(Scenario(f"key-{kind}", _key_kind(kind), True,
               ("legacy signature by key cosign.pub",)) for kind in cs.KEY_KINDS),
    Scenario("several-keys-last-matches", _several_keys_last_matches, True,
             ("legacy signature by key c.pub",)),
    Scenario("several-keys-none-matches", _several_keys_none_matches, False,
             ("key a.pub: signature does not match", "key b.pub: signature does not match")),
    Scenario("several-layers-one-valid", _several_layers_one_valid, True,
             ("by key cosign.pub", "layer 2")),
    Scenario("copied-from-other-chart", _copied_from_other_chart, False,
             ("signed payload is for sha256:",)),
    Scenario("wrong-payload-type", _wrong_payload_type, False,
             ("signed payload type is 'cosign container image attestation'",)),
    Scenario("no-signature", _unsigned, False, ("no signature for sha256:", ".sig")),
    Scenario("keyless-identity-match", _keyless(), True,
             (f"identity {IDENTITY} (issuer {ISSUER})", "Rekor log index")),
    Scenario("keyless-subject-mismatch", _keyless(identity="mallory@example.com"), False,
             ("certificate identity mallory@example.com not matched by",)),
    Scenario("keyless-issuer-mismatch", _keyless(issuer="https://evil.example.com"), False,
             ("certificate issuer https://evil.example.com not matched by",)),
    Scenario("keyless-other-ca", _keyless(foreign=True), False,
             ("certificate does not chain to a Fulcio CA",)),
    Scenario("keyless-expired-at-integrated-time",
             _keyless(not_before=_PAST, not_after=_PAST + timedelta(minutes=10)), False,
             ("was expired at the Rekor integrated time",)),
    Scenario("bundle-keyless", _bundle_keyless, True,
             (f"bundle signature by identity {IDENTITY}",)),
    Scenario("bundle-keyless-subject-mismatch", _bundle_keyless_as("mallory@example.com"),
             False, ("certificate identity mallory@example.com not matched by",)),
    Scenario("bundle-keyless-other-ca", _bundle_keyless_as(foreign=True), False,
             ("certificate does not chain to a Fulcio CA",)),
    Scenario("bundle-with-key", _bundle_with_key, True,
             ("bundle signature by key cosign.pub",)),
    Scenario("bundle-subject-other-digest", _bundle_other_subject, False,
             ("bundle made for another artifact",)),
    Scenario("bundle-referrer-of-other-digest", _bundle_referrer_of_other_digest, False,
             ("no signature for sha256:",)),
]

WAYS = ("library", "cli", "layout")


def _run(way: str, s: Signing, policy: Policy,
         capsys: pytest.CaptureFixture[str]) -> Outcome:
    if way == "library":
        return s.via_library(policy)
    if way == "cli":
        return s.via_cli(policy, capsys)
    return s.via_layout(policy, capsys)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda sc: sc.name)
def test_verdict_and_reason(scenario: Scenario, way: str, signing: Signing,
                            capsys: pytest.CaptureFixture[str]) -> None:
    policy = scenario.setup(signing)
    outcome = _run(way, signing, policy, capsys)
    assert outcome.code == (0 if scenario.ok else 1), outcome.text
    for words in scenario.says:
        assert words in outcome.text, outcome.text
    if way == "library":
        assert outcome.digest == signing.chart.digest
    else:  # every verdict the CLI prints names the digest
        assert signing.chart.digest in outcome.text
    if way != "library" and not scenario.ok:
        assert "not verified" in outcome.text or "no signature" in outcome.text

"""What a registry serves cannot forge lines or terminal escapes, crash or hang the verifier.

Every failure is exactly one line with outside text escaped; a keyless payload's claims are
quoted only after its certificate is proven; hostile JSON nesting is a reason, not a crash.
"""

from __future__ import annotations

import json

import pytest
from verify_helpers import DIGEST, IDENTITY, ISSUER

from chartguard.verify import (
    BundleCandidate,
    InvalidTrustRootError,
    LegacySignature,
    OIDCIdentity,
    PublicKey,
    TrustRoot,
    VerificationFailedError,
    VerificationPolicy,
    VerificationResult,
    Verifier,
)
from chartguard_testing.cosign_signer import (
    KeyPair,
    generate_key_pair,
    sign_bundle_keyless,
    sign_bundle_with_key,
    sign_legacy_keyless,
    sign_legacy_with_key,
)
from chartguard_testing.sigstore_local import LocalSigstore

FORGED = "ok\nchartguard: verified sha256:0000 \x1b[32mOK\x1b[0m"
ESCAPED = "ok\\x0achartguard: verified sha256:0000 \\x1b[32mOK\\x1b[0m"


def _evil_payload(*, type_: str = FORGED, digest: str = DIGEST) -> bytes:
    return json.dumps({"critical": {"identity": {"docker-reference": "r"},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": type_}, "optional": None}).encode()


def _one_line(verifier: Verifier, legacy: list[LegacySignature],
              bundles: list[BundleCandidate]) -> str:
    with pytest.raises(VerificationFailedError) as err:
        verifier.verify(DIGEST, legacy, bundles)
    (line,) = err.value.failures
    assert str(err.value) == line  # the whole message is that one line
    assert "\n" not in line
    assert "\x1b" not in line
    return line


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    return generate_key_pair("ecdsa-p256")


@pytest.fixture(scope="module")
def key_verifier(pair: KeyPair) -> Verifier:
    return Verifier(VerificationPolicy(keys=(PublicKey.from_pem(pair.public_pem, "k.pub"),)))


def test_a_key_signed_payload_with_newline_and_escape_is_one_escaped_line(
    pair: KeyPair, key_verifier: Verifier
) -> None:
    sig = sign_legacy_with_key(pair, _evil_payload(), source="tag sha256-x.sig layer 0")
    assert _one_line(key_verifier, [sig], []) == (
        f"tag sha256-x.sig layer 0: key k.pub: signed payload type is '{ESCAPED}', not "
        "'cosign container image signature' (not a cosign image signature)")


def test_a_signed_digest_claim_with_newline_is_one_escaped_line(
    pair: KeyPair, key_verifier: Verifier
) -> None:
    payload = _evil_payload(type_="cosign container image signature", digest=FORGED)
    line = _one_line(key_verifier, [sign_legacy_with_key(pair, payload, source="l")], [])
    assert line.startswith(f"l: key k.pub: signed payload is for {ESCAPED}, not {DIGEST}")


def test_a_keyless_payload_from_a_trusted_ca_is_quoted_escaped(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, _evil_payload(), source="l")
    assert ESCAPED in _one_line(keyless_verifier, [sig], [])


def test_a_keyless_payload_is_not_quoted_before_its_certificate_is_proven(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    """Signed by an attacker's own CA: the reason is the chain, the payload is never read."""
    sig = sign_legacy_keyless(local_sigstore, _evil_payload(), foreign=True, source="l")
    line = _one_line(keyless_verifier, [sig], [])
    assert "does not chain to a Fulcio CA" in line
    assert "chartguard: verified" not in line
    assert "signed payload" not in line


def test_a_registry_named_source_with_newline_is_escaped(
    pair: KeyPair, key_verifier: Verifier
) -> None:
    sig = sign_legacy_with_key(pair, _evil_payload(), source=f"referrer {FORGED}")
    assert _one_line(key_verifier, [sig], []).startswith(f"referrer {ESCAPED}: key k.pub:")


def test_an_annotation_and_a_bundle_media_type_with_escapes_are_one_line_each(
    pair: KeyPair, key_verifier: Verifier
) -> None:
    sig = LegacySignature(payload=b"{}", annotations={
        "dev.cosignproject.cosign/signature": FORGED}, source="l")
    assert _one_line(key_verifier, [sig], []) == (
        "l: annotation dev.cosignproject.cosign/signature is not valid base64")
    bundle = json.dumps({"mediaType": FORGED, "verificationMaterial": {}}).encode()
    assert _one_line(key_verifier, [], [BundleCandidate(bundle, "b")]) == (
        f"b: not a Sigstore bundle (mediaType '{ESCAPED}')")


def test_a_keyless_bundle_attestation_type_with_escapes_is_one_line(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    data = sign_bundle_keyless(local_sigstore, DIGEST, predicate_type=FORGED)
    line = _one_line(keyless_verifier, [], [BundleCandidate(data, "b")])
    assert line.startswith(f"b: bundle predicate type is '{ESCAPED}', not ")


def test_many_failures_are_as_many_lines(pair: KeyPair, key_verifier: Verifier) -> None:
    sigs = [sign_legacy_with_key(pair, _evil_payload(), source=f"l{i}") for i in range(3)]
    with pytest.raises(VerificationFailedError) as err:
        key_verifier.verify(DIGEST, sigs, [])
    assert len(str(err.value).splitlines()) == 3


def test_a_result_summary_escapes_its_source(pair: KeyPair, key_verifier: Verifier) -> None:
    result = VerificationResult(digest=DIGEST, format="legacy", key="k.pub", source=FORGED)
    assert result.summary() == f"verified {DIGEST}: legacy signature by key k.pub; from {ESCAPED}"


# -- hostile nesting ----------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def _deep_object(key: str) -> bytes:
    return b'{"' + key.encode() + b'":' + DEEP + b"}"


def test_a_100000_deep_bundle_is_a_reason_for_keyless_and_key_policies(
    key_verifier: Verifier, keyless_verifier: Verifier
) -> None:
    for verifier in (key_verifier, keyless_verifier):
        line = _one_line(verifier, [], [BundleCandidate(_deep_object("mediaType"), "b")])
        assert line == "b: bundle is nested deeper than 64 levels"


def test_a_100000_deep_rekor_entry_body_in_a_bundle_is_a_reason(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    import base64

    document = json.loads(sign_bundle_keyless(local_sigstore, DIGEST))
    entry = document["verificationMaterial"]["tlogEntries"][0]
    entry["canonicalizedBody"] = base64.b64encode(_deep_object("kind")).decode()
    line = _one_line(keyless_verifier, [], [BundleCandidate(json.dumps(document).encode(), "b")])
    assert line == "b: Rekor entry body is nested deeper than 64 levels"


def test_a_100000_deep_rekor_annotation_is_a_reason(
    local_sigstore: LocalSigstore, keyless_verifier: Verifier
) -> None:
    sig = sign_legacy_keyless(local_sigstore, _evil_payload(), source="l")
    deep = {**sig.annotations, "dev.sigstore.cosign/bundle": _deep_object("Payload").decode()}
    line = _one_line(keyless_verifier, [LegacySignature(sig.payload, deep, "l")], [])
    assert line == "l: Rekor bundle annotation is nested deeper than 64 levels"


def test_a_100000_deep_statement_in_a_signed_bundle_is_a_reason(pair: KeyPair) -> None:
    """The statement is signed, so the key matches: the parser still meets the nesting."""
    import base64

    statement = _deep_object("_type")
    kind = b"application/vnd.in-toto+json"
    document = json.loads(sign_bundle_with_key(pair, DIGEST))
    document["dsseEnvelope"]["payload"] = base64.b64encode(statement).decode()
    pae = b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(statement), statement)
    document["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(pair.sign(pae)).decode()
    verifier = Verifier(VerificationPolicy(keys=(PublicKey.from_pem(pair.public_pem, "k.pub"),)))
    line = _one_line(verifier, [], [BundleCandidate(json.dumps(document).encode(), "b")])
    assert line == "b: key k.pub: in-toto statement is nested deeper than 64 levels"


def test_a_100000_deep_trusted_root_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidTrustRootError, match=r"^mine\.json is nested deeper than 64 "):
        TrustRoot.from_json(_deep_object("tlogs"), name="mine.json")


def test_an_issuer_with_a_bidi_override_is_never_matched_and_shown_escaped(
    local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    sig = sign_legacy_keyless(local_sigstore, _evil_payload(type_="cosign container image "
                                                            "signature"),
                              issuer=ISSUER + "\u202e", source="l")
    policy = VerificationPolicy(identities=(OIDCIdentity(".*", f"^{IDENTITY}$"),),
                                trust_root=local_root)
    assert _one_line(Verifier(policy), [sig], []) == (
        f"l: certificate identity '{ISSUER}\\u202e' contains a control character: "
        "never matched")

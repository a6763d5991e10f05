"""Finding the signatures of a digest when some candidates are broken or there are too many:
each bad one is recorded (escaped) and the others are still looked at."""

from __future__ import annotations

import json

import pytest

from chartguard.oci import (
    BUNDLE_ARTIFACT_TYPE,
    COSIGN_SIGNATURE_LAYER,
    ChartReference,
    DeadlineExceededError,
    InvalidReferenceError,
    Limits,
    RegistryClient,
    referrers_tag,
    signature_tag,
)
from chartguard.oci.mediatypes import OCI_INDEX
from chartguard_testing.memory_registry import (
    FakeClock,
    MemoryRegistry,
    MockResponse,
    MockTransport,
)

REPO = "charts/demo"
FAKE = "sha256:" + "ab" * 32


def _setup(**kw: object) -> tuple[MemoryRegistry, str, ChartReference]:
    registry = MemoryRegistry(**kw)  # type: ignore[arg-type]
    digest = registry.push_chart(REPO, "1.0.0")
    return registry, digest, ChartReference.parse(f"oci://{registry.host}/charts", "demo")


def _client(registry: MemoryRegistry, **kw: object) -> RegistryClient:
    return RegistryClient(transport=MockTransport(registry.handle), **kw)  # type: ignore[arg-type]


def test_tags_derived_from_a_digest_have_one_spelling() -> None:
    assert signature_tag(FAKE) == "sha256-" + "ab" * 32 + ".sig"
    assert referrers_tag(FAKE) == "sha256-" + "ab" * 32
    with pytest.raises(InvalidReferenceError, match="not a sha256 digest"):
        signature_tag("sha256:AB")


def test_a_signature_manifest_with_thousands_of_layers_is_capped_and_says_so() -> None:
    registry, digest, ref = _setup()
    layers: list[tuple[str, bytes, dict[str, str]]] = [
        (COSIGN_SIGNATURE_LAYER, f"payload {n}".encode(), {}) for n in range(3000)]
    registry.push_artifact(REPO, signature_tag(digest), artifact_type=COSIGN_SIGNATURE_LAYER,
                           layers=layers)
    client = _client(registry, limits=Limits(max_signature_layers=10))
    transport = client._http
    found = client.find_signatures(ref, digest)
    assert len(found.legacy) == 10
    assert found.failures == (f"tag {signature_tag(digest)}: 3,000 layers; only the first 10 "
                              "were considered (the limit), 2,990 were not",)
    assert isinstance(transport, MockTransport)
    assert len([p for p in transport.paths() if "/blobs/" in p]) == 10


def test_a_missing_or_altered_legacy_layer_does_not_hide_the_next_one() -> None:
    registry, digest, ref = _setup()
    layers: list[tuple[str, bytes, dict[str, str]]] = [
        (COSIGN_SIGNATURE_LAYER, f"payload {n}".encode(), {}) for n in range(3)]
    _, _ = registry.push_artifact(REPO, signature_tag(digest),
                                  artifact_type=COSIGN_SIGNATURE_LAYER, layers=layers)
    missing = registry.push_blob(b"payload 0")["digest"]
    del registry.blobs[missing]
    altered = registry.push_blob(b"payload 1")["digest"]
    registry.blobs[altered] = b"payload X"
    found = _client(registry).find_signatures(ref, digest)
    assert [layer.data for layer in found.legacy] == [b"payload 2"]
    assert len(found.failures) == 2
    assert "layer 0: blob" in found.failures[0]
    assert "missing" in found.failures[0]
    assert "layer 1: blob" in found.failures[1]
    assert "altered" in found.failures[1]


def test_broken_referrers_are_recorded_and_the_good_one_kept() -> None:
    registry, digest, ref = _setup(referrers_api=True)
    good, _ = registry.push_artifact(REPO, None, artifact_type=BUNDLE_ARTIFACT_TYPE,
                                     layers=[(BUNDLE_ARTIFACT_TYPE, b'{"bundle": 1}', {})],
                                     subject=digest)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        # listed as a bundle, but the registry has no such manifest
        {"mediaType": "x", "digest": FAKE, "size": 10, "artifactType": BUNDLE_ARTIFACT_TYPE},
        # listed as a bundle, but it is a chart with no subject: not a signature of it
        {"mediaType": "x", "digest": digest, "size": 10,
         "artifactType": BUNDLE_ARTIFACT_TYPE},
        {"mediaType": "x", "digest": good, "size": 10, "artifactType": BUNDLE_ARTIFACT_TYPE},
    ]}
    registry.faults[("GET", f"/v2/{REPO}/referrers/{digest}")] = lambda: MockResponse(
        200, json.dumps(index).encode(), headers={"Content-Type": OCI_INDEX})
    found = _client(registry).find_signatures(ref, digest)
    assert [r.manifest_digest for r in found.referrers] == [good]
    (failure,) = found.failures
    assert f"referrer {FAKE}: manifest" in failure
    assert "does not exist" in failure


def test_failure_text_from_the_registry_is_escaped() -> None:
    registry, digest, ref = _setup()
    registry.faults[("GET", f"/v2/{REPO}/manifests/{signature_tag(digest)}")] = \
        lambda: MockResponse(200, b'{"layers": 7, "x": "\n\x1b[31m"}',
                             headers={"Content-Type": "evil\n\x1b[31mtype"})
    found = _client(registry).find_signatures(ref, digest)
    assert len(found.failures) == 1
    assert "\n" not in found.failures[0]
    assert "\x1b" not in found.failures[0]


def test_a_registry_that_stalls_ends_discovery_at_the_deadline() -> None:
    registry, digest, ref = _setup()
    clock = FakeClock()
    original = registry.handle

    def slow(request: object) -> MockResponse:
        clock.now += 3
        return original(request)  # type: ignore[arg-type]

    client = RegistryClient(transport=MockTransport(slow), clock=clock, sleep=clock.sleep,
                            deadline=5)
    with pytest.raises(DeadlineExceededError):
        client.find_signatures(ref, digest)

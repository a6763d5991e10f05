"""Finding signature artifacts of a digest: cosign's ``.sig`` tag, and OCI 1.1 referrers
through the ``sha256-<hex>`` fallback tag index (this registry has no referrers API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oci_helpers import OCI_INDEX, OCI_MANIFEST, PaginatingProxy, RawRegistry, reference

from chartguard.oci import (
    BUNDLE_ARTIFACT_TYPE,
    COSIGN_SIGNATURE_ANNOTATION,
    COSIGN_SIGNATURE_LAYER,
    OCI_EMPTY,
    ChartReference,
    RegistryClient,
)
from chartguard.reconcile.verification import build_policy, verify_artifacts
from chartguard.verify import VerificationFailedError, Verifier
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.cosign_signer import (
    KeyPair,
    generate_key_pair,
    sign_legacy_with_key,
    simple_signing_payload,
)
from chartguard_testing.registry import Registry
from chartguard_testing.registry_signer import push_legacy_signature

BUNDLE = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                     "dsseEnvelope": {"payload": "e30=", "signatures": []}}).encode()
SBOM_TYPE = "application/spdx+json"


def _subject(raw: RawRegistry, chart: PushedChart) -> dict[str, Any]:
    manifest = json.dumps(raw.manifest("charts/demo", chart.digest),
                          separators=(",", ":")).encode()
    return {"mediaType": OCI_MANIFEST, "digest": chart.digest, "size": len(manifest)}


def _push_referrers_tag(raw: RawRegistry, chart: PushedChart,
                        descriptors: list[dict[str, Any]]) -> None:
    """What an OCI 1.1 client (cosign v3, oras) writes when the registry has no API."""
    raw.push_manifest("charts/demo", chart.digest.replace(":", "-"),
                      {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors},
                      media_type=OCI_INDEX)


def test_bundle_referrer_is_found_through_the_fallback_tag(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    subject = _subject(raw_registry, chart)
    bundle_digest, bundle_desc = raw_registry.push_artifact(
        "charts/demo", "bundle", config_type=OCI_EMPTY, artifact_type=BUNDLE_ARTIFACT_TYPE,
        layers=[(BUNDLE_ARTIFACT_TYPE, BUNDLE,
                 {"dev.sigstore.bundle.content": "dsse-envelope"})], subject=subject)
    _, sbom_desc = raw_registry.push_artifact(
        "charts/demo", "sbom", config_type=OCI_EMPTY, artifact_type=SBOM_TYPE,
        layers=[(SBOM_TYPE, b"{}", {})], subject=subject)
    _push_referrers_tag(raw_registry, chart, [sbom_desc, bundle_desc])

    found = make_client(registry).find_signatures(reference(chart), chart.digest)

    hex_tag = chart.digest.replace(":", "-")
    assert found.digest == chart.digest
    assert found.legacy == ()
    assert [r.manifest_digest for r in found.referrers] == [bundle_digest]  # not the SBOM
    (referrer,) = found.referrers
    assert referrer.artifact_type == BUNDLE_ARTIFACT_TYPE
    assert referrer.source == f"referrers tag {hex_tag}"
    (layer,) = referrer.layers
    assert layer.data == BUNDLE
    assert layer.media_type == BUNDLE_ARTIFACT_TYPE
    assert layer.annotations == {"dev.sigstore.bundle.content": "dsse-envelope"}
    assert found.looked_at == (f"tag {hex_tag}.sig", "referrers API", f"referrers tag {hex_tag}")


def test_other_artifact_types_are_found_when_asked_for(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    subject = _subject(raw_registry, chart)
    _, sbom_desc = raw_registry.push_artifact(
        "charts/demo", "sbom", config_type=OCI_EMPTY, artifact_type=SBOM_TYPE,
        layers=[(SBOM_TYPE, b"{}", {})], subject=subject)
    _push_referrers_tag(raw_registry, chart, [sbom_desc])
    client = make_client(registry)
    assert client.find_signatures(reference(chart), chart.digest).referrers == ()
    found = client.find_signatures(reference(chart), chart.digest, [SBOM_TYPE])
    assert [r.artifact_type for r in found.referrers] == [SBOM_TYPE]


def test_older_writers_artifact_type_in_config_and_foreign_subjects(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    other = helm_env.make_chart(registry, "demo", "2.0.0")
    # no artifactType anywhere but the config media type (pre-1.1 writers)
    old_digest, old_desc = raw_registry.push_artifact(
        "charts/demo", "old", config_type=BUNDLE_ARTIFACT_TYPE,
        layers=[(BUNDLE_ARTIFACT_TYPE, BUNDLE, {})], subject=_subject(raw_registry, chart))
    # listed under this digest's tag, but its subject is another chart: not a referrer of it
    _, foreign_desc = raw_registry.push_artifact(
        "charts/demo", "foreign", config_type=OCI_EMPTY, artifact_type=BUNDLE_ARTIFACT_TYPE,
        layers=[(BUNDLE_ARTIFACT_TYPE, b'{"other": true}', {})],
        subject=_subject(raw_registry, other))
    _push_referrers_tag(raw_registry, chart, [old_desc, foreign_desc])
    found = make_client(registry).find_signatures(reference(chart), chart.digest)
    assert [(r.manifest_digest, r.artifact_type) for r in found.referrers] == [
        (old_digest, BUNDLE_ARTIFACT_TYPE)]


def test_legacy_cosign_signature_tag_is_read_layer_by_layer(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": chart.digest},
                                       "type": "cosign container image signature"}}).encode()
    sig_tag = chart.digest.replace(":", "-") + ".sig"
    raw_registry.push_artifact(
        "charts/demo", sig_tag, config_type="application/vnd.oci.image.config.v1+json",
        layers=[(COSIGN_SIGNATURE_LAYER, payload, {COSIGN_SIGNATURE_ANNOTATION: "MEUCIQ=="}),
                (COSIGN_SIGNATURE_LAYER, payload + b" ", {COSIGN_SIGNATURE_ANNOTATION: "x"})])
    found = make_client(registry).find_signatures(reference(chart), chart.digest)
    assert [layer.data for layer in found.legacy] == [payload, payload + b" "]
    assert found.legacy[0].annotations == {COSIGN_SIGNATURE_ANNOTATION: "MEUCIQ=="}
    assert found.legacy[0].media_type == COSIGN_SIGNATURE_LAYER
    assert [layer.source for layer in found.legacy] == [f"tag {sig_tag} layer 0",
                                                        f"tag {sig_tag} layer 1"]
    assert found.referrers == ()


def test_altered_signature_bytes_are_a_failure_of_that_candidate_only(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    _, desc = raw_registry.push_artifact(
        "charts/demo", "bundle", config_type=OCI_EMPTY, artifact_type=BUNDLE_ARTIFACT_TYPE,
        layers=[(BUNDLE_ARTIFACT_TYPE, BUNDLE, {})], subject=_subject(raw_registry, chart))
    _push_referrers_tag(raw_registry, chart, [desc])
    layer_digest = raw_registry.manifest("charts/demo", desc["digest"])["layers"][0]["digest"]
    path = registry.blob_path(layer_digest)
    path.write_bytes(path.read_bytes().replace(b"e30=", b"e31="))
    found = make_client(registry).find_signatures(reference(chart), chart.digest)
    assert found.referrers[0].layers == ()  # the altered layer is not handed to verification
    (failure,) = found.failures
    assert failure.startswith(f"referrers tag {chart.digest.replace(':', '-')} referrer ")
    assert f"blob {layer_digest}" in failure
    assert "altered or corrupted" in failure


def test_unsigned_digest_has_nothing_and_says_where_it_looked(
        registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    found = make_client(registry).find_signatures(reference(chart), chart.digest)
    assert (found.legacy, found.referrers) == ((), ())
    assert len(found.looked_at) == 3


@pytest.mark.parametrize(("api", "source"), [
    ("index", "referrers API"),
    ("junk", "referrers tag"),  # an answer that is not an index means: use the tag
    ("400", "referrers tag"),  # registries without the API answer 404 (the real one), 400,
    ("405", "referrers tag"),  # 405 or 406: each means "use the tag"
    ("406", "referrers tag"),
])
def test_referrers_api_is_used_when_the_registry_has_one(
        api: str, source: str, registry: Registry, helm_env: HelmEnv,
        raw_registry: RawRegistry, make_client: Callable[..., RegistryClient],
        paginating_proxy: Callable[..., PaginatingProxy]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    digest, desc = raw_registry.push_artifact(
        "charts/demo", "bundle", config_type=OCI_EMPTY, artifact_type=BUNDLE_ARTIFACT_TYPE,
        layers=[(BUNDLE_ARTIFACT_TYPE, BUNDLE, {})], subject=_subject(raw_registry, chart))
    _push_referrers_tag(raw_registry, chart, [desc])
    proxy = paginating_proxy(100, referrers_api=api)
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    found = make_client(registry).find_signatures(ref, chart.digest)
    assert [r.manifest_digest for r in found.referrers] == [digest]
    assert found.referrers[0].source.startswith(source)
    assert ("GET", f"/v2/charts/demo/referrers/{chart.digest}") in proxy.seen
    tag_lookup = ("GET", f"/v2/charts/demo/manifests/{chart.digest.replace(':', '-')}")
    assert (tag_lookup in proxy.seen) is (api != "index")


def _valid_sig_and_broken_referrers(registry: Registry, helm_env: HelmEnv,
                                    raw_registry: RawRegistry) -> tuple[PushedChart, KeyPair]:
    """A chart signed with a key (.sig), and a referrers tag listing a bundle whose manifest
    bytes were altered in storage (the registry lies about its digest) and one whose layer
    bytes were."""
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    key = generate_key_pair()
    payload = simple_signing_payload(chart.repository, chart.digest)
    push_legacy_signature(registry, chart.repository, chart.digest,
                          [sign_legacy_with_key(key, payload)])
    _, altered = raw_registry.push_artifact(
        "charts/demo", "bundle", config_type=OCI_EMPTY, artifact_type=BUNDLE_ARTIFACT_TYPE,
        layers=[(BUNDLE_ARTIFACT_TYPE, BUNDLE, {})], subject=_subject(raw_registry, chart))
    layer = raw_registry.manifest("charts/demo", altered["digest"])["layers"][0]["digest"]
    registry.blob_path(layer).write_bytes(b"not the bundle")
    _, lying = raw_registry.push_artifact(
        "charts/demo", "bundle-2", config_type=OCI_EMPTY, artifact_type=BUNDLE_ARTIFACT_TYPE,
        layers=[(BUNDLE_ARTIFACT_TYPE, BUNDLE + b" ", {})],
        subject=_subject(raw_registry, chart))
    _push_referrers_tag(raw_registry, chart, [lying, altered])
    registry.blob_path(lying["digest"]).write_bytes(b"\x1b[31m not a manifest \n")
    return chart, key


def test_valid_sig_verifies_although_referrers_are_broken(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient], tmp_path: Path) -> None:
    chart, key = _valid_sig_and_broken_referrers(registry, helm_env, raw_registry)
    found = make_client(registry).find_signatures(reference(chart), chart.digest)
    assert len(found.legacy) == 1
    assert len(found.failures) == 2
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(key.public_pem)
    result = verify_artifacts(Verifier(build_policy(key_files=[pub])), found)
    assert result.digest == chart.digest


def test_broken_referrers_are_reasons_when_nothing_verifies(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient], tmp_path: Path) -> None:
    chart, _ = _valid_sig_and_broken_referrers(registry, helm_env, raw_registry)
    found = make_client(registry).find_signatures(reference(chart), chart.digest)
    other = tmp_path / "other.pub"
    other.write_bytes(generate_key_pair().public_pem)
    with pytest.raises(VerificationFailedError) as caught:
        verify_artifacts(Verifier(build_policy(key_files=[other])), found)
    hex_tag = chart.digest.replace(":", "-")
    failures = caught.value.failures
    assert len(failures) == 3
    assert failures[0].startswith(f"tag {hex_tag}.sig layer 0: ")
    assert failures[1].startswith(f"referrers tag {hex_tag} referrer sha256:")
    assert "500" in failures[1]  # distribution cannot parse what its storage now holds
    assert failures[2].startswith(f"referrers tag {hex_tag} referrer ")
    assert "altered or corrupted" in failures[2]

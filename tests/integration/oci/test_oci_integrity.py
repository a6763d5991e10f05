"""What the registry serves is checked before it is used: digests, sizes, media types; and
each failure is its own clear error, reported within seconds."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable

import pytest
from oci_helpers import OCI_INDEX, RawRegistry, digest_of, reference

from chartguard.oci import (
    HELM_CHART_LAYER,
    HELM_CONFIG,
    HELM_LEGACY_CHART_LAYER,
    BlobNotFoundError,
    ChartReference,
    DigestMismatchError,
    InvalidReferenceError,
    Limits,
    ManifestNotFoundError,
    OCIError,
    RegistryClient,
    RegistryUnreachableError,
    SizeLimitExceededError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
)
from chartguard_testing import procs
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.registry import Registry

FAST = 3.0  # seconds


def _flip_byte(registry: Registry, digest: str) -> None:
    path = registry.blob_path(digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _layer_digest(raw: RawRegistry, chart: PushedChart, kind: str) -> str:
    manifest = raw.manifest("charts/demo", chart.digest)
    return str(manifest["config"]["digest"] if kind == "config"
               else manifest["layers"][0]["digest"])


@pytest.mark.parametrize("kind", ["layer", "config"])
def test_altered_blob_in_storage_is_refused(
        kind: str, registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    blob = _layer_digest(raw_registry, chart, kind)
    _flip_byte(registry, blob)
    client = make_client(registry)
    with pytest.raises(DigestMismatchError, match=f"blob {blob}.*altered or corrupted"):
        client.fetch_chart(reference(chart), chart.digest)


def test_altered_manifest_in_storage_is_refused(
        registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    _flip_byte(registry, chart.digest)
    client = make_client(registry)
    with pytest.raises(DigestMismatchError, match=f"{chart.digest}.*not the digest asked"):
        client.fetch_chart(reference(chart), chart.digest)


def test_layer_over_the_cap_is_refused_before_download(
        registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    size = chart.package.stat().st_size
    client = make_client(registry, limits=Limits(max_layer_bytes=size - 1))
    with pytest.raises(SizeLimitExceededError, match=f"chart layer .* is {size} bytes, over "
                                                     f"the limit of {size - 1}"):
        client.fetch_chart(reference(chart), chart.digest)
    assert make_client(registry, limits=Limits(max_layer_bytes=size)).fetch_chart(
        reference(chart), chart.digest).layer == chart.package.read_bytes()


def _chart_manifest(raw: RawRegistry, layer: bytes, *, config_type: str = HELM_CONFIG,
                    layer_type: str = HELM_CHART_LAYER, size: int | None = None,
                    tag: str = "1.0.0") -> str:
    config = raw.push_blob("charts/demo", json.dumps(
        {"name": "demo", "version": tag, "apiVersion": "v2"}).encode())
    desc = raw.push_blob("charts/demo", layer)
    if size is not None:
        desc["size"] = size
    return raw.push_manifest("charts/demo", tag, {
        "schemaVersion": 2, "config": {"mediaType": config_type, **config},
        "layers": [{"mediaType": layer_type, **desc}]})


def test_oversized_layer_with_default_limits_is_refused_fast(
        registry: Registry, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    digest = _chart_manifest(raw_registry, os.urandom(10 * 1024 * 1024 + 1))
    ref = ChartReference.parse(registry.oci("charts"), "demo")
    started = time.monotonic()
    with pytest.raises(SizeLimitExceededError, match="10485761 bytes, over the limit of "
                                                     "10485760"):
        make_client(registry).fetch_chart(ref, digest)
    assert time.monotonic() - started < FAST


def test_layer_larger_than_its_descriptor_is_refused_unread(
        registry: Registry, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    # the manifest claims 100 bytes; the registry stores (and serves) 256 KiB
    digest = _chart_manifest(raw_registry, os.urandom(256 * 1024), size=100)
    ref = ChartReference.parse(registry.oci("charts"), "demo")
    with pytest.raises(DigestMismatchError, match="262144 bytes or more but its descriptor "
                                                  "says 100"):
        make_client(registry).fetch_chart(ref, digest)


def test_manifest_of_the_wrong_media_types_is_refused(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "0.1.0")
    tgz = chart.package.read_bytes()
    client = make_client(registry)
    ref = reference(chart)
    image = _chart_manifest(raw_registry, tgz, tag="1.0.0",
                            config_type="application/vnd.oci.image.config.v1+json")
    with pytest.raises(UnsupportedMediaTypeError,
                       match=f"{image}.*config media type 'application/vnd.oci.image.config"):
        client.fetch_chart(ref, image)
    odd_layer = _chart_manifest(raw_registry, tgz, tag="1.0.1",
                                layer_type="application/vnd.oci.image.layer.v1.tar+gzip")
    with pytest.raises(UnsupportedMediaTypeError, match="layer 0 of media type"):
        client.fetch_chart(ref, odd_layer)
    index = raw_registry.push_manifest("charts/demo", "1.0.2", {
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": chart.digest, "size": len(json.dumps(
                 raw_registry.manifest("charts/demo", chart.digest),
                 separators=(",", ":")))}]}, media_type=OCI_INDEX)
    assert client.resolve(ref, "1.0.2").digest == index
    with pytest.raises(UnsupportedMediaTypeError, match=re.escape(
            f"{index} of {ref} has media type '{OCI_INDEX}', not a Helm chart")):
        client.fetch_chart(ref, index)


def test_legacy_chart_layer_media_type_is_accepted(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "0.1.0")
    digest = _chart_manifest(raw_registry, chart.package.read_bytes(), tag="0.1.0",
                             layer_type=HELM_LEGACY_CHART_LAYER)
    artifact = make_client(registry).fetch_chart(reference(chart), digest)
    assert artifact.layer == chart.package.read_bytes()


def test_each_failure_is_a_distinct_clear_error_within_seconds(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    ref = reference(chart)
    client = make_client(registry)
    nobody = ChartReference.parse(f"oci://127.0.0.1:{procs.free_port()}/charts", "demo")
    wrong_type = _chart_manifest(raw_registry, b"x", tag="2.0.0",
                                 config_type="application/vnd.oci.image.config.v1+json")
    missing_blob = raw_registry.push_manifest("charts/demo", "3.0.0", {
        "schemaVersion": 2,
        "config": {"mediaType": HELM_CONFIG, **raw_registry.push_blob("charts/demo", b"{}")},
        "layers": []})
    cases: list[tuple[Callable[[], object], type[OCIError], str]] = [
        (lambda: client.resolve(ref, "9.9.9"), VersionNotFoundError, "no version 9.9.9"),
        (lambda: client.fetch_chart(ref, "sha256:" + "0" * 64), ManifestNotFoundError,
         "does not exist"),
        (lambda: client.fetch_chart(ref, wrong_type), UnsupportedMediaTypeError,
         "not a Helm chart"),
        (lambda: client.fetch_chart(ref, missing_blob), UnsupportedMediaTypeError,
         "0 chart layers"),
        (lambda: client.get_blob(ref.repository, digest_of(b"absent"), None, 100, ref=ref),
         BlobNotFoundError, "missing from the registry"),
        (lambda: client.fetch_chart(ref, "sha256:abc"), InvalidReferenceError,
         "not a sha256 digest"),
        (lambda: make_client(registry).resolve(nobody, "1.0.0"), RegistryUnreachableError,
         f"{nobody.host} is unreachable"),
    ]
    raised: set[type[OCIError]] = set()
    for call, error, text in cases:
        started = time.monotonic()
        with pytest.raises(error, match=text) as caught:
            call()
        assert time.monotonic() - started < FAST, error
        assert type(caught.value) is error
        raised.add(error)
    assert len(raised) == 6  # distinct kinds (two media-type cases share one)


def test_unreachable_registry_fails_in_seconds_not_131(
        make_client: Callable[..., RegistryClient], registry: Registry) -> None:
    ref = ChartReference.parse(f"oci://127.0.0.1:{procs.free_port()}/charts", "demo")
    client = make_client(registry, retries=2)
    for call in (lambda: client.resolve(ref, "*"), lambda: client.resolve(ref, "1.0.0"),
                 lambda: client.fetch_chart(ref, "sha256:" + "a" * 64)):
        started = time.monotonic()
        with pytest.raises(RegistryUnreachableError, match="check the host and port"):
            call()
        assert time.monotonic() - started < FAST

"""status.observedPostRenderersDigest / observedCommonMetadataDigest: the same bytes as
helm-controller's Go ``json.Encoder`` digests (expected values computed by Go 1.25 over Flux's
structs: fluxcd/pkg apis/kustomize Image/Selector/Patch, helm-controller PostRenderer and
CommonMetadata)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crdschema import validate

from chartguard.api import HelmRelease
from chartguard.api._fields import thaw
from chartguard.api.errors import InvalidSpecError
from chartguard.api.helmrelease import CommonMetadata
from chartguard.api.post_renderers import common_metadata_digest, post_renderers_digest


def release(**spec: Any) -> HelmRelease:
    return HelmRelease.from_object({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"interval": "5m", "chartRef": {"kind": "HelmChart", "name": "web"}, **spec}})


def test_post_renderers_digest_is_flux_s() -> None:
    spec = release(postRenderers=[
        {"kustomize": {"images": [{"name": "nginx", "newTag": "1.25", "digest": ""}],
                       "patches": [{"target": {"labelSelector": "a=b", "kind": "Deployment"},
                                    "patch": '- op: add\n  path: /spec/x\n  value: "<&>"\n'}]}},
        {}]).spec
    assert post_renderers_digest(spec) == (
        "sha256:60a79259ad1d5a416f4343e8695e658a60617cc813e6b4802ab6bd1c4fbcce22")


def test_common_metadata_digest_is_flux_s() -> None:
    spec = release(commonMetadata={"labels": {"z": "1", "a": "é\u2028"},
                                   "annotations": {"b": "\t\b"}}).spec
    assert spec.common_metadata == CommonMetadata(labels={"z": "1", "a": "é\u2028"},
                                                  annotations={"b": "\t\b"})
    assert common_metadata_digest(spec) == (
        "sha256:5d6603ee40fe65dd70ba70caf42264a6d9a2a4055612cc24c534c1a77faa3941")


def test_no_post_renderers_and_no_common_metadata_have_no_digest() -> None:
    spec = release().spec
    assert post_renderers_digest(spec) == ""
    assert common_metadata_digest(spec) == ""
    assert spec.post_render_strategy == "combined"


def test_a_changed_patch_changes_the_digest() -> None:
    one = release(postRenderers=[{"kustomize": {"images": [{"name": "a", "newTag": "1"}]}}])
    two = release(postRenderers=[{"kustomize": {"images": [{"name": "a", "newTag": "2"}]}}])
    assert post_renderers_digest(one.spec) != post_renderers_digest(two.spec)


@pytest.mark.parametrize(("spec", "path"), [
    ({"postRenderStrategy": "hooksonly"}, "spec.postRenderStrategy"),
    ({"commonMetadata": {"labels": {"a": 1}}}, "spec.commonMetadata.labels.a"),
    ({"commonMetadata": {"selectors": {}}}, "spec.commonMetadata.selectors"),
])
def test_bad_post_render_fields_are_refused_naming_them(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        release(**spec)
    assert path in str(caught.value)


def test_v2beta1_patches_strategic_merge_and_json6902_become_patches_in_kustomize_order(
        crds: dict[str, Any]) -> None:
    """Flux v2beta1 (the blog's era, still served) had both; kustomize applies strategic merge
    patches, then ``patches``, then JSON6902 ones, which is the order they are given here."""
    doc = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2beta1", "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"interval": "5m", "chart": {"spec": {
            "chart": "web", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}},
            "postRenderers": [{"kustomize": {
                "patchesJson6902": [{"target": {"kind": "Deployment", "name": "web"},
                                     "patch": [{"op": "add", "path": "/spec/replicas",
                                                "value": 3}]}],
                "patches": [{"patch": "- op: remove\n  path: /x\n",
                             "target": {"kind": "Service"}}],
                "patchesStrategicMerge": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                           "metadata": {"name": "web"},
                                           "spec": {"paused": True}}]}}]}}
    defaulted, errors = validate(crds, doc)
    assert errors == []
    spec = HelmRelease.from_object(defaulted).spec
    (entry,) = thaw(spec.post_renderers)
    patches = entry["kustomize"]["patches"]
    assert [json.loads(p["patch"]) if p["patch"][0] in "[{" else p["patch"]
            for p in patches] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"paused": True}},
        "- op: remove\n  path: /x\n",
        [{"op": "add", "path": "/spec/replicas", "value": 3}]]
    assert [p.get("target") for p in patches] == [
        None, {"kind": "Service"}, {"kind": "Deployment", "name": "web"}]
    assert post_renderers_digest(spec).startswith("sha256:")


def test_a_json6902_entry_needs_its_target() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        release(postRenderers=[{"kustomize": {"patchesJson6902": [
            {"patch": [{"op": "remove", "path": "/a"}]}]}}])
    assert "spec.postRenderers[0].kustomize.patchesJson6902[0].target" in str(caught.value)

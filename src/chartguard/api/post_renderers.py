"""The digests helm-controller records for ``spec.postRenderers`` and ``spec.commonMetadata``.

helm-controller (internal/postrender/build.go) hashes each with Go's ``json.Encoder`` over its
API structs: fields in struct order, ``omitempty`` fields left out when empty, map keys sorted,
``<``, ``>``, ``&``, U+2028 and U+2029 escaped, a trailing newline; ``sha256:<hex>``. The same
bytes are produced here, so ``status.observedPostRenderersDigest`` and
``status.observedCommonMetadataDigest`` read the same under Flux and chartguard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chartguard.api._fields import Frozen, thaw
from chartguard.api.helmrelease import CommonMetadata, HelmReleaseSpec

_SELECTOR = ("group", "version", "kind", "namespace", "name", "annotationSelector",
             "labelSelector")
_IMAGE = ("newName", "newTag", "digest")
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}


def post_renderers_digest(spec: HelmReleaseSpec) -> str:
    """``sha256:…`` of ``spec.postRenderers``; "" when there are none."""
    if not spec.post_renderers:
        return ""
    return _digest([_post_renderer(item) for item in thaw(spec.post_renderers)])


def common_metadata_digest(spec: HelmReleaseSpec) -> str:
    """``sha256:…`` of ``spec.commonMetadata``; "" when it is not set."""
    if spec.common_metadata is None:
        return ""
    return _digest(_common_metadata(spec.common_metadata))


def _post_renderer(item: Mapping[str, Any]) -> dict[str, Any]:
    kustomize = item.get("kustomize")
    if not isinstance(kustomize, Mapping):
        return {}
    out: dict[str, Any] = {}
    patches = [_patch(p) for p in kustomize.get("patches") or ()]
    images = [_image(i) for i in kustomize.get("images") or ()]
    if patches:
        out["patches"] = patches
    if images:
        out["images"] = images
    return {"kustomize": out}


def _patch(patch: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"patch": patch.get("patch", "")}
    target = patch.get("target")
    if isinstance(target, Mapping):
        out["target"] = {key: target[key] for key in _SELECTOR if target.get(key)}
    return out


def _image(image: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": image.get("name", "")}
    out.update({key: image[key] for key in _IMAGE if image.get(key)})
    return out


def _common_metadata(metadata: CommonMetadata) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if metadata.annotations:
        out["annotations"] = dict(sorted(metadata.annotations.items()))
    if metadata.labels:
        out["labels"] = dict(sorted(metadata.labels.items()))
    return out


def _digest(value: Frozen) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return "sha256:" + hashlib.sha256((text + "\n").encode("utf-8")).hexdigest()

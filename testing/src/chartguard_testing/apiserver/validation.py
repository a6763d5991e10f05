"""The few shape checks the emulator makes before it stores an object.

There is no schema validation (test equipment), but an object whose metadata has the wrong
shape would break later requests (listing sorts by name, selectors read labels as a map),
so such writes are refused with 422 Invalid, as kube-apiserver refuses them.
"""

from __future__ import annotations

from typing import Any

from chartguard_testing.apiserver.resources import ApiError, Obj, ResourceType

_STRINGS = ("name", "generateName", "namespace", "resourceVersion", "uid")
_MAPS = ("labels", "annotations")
# built-in kinds whose top-level fields are objects (custom resources are not checked)
_OBJECT_FIELDS = ("spec", "status", "data", "binaryData", "stringData")


def invalid(rt: ResourceType, name: object, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{rt.kind} "{name or ""}" is invalid: {message}',
                    details={"name": str(name or ""), "group": rt.group, "kind": rt.kind})


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def check(rt: ResourceType, obj: Any) -> Obj:
    """``obj`` if its envelope has the shapes the emulator relies on; 422 otherwise."""
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", f"a {rt.kind} must be a JSON object")
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise invalid(rt, "", "metadata must be an object")
    name = meta.get("name")
    for key in _STRINGS:
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise invalid(rt, name, f"metadata.{key} must be a string")
    for key in _MAPS:
        if meta.get(key) is not None and not _string_map(meta[key]):
            raise invalid(rt, name, f"metadata.{key} must map strings to strings")
    finalizers = meta.get("finalizers")
    if finalizers is not None and not (
            isinstance(finalizers, list) and all(isinstance(f, str) for f in finalizers)):
        raise invalid(rt, name, "metadata.finalizers must be a list of strings")
    refs = meta.get("ownerReferences")
    if refs is not None and not (isinstance(refs, list) and all(
            isinstance(r, dict) and isinstance(r.get("uid", ""), str) for r in refs)):
        raise invalid(rt, name, "metadata.ownerReferences must be a list of objects")
    if not rt.crd_name:
        for key in _OBJECT_FIELDS:
            if obj.get(key) is not None and not isinstance(obj[key], dict):
                raise invalid(rt, name, f"{key} must be an object")
    return obj

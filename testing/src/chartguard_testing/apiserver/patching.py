"""The four PATCH flavours clients send: JSON patch, merge patch, strategic merge, apply.

Strategic merge is approximated the way the apiserver behaves for the fields helm and
kubectl touch: lists of objects are merged by their merge key (``name``, or ``port``/
``containerPort``/``mountPath`` where Kubernetes uses those), other lists are replaced;
``$patch``, ``$retainKeys``, ``$setElementOrder`` and ``$deleteFromPrimitiveList`` directives
are honoured or dropped. Server-side apply merges the applied object like a merge patch and
removes fields the same field manager applied before and no longer applies.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from chartguard_testing.apiserver.resources import ApiError, Obj

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def parse_body(content_type: str, body: bytes) -> Any:
    try:
        if content_type == APPLY_PATCH:
            return yaml.safe_load(body)
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError(400, "BadRequest", f"cannot parse the {content_type} body: {exc}",
                       ) from exc


# ---- RFC 6902 -------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"json patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def _json_patch_op(doc: Any, op: Obj) -> Any:
    kind = op.get("op")
    parts = _pointer(op.get("path", ""))
    if kind in ("copy", "move"):
        value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
        if kind == "move":
            doc = _json_patch_op(doc, {"op": "remove", "path": op["from"]})
        return _json_patch_op(doc, {"op": "add", "path": op["path"], "value": value})
    if kind == "test":
        if _walk(doc, parts) != op.get("value"):
            raise ApiError(422, "Invalid", f"the json patch test at {op.get('path')!r} failed")
        return doc
    if not parts:
        return copy.deepcopy(op.get("value")) if kind in ("add", "replace") else None
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if kind == "add":
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), op["value"])
        else:
            parent[last] = op["value"]
    elif kind == "replace":
        if isinstance(parent, list):
            parent[int(last)] = op["value"]
        else:
            if last not in parent:
                raise KeyError(last)
            parent[last] = op["value"]
    elif kind == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    else:
        raise ApiError(422, "Invalid", f"unknown json patch op {kind!r}")
    return doc


def json_patch(target: Obj, ops: Any) -> Obj:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a json patch must be a list of operations")
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not (isinstance(op, dict) and isinstance(op.get("path", ""), str)
                and isinstance(op.get("from", ""), str)):
            raise ApiError(422, "Invalid", f"json patch operation {op!r} must be an object "
                           "with a string path")
        try:
            doc = _json_patch_op(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid",
                           f"json patch {op.get('op')} at {op.get('path')!r}: "
                           f"no such path ({exc})") from exc
    if not isinstance(doc, dict):
        raise ApiError(422, "Invalid", "a json patch must leave an object")
    return doc


# ---- RFC 7386 -------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# ---- strategic merge ------------------------------------------------------------------

_MERGE_KEYS = {"ports": ("containerPort", "port"), "volumeMounts": ("mountPath",),
               "volumeDevices": ("devicePath",), "hostAliases": ("ip",),
               "imagePullSecrets": ("name",), "topologySpreadConstraints": ("topologyKey",)}
_UNION_LISTS = {"finalizers"}


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in (*_MERGE_KEYS.get(field, ()), "name"):
        if all(key in i for i in items):
            return key
    return None


def _merge_list(field: str, live: list[Any], patch: list[Any]) -> list[Any]:
    if field in _UNION_LISTS:
        return list(live) + [v for v in patch if v not in live]
    key = _merge_key(field, [*live, *patch])
    if key is None:
        return [i for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [i for i in patch if "$patch" not in i]
    out = [copy.deepcopy(i) for i in live]
    for item in patch:
        index = next((n for n, i in enumerate(out) if i.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
        elif index is None:
            out.append(strategic_merge({}, item))
        else:
            out[index] = strategic_merge(out[index], item)
    return out


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out: Obj = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [v for v in out.get(field) or [] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(key, out[key], value)
        elif isinstance(value, list):
            out[key] = _merge_list(key, [], value)
        else:
            out[key] = strategic_merge(out.get(key), value)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


# ---- server-side apply ----------------------------------------------------------------

def _prune(live: Any, before: Any, now: Any) -> Any:
    """Remove from ``live`` what ``before`` set and ``now`` no longer sets (maps only)."""
    if not (isinstance(live, dict) and isinstance(before, dict)):
        return live
    now = now if isinstance(now, dict) else {}
    for key, old in before.items():
        if key not in now:
            live.pop(key, None)
        elif key in live:
            live[key] = _prune(live[key], old, now[key])
    return live


def server_side_apply(live: Obj, applied: Obj, previous: Obj | None) -> Obj:
    merged = merge_patch(live, _drop_nulls(applied))
    if previous is not None:
        merged = _prune(merged, previous, applied)
    return dict(merged)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value

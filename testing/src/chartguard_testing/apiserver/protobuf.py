"""Protobuf request bodies of Secret, ConfigMap and Namespace, decoded to their JSON form.

client-go's typed clients (helm's release storage, ``kubectl create secret|namespace``)
send ``application/vnd.kubernetes.protobuf``: the magic ``k8s\\x00`` then a
``runtime.Unknown`` whose ``raw`` field is the object's own message. Only the fields of
those three kinds (from k8s.io/api/core/v1/generated.proto) are decoded, by hand, from the
wire format; anything else is refused with 415 so a gap shows up as an error, not as a
silently emptier object.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from chartguard_testing.apiserver.resources import ApiError, Obj

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# A schema maps field number -> (json name, type). Types: "str", "bytes", "int", "bool",
# "time", a nested schema (dict), ("map", value type) or ("list", item type).
Schema = dict[int, tuple[str, Any]]

_TYPE_META: Schema = {1: ("apiVersion", "str"), 2: ("kind", "str")}
_UNKNOWN: Schema = {1: ("typeMeta", _TYPE_META), 2: ("raw", "bytes"),
                    3: ("contentEncoding", "str"), 4: ("contentType", "str")}
_TIME: Schema = {1: ("seconds", "int"), 2: ("nanos", "int")}
_OWNER_REF: Schema = {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"),
                      5: ("apiVersion", "str"), 6: ("controller", "bool"),
                      7: ("blockOwnerDeletion", "bool")}
_OBJECT_META: Schema = {
    1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
    5: ("uid", "str"), 6: ("resourceVersion", "str"), 7: ("generation", "int"),
    8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"),
    10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", ("map", "str")),
    12: ("annotations", ("map", "str")), 13: ("ownerReferences", ("list", _OWNER_REF)),
    14: ("finalizers", ("list", "str")),
}
KINDS: dict[str, Schema] = {
    "Secret": {1: ("metadata", _OBJECT_META), 2: ("data", ("map", "bytes")),
               3: ("type", "str"), 4: ("stringData", ("map", "str")),
               5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", _OBJECT_META), 2: ("data", ("map", "str")),
                  3: ("binaryData", ("map", "bytes")), 4: ("immutable", "bool")},
    "Namespace": {1: ("metadata", _OBJECT_META),
                  2: ("spec", {1: ("finalizers", ("list", "str"))}),
                  3: ("status", {1: ("phase", "str")})},
}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data):
                raise ValueError("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def fields(self) -> list[tuple[int, int, Any]]:
        """(field number, wire type, value): ints for varints, bytes for the rest."""
        out: list[tuple[int, int, Any]] = []
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            value: Any
            if wire == 0:
                value = self.varint()
            elif wire == 2:
                size = self.varint()
                value = self.data[self.pos:self.pos + size]
                if len(value) != size:
                    raise ValueError("truncated field")
                self.pos += size
            elif wire in (1, 5):
                width = 8 if wire == 1 else 4
                value = self.data[self.pos:self.pos + width]
                self.pos += width
            else:
                raise ValueError(f"unsupported wire type {wire}")
            out.append((number, wire, value))
        return out


def _scalar(kind: Any, value: Any) -> Any:
    if isinstance(kind, dict):
        return _message(kind, value)
    if kind == "str":
        return bytes(value).decode()
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "int":
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "bool":
        return bool(value)
    if kind == "time":
        seconds = _message(_TIME, value).get("seconds", 0)
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ValueError(f"unknown schema type {kind!r}")


def _message(schema: Schema, data: bytes) -> Obj:
    out: Obj = {}
    for number, _wire, value in _Reader(data).fields():
        if number not in schema:
            continue  # fields we do not model (managedFields, selfLink...)
        name, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "map":
            entry = _message({1: ("key", "str"), 2: ("value", kind[1])}, value)
            out.setdefault(name, {})[entry.get("key", "")] = entry.get("value", "")
        elif isinstance(kind, tuple) and kind[0] == "list":
            out.setdefault(name, []).append(_scalar(kind[1], value))
        elif kind != "str" or value:
            # proto2 writes unset optional strings as "": JSON leaves them out
            out[name] = _scalar(kind, value)
    return out


def decode(body: bytes) -> Obj:
    """The JSON form of a protobuf-encoded Secret, ConfigMap or Namespace."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s\\x00 envelope")
    try:
        unknown = _message(_UNKNOWN, body[len(MAGIC):])
        type_meta = unknown.get("typeMeta") or {}
        kind = type_meta.get("kind", "")
        if kind not in KINDS:
            raise ApiError(415, "UnsupportedMediaType",
                           f"this test apiserver decodes protobuf only for "
                           f"{', '.join(KINDS)}, not {kind or 'an untyped body'}; send JSON")
        obj = _message(KINDS[kind], base64.b64decode(unknown.get("raw", "")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"cannot decode the protobuf body: {exc}") from exc
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}

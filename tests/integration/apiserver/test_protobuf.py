"""Protobuf request bodies (client-go typed clients) decoded to the JSON objects they mean."""

from __future__ import annotations

import base64

import pytest

from chartguard_testing.apiserver import protobuf
from chartguard_testing.apiserver.resources import ApiError


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, value: bytes | int | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _entry(number: int, key: str, value: bytes | str) -> bytes:
    return _field(number, _field(1, key) + _field(2, value))


def _envelope(kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, "v1") + _field(2, kind)
    return (protobuf.MAGIC + _field(1, type_meta) + _field(2, raw)
            + _field(4, protobuf.CONTENT_TYPE))


def test_secret_with_labels_owner_and_binary_data() -> None:
    owner = _field(1, "Deployment") + _field(3, "web") + _field(4, "u-1") + \
        _field(5, "apps/v1") + _field(6, 1)
    meta = (_field(1, "sh.helm.release.v1.web.v1") + _field(3, "default") +
            _field(2, "") + _entry(11, "owner", "helm") + _entry(11, "status", "deployed") +
            _field(13, owner) + _field(14, "example.com/hold") + _field(7, 3) +
            _field(8, _field(1, 1_700_000_000)))
    secret = _field(1, meta) + _entry(2, "release", b"\x00\xffgz") + \
        _field(3, "helm.sh/release.v1")
    obj = protobuf.decode(_envelope("Secret", secret))
    assert obj == {
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(b"\x00\xffgz").decode()},
        "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": "default",
                     "labels": {"owner": "helm", "status": "deployed"},
                     "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "u-1",
                                          "apiVersion": "apps/v1", "controller": True}],
                     "finalizers": ["example.com/hold"], "generation": 3,
                     "creationTimestamp": "2023-11-14T22:13:20Z"}}


def test_configmap_and_namespace() -> None:
    cm = _field(1, _field(1, "settings")) + _entry(2, "k", "v") + _entry(3, "bin", b"\x01")
    assert protobuf.decode(_envelope("ConfigMap", cm)) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"k": "v"}, "binaryData": {"bin": "AQ=="}}
    ns = _field(1, _field(1, "flux-system")) + _field(2, _field(1, "kubernetes"))
    assert protobuf.decode(_envelope("Namespace", ns)) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"},
        "spec": {"finalizers": ["kubernetes"]}}


def test_other_kinds_and_garbage_are_refused_not_guessed() -> None:
    with pytest.raises(ApiError) as other:
        protobuf.decode(_envelope("Pod", _field(1, _field(1, "p"))))
    assert other.value.code == 415
    assert "send JSON" in other.value.message
    with pytest.raises(ApiError) as garbage:
        protobuf.decode(protobuf.MAGIC + b"\x0a\xff")
    assert garbage.value.code == 400
    with pytest.raises(ApiError):
        protobuf.decode(b'{"kind": "Secret"}')

"""The provenance layer of a chart manifest (``helm push`` of a signed chart): found, fetched
by its descriptor's digest and size within a cap, and refused when there is more than one."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from chartguard.oci import DigestMismatchError, SizeLimitExceededError, UnsupportedMediaTypeError
from chartguard.oci.chart import MAX_PROVENANCE_BYTES, read_provenance

PROV = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n..."
CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
PROV_LAYER = "application/vnd.cncf.helm.chart.provenance.v1.prov"


def desc(media_type: str, data: bytes, size: int | None = None) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data) if size is None else size}


def manifest(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"layers": [desc(CHART_LAYER, b"chart"), *layers]}


def getter(blobs: dict[str, bytes]) -> Any:
    asked: list[tuple[str, int, int]] = []

    def get_blob(digest: str, size: int, limit: int) -> bytes:
        asked.append((digest, size, limit))
        data = blobs[digest]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise DigestMismatchError("sha256 differs")
        return data
    get_blob.asked = asked  # type: ignore[attr-defined]
    return get_blob


def test_the_provenance_layer_is_fetched_by_its_descriptor() -> None:
    layer = desc(PROV_LAYER, PROV)
    get_blob = getter({layer["digest"]: PROV})
    assert read_provenance(manifest(layer), "m", get_blob) == PROV
    assert get_blob.asked == [(layer["digest"], len(PROV), MAX_PROVENANCE_BYTES)]


def test_no_provenance_layer_is_none_and_nothing_is_fetched() -> None:
    get_blob = getter({})
    assert read_provenance(manifest(), "m", get_blob) is None
    assert get_blob.asked == []


def test_two_provenance_layers_an_oversized_one_or_altered_bytes_are_refused() -> None:
    one, two = desc(PROV_LAYER, PROV), desc(PROV_LAYER, PROV + b"x")
    with pytest.raises(UnsupportedMediaTypeError, match="2 provenance layers"):
        read_provenance(manifest(one, two), "m", getter({}))
    big = desc(PROV_LAYER, PROV, size=MAX_PROVENANCE_BYTES + 1)
    with pytest.raises(SizeLimitExceededError, match="provenance layer"):
        read_provenance(manifest(big), "m", getter({}))
    with pytest.raises(DigestMismatchError, match=r"m: the provenance layer .* does not match"):
        read_provenance(manifest(one), "m", getter({one["digest"]: PROV + b"!"}))

"""What a Helm chart stored as an OCI artifact is made of, checked the same way wherever its
bytes come from (a registry: :meth:`RegistryClient.fetch_chart`; an OCI layout:
:meth:`chartguard.oci.layout.OCILayout.fetch_chart`).

A chart manifest is an OCI image manifest with the Helm config media type, exactly one chart
layer (and optionally a provenance layer); config and chart layer are capped in size before a
byte is read, fetched by digest, and must match their descriptor's digest and size. A part that
does not match is named ("the chart layer ... does not match its digest").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chartguard.digest import is_digest
from chartguard.oci import mediatypes as mt
from chartguard.oci.errors import (
    DigestMismatchError,
    SizeLimitExceededError,
    UnsupportedMediaTypeError,
)
from chartguard.untrusted import UntrustedInputError, escape, loads_json

if TYPE_CHECKING:
    from chartguard.oci.client import Limits

#: fetches one blob: (digest, size from its descriptor, cap) -> bytes, checked against both
BlobGetter = Callable[[str, int, int], bytes]


@dataclass(frozen=True)
class ChartParts:
    """A chart manifest's checked parts: config and chart layer bytes, name and version."""

    config: bytes
    layer: bytes
    name: str
    version: str


def _descriptor(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnsupportedMediaTypeError(f"{what} is not a descriptor: not a Helm chart")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not is_digest(digest) or not isinstance(
            size, int) or isinstance(size, bool) or size < 0:
        raise UnsupportedMediaTypeError(
            f"{what} lacks a mediaType, a sha256 digest or a size: check what was pushed")
    return value


def chart_descriptors(media_type: str, data: Mapping[str, Any], where: str,
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config and chart-layer descriptors of a Helm chart manifest, or refused."""
    if media_type != mt.OCI_MANIFEST:
        raise UnsupportedMediaTypeError(
            f"{where} has media type {escape(media_type or 'none')!r}, not a Helm chart "
            f"({mt.OCI_MANIFEST}): point the spec at a chart pushed with `helm push`")
    config = _descriptor(data.get("config"), f"{where}: config")
    if config["mediaType"] != mt.HELM_CONFIG:
        raise UnsupportedMediaTypeError(
            f"{where} has config media type {escape(config['mediaType'])!r}, not "
            f"{mt.HELM_CONFIG}: it is not a Helm chart; point the spec at a chart pushed with "
            "`helm push`")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise UnsupportedMediaTypeError(f"{where} has no layers list: not a Helm chart")
    charts = []
    for n, item in enumerate(layers):
        layer = _descriptor(item, f"{where}: layer {n}")
        if layer["mediaType"] in mt.HELM_CHART_LAYERS:
            charts.append(layer)
        elif layer["mediaType"] != mt.HELM_PROVENANCE_LAYER:
            raise UnsupportedMediaTypeError(
                f"{where} has layer {n} of media type {escape(layer['mediaType'])!r}, which a "
                "Helm chart does not have: point the spec at a chart pushed with `helm push`")
    if len(charts) != 1:
        raise UnsupportedMediaTypeError(
            f"{where} has {len(charts)} chart layers, a Helm chart has exactly one "
            f"({mt.HELM_CHART_LAYER}): point the spec at a chart pushed with `helm push`")
    return config, charts[0]


def chart_metadata(config: bytes, where: str) -> tuple[str, str]:
    """The chart name and version from its Helm config."""
    try:
        doc = loads_json(config, what=f"{where}: the Helm config")
    except UntrustedInputError:
        doc = None
    name = doc.get("name") if isinstance(doc, dict) else None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise UnsupportedMediaTypeError(
            f"{where}: the Helm config has no chart name and version: check what was pushed")
    return name, version


def read_chart(media_type: str, data: Mapping[str, Any], where: str, limits: Limits,
               get_blob: BlobGetter) -> ChartParts:
    """Check a chart manifest and fetch its config and chart layer through ``get_blob``."""
    config, chart = chart_descriptors(media_type, data, where)
    parts: list[bytes] = []
    # sizes are checked against the caps before a byte of either blob is read
    for desc, limit, kind in ((config, limits.max_config_bytes, "config"),
                              (chart, limits.max_layer_bytes, "chart layer")):
        if desc["size"] > limit:
            raise SizeLimitExceededError(
                f"{where}: the {kind} {desc['digest']} is {desc['size']} bytes, over the "
                f"limit of {limit} bytes: raise the limit if this chart is expected to be "
                "that large")
    for desc, limit, kind in ((config, limits.max_config_bytes, "config"),
                              (chart, limits.max_layer_bytes, "chart layer")):
        try:
            parts.append(get_blob(desc["digest"], desc["size"], limit))
        except DigestMismatchError as err:
            raise DigestMismatchError(
                f"{where}: the {kind} {desc['digest']} does not match its digest: {err}",
            ) from None
    name, version = chart_metadata(parts[0], where)
    return ChartParts(config=parts[0], layer=parts[1], name=name, version=version)

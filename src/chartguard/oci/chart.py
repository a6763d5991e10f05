"""What a Helm chart stored as an OCI artifact is made of, checked the same way wherever its
bytes come from (a registry: :meth:`RegistryClient.fetch_chart`; an OCI layout:
:meth:`chartguard.oci.layout.OCILayout.fetch_chart`).

A chart manifest is an OCI image manifest with the Helm config media type, exactly one chart
layer (and optionally a provenance layer); config and chart layer are capped in size before a
byte is read, fetched by digest, and must match their descriptor's digest and size. A part that
does not match is named ("the chart layer ... does not match its digest").

The archive is read whole, in memory and within :data:`MAX_ARCHIVE_READ` unpacked bytes, before
the chart is stored, and so is every subchart archive in it (``<chart>/charts/*.tgz``, which
helm unpacks too; all within the same budget): every entry must be a plain file or directory
under the one chart directory (no absolute path, ``..``, link, device or FIFO), and the chart's
``Chart.yaml`` must name the chart and version the Helm config does. What helm would load is
thus exactly what was checked.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from chartguard.digest import is_digest
from chartguard.oci import mediatypes as mt
from chartguard.oci.errors import (
    ChartContentError,
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


#: a Helm provenance file (``.prov``) is a few hundred bytes; a layer over this is refused
MAX_PROVENANCE_BYTES = 1024 * 1024


def read_provenance(data: Mapping[str, Any], where: str, get_blob: BlobGetter) -> bytes | None:
    """The provenance layer (``helm push`` of a chart with its ``.prov``) of a chart manifest
    whose descriptors :func:`chart_descriptors` accepted, fetched and checked against its
    descriptor; None when there is none. More than one is refused (which would be verified?)."""
    layers = [item for item in data.get("layers") or ()
              if isinstance(item, dict) and item.get("mediaType") == mt.HELM_PROVENANCE_LAYER]
    if not layers:
        return None
    if len(layers) > 1:
        raise UnsupportedMediaTypeError(
            f"{where} has {len(layers)} provenance layers; `helm push` writes at most one")
    desc = _descriptor(layers[0], f"{where}: the provenance layer")
    if desc["size"] > MAX_PROVENANCE_BYTES:
        raise SizeLimitExceededError(
            f"{where}: the provenance layer {desc['digest']} is {desc['size']} bytes, over the "
            f"limit of {MAX_PROVENANCE_BYTES} bytes: it is not a .prov of `helm package --sign`")
    try:
        return get_blob(desc["digest"], desc["size"], MAX_PROVENANCE_BYTES)
    except DigestMismatchError as err:
        raise DigestMismatchError(
            f"{where}: the provenance layer {desc['digest']} does not match its digest: {err}",
        ) from None


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
    in_archive = archive_metadata(parts[1], where)
    if in_archive != (name, version):
        # helm records the archive's Chart.yaml; a config that says otherwise would make the
        # chart another one at install time than the one resolved and shown (Flux reads the
        # name from the archive): refuse the artifact rather than guess
        raise ChartContentError(
            f"{where}: the Helm config names chart {escape(name)} {escape(version)} but its "
            f"archive's Chart.yaml names {escape(in_archive[0])} {escape(in_archive[1])}: push "
            "the chart with `helm push`, which writes both from the same Chart.yaml")
    return ChartParts(config=parts[0], layer=parts[1], name=name, version=version)


#: a chart's archive is unpacked (in memory, in one pass) to at most this many bytes: a gzip
#: bomb is refused after this much, never unpacked whole (helm's own cap is 100 MiB)
MAX_ARCHIVE_READ = 32 * 1024 * 1024
MAX_CHART_YAML = 1024 * 1024
#: entries of one chart archive (a large chart has a few hundred)
MAX_ARCHIVE_ENTRIES = 10_000


#: subchart archives inside subchart archives, looked into at most this deep
MAX_ARCHIVE_NESTING = 5


class _Budget:
    """Unpacked bytes left for one chart archive and every subchart archive inside it."""

    def __init__(self) -> None:
        self.left = MAX_ARCHIVE_READ


class _Capped(io.RawIOBase):
    """A decompressed archive, refusing to be read past what the budget has left (a gzip
    bomb, in the chart or in a subchart)."""

    def __init__(self, inner: gzip.GzipFile, budget: _Budget) -> None:
        self._gzip = inner
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._gzip.read(min(len(buffer), self._budget.left + 1))
        self._budget.left -= len(data)
        if self._budget.left < 0:
            raise ChartContentError(f"the chart archive unpacks past {MAX_ARCHIVE_READ} bytes "
                                    "(a gzip bomb?): refused before it was unpacked whole")
        buffer[:len(data)] = data
        return len(data)


def _entry_problem(member: tarfile.TarInfo) -> str | None:
    """What makes one archive entry something a chart must not hold, or None.

    helm's loader refuses absolute paths and ``..``, but reads a symlink, a hard link or a
    device node as an empty file and lets a later ``Chart.yaml`` replace an earlier one; none of
    these is in an archive ``helm package`` writes, so each is refused here, before helm (or
    anyone unpacking the stored artifact) sees it.
    """
    name = member.name.replace("\\", "/")  # helm splits on a backslash too
    parts = name.split("/")
    if name.startswith("/") or (name[:1].isalpha() and name[1:3] == ":/"):
        return "an absolute path"
    if ".." in parts:
        return "a path with '..'"
    if "" in parts or "." in parts:
        return "a path with an empty or '.' component"
    if member.issym():
        return f"a symbolic link (to {escape(member.linkname, 120)!r})"
    if member.islnk():
        return f"a hard link (to {escape(member.linkname, 120)!r})"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    if not (member.isfile() or member.isdir()):
        return f"an entry of tar type {escape(member.type, 8)!r}"
    if len(parts) < 2 and not member.isdir():
        return "a file outside the chart's directory"
    return None


def archive_metadata(layer: bytes, where: str) -> tuple[str, str]:
    """The name and version the chart archive's ``<chart>/Chart.yaml`` gives (what helm
    installs as), read in one bounded pass over every entry, and over every subchart archive
    (``<chart>/charts/*.tgz``, which helm unpacks too); ``ChartContentError`` when an entry is
    no plain file or directory under the one chart directory, or there is no Chart.yaml."""
    try:
        found = _scan(layer, _Budget(), "", 0)
    except ChartContentError as err:
        raise ChartContentError(str(err) if str(err).startswith(where)
                                else f"{where}: {err}") from None
    except (OSError, EOFError, tarfile.TarError, zlib.error) as err:
        raise ChartContentError(f"{where}: the chart layer is not a gzipped tar archive "
                                f"({escape(err)})") from None
    if found is None:
        raise ChartContentError(f"{where}: the chart archive has no <chart>/Chart.yaml")
    return _chart_yaml(found, where)


def _scan(layer: bytes, budget: _Budget, within: str, depth: int) -> bytes | None:
    """Check every entry of one (sub)chart archive; its Chart.yaml's bytes, or None.
    ``within``: the path of the subchart archive ("" for the chart's), for messages."""
    try:
        return _entries(layer, budget, within, depth)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as err:
        if not within:
            raise
        raise ChartContentError(f"the chart archive holds {within}, which is not a gzipped "
                                f"tar archive ({escape(err)})") from None


def _entries(layer: bytes, budget: _Budget, within: str, depth: int) -> bytes | None:
    at = f" (in {within})" if within else ""
    found: bytes | None = None
    tops: set[str] = set()
    names: set[str] = set()
    stream = io.BufferedReader(_Capped(gzip.GzipFile(fileobj=io.BytesIO(layer)), budget))
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for count, member in enumerate(archive, 1):
            problem = _entry_problem(member)
            if problem is not None:
                raise ChartContentError(
                    f"the chart archive{at} holds {problem}: {escape(member.name, 200)!r}; a "
                    "chart holds only files and directories under its own directory: package "
                    "it with `helm package`")
            if count > MAX_ARCHIVE_ENTRIES:
                raise ChartContentError(f"the chart archive{at} has more than "
                                        f"{MAX_ARCHIVE_ENTRIES} entries")
            parts = member.name.split("/")
            tops.add(parts[0])
            if len(tops) > 1:
                shown = ", ".join(repr(escape(t, 60)) for t in sorted(tops)[:2])
                raise ChartContentError(f"the chart archive{at} has more than one top "
                                        f"directory ({shown}): helm would merge them")
            if member.isdir():
                continue
            if member.name in names:
                raise ChartContentError(f"the chart archive{at} holds "
                                        f"{escape(member.name, 200)!r} twice: helm would "
                                        "take the last one")
            names.add(member.name)
            subchart = len(parts) == 3 and parts[1] == "charts" and parts[2].endswith(".tgz")
            if not subchart and (len(parts) != 2 or parts[1] != "Chart.yaml"):
                continue
            if not subchart and member.size > MAX_CHART_YAML:
                raise ChartContentError(f"the chart's Chart.yaml{at} is {member.size} "
                                        f"bytes, over {MAX_CHART_YAML}")
            extracted = archive.extractfile(member)
            data = extracted.read() if extracted else b""
            if not subchart:
                found = data
                continue
            if depth + 1 > MAX_ARCHIVE_NESTING:
                raise ChartContentError(f"the chart archive nests subchart archives more "
                                        f"than {MAX_ARCHIVE_NESTING} deep")
            _scan(data, budget, f"{within}/{escape(member.name, 200)}" if within
                  else escape(member.name, 200), depth + 1)
    return found


def _chart_yaml(text: bytes, where: str) -> tuple[str, str]:
    try:
        # no anchors or aliases in a Chart.yaml: refused before anything is built from it
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text)):
            raise ChartContentError(f"{where}: the chart's Chart.yaml uses YAML aliases")
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    name = doc.get("name") if isinstance(doc, dict) else None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not name or not isinstance(version, (str, int, float)):
        raise ChartContentError(f"{where}: the chart's Chart.yaml has no name and version")
    return name, str(version)

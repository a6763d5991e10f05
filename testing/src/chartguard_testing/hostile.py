"""Hostile charts and signature manifests, pushed to a real registry as a hostile publisher
would: correctly signed, so that what refuses them is the parser, not the signature check.

- :func:`hostile_archive`: a chart archive (``.tgz``) with a good ``<name>/Chart.yaml`` first
  and one hostile entry after it (``..``, an absolute path, a symlink, a hard link, a device
  node, a FIFO), or a second top directory whose Chart.yaml names another chart;
- :func:`gzip_bomb`: a small ``.tgz`` whose one file after Chart.yaml unpacks to ``unpacked``
  bytes of zeros (built by streaming, never held unpacked);
- :func:`push_chart`: a chart manifest as ``helm push`` lays it out (Helm config and one layer)
  around any layer bytes, with another config name or layer media type when asked;
- :func:`push_legacy_layers`: a ``.sig`` manifest of many layers sharing one blob (thousands
  of descriptors, one upload).
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from collections.abc import Sequence

from chartguard_testing.registry import Registry
from chartguard_testing.registry_signer import (
    OCI_MANIFEST,
    Artifact,
    Blob,
    RegistryWriter,
    SignatureLayerLike,
    legacy_signature_artifact,
    repository_path,
    sig_tag,
)

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

__all__ = ["ENTRY_CASES", "HELM_CHART_LAYER", "HELM_CONFIG", "gzip_bomb", "hostile_archive",
           "push_chart", "push_legacy_layers", "tgz"]


def _chart_yaml(name: str, version: str) -> bytes:
    return f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0,
          linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = linkname
    info.mode = 0o644
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
    return info


def tgz(entries: Sequence[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A gzipped tar of ``entries`` exactly as given (no normalisation of names or types)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


#: hostile entry cases: what follows a good Chart.yaml in the archive
ENTRY_CASES: dict[str, tuple[str, bytes, str]] = {
    # case: (entry name (``{n}`` = chart name), tar type, link target)
    "dotdot": ("{n}/../../etc/cron.d/chartguard", tarfile.REGTYPE, ""),
    "absolute": ("/etc/cron.d/chartguard", tarfile.REGTYPE, ""),
    "symlink": ("{n}/templates/secret.yaml", tarfile.SYMTYPE, "/etc/kubernetes/admin.conf"),
    "hardlink": ("{n}/templates/hard.yaml", tarfile.LNKTYPE, "/etc/shadow"),
    "device": ("{n}/templates/null", tarfile.CHRTYPE, ""),
    "fifo": ("{n}/templates/fifo", tarfile.FIFOTYPE, ""),
}


def hostile_archive(case: str, name: str, version: str) -> bytes:
    """A chart archive of ``name`` ``version`` with the hostile entry of ``case``: one of
    :data:`ENTRY_CASES`; ``"second-chart"``: a second top directory whose Chart.yaml names
    ``evil``, which helm's loader would read last and install as; ``"subchart-<case>"``: that
    case inside the subchart archive ``<name>/charts/sub.tgz`` (which helm unpacks too);
    ``"subchart-bomb"``: a subchart archive unpacking to 256 MiB."""
    good = (_info(f"{name}/Chart.yaml", size=len(_chart_yaml(name, version))),
            _chart_yaml(name, version))
    template = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hostile\n"
    if case == "second-chart":
        evil = _chart_yaml("evil", version)
        return tgz([good, (_info("evil/Chart.yaml", size=len(evil)), evil)])
    if case.startswith("subchart-"):  # the hostile part inside <name>/charts/sub.tgz
        inner = (gzip_bomb("sub", "0.1.0", 256 * 1024 * 1024) if case == "subchart-bomb"
                 else hostile_archive(case.removeprefix("subchart-"), "sub", "0.1.0"))
        return tgz([good, (_info(f"{name}/charts/sub.tgz", size=len(inner)), inner)])
    entry, kind, link = ENTRY_CASES[case]
    data = template if kind == tarfile.REGTYPE else b""
    return tgz([good, (_info(entry.format(n=name), kind, len(data), link), data)])


def gzip_bomb(name: str, version: str, unpacked: int) -> bytes:
    """A chart archive: a good Chart.yaml, then ``<name>/templates/zeros.yaml`` of ``unpacked``
    zero bytes; a thousand times smaller than it unpacks (zlib's best ratio)."""
    chart_yaml = _chart_yaml(name, version)
    head = _info(f"{name}/Chart.yaml", size=len(chart_yaml)).tobuf(tarfile.PAX_FORMAT)
    head += chart_yaml + bytes(-len(chart_yaml) % tarfile.BLOCKSIZE)
    head += _info(f"{name}/templates/zeros.yaml", size=unpacked).tobuf(tarfile.PAX_FORMAT)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip stream
    out = [packer.compress(head)]
    chunk = bytes(1024 * 1024)
    left = unpacked
    while left > 0:
        out.append(packer.compress(chunk[:min(left, len(chunk))]))
        left -= len(chunk)
    out.append(packer.compress(bytes(-unpacked % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)))
    out.append(packer.flush())
    return b"".join(out)


def push_chart(registry: Registry, repository: str, version: str, layer: bytes, *,
               config_name: str | None = None,
               layer_media_type: str = HELM_CHART_LAYER) -> str:
    """Push ``layer`` as the chart ``version`` of ``repository`` (``host/path/name``), tagged as
    ``helm push`` tags it; the Helm config names ``config_name`` (default the repository's last
    component). Returns the manifest digest (what a signature signs)."""
    name = config_name or repository.rsplit("/", 1)[-1]
    config = Blob(json.dumps({"name": name, "version": version,
                              "apiVersion": "v2"}).encode(), HELM_CONFIG)
    content = Blob(layer, layer_media_type)
    manifest = Blob(json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config.descriptor(), "layers": [content.descriptor()],
        "annotations": {"org.opencontainers.image.title": name,
                        "org.opencontainers.image.version": version},
    }).encode(), OCI_MANIFEST)
    writer = RegistryWriter(registry, timeout=60)
    return writer.push(repository_path(repository), Artifact(manifest, (config, content)),
                       version.replace("+", "_"))


def push_legacy_layers(registry: Registry, repository: str, digest: str,
                       layers: Sequence[SignatureLayerLike]) -> str:
    """Store ``layers`` (repeats allowed: a repeated layer is one blob, listed again) as the
    ``.sig`` manifest of ``digest``; returns the ``.sig`` manifest's digest."""
    artifact = legacy_signature_artifact(layers)
    unique = tuple({blob.digest: blob for blob in artifact.blobs}.values())
    writer = RegistryWriter(registry, timeout=60)
    return writer.push(repository_path(repository), Artifact(artifact.manifest, unique),
                       sig_tag(digest))

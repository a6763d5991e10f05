"""Signatures from an OCI image layout directory: ``chartguard verify --local-image``.

For air-gapped verification of what ``oras copy -r --to-oci-layout`` or ``cosign save`` wrote:

- the signed manifest is the one named by ``DIR@sha256:<hex>`` (it need not be in the layout),
  or else the layout's single image (a manifest that is not a signature or referrer);
- its legacy signature is the manifest tagged ``sha256-<hex>.sig`` (``org.opencontainers.image
  .ref.name``), or the one ``cosign save`` marks ``kind: dev.cosignproject.cosign/sigs``;
- its bundles are the manifests whose ``subject`` is the signed digest, found among every
  manifest the layout lists (also inside a copied ``sha256-<hex>`` referrers index) and
  among the manifests stored in ``blobs/sha256`` without being listed: cosign v3 ``save``
  stores bundle referrers that way, and its ``verify --local-image`` scans the blobs for them.

The answer is the same :class:`SignatureArtifacts` the registry client returns, so verification
cannot tell where the bytes came from. Every blob read is checked against its sha256 and size
and capped in size; digests are validated before they become file names.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chartguard.digest import DIGEST as _DIGEST
from chartguard.oci.errors import (
    DigestMismatchError,
    ManifestNotFoundError,
    OCIError,
    SizeLimitExceededError,
)
from chartguard.oci.signatures import (
    BUNDLE_ARTIFACT_TYPE,
    Referrer,
    SignatureArtifacts,
    SignatureLayer,
)

__all__ = ["LayoutError", "LocalImage", "read_layout_signatures"]

_INDEX_TYPES = frozenset({"application/vnd.oci.image.index.v1+json",
                          "application/vnd.docker.distribution.manifest.list.v2+json"})
_REF_NAME = "org.opencontainers.image.ref.name"
_COSIGN_KIND = "kind"  # `cosign save` annotates each manifest of its layout with its kind
_COSIGN_IMAGE = "dev.cosignproject.cosign/image"
_COSIGN_SIGS = "dev.cosignproject.cosign/sigs"
_COSIGN_NON_IMAGES = frozenset({_COSIGN_SIGS, "dev.cosignproject.cosign/atts"})
# cosign's attached-artifact tags (.sig/.att/.sbom) and the referrers fallback tag
_ATTACHED_TAG = re.compile(r"^sha256-[0-9a-f]{64}(\.[a-z]+)?$")
_MAX_MANIFEST = 4 * 1024 * 1024  # manifests and indexes are small; a huge one is an attack
_MAX_BLOB = 16 * 1024 * 1024  # signature layers and bundles are a few KB
_MAX_NESTING = 3


class LayoutError(OCIError):
    """The directory is not a usable OCI image layout; the message says what to fix."""


@dataclass(frozen=True)
class LocalImage:
    """``DIR`` or ``DIR@sha256:<hex>`` as given to ``--local-image``."""

    path: Path
    digest: str | None = None

    @classmethod
    def parse(cls, spec: str) -> LocalImage:
        path, sep, digest = spec.rpartition("@")
        if not sep or "/" in digest or ":" not in digest:  # an @ inside a directory name
            return cls(Path(spec))
        if not _DIGEST.fullmatch(digest):
            raise LayoutError(f"--local-image {spec}: {digest!r} is not a sha256 digest; "
                              "write DIR@sha256:<64 hex digits>")
        return cls(Path(path), digest)


@dataclass
class _Entry:
    """A manifest listed by the layout, with the annotations its index gave it."""

    digest: str
    media_type: str
    annotations: dict[str, str] = field(default_factory=dict)
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def ref_name(self) -> str:
        return self.annotations.get(_REF_NAME, "")

    @property
    def kind(self) -> str:
        return self.annotations.get(_COSIGN_KIND, "")

    @property
    def subject(self) -> str | None:
        subject = self.doc.get("subject")
        return subject.get("digest") if isinstance(subject, dict) else None

    @property
    def artifact_type(self) -> str:
        config = self.doc.get("config")
        config_type = config.get("mediaType", "") if isinstance(config, dict) else ""
        return str(self.doc.get("artifactType") or config_type)


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        marker = root / "oci-layout"
        if not root.is_dir():
            raise LayoutError(f"--local-image {root}: no such directory")
        if not marker.is_file() or not (root / "index.json").is_file():
            raise LayoutError(f"--local-image {root}: not an OCI image layout (no oci-layout "
                              "or index.json); write one with `oras copy --to-oci-layout` "
                              "or `cosign save`")
        if marker.stat().st_size > _MAX_MANIFEST:
            raise SizeLimitExceededError(f"{marker}: over the {_MAX_MANIFEST} byte limit")
        version = _json(marker.read_bytes(), f"{marker}").get("imageLayoutVersion")
        if version != "1.0.0":
            raise LayoutError(f"{marker}: imageLayoutVersion {version!r} is not 1.0.0")

    def blob(self, digest: str, *, size: int | None = None, limit: int = _MAX_BLOB,
             what: str = "blob") -> bytes:
        """The bytes of ``digest``; size, cap and sha256 checked."""
        if not _DIGEST.fullmatch(digest):
            raise LayoutError(f"{self.root}: {what} digest {digest!r} is not sha256:<hex>")
        path = self.root / "blobs" / "sha256" / digest.split(":", 1)[1]
        if not path.is_file():
            raise ManifestNotFoundError(f"{self.root}: {what} {digest} is listed but "
                                        f"blobs/sha256/{path.name} is missing")
        actual_size = path.stat().st_size
        if actual_size > limit:
            raise SizeLimitExceededError(f"{self.root}: {what} {digest} is {actual_size} "
                                         f"bytes, over the {limit} byte limit")
        if size is not None and actual_size != size:
            raise DigestMismatchError(f"{self.root}: {what} {digest} is {actual_size} bytes, "
                                      f"its descriptor says {size}")
        data = path.read_bytes()
        found = "sha256:" + hashlib.sha256(data).hexdigest()
        if found != digest:
            raise DigestMismatchError(f"{self.root}: {what} {digest} hashes to {found}; "
                                      "the layout is corrupt or was tampered with")
        return data

    def entries(self) -> list[_Entry]:
        """Every manifest listed by index.json, following nested indexes; each read once."""
        index = self.root / "index.json"
        if index.stat().st_size > _MAX_MANIFEST:
            raise SizeLimitExceededError(f"{index}: over the {_MAX_MANIFEST} byte limit")
        top = _json(index.read_bytes(), f"{index}")
        found: dict[str, _Entry] = {}
        self._walk(_list(top.get("manifests"), f"{index} manifests"), found, depth=0)
        return list(found.values())

    def _walk(self, descriptors: list[Any], found: dict[str, _Entry], depth: int) -> None:
        if depth > _MAX_NESTING:
            raise LayoutError(f"{self.root}: indexes nested deeper than {_MAX_NESTING}")
        for desc in descriptors:
            if not isinstance(desc, dict) or "digest" not in desc:
                raise LayoutError(f"{self.root}: index entry without a digest: {desc!r}")
            digest = str(desc["digest"])
            annotations = _annotations(desc.get("annotations"), f"{self.root}: index entry "
                                       f"{digest}")
            if digest in found:  # listed twice (tag and untagged): keep every annotation
                found[digest].annotations.update(annotations)
                continue
            media_type = str(desc.get("mediaType", ""))
            data = self.blob(digest, size=desc.get("size"), limit=_MAX_MANIFEST,
                             what="manifest")
            doc = _json(data, f"{self.root} manifest {digest}")
            media_type = media_type or str(doc.get("mediaType", ""))
            if media_type in _INDEX_TYPES or "manifests" in doc:
                self._walk(_list(doc.get("manifests"), f"{self.root}: index {digest} manifests"),
                           found, depth + 1)
                continue
            found[digest] = _Entry(digest, media_type, annotations, doc)

    def unlisted_referrers(self, listed: set[str]) -> list[_Entry]:
        """Manifests with a ``subject`` stored in ``blobs/sha256`` but listed nowhere."""
        blobs = self.root / "blobs" / "sha256"
        out: list[_Entry] = []
        for path in sorted(blobs.iterdir()) if blobs.is_dir() else ():
            digest = f"sha256:{path.name}"
            if (digest in listed or not _DIGEST.fullmatch(digest) or not path.is_file()
                    or path.stat().st_size > _MAX_MANIFEST):
                continue
            with path.open("rb") as f:
                if f.read(1) != b"{":  # a chart tarball or other binary blob
                    continue
            try:
                doc = _json(self.blob(digest, limit=_MAX_MANIFEST, what="manifest"),
                            f"{self.root} blob {digest}")
            except LayoutError:
                continue  # JSON that is not a manifest (a config, a bundle)
            if isinstance(doc.get("subject"), dict) and isinstance(doc.get("layers"), list):
                out.append(_Entry(digest, str(doc.get("mediaType", "")), {}, doc))
        return out

    def layers(self, entry: _Entry, source: str) -> tuple[SignatureLayer, ...]:
        out = []
        layers = _list(entry.doc.get("layers"), f"{self.root}: manifest {entry.digest} layers")
        for n, desc in enumerate(layers):
            if not isinstance(desc, dict):
                raise LayoutError(f"{self.root}: manifest {entry.digest} has a bad layer")
            data = self.blob(str(desc.get("digest")), size=desc.get("size"),
                             what=f"layer {n} of {entry.digest}")
            annotations = _annotations(desc.get("annotations"),
                                       f"{self.root}: layer {n} of {entry.digest}")
            out.append(SignatureLayer(
                data=data, media_type=str(desc.get("mediaType", "")), annotations=annotations,
                source=f"{source} layer {n}"))
        return tuple(out)


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise LayoutError(f"{what}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"{what}: not a JSON object")
    return doc


def _list(value: Any, what: str) -> list[Any]:
    """A JSON list from the layout (absent: empty); anything else is the layout's fault."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise LayoutError(f"{what} is not a list")
    return value


def _annotations(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LayoutError(f"{what}: annotations is not a map")
    return {str(k): str(v) for k, v in value.items()}


def _sig_tag(digest: str) -> str:
    return digest.replace(":", "-", 1) + ".sig"


def _is_signature(entry: _Entry) -> bool:
    return (entry.subject is not None or entry.kind in _COSIGN_NON_IMAGES
            or bool(_ATTACHED_TAG.match(entry.ref_name)))


def _signed_digest(layout: _Layout, entries: list[_Entry]) -> str:
    images = [e for e in entries if not _is_signature(e)]
    if len(images) == 1:
        return images[0].digest
    if not images:
        raise LayoutError(f"--local-image {layout.root}: the layout holds no image, only "
                          "signatures; name the signed manifest as DIR@sha256:<digest>")
    listed = ", ".join(f"{e.digest}" + (f" ({e.ref_name})" if e.ref_name else "")
                       for e in images)
    raise LayoutError(f"--local-image {layout.root}: the layout holds {len(images)} images "
                      f"({listed}); name the one to verify as DIR@sha256:<digest>")


def read_layout_signatures(image: LocalImage | str, *,
                           artifact_types: tuple[str, ...] = (BUNDLE_ARTIFACT_TYPE,),
                           ) -> SignatureArtifacts:
    """The legacy signature layers and bundle referrers of the layout's signed manifest."""
    local = LocalImage.parse(image) if isinstance(image, str) else image
    layout = _Layout(local.path)
    entries = layout.entries()
    digest = local.digest or _signed_digest(layout, entries)
    sig_tag = _sig_tag(digest)
    has_cosign_image = any(e.kind == _COSIGN_IMAGE for e in entries)
    cosign_image_matches = any(e.kind == _COSIGN_IMAGE and e.digest == digest for e in entries)
    legacy: list[SignatureLayer] = []
    referrers: list[Referrer] = []
    unlisted = layout.unlisted_referrers({e.digest for e in entries})
    for entry in [*entries, *unlisted]:
        # `cosign save` writes one image per layout: its sigs belong to that image only
        cosign_sigs = entry.kind == _COSIGN_SIGS and (cosign_image_matches
                                                      or not has_cosign_image)
        if entry.ref_name == sig_tag or cosign_sigs:
            name = entry.ref_name or f"manifest {entry.digest}"
            legacy.extend(layout.layers(entry, f"{layout.root}: {name}"))
        elif entry.subject == digest and entry.artifact_type in artifact_types:
            referrers.append(Referrer(
                artifact_type=entry.artifact_type, manifest_digest=entry.digest,
                layers=layout.layers(entry, f"{layout.root}: referrer {entry.digest}"),
                source=f"{layout.root}: referrer {entry.digest}"))
    looked_at = (f"manifest tagged {sig_tag} in {layout.root}",
                 f"manifests with subject {digest} in {layout.root}")
    return SignatureArtifacts(digest=digest, legacy=tuple(legacy), referrers=tuple(referrers),
                              looked_at=looked_at)

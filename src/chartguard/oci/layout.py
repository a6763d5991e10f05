"""OCI image layouts on disk, as ``chartguard verify --local-image`` reads them.

For air-gapped verification of what ``oras copy -r --to-oci-layout``, ``crane``, ``zarf``,
containerd exports or ``cosign save`` wrote:

- names: ``org.opencontainers.image.ref.name`` may hold a bare tag (``1.0.0``) or a full
  reference (``registry/repo:tag``, ``registry/repo@sha256:…``); ``io.containerd.image.name``
  holds a full reference. A name selects by its tag or in full.
- the image verified is the one named by ``DIR@sha256:<hex>`` or ``DIR:NAME``, or else the
  layout's only image. Signatures and attestations (recognised by what their layers are, not
  by annotations) are not images, nor is what cosign attaches under a ``sha256-<hex>.<ext>``
  name unless it is a chart; every other manifest is, so a second image, or an image that
  carries a ``subject``, makes "the only image" ambiguous and is refused with the list;
- its legacy signature is the manifest named ``sha256-<hex>.sig``, or the one ``cosign save``
  marks ``kind: dev.cosignproject.cosign/sigs``; its bundles are the manifests whose
  ``subject`` is the signed digest: listed (also inside a copied ``sha256-<hex>`` referrers
  index) or, as ``cosign save`` leaves them, only present in ``blobs/``;
- the chart itself (manifest, config, chart layer) is checked as the registry client checks
  it (:mod:`chartguard.oci.chart`).

Every file is read with the registry's size caps (:class:`chartguard.oci.limits.Limits`),
checked against its sha256 and descriptor size, and parsed with the depth-guarded JSON parser;
nested indexes are walked once each, bounded in depth and in the number of descriptors.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chartguard.digest import is_digest
from chartguard.oci import mediatypes as mt
from chartguard.oci.chart import read_chart, read_provenance
from chartguard.oci.client import ChartArtifact
from chartguard.oci.errors import (
    DigestMismatchError,
    ManifestNotFoundError,
    OCIError,
    SizeLimitExceededError,
)
from chartguard.oci.limits import Limits
from chartguard.oci.signatures import Referrer, SignatureArtifacts, SignatureLayer
from chartguard.oci.tags import attestation_tag, is_attached_tag, signature_tag
from chartguard.untrusted import UntrustedInputError, escape, loads_json

__all__ = ["LayoutError", "LayoutNotFoundError", "LocalImage", "OCILayout",
           "read_layout_signatures"]

_INDEX_TYPES = frozenset({mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST})
_REF_NAME = "org.opencontainers.image.ref.name"
_CONTAINERD_NAME = "io.containerd.image.name"
_NAME_KEYS = (_REF_NAME, _CONTAINERD_NAME)
_COSIGN_KIND = "kind"  # `cosign save` annotates each manifest of its layout with its kind
_COSIGN_IMAGE_KINDS = frozenset({"dev.cosignproject.cosign/image",
                                 "dev.cosignproject.cosign/imageIndex"})
_COSIGN_SIGS = "dev.cosignproject.cosign/sigs"
_COSIGN_ATTS = "dev.cosignproject.cosign/atts"
# What signatures and attestations are made of (cosign legacy and DSSE, Sigstore bundles)
_SIGNATURE_TYPES = frozenset({
    mt.COSIGN_SIGNATURE_LAYER, mt.BUNDLE_ARTIFACT_TYPE,
    "application/vnd.dsse.envelope.v1+json", "application/vnd.in-toto+json",
    "application/vnd.dev.cosign.artifact.sig.v1+json",
})
# cosign's attachment tags (.sig/.att/.sbom) and the referrers fallback tag
_MAX_NESTING = 8  # indexes inside indexes
_MAX_DESCRIPTORS = 10_000  # index entries walked in all, each distinct digest read once
_MAX_SCANNED = 10_000  # files of blobs/ looked at for unlisted referrers (cosign save)
_MAX_NAMES_SHOWN = 10


class LayoutError(OCIError):
    """The layout cannot be used as it is; the message says what to fix."""


class LayoutNotFoundError(LayoutError):
    """The path given is not an OCI image layout at all (a usage error for the CLI)."""


@dataclass(frozen=True)
class LocalImage:
    """``DIR``, ``DIR@sha256:<hex>`` or ``DIR:NAME`` (a tag or a full reference)."""

    path: Path
    digest: str | None = None
    name: str | None = None

    @classmethod
    def parse(cls, spec: str) -> LocalImage:
        if Path(spec).is_dir():
            return cls(Path(spec))
        # DIR:NAME, where NAME may itself hold ':' (host:port/repo:tag): the first prefix
        # that is a directory ends DIR
        for match in re.finditer(":", spec):
            head = spec[:match.start()]
            if head and Path(head).is_dir():
                name = spec[match.end():]
                if not name:
                    raise LayoutError(f"{spec!r} names no image after ':'; write DIR:TAG")
                return cls(Path(head), name=name)
        path, sep, digest = spec.rpartition("@")
        if not sep or "/" in digest or ":" not in digest:  # an @ inside a directory name
            return cls(Path(spec))
        if not is_digest(digest):
            raise LayoutError(f"{escape(digest)!r} is not a sha256 digest; write "
                              "DIR@sha256:<64 hex digits>")
        return cls(Path(path), digest)


def _tag_of(name: str) -> str | None:
    """The tag a name holds: a bare tag, or the part after ``repo:``; None for a digest."""
    if "@" in name:
        return None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return None if "/" in name else name


def _digest_of(name: str) -> str | None:
    _, sep, digest = name.rpartition("@")
    return digest if sep and is_digest(digest) else None


@dataclass
class _Entry:
    """A manifest listed by the layout, with every name and annotation its indexes gave it."""

    digest: str
    media_type: str
    doc: dict[str, Any]
    annotations: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def add(self, annotations: dict[str, str]) -> None:
        self.annotations.update(annotations)
        self.names.update(annotations[k] for k in _NAME_KEYS if annotations.get(k))

    @property
    def kind(self) -> str:
        return self.annotations.get(_COSIGN_KIND, "")

    @property
    def subject(self) -> str | None:
        subject = self.doc.get("subject")
        value = subject.get("digest") if isinstance(subject, dict) else None
        return value if isinstance(value, str) else None

    @property
    def artifact_type(self) -> str:
        declared = self.doc.get("artifactType")
        if isinstance(declared, str) and declared:
            return declared
        config = self.doc.get("config")
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        return config_type if isinstance(config_type, str) else ""

    @property
    def is_signature(self) -> bool:
        """A signature or attestation by what it is made of (annotations do not count)."""
        if self.artifact_type in _SIGNATURE_TYPES:
            return True
        layers = self.doc.get("layers")
        types = [_text(layer.get("mediaType")) if isinstance(layer, dict) else ""
                 for layer in layers] if isinstance(layers, list) else []
        return bool(types) and all(t in _SIGNATURE_TYPES for t in types)

    @property
    def is_attachment(self) -> bool:
        """Named as cosign names what it attaches to a digest (an SBOM...) and not a chart."""
        return self.artifact_type != mt.HELM_CONFIG and any(
            is_attached_tag(_tag_of(name) or "") for name in self.names)

    def tagged(self, tag: str) -> bool:
        return any(_tag_of(name) == tag for name in self.names)

    def named(self, name: str) -> bool:
        return (name in self.names or self.tagged(name)
                or any(_digest_of(n) == name for n in self.names))

    def describe(self) -> str:
        notes = sorted(escape(n) for n in self.names)
        if self.subject:
            notes.append(f"subject {escape(self.subject)}")
        return self.digest + (f" ({', '.join(notes)})" if notes else "")


class OCILayout:
    """One layout directory: its manifests (walked once), blobs (checked), chart, signatures.

    ``reads`` counts how often each blob was read (each at most once by the walk).
    """

    def __init__(self, root: Path, limits: Limits | None = None) -> None:
        self.root = root
        self.limits = limits or Limits()
        self.reads: Counter[str] = Counter()
        self._entries: list[_Entry] | None = None
        self._docs: dict[str, dict[str, Any]] = {}
        self._raw: dict[str, bytes] = {}
        if not root.is_dir():
            raise LayoutNotFoundError(f"{root}: no such directory")
        marker = root / "oci-layout"
        if not marker.is_file() or not (root / "index.json").is_file():
            raise LayoutNotFoundError(
                f"{root}: not an OCI image layout (no oci-layout or index.json); write one "
                "with `oras copy --to-oci-layout` or `cosign save`")
        version = self._json(self._read(marker, self.limits.max_manifest_bytes),
                             f"{marker}").get("imageLayoutVersion")
        if version != "1.0.0":
            raise LayoutError(f"{marker}: imageLayoutVersion {escape(version)!r} is not 1.0.0")

    # -- files -------------------------------------------------------------------------------

    def _read(self, path: Path, limit: int) -> bytes:
        """At most ``limit`` bytes of a regular file; more is refused, never read whole."""
        if not path.is_file():
            raise LayoutError(f"{path}: not a regular file")
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise SizeLimitExceededError(f"{path}: over the {limit} byte limit")
        return data

    def _json(self, data: bytes, what: str) -> dict[str, Any]:
        try:
            doc = loads_json(data, what=what)
        except UntrustedInputError as err:
            raise LayoutError(str(err)) from None
        if not isinstance(doc, dict):
            raise LayoutError(f"{what}: not a JSON object")
        return doc

    def blob(self, digest: object, *, size: object = None, limit: int,
             what: str = "blob") -> bytes:
        """The bytes of ``digest``; its cap, descriptor size and sha256 checked."""
        if not is_digest(digest):
            raise LayoutError(f"{self.root}: {what} digest {escape(digest)!r} is not "
                              "sha256:<hex>")
        assert isinstance(digest, str)
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                 or size < 0):
            raise LayoutError(f"{self.root}: {what} {digest} has an invalid size "
                              f"{escape(size)!r} in its descriptor")
        path = self.root / "blobs" / "sha256" / digest.split(":", 1)[1]
        if not path.is_file():
            raise ManifestNotFoundError(f"{self.root}: {what} {digest} is listed but "
                                        f"blobs/sha256/{path.name} is missing")
        if size is not None and size > limit:
            raise SizeLimitExceededError(f"{self.root}: {what} {digest} is {size} bytes by "
                                         f"its descriptor, over the {limit} byte limit")
        data = self._read(path, limit)
        self.reads[digest] += 1
        if size is not None and len(data) != size:
            raise DigestMismatchError(f"{self.root}: {what} {digest} is {len(data)} bytes, "
                                      f"its descriptor says {size}")
        found = "sha256:" + hashlib.sha256(data).hexdigest()
        if found != digest:
            raise DigestMismatchError(f"{self.root}: {what} {digest} hashes to {found}; "
                                      "the layout is corrupt or was tampered with")
        return data

    def manifest(self, digest: str, size: object = None) -> dict[str, Any]:
        """The manifest or index ``digest``, parsed (read once)."""
        doc = self._docs.get(digest)
        if doc is None:
            data = self.blob(digest, size=size, limit=self.limits.max_manifest_bytes,
                             what="manifest")
            doc = self._json(data, f"{self.root}: manifest {digest}")
            self._docs[digest] = doc
            self._raw[digest] = data
        return doc

    # -- what the layout lists ----------------------------------------------------------------

    def entries(self) -> list[_Entry]:
        """Every manifest the layout lists, following nested indexes, each read once."""
        if self._entries is None:
            index = self.root / "index.json"
            top = self._json(self._read(index, self.limits.max_manifest_bytes), f"{index}")
            found: dict[str, _Entry] = {}
            self._walk(_list(top.get("manifests"), f"{index} manifests"), found, set(),
                       [0], depth=0)
            self._entries = list(found.values())
        return self._entries

    def _walk(self, descriptors: list[Any], found: dict[str, _Entry], indexes: set[str],
              walked: list[int], depth: int) -> None:
        if depth > _MAX_NESTING:
            raise LayoutError(f"{self.root}: indexes nested deeper than {_MAX_NESTING}")
        # counted before any is opened: a list past the cap is refused, not walked
        walked[0] += len(descriptors)
        if walked[0] > _MAX_DESCRIPTORS:
            raise LayoutError(f"{self.root}: its indexes list more than "
                              f"{_MAX_DESCRIPTORS} manifests")
        for desc in descriptors:
            if not isinstance(desc, dict) or "digest" not in desc:
                raise LayoutError(f"{self.root}: index entry without a digest: "
                                  f"{escape(desc)}")
            digest = desc["digest"]
            if not is_digest(digest):
                raise LayoutError(f"{self.root}: manifest digest {escape(digest)!r} is not "
                                  "sha256:<hex>")
            annotations = _annotations(desc.get("annotations"),
                                       f"{self.root}: index entry {digest}")
            if digest in found:  # listed twice (tag and untagged): keep every name
                found[digest].add(annotations)
                continue
            if digest in indexes:  # an index listed again: walked already
                continue
            doc = self.manifest(digest, desc.get("size"))
            media_type = _text(desc.get("mediaType")) or _text(doc.get("mediaType"))
            if media_type in _INDEX_TYPES or "manifests" in doc:
                indexes.add(digest)
                self._walk(_list(doc.get("manifests"), f"{self.root}: index {digest} "
                                 "manifests"), found, indexes, walked, depth + 1)
                continue
            entry = _Entry(digest, media_type, doc)
            entry.add(annotations)
            found[digest] = entry

    def select(self, image: LocalImage) -> str:
        """The digest to verify: the one given, the one named, or the only image."""
        if image.digest:
            return image.digest
        entries = self.entries()
        if image.name:
            named = [e for e in entries if e.named(image.name)]
            if len(named) == 1:
                return named[0].digest
            if not named:
                names = sorted({escape(n) for e in entries for n in e.names})
                shown = ", ".join(names[:_MAX_NAMES_SHOWN]) or "none"
                raise LayoutError(f"{self.root}: no manifest is named {escape(image.name)!r} "
                                  f"(names: {shown})")
            raise LayoutError(f"{self.root}: {len(named)} manifests are named "
                              f"{escape(image.name)!r} ({_listed(named)}); name the one to "
                              "verify as DIR@sha256:<digest>")
        images = [e for e in entries if not e.is_signature and not e.is_attachment]
        if len(images) == 1:
            return images[0].digest
        if not images:
            raise LayoutError(f"{self.root}: the layout holds no image, only signatures; "
                              "name the signed manifest as DIR@sha256:<digest>")
        raise LayoutError(f"{self.root}: the layout holds {len(images)} images "
                          f"({_listed(images)}); name the one to verify as "
                          "DIR@sha256:<digest> or DIR:TAG")

    # -- the chart and its signatures -----------------------------------------------------------

    def fetch_chart(self, digest: str, *, provenance: bool = False) -> ChartArtifact:
        """The chart at ``digest``: manifest, config and chart layer, checked as a registry's;
        with ``provenance``, its provenance layer too (None when there is none)."""
        path = self.root / "blobs" / "sha256" / digest.split(":", 1)[1]
        if not path.is_file():
            raise ManifestNotFoundError(
                f"{self.root}: the layout does not hold the manifest {digest}, only what "
                "refers to it: copy the chart too (oras copy -r --to-oci-layout)")
        doc = self.manifest(digest)
        media_type = _text(doc.get("mediaType")) or next(
            (e.media_type for e in self.entries() if e.digest == digest), "")

        def get_blob(blob: str, size: int, limit: int) -> bytes:
            return self.blob(blob, size=size, limit=limit, what="blob")

        parts = read_chart(media_type, doc, f"{self.root}: manifest {digest}", self.limits,
                           get_blob)
        prov = (read_provenance(doc, f"{self.root}: manifest {digest}", get_blob)
                if provenance else None)
        return ChartArtifact(name=parts.name, version=parts.version, digest=digest,
                             manifest=self._raw[digest], config=parts.config,
                             layer=parts.layer, provenance=prov)

    def signatures(self, digest: str, artifact_types: tuple[str, ...] = (
            mt.BUNDLE_ARTIFACT_TYPE,), *, attestations: bool = False) -> SignatureArtifacts:
        """The legacy signature layers and bundle referrers of ``digest`` in the layout (and
        with ``attestations`` the legacy attestation layers)."""
        entries = self.entries()
        sig_tag = signature_tag(digest)
        att_tag = attestation_tag(digest)
        cosign_images = {e.digest for e in entries if e.kind in _COSIGN_IMAGE_KINDS}
        legacy: list[SignatureLayer] = []
        attested: list[SignatureLayer] = []
        referrers: list[Referrer] = []
        for entry in entries:
            # `cosign save` writes one image per layout: its sigs belong to that image only
            ours = not cosign_images or digest in cosign_images
            cosign_sigs = entry.kind == _COSIGN_SIGS and ours
            name = (f"manifest {sorted(entry.names)[0]}" if entry.names
                    else f"manifest {entry.digest}")
            if entry.tagged(sig_tag) or cosign_sigs:
                legacy.extend(self._layers(entry.digest, entry.doc, f"{self.root}: "
                                           f"{escape(name)}"))
            elif entry.tagged(att_tag) or (entry.kind == _COSIGN_ATTS and ours):
                if attestations:
                    attested.extend(self._layers(entry.digest, entry.doc, f"{self.root}: "
                                                 f"{escape(name)}"))
            elif entry.subject == digest and entry.artifact_type in artifact_types:
                referrers.append(self._referrer(entry.digest, entry.doc, entry.artifact_type))
        listed = {e.digest for e in entries}
        for blob_digest, doc in self._unlisted_manifests(listed):
            unlisted = _Entry(blob_digest, "", doc)
            if unlisted.subject == digest and unlisted.artifact_type in artifact_types:
                referrers.append(self._referrer(blob_digest, doc, unlisted.artifact_type))
        looked_at = (f"manifest named {sig_tag} in {self.root}",
                     *((f"manifest named {att_tag} in {self.root}",) if attestations else ()),
                     f"manifests with subject {digest} in {self.root}")
        return SignatureArtifacts(digest=digest, legacy=tuple(legacy),
                                  referrers=tuple(referrers[:self.limits.max_referrers]),
                                  looked_at=looked_at, attestations=tuple(attested))

    def _referrer(self, digest: str, doc: dict[str, Any], artifact_type: str) -> Referrer:
        source = f"{self.root}: referrer {digest}"
        return Referrer(artifact_type=artifact_type, manifest_digest=digest,
                        layers=self._layers(digest, doc, source), source=source)

    def _unlisted_manifests(self, listed: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """Manifests present in blobs/ but listed nowhere (how `cosign save` keeps bundles)."""
        blobs = self.root / "blobs" / "sha256"
        if not blobs.is_dir():
            return []
        out = []
        for n, path in enumerate(sorted(blobs.iterdir())):
            if n >= _MAX_SCANNED:
                raise LayoutError(f"{self.root}: more than {_MAX_SCANNED} blobs to look "
                                  "through for signatures; name fewer in one layout")
            digest = f"sha256:{path.name}"
            if (digest in listed or digest in self._docs or not is_digest(digest)
                    or not path.is_file()
                    or path.stat().st_size > self.limits.max_manifest_bytes):
                continue
            with path.open("rb") as stream:
                if stream.read(1) != b"{":
                    continue  # a layer, not a JSON manifest
            try:
                doc = self.manifest(digest)
            except LayoutError:
                continue  # JSON that is no manifest (a config, a bundle): not a referrer
            if isinstance(doc.get("subject"), dict):
                out.append((digest, doc))
        return out

    def _layers(self, digest: str, doc: dict[str, Any],
                source: str) -> tuple[SignatureLayer, ...]:
        out = []
        for n, desc in enumerate(_list(doc.get("layers"),
                                       f"{self.root}: manifest {digest} layers")):
            if not isinstance(desc, dict):
                raise LayoutError(f"{self.root}: manifest {digest} has a bad layer {n}")
            data = self.blob(desc.get("digest"), size=desc.get("size"),
                             limit=self.limits.max_signature_bytes,
                             what=f"layer {n} of {digest}")
            annotations = _annotations(desc.get("annotations"),
                                       f"{self.root}: layer {n} of {digest}")
            out.append(SignatureLayer(
                data=data, media_type=str(desc.get("mediaType", "")), annotations=annotations,
                source=f"{source} layer {n}"))
        return tuple(out)


def _listed(entries: list[_Entry]) -> str:
    shown = ", ".join(e.describe() for e in entries[:_MAX_NAMES_SHOWN])
    return shown + (f" and {len(entries) - _MAX_NAMES_SHOWN} more"
                    if len(entries) > _MAX_NAMES_SHOWN else "")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


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


def read_layout_signatures(image: LocalImage | str, *,
                           artifact_types: tuple[str, ...] = (mt.BUNDLE_ARTIFACT_TYPE,),
                           ) -> SignatureArtifacts:
    """The legacy signature layers and bundle referrers of the layout's signed manifest."""
    local = LocalImage.parse(image) if isinstance(image, str) else image
    layout = OCILayout(local.path)
    return layout.signatures(layout.select(local), artifact_types)

"""Signature artifacts of a digest: cosign's legacy ``.sig`` tag and OCI 1.1 referrers.

- legacy: the manifest at tag ``sha256-<hex>.sig``; each layer is one signature
  (simplesigning payload, signature and certificate in annotations);
- referrers: the referrers API ``/v2/<name>/referrers/<digest>``; when the registry has none
  (404/400/405/406, or an answer that is not an image index) the ``sha256-<hex>`` tag index
  that OCI 1.1 clients maintain instead. Referrers are kept when their artifactType (or,
  from older writers, their config media type) is one asked for and their ``subject`` is
  the digest itself.

Every manifest and layer is fetched by digest and checked; nothing is interpreted here:
verification (``chartguard.verify``) gets the raw bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chartguard.oci.errors import ManifestNotFoundError, UnsupportedMediaTypeError
from chartguard.oci.mediatypes import (
    BUNDLE_ARTIFACT_TYPE,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
)

if TYPE_CHECKING:
    from chartguard.oci.client import Manifest, RegistryClient
    from chartguard.oci.reference import ChartReference

__all__ = ["BUNDLE_ARTIFACT_TYPE", "Referrer", "SignatureArtifacts", "SignatureLayer",
           "discover_signatures"]


@dataclass(frozen=True)
class SignatureLayer:
    """One layer of a signature manifest: its raw bytes, media type and annotations."""

    data: bytes = field(repr=False)
    media_type: str
    annotations: Mapping[str, str]
    source: str  # where it was found, for messages: "tag sha256-<hex>.sig layer 0"


@dataclass(frozen=True)
class Referrer:
    """An OCI 1.1 referrer of the signed digest (a manifest whose subject is that digest)."""

    artifact_type: str
    manifest_digest: str
    layers: tuple[SignatureLayer, ...]
    source: str  # "referrers API" or "referrers tag sha256-<hex>"


@dataclass(frozen=True)
class SignatureArtifacts:
    """What was found for ``digest``, and where chartguard looked (for 'not signed' messages)."""

    digest: str
    legacy: tuple[SignatureLayer, ...] = ()
    referrers: tuple[Referrer, ...] = ()
    looked_at: tuple[str, ...] = ()


def _hex_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


def _layers(client: RegistryClient, ref: ChartReference, manifest: Manifest,
            source: str) -> tuple[SignatureLayer, ...]:
    layers = manifest.data.get("layers")
    if not isinstance(layers, list):
        raise UnsupportedMediaTypeError(
            f"signature manifest {manifest.digest} of {ref} ({source}) has no layers list: "
            "re-sign the chart")
    out = []
    for n, desc in enumerate(layers):
        if not isinstance(desc, dict):
            raise UnsupportedMediaTypeError(
                f"signature manifest {manifest.digest} of {ref} has a malformed layer {n}")
        size = desc.get("size")
        data = client.get_blob(ref.repository, str(desc.get("digest")),
                               size if isinstance(size, int) else None,
                               client.limits.max_signature_bytes, ref=ref)
        raw_annotations = desc.get("annotations")
        annotations = ({str(k): str(v) for k, v in raw_annotations.items()}
                       if isinstance(raw_annotations, dict) else {})
        out.append(SignatureLayer(data=data, media_type=str(desc.get("mediaType", "")),
                                  annotations=annotations, source=f"{source} layer {n}"))
    return tuple(out)


def _legacy(client: RegistryClient, ref: ChartReference, digest: str,
            looked_at: list[str]) -> tuple[SignatureLayer, ...]:
    tag = _hex_tag(digest) + ".sig"
    looked_at.append(f"tag {tag}")
    try:
        manifest = client.get_manifest(ref.repository, tag, ref=ref)
    except ManifestNotFoundError:
        return ()
    return _layers(client, ref, manifest, f"tag {tag}")


def _artifact_type(manifest: Manifest) -> str:
    declared = manifest.data.get("artifactType")
    if isinstance(declared, str) and declared:
        return declared
    config = manifest.data.get("config")  # writers before OCI 1.1 put it in the config
    media_type = config.get("mediaType") if isinstance(config, dict) else None
    return media_type if isinstance(media_type, str) else ""


def _subject_digest(manifest: Manifest) -> str | None:
    subject = manifest.data.get("subject")
    value = subject.get("digest") if isinstance(subject, dict) else None
    return value if isinstance(value, str) else None


def _index_entries(index: Manifest) -> list[dict[str, Any]]:
    entries = index.data.get("manifests")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _referrers(client: RegistryClient, ref: ChartReference, digest: str,
               artifact_types: tuple[str, ...], looked_at: list[str]) -> tuple[Referrer, ...]:
    looked_at.append("referrers API")
    index = client.referrers_api(ref, digest)
    source = "referrers API"
    from_api = index is not None
    if index is None:
        tag = _hex_tag(digest)
        source = f"referrers tag {tag}"
        looked_at.append(source)
        try:
            index = client.get_manifest(ref.repository, tag, ref=ref)
        except ManifestNotFoundError:
            return ()
        if index.media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            return ()  # something else holds the tag: it lists no referrers
    found: list[Referrer] = []
    seen: set[str] = set()
    for entry in _index_entries(index)[: client.limits.max_referrers]:
        entry_digest = entry.get("digest")
        if not isinstance(entry_digest, str) or entry_digest in seen:
            continue
        seen.add(entry_digest)
        declared = entry.get("artifactType")
        # The registry's own index says what each referrer is: others need not be fetched.
        # A fallback tag index is written by clients and may not: cosign v2.6's
        # --new-bundle-format lists its bundles there as the config's media type
        # (application/vnd.oci.empty.v1+json), so there every listed manifest is looked at.
        if (from_api and isinstance(declared, str) and declared
                and declared not in artifact_types):
            continue
        manifest = client.get_manifest(ref.repository, entry_digest, ref=ref)
        artifact_type = _artifact_type(manifest)
        # the index is only a hint: the manifest itself must point at the signed digest
        if artifact_type not in artifact_types or _subject_digest(manifest) != digest:
            continue
        found.append(Referrer(
            artifact_type=artifact_type, manifest_digest=manifest.digest,
            layers=_layers(client, ref, manifest, f"{source} referrer {manifest.digest}"),
            source=source))
    return tuple(found)


def discover_signatures(client: RegistryClient, ref: ChartReference, digest: str,
                        artifact_types: tuple[str, ...]) -> SignatureArtifacts:
    """Look in every place a cosign signature of ``digest`` may be; return what is there."""
    looked_at: list[str] = []
    legacy = _legacy(client, ref, digest, looked_at)
    referrers = _referrers(client, ref, digest, artifact_types, looked_at)
    return SignatureArtifacts(digest=digest, legacy=legacy, referrers=referrers,
                              looked_at=tuple(looked_at))

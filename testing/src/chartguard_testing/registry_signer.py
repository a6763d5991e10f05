"""Write cosign's signature formats into a real registry and into OCI image layouts.

Test equipment: the signatures themselves come from the test signer
(:mod:`chartguard_testing.cosign_signer`); this module only *stores* them the way cosign does,
so the production code reads them through the same paths as cosign-made ones:

- legacy signatures: an OCI manifest at tag ``sha256-<hex>.sig`` whose layers are
  ``application/vnd.dev.cosign.simplesigning.v1+json`` blobs carrying their annotations
  (``dev.cosignproject.cosign/signature``, certificate, chain, Rekor bundle), with the
  go-containerregistry style config cosign writes. Signing again appends a layer, as cosign does.
- v0.3 bundles (cosign v3's default): an OCI 1.1 referrer manifest (``artifactType`` and the
  single layer ``application/vnd.dev.sigstore.bundle.v0.3+json``, ``subject`` = the signed
  manifest) plus the referrers fallback tag ``sha256-<hex>`` index, created or appended to,
  because Debian's docker-registry has no referrers API.

Layouts (``--local-image``) are written as ``oras copy --to-oci-layout`` writes them (tags in
``org.opencontainers.image.ref.name``, untagged referrers listed without it) or as
``cosign save`` writes them (``kind`` annotations).

Everything is plain HTTP calls with ``requests`` (blob upload POST + PUT, manifest PUT), with
basic auth and the registry's CA passed on every request: ``REQUESTS_CA_BUNDLE`` is set on these
machines and would otherwise override a Session's ``verify``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

import requests

from chartguard_testing.registry import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
REF_NAME = "org.opencontainers.image.ref.name"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
# `cosign save` marks each manifest of its layout with this annotation key.
COSIGN_KIND = "kind"
COSIGN_KIND_IMAGE = "dev.cosignproject.cosign/image"
COSIGN_KIND_SIGS = "dev.cosignproject.cosign/sigs"

_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX,
                     "application/vnd.docker.distribution.manifest.v2+json",
                     "application/vnd.docker.distribution.manifest.list.v2+json"])
_EMPTY_JSON = b"{}"


class SignatureLayerLike(Protocol):
    """What a legacy signature layer is made of (``verify.LegacySignature`` fits)."""

    @property
    def payload(self) -> bytes: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class SigLayer:
    """One ``.sig`` layer: the simple-signing payload and its annotations."""

    payload: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Blob:
    """Bytes and their OCI descriptor."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data),
                **extra}


@dataclass(frozen=True)
class Artifact:
    """A manifest (or index) and the blobs it needs, ready to be stored anywhere."""

    manifest: Blob
    blobs: tuple[Blob, ...] = ()


def sig_tag(digest: str) -> str:
    """cosign's legacy signature tag for ``digest``: ``sha256-<hex>.sig``."""
    return referrers_tag(digest) + ".sig"


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers fallback tag for ``digest``: ``sha256-<hex>``."""
    algo, hexd = digest.split(":", 1)
    return f"{algo}-{hexd}"


def _dumps(obj: Any) -> bytes:
    # go's encoding/json style: compact, field order as written
    return json.dumps(obj, separators=(",", ":")).encode()


def legacy_signature_artifact(layers: Sequence[SignatureLayerLike]) -> Artifact:
    """The ``.sig`` manifest cosign writes for these layers (config as go-containerregistry)."""
    blobs = [Blob(layer.payload, SIMPLESIGNING) for layer in layers]
    config = Blob(_dumps({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in blobs],
        "os": "", "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]},
        "config": {}}), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
        "layers": [b.descriptor(annotations=dict(layer.annotations))
                   for b, layer in zip(blobs, layers, strict=True)],
    }
    return Artifact(Blob(_dumps(manifest), OCI_MANIFEST), (config, *blobs))


def bundle_referrer_artifact(bundle: bytes, subject: Mapping[str, Any], *,
                             created: str = "2026-01-01T00:00:00Z") -> Artifact:
    """The referrer manifest cosign v3 writes for one v0.3 bundle about ``subject``."""
    config = Blob(_EMPTY_JSON, OCI_EMPTY)
    layer = Blob(bundle, BUNDLE_V03)
    content = "dsse-envelope" if b'"dsseEnvelope"' in bundle else "message-signature"
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_V03,
        "config": config.descriptor(), "layers": [layer.descriptor()],
        "subject": dict(subject),
        "annotations": {"dev.sigstore.bundle.content": content,
                        "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE,
                        "org.opencontainers.image.created": created},
    }
    return Artifact(Blob(_dumps(manifest), OCI_MANIFEST), (config, layer))


def referrer_index_entry(artifact: Artifact) -> dict[str, Any]:
    """The descriptor of a referrer as listed in a referrers index (artifactType, annotations)."""
    doc = json.loads(artifact.manifest.data)
    extra: dict[str, Any] = {"artifactType": doc.get("artifactType", BUNDLE_V03)}
    if doc.get("annotations"):
        extra["annotations"] = doc["annotations"]
    return artifact.manifest.descriptor(**extra)


class RegistryWriter:
    """Plain OCI distribution writes against one registry (auth and TLS aware)."""

    def __init__(self, registry: Registry, *, timeout: float = 10.0) -> None:
        self.base = registry.url
        self.auth = ((registry.username, registry.password)
                     if registry.username and registry.password else None)
        # a path, not True: REQUESTS_CA_BUNDLE would replace True with the system bundle
        self.verify: str | bool = str(registry.tls.ca_cert) if registry.tls else True
        self.timeout = timeout
        self.session = requests.Session()

    def _request(self, method: str, url: str, **kw: Any) -> requests.Response:
        return self.session.request(method, url, auth=self.auth, verify=self.verify,
                                    timeout=self.timeout, **kw)

    def put_blob(self, repository: str, blob: Blob) -> None:
        """Upload ``blob`` unless the repository has it (monolithic POST + PUT)."""
        head = self._request("HEAD", f"{self.base}/v2/{repository}/blobs/{blob.digest}")
        if head.status_code == 200:
            return
        start = self._request("POST", f"{self.base}/v2/{repository}/blobs/uploads/")
        _expect(start, 202, f"start blob upload to {repository}")
        location = urljoin(self.base + "/", start.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = self._request("PUT", f"{location}{sep}digest={blob.digest}", data=blob.data,
                             headers={"Content-Type": "application/octet-stream"})
        _expect(done, 201, f"upload blob {blob.digest} to {repository}")

    def put_manifest(self, repository: str, reference: str, manifest: Blob) -> str:
        """PUT ``manifest`` at a tag or its digest; return its digest."""
        resp = self._request("PUT", f"{self.base}/v2/{repository}/manifests/{reference}",
                             data=manifest.data, headers={"Content-Type": manifest.media_type})
        _expect(resp, 201, f"put manifest {reference} in {repository}")
        return manifest.digest

    def push(self, repository: str, artifact: Artifact, reference: str | None = None) -> str:
        """Store ``artifact`` (blobs first); return the manifest digest."""
        for blob in artifact.blobs:
            self.put_blob(repository, blob)
        return self.put_manifest(repository, reference or artifact.manifest.digest,
                                 artifact.manifest)

    def get_manifest(self, repository: str, reference: str) -> Blob | None:
        """The manifest at ``reference`` (None when absent), its sha256 checked for digests."""
        resp = self._request("GET", f"{self.base}/v2/{repository}/manifests/{reference}",
                             headers={"Accept": _ACCEPT})
        if resp.status_code == 404:
            return None
        _expect(resp, 200, f"get manifest {reference} from {repository}")
        media_type = resp.headers.get("Content-Type", OCI_MANIFEST).split(";")[0].strip()
        blob = Blob(resp.content, media_type)
        if reference.startswith("sha256:") and blob.digest != reference:
            raise RuntimeError(f"registry served {blob.digest} for {repository}@{reference}")
        return blob

    def get_blob(self, repository: str, digest: str) -> bytes:
        resp = self._request("GET", f"{self.base}/v2/{repository}/blobs/{digest}")
        _expect(resp, 200, f"get blob {digest} from {repository}")
        return resp.content

    def descriptor(self, repository: str, digest: str) -> dict[str, Any]:
        """The descriptor of the manifest ``digest`` (to use as a referrer's subject)."""
        blob = self.get_manifest(repository, digest)
        if blob is None:
            raise RuntimeError(f"no manifest {digest} in {repository}")
        return blob.descriptor()


def _expect(resp: requests.Response, status: int, what: str) -> None:
    if resp.status_code != status:
        raise RuntimeError(f"{what}: HTTP {resp.status_code} {resp.text[:300]}")


def repository_path(repository: str) -> str:
    """``host/path/name`` (as in ``PushedChart.repository``) -> ``path/name``."""
    return repository.split("/", 1)[1] if "/" in repository else repository


def push_legacy_signature(registry: Registry, repository: str, digest: str,
                          layers: Sequence[SignatureLayerLike], *,
                          append: bool = True) -> str:
    """Store legacy signature layers at ``sha256-<hex>.sig``; return the ``.sig`` digest.

    With ``append`` (cosign's behaviour when an image is signed again) the layers already
    at the tag are kept and the new ones added after them.
    """
    writer = RegistryWriter(registry)
    repo = repository_path(repository)
    all_layers: list[SignatureLayerLike] = []
    if append:
        existing = writer.get_manifest(repo, sig_tag(digest))
        if existing is not None:
            for desc in json.loads(existing.data).get("layers", []):
                all_layers.append(SigLayer(writer.get_blob(repo, desc["digest"]),
                                           desc.get("annotations", {})))
    all_layers.extend(layers)
    return writer.push(repo, legacy_signature_artifact(all_layers), sig_tag(digest))


def push_bundle(registry: Registry, repository: str, digest: str, bundle: bytes, *,
                subject_digest: str | None = None, subject_repository: str | None = None,
                ) -> str:
    """Store a v0.3 bundle as a referrer of ``digest``; return the referrer manifest digest.

    ``subject_digest`` (default ``digest``, found in ``subject_repository``, default
    ``repository``) lets a test write a referrer whose subject is another manifest while
    filing it under ``digest``'s fallback tag.
    """
    writer = RegistryWriter(registry)
    repo = repository_path(repository)
    subject = writer.descriptor(repository_path(subject_repository or repository),
                                subject_digest or digest)
    artifact = bundle_referrer_artifact(bundle, subject)
    ref_digest = writer.push(repo, artifact)
    tag = referrers_tag(digest)
    existing = writer.get_manifest(repo, tag)
    entries: list[dict[str, Any]] = (
        json.loads(existing.data).get("manifests", []) if existing is not None else [])
    entries = [e for e in entries if e.get("digest") != ref_digest]
    entries.append(referrer_index_entry(artifact))
    index = Blob(_dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
                 OCI_INDEX)
    writer.put_manifest(repo, tag, index)
    return ref_digest


# --- OCI image layouts ------------------------------------------------------------------


class LayoutWriter:
    """An OCI image layout directory: ``oci-layout``, ``index.json``, ``blobs/sha256/...``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests: list[dict[str, Any]] = []
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def add_blob(self, blob: Blob) -> None:
        (self.root / "blobs" / "sha256" / blob.digest.split(":", 1)[1]).write_bytes(blob.data)

    def add(self, artifact: Artifact, *, annotations: Mapping[str, str] | None = None,
            listed: bool = True) -> str:
        """Write the artifact's blobs and manifest; list it in index.json unless told not to."""
        for blob in (*artifact.blobs, artifact.manifest):
            self.add_blob(blob)
        if listed:
            extra: dict[str, Any] = {}
            doc = json.loads(artifact.manifest.data)
            if doc.get("artifactType"):
                extra["artifactType"] = doc["artifactType"]
            if annotations:
                extra["annotations"] = dict(annotations)
            self.manifests.append(artifact.manifest.descriptor(**extra))
        return artifact.manifest.digest

    def write(self) -> Path:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.manifests}
        (self.root / "index.json").write_bytes(_dumps(index))
        return self.root


def fetch_artifact(registry: Registry, repository: str, reference: str) -> Artifact | None:
    """A manifest from the registry with every blob it names (None when absent)."""
    writer = RegistryWriter(registry)
    repo = repository_path(repository)
    manifest = writer.get_manifest(repo, reference)
    if manifest is None:
        return None
    doc = json.loads(manifest.data)
    descs: Iterable[dict[str, Any]] = [*([doc["config"]] if "config" in doc else []),
                                       *doc.get("layers", [])]
    blobs = tuple(Blob(writer.get_blob(repo, d["digest"]), d["mediaType"]) for d in descs)
    return Artifact(manifest, blobs)


def write_oci_layout(directory: Path, *, signed: Artifact | None = None,
                     signed_tag: str | None = None, digest: str | None = None,
                     legacy: Artifact | None = None, bundles: Sequence[Artifact] = (),
                     style: str = "oras") -> Path:
    """Write a layout holding a signed manifest, its ``.sig`` manifest and bundle referrers.

    ``style="oras"``: what ``oras copy -r --to-oci-layout`` writes (tags as
    ``org.opencontainers.image.ref.name``; referrers listed untagged).
    ``style="cosign"``: what ``cosign save`` writes (``kind`` annotations, no tags).
    ``digest`` names the signed digest when ``signed`` is left out of the layout.
    """
    layout = LayoutWriter(directory)
    signed_digest = signed.manifest.digest if signed is not None else digest
    if signed is not None:
        ann = ({COSIGN_KIND: COSIGN_KIND_IMAGE} if style == "cosign"
               else {REF_NAME: signed_tag} if signed_tag else None)
        layout.add(signed, annotations=ann)
    if legacy is not None:
        if style == "cosign":
            ann = {COSIGN_KIND: COSIGN_KIND_SIGS}
        else:
            if signed_digest is None:
                raise ValueError("a legacy signature needs the signed digest for its tag")
            ann = {REF_NAME: sig_tag(signed_digest)}
        layout.add(legacy, annotations=ann)
    for bundle in bundles:
        layout.add(bundle)
    return layout.write()


def copy_to_layout(registry: Registry, repository: str, digest: str, directory: Path, *,
                   tag: str | None = None, include_signed: bool = True,
                   style: str = "oras") -> Path:
    """Copy a signed manifest, its ``.sig`` and its fallback-tag referrers into a layout."""
    signed = fetch_artifact(registry, repository, digest) if include_signed else None
    legacy = fetch_artifact(registry, repository, sig_tag(digest))
    bundles: list[Artifact] = []
    index = RegistryWriter(registry).get_manifest(repository_path(repository),
                                                  referrers_tag(digest))
    if index is not None:
        for entry in json.loads(index.data).get("manifests", []):
            found = fetch_artifact(registry, repository, entry["digest"])
            if found is not None:
                bundles.append(found)
    return write_oci_layout(directory, signed=signed, signed_tag=tag, digest=digest,
                            legacy=legacy, bundles=bundles, style=style)

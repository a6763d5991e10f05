"""Signature artifacts of a digest: cosign's legacy ``.sig`` tag and OCI 1.1 referrers.

- legacy: the manifest at tag ``sha256-<hex>.sig``; each layer is one signature
  (simplesigning payload, signature and certificate in annotations);
- attestations (only when asked for): the manifest at tag ``sha256-<hex>.att`` that
  ``cosign attest`` writes; each layer is one DSSE envelope (annotations as ``.sig``'s);
- referrers: the referrers API ``/v2/<name>/referrers/<digest>``; when the registry has none
  (404/400/405/406, or an answer that is not an image index) the ``sha256-<hex>`` tag index
  that OCI 1.1 clients maintain instead. Referrers are kept when their artifactType (or,
  from older writers, their config media type) is one asked for and their ``subject`` is
  the digest itself.

Every manifest and layer is fetched by digest and checked; nothing is interpreted here:
verification (``chartguard.verify``) gets the raw bytes. One candidate that cannot be fetched
(missing, altered, oversized, not JSON) is recorded in :attr:`SignatureArtifacts.failures`
and the others are still looked at: a registry cannot hide a valid signature behind a broken
one. Only what ends the whole operation (unreachable, deadline, authentication) is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from chartguard.oci.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidReferenceError,
    ManifestNotFoundError,
    RegistryResponseError,
    RegistryServerError,
    SizeLimitExceededError,
    UnsupportedMediaTypeError,
)
from chartguard.oci.limits import Limits
from chartguard.oci.manifest import Manifest
from chartguard.oci.mediatypes import (
    BUNDLE_ARTIFACT_TYPE,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
)
from chartguard.oci.tags import attestation_tag, referrers_tag, signature_tag
from chartguard.untrusted import escape

if TYPE_CHECKING:
    from chartguard.oci.reference import ChartReference

__all__ = ["BUNDLE_ARTIFACT_TYPE", "Referrer", "SignatureArtifacts", "SignatureLayer",
           "SignatureSource", "discover_signatures"]

# What one candidate's failure looks like (a 5xx too: storage may be broken for one manifest);
# anything else (unreachable, deadline, auth) ends the operation, since every further request
# would fail the same way.
_CANDIDATE_ERRORS = (BlobNotFoundError, DigestMismatchError, InvalidReferenceError,
                     ManifestNotFoundError, RegistryResponseError, RegistryServerError,
                     SizeLimitExceededError, UnsupportedMediaTypeError)
_FAILURE_TEXT = 400  # characters of one failure reason kept


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
    """What was found for ``digest``, and where chartguard looked (for 'not signed' messages).

    ``failures``: one escaped line per candidate that could not be read (each naming where
    it was), and per signature manifest whose layers were not all considered.
    """

    digest: str
    legacy: tuple[SignatureLayer, ...] = ()
    referrers: tuple[Referrer, ...] = ()
    looked_at: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    #: layers of the legacy ``.att`` manifest (looked for only when attestations are asked)
    attestations: tuple[SignatureLayer, ...] = ()


class SignatureSource(Protocol):
    """What discovery needs of a registry client (:class:`~chartguard.oci.RegistryClient`)."""

    @property
    def limits(self) -> Limits: ...

    def get_manifest(self, repository: str, reference: str, *,
                     ref: ChartReference | None = None) -> Manifest: ...

    def get_blob(self, repository: str, digest: str, size: int | None, limit: int, *,
                 ref: ChartReference | None = None) -> bytes: ...

    def referrers_api(self, ref: ChartReference, digest: str) -> Manifest | None: ...


_API = "referrers API"


def failure_line(source: str, err: Exception) -> str:
    """One failure reason: where, and the error's text, escaped and capped."""
    return f"{source}: {escape(str(err), _FAILURE_TEXT)}"


class _Discovery:
    def __init__(self, client: SignatureSource, ref: ChartReference, digest: str,
                 artifact_types: tuple[str, ...]) -> None:
        self.client = client
        self.ref = ref
        self.digest = digest
        self.artifact_types = artifact_types
        self.looked_at: list[str] = []
        self.failures: list[str] = []

    def layers(self, manifest: Manifest, source: str) -> tuple[SignatureLayer, ...]:
        layers = manifest.data.get("layers")
        if not isinstance(layers, list):
            self.failures.append(f"{source}: signature manifest {manifest.digest} has no "
                                 "layers list; re-sign the chart")
            return ()
        cap = self.client.limits.max_signature_layers
        if len(layers) > cap:
            self.failures.append(
                f"{source}: {len(layers):,} layers; only the first {cap:,} were considered "
                f"(the limit), {len(layers) - cap:,} were not")
        out = []
        for n, desc in enumerate(layers[:cap]):
            where = f"{source} layer {n}"
            if not isinstance(desc, dict):
                self.failures.append(f"{where}: not a descriptor")
                continue
            size = desc.get("size")
            try:
                data = self.client.get_blob(
                    self.ref.repository, str(desc.get("digest")),
                    size if isinstance(size, int) and not isinstance(size, bool) else None,
                    self.client.limits.max_signature_bytes, ref=self.ref)
            except _CANDIDATE_ERRORS as err:
                self.failures.append(failure_line(where, err))
                continue
            raw_annotations = desc.get("annotations")
            annotations = ({str(k): str(v) for k, v in raw_annotations.items()}
                           if isinstance(raw_annotations, dict) else {})
            media_type = desc.get("mediaType")
            out.append(SignatureLayer(data=data, media_type=str(media_type or ""),
                                      annotations=annotations, source=where))
        return tuple(out)

    def tagged(self, tag: str, source: str) -> Manifest | None:
        """The manifest at ``tag``; None when there is none or it cannot be read (recorded)."""
        self.looked_at.append(source)
        try:
            return self.client.get_manifest(self.ref.repository, tag, ref=self.ref)
        except ManifestNotFoundError:
            return None
        except _CANDIDATE_ERRORS as err:
            self.failures.append(failure_line(source, err))
            return None

    def legacy(self) -> tuple[SignatureLayer, ...]:
        tag = signature_tag(self.digest)
        manifest = self.tagged(tag, f"tag {tag}")
        return () if manifest is None else self.layers(manifest, f"tag {tag}")

    def attestations(self) -> tuple[SignatureLayer, ...]:
        tag = attestation_tag(self.digest)
        manifest = self.tagged(tag, f"tag {tag}")
        return () if manifest is None else self.layers(manifest, f"tag {tag}")

    def referrers_index(self) -> tuple[Manifest | None, str]:
        self.looked_at.append(_API)
        try:
            index = self.client.referrers_api(self.ref, self.digest)
        except _CANDIDATE_ERRORS as err:
            # a broken API answer: the referrers tag may still list them
            self.failures.append(failure_line(_API, err))
            index = None
        if index is not None:
            return index, _API
        tag = referrers_tag(self.digest)
        source = f"referrers tag {tag}"
        index = self.tagged(tag, source)
        if index is None or index.media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            return None, source  # something else holds the tag: it lists no referrers
        return index, source

    def referrer(self, entry: dict[str, Any], source: str, *, from_api: bool) -> Referrer | None:
        entry_digest = entry.get("digest")
        declared = entry.get("artifactType")
        # The registry's own index says what each referrer is: others need not be fetched.
        # A fallback tag index is written by clients and may not: cosign v2.6's
        # --new-bundle-format lists its bundles there as the config's media type
        # (application/vnd.oci.empty.v1+json), so there every listed manifest is looked at.
        if (from_api and isinstance(declared, str) and declared
                and declared not in self.artifact_types):
            return None
        where = f"{source} referrer {escape(entry_digest, 80)}"
        try:
            manifest = self.client.get_manifest(self.ref.repository, str(entry_digest),
                                                ref=self.ref)
        except _CANDIDATE_ERRORS as err:
            self.failures.append(failure_line(where, err))
            return None
        artifact_type = _artifact_type(manifest)
        # the index is only a hint: the manifest itself must point at the signed digest; one
        # that does not (a signature of another chart, copied here) is no signature of this
        # digest, not a broken one
        if artifact_type not in self.artifact_types or _subject_digest(
                manifest) != self.digest:
            return None
        return Referrer(artifact_type=artifact_type, manifest_digest=manifest.digest,
                        layers=self.layers(manifest, where), source=source)

    def referrers(self) -> tuple[Referrer, ...]:
        index, source = self.referrers_index()
        if index is None:
            return ()
        found: list[Referrer] = []
        seen: set[str] = set()
        entries = _index_entries(index)
        cap = self.client.limits.max_referrers
        if len(entries) > cap:
            self.failures.append(
                f"{source}: {len(entries):,} referrers; only the first {cap:,} were "
                f"considered (the limit), {len(entries) - cap:,} were not")
        for entry in entries[:cap]:
            entry_digest = entry.get("digest")
            if not isinstance(entry_digest, str) or entry_digest in seen:
                continue
            seen.add(entry_digest)
            referrer = self.referrer(entry, source, from_api=source == _API)
            if referrer is not None:
                found.append(referrer)
        return tuple(found)


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


def discover_signatures(client: SignatureSource, ref: ChartReference, digest: str,
                        artifact_types: tuple[str, ...], *,
                        attestations: bool = False) -> SignatureArtifacts:
    """Look in every place a cosign signature of ``digest`` may be; return what is there.

    ``attestations``: also read cosign's legacy ``.att`` manifest (attestation bundles are
    referrers of the bundle artifact type, among the signatures)."""
    discovery = _Discovery(client, ref, digest, artifact_types)
    legacy = discovery.legacy()
    attested = discovery.attestations() if attestations else ()
    referrers = discovery.referrers()
    return SignatureArtifacts(digest=digest, legacy=legacy, referrers=referrers,
                              looked_at=tuple(discovery.looked_at),
                              failures=tuple(discovery.failures), attestations=attested)

"""The registry client: resolve a chart version to a digest, fetch a chart by digest.

Every manifest and blob is checked against the sha256 it was asked by, and capped in size
before (from the descriptor or Content-Length) and while (streaming) it is downloaded.
An exact version costs one HEAD; a range lists the tags (paginated) and picks the highest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import requests.utils

from chartguard.digest import DIGEST
from chartguard.oci import mediatypes as mt
from chartguard.oci._transport import Transport, container, read_limited, status_error
from chartguard.oci.chart import read_chart
from chartguard.oci.credentials import RegistryCredentials, TLSConfig
from chartguard.oci.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidReferenceError,
    ManifestNotFoundError,
    RegistryResponseError,
    SizeLimitExceededError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
)
from chartguard.oci.reference import ChartReference
from chartguard.oci.signatures import SignatureArtifacts, discover_signatures
from chartguard.oci.versions import (
    is_exact_version,
    parse_constraint,
    select_version,
    tag_for_version,
)

MiB = 1024 * 1024
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_MAX_TAG_PAGES = 1000  # a registry whose Link headers never end is broken, not big
_REFERRERS_FALLBACK = frozenset({400, 404, 405, 406})


@dataclass(frozen=True)
class Limits:
    """Size caps, in bytes; a larger manifest or blob is refused before it is read."""

    max_manifest_bytes: int = 4 * MiB
    max_layer_bytes: int = 10 * MiB
    max_config_bytes: int = 1 * MiB
    max_signature_bytes: int = 4 * MiB  # each legacy signature layer or bundle
    max_referrers: int = 64  # referrers of one digest looked at, at most


@dataclass(frozen=True)
class ResolvedChart:
    """A version constraint resolved: the chart version, the tag holding it, its digest."""

    version: str
    tag: str
    digest: str


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry stored it: raw bytes (hashed), media type, parsed JSON."""

    raw: bytes
    media_type: str
    digest: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ChartArtifact:
    """A Helm chart fetched by digest; ``layer`` is the chart .tgz, byte for byte."""

    name: str
    version: str
    digest: str
    manifest: bytes
    config: bytes
    layer: bytes

    @property
    def layer_digest(self) -> str:
        """The chart .tgz's sha256 (Flux's artifact digest), as the manifest names it."""
        return sha256_digest(self.layer)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_digest(digest: str, what: str) -> None:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise InvalidReferenceError(
            f"{what} {digest!r} is not a sha256 digest (sha256:<64 hex>): use the digest the "
            "registry reported")


class RegistryClient:
    """A client for OCI registries holding Helm charts and their signatures.

    Credentials and TLS material come only from the arguments (never ~/.docker or
    ~/.netrc); they are sent to the origin (scheme://host:port) of the reference asked
    about, never to a host the registry redirects to or links to. The client keeps one
    connection pool per registry host; call :meth:`close` (or use it as a context manager)
    to release them and the temporary files TLS material needs.

    Thread safety: one client may be used from several threads at once (concurrent
    reconciles); connection pools and bearer tokens are shared. A client carries ONE set
    of credentials and TLS settings, sent to whichever host a reference names, so share a
    client only among objects of the same HelmRepository (same URL, secretRef,
    certSecretRef, insecure). Do not call :meth:`close` while other threads use it.
    """

    def __init__(self, *, plain_http: bool = False, tls: TLSConfig | None = None,
                 credentials: RegistryCredentials | None = None, limits: Limits = Limits(),
                 timeout: float = 10.0, retries: int = 2, tags_page_size: int = 1000) -> None:
        self.plain_http = plain_http
        self.limits = limits
        self._credentials = credentials
        self._timeout = timeout
        self._retries = retries
        self._page_size = tags_page_size
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()  # guards _transports: reconciles share one client
        self._verify: bool | str = True
        self._foreign_verify: bool | str = True  # hosts a registry redirects to
        self._cert: tuple[str, str] | None = None
        self._tmp: Path | None = None
        if tls is not None and not plain_http and (tls.ca_pem or tls.cert_pem):
            # requests reads CA and client key only from files: a private 0700 directory,
            # removed on close() or when the client is garbage-collected
            self._tmp = Path(tempfile.mkdtemp(prefix="chartguard-tls-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
            if tls.ca_pem:
                self._verify = str(self._write("ca.crt", tls.ca_pem))
                # storage a registry redirects blobs to (S3, a CDN) has a public
                # certificate, or one from the registry's CA: trust both there, as Flux does
                self._foreign_verify = str(self._write(
                    "redirect-ca.crt", _system_ca_bundle() + b"\n" + tls.ca_pem))
            if tls.cert_pem and tls.key_pem:
                self._cert = (str(self._write("tls.crt", tls.cert_pem)),
                              str(self._write("tls.key", tls.key_pem)))

    def _write(self, name: str, data: bytes) -> Path:
        assert self._tmp is not None
        path = self._tmp / name
        path.touch(mode=0o600)
        path.write_bytes(data)
        return path

    def close(self) -> None:
        with self._lock:
            for transport in self._transports.values():
                transport.session.close()
            self._transports.clear()
        if self._tmp is not None:
            self._cleanup()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _transport(self, host: str) -> Transport:
        with self._lock:
            transport = self._transports.get(host)
            if transport is None:
                transport = Transport(
                    host, plain_http=self.plain_http, verify=self._verify, cert=self._cert,
                    credentials=self._credentials, timeout=self._timeout,
                    retries=self._retries, foreign_verify=self._foreign_verify)
                self._transports[host] = transport
            return transport

    # -- resolve -------------------------------------------------------------------------

    def resolve(self, ref: ChartReference, version: str = "*") -> ResolvedChart:
        """The tag and manifest digest ``version`` (exact, or a constraint) resolves to."""
        # "" (or None) means any version, as in Helm and Flux; whitespace-only is malformed
        wanted = version.strip() if version else "*"
        if is_exact_version(wanted):
            tag = tag_for_version(wanted)
            digest = self._head_digest(ref, tag)
            if digest is None:
                raise VersionNotFoundError(
                    f"chart {ref} has no version {wanted} (no tag {tag}): push that version "
                    "or change the version in the spec")
            return ResolvedChart(version=tag.replace("_", "+"), tag=tag, digest=digest)
        # parsed once, before any request: a malformed (or whitespace-only) one fails here
        constraint = parse_constraint(wanted or version)
        tags = self.list_tags(ref)
        try:
            tag = select_version(tags, constraint)
        except VersionNotFoundError as err:
            raise VersionNotFoundError(f"chart {ref}: {err}") from None
        digest = self._head_digest(ref, tag)
        if digest is None:  # the tag went away between listing and HEAD
            raise VersionNotFoundError(
                f"chart {ref} tag {tag} disappeared while resolving {wanted!r}: retry")
        return ResolvedChart(version=tag.replace("_", "+"), tag=tag, digest=digest)

    def list_tags(self, ref: ChartReference) -> list[str]:
        """Every tag of the chart's repository, following the registry's ``Link`` pages."""
        transport = self._transport(ref.host)
        tags: list[str] = []
        pages = 0
        seen: set[str] = set()
        what = f"the tag list of {ref}"

        def collect(response: requests.Response) -> bool:
            nonlocal pages
            pages += 1
            if response.url in seen:
                response.close()
                raise RegistryResponseError(
                    f"{what}: the registry's pagination (Link header) loops back to a page "
                    "already read: the registry is broken; report it to its operator")
            seen.add(response.url)
            body = read_limited(response, self.limits.max_manifest_bytes, what)
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            page = doc.get("tags") if isinstance(doc, dict) else None
            if page is None and isinstance(doc, dict):
                page = []  # distribution answers "tags": null for an empty repository
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryResponseError(
                    f"{what} is not a JSON tag list: check the registry URL")
            tags.extend(page)
            if pages >= _MAX_TAG_PAGES:
                raise RegistryResponseError(
                    f"{what} has more than {_MAX_TAG_PAGES} pages: the registry's pagination "
                    "does not end")
            return bool(page)

        url = transport.url(f"/v2/{ref.repository}/tags/list?n={self._page_size}")
        # oras follows the Link header (relative to the registry), calling collect per page
        transport._do_paginated_request(url, callable=collect)
        return tags

    def _head_digest(self, ref: ChartReference, tag: str) -> str | None:
        """The digest of the manifest at ``tag`` (one HEAD), or None when there is none."""
        transport = self._transport(ref.host)
        url = transport.url(f"/v2/{ref.repository}/manifests/{tag}")
        response = transport.do_request(url, "HEAD", headers={"Accept": mt.MANIFEST_ACCEPT})
        response.close()
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise status_error(response, f"the manifest of {ref}:{tag}")
        digest = response.headers.get("Docker-Content-Digest", "")
        if DIGEST.fullmatch(digest):
            return digest
        # no (sha256) digest header: fetch the manifest and hash it ourselves
        try:
            return self.get_manifest(ref.repository, tag, host=ref.host).digest
        except ManifestNotFoundError:
            return None

    # -- manifests and blobs ---------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str, *, host: str | None = None,
                     ref: ChartReference | None = None) -> Manifest:
        """The manifest at ``reference`` (tag or digest); a digest is checked against the bytes.

        ``repository`` may be ``host/path/name`` or, with ``host`` given, ``path/name``.
        """
        host, repository = self._split(repository, host, ref)
        by_digest = reference.startswith("sha256:")
        if by_digest:
            _check_digest(reference, "manifest digest")
        elif not _TAG.fullmatch(reference):
            raise InvalidReferenceError(
                f"tag {reference!r} is not a valid OCI tag: use letters, digits, '.', '_', '-'")
        transport = self._transport(host)
        what = f"manifest {host}/{repository}@{reference}" if by_digest else (
            f"manifest {host}/{repository}:{reference}")
        url = transport.url(f"/v2/{repository}/manifests/{reference}")
        response = transport.do_request(url, "GET", headers={"Accept": mt.MANIFEST_ACCEPT})
        if response.status_code == 404:
            response.close()
            raise ManifestNotFoundError(
                f"{what} does not exist in the registry: check the version or digest")
        if response.status_code != 200:
            raise status_error(response, what)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        claimed = response.headers.get("Docker-Content-Digest", "")
        raw = read_limited(response, self.limits.max_manifest_bytes, what)
        digest = sha256_digest(raw)
        if by_digest and digest != reference:
            raise DigestMismatchError(
                f"{what} has sha256 {digest}, not the digest asked for: the registry served "
                "altered or wrong bytes; it is not used")
        if not by_digest and DIGEST.fullmatch(claimed) and claimed != digest:
            raise DigestMismatchError(
                f"{what}: the registry says its digest is {claimed} but the bytes hash to "
                f"{digest}: the registry served altered bytes; it is not used")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise UnsupportedMediaTypeError(
                f"{what} ({digest}) is not a JSON manifest: check what was pushed")
        media_type = data.get("mediaType") if isinstance(data.get("mediaType"), str) else None
        return Manifest(raw=raw, media_type=media_type or content_type, digest=digest,
                        data=data)

    def get_blob(self, repository: str, digest: str, size: int | None, limit: int, *,
                 host: str | None = None, ref: ChartReference | None = None) -> bytes:
        """The blob ``digest``: refused when over ``limit`` or ``size``, or not matching."""
        host, repository = self._split(repository, host, ref)
        _check_digest(digest, "blob digest")
        what = f"blob {digest} of {host}/{repository}"
        if size is not None and (not isinstance(size, int) or size < 0):
            raise UnsupportedMediaTypeError(f"{what} has an invalid size {size!r} in its "
                                            "descriptor: check what was pushed")
        if size is not None and size > limit:
            raise SizeLimitExceededError(
                f"{what} is {size} bytes by its descriptor, over the limit of {limit} bytes: "
                "raise the limit if this is expected, or check what was pushed")
        transport = self._transport(host)
        # oras builds the URL and issues the GET (through our do_request)
        response = transport.get_blob(container(host, repository), digest, stream=True)
        if response.status_code == 404:
            response.close()
            raise BlobNotFoundError(
                f"{what} is missing from the registry: push the artifact again")
        if response.status_code != 200:
            raise status_error(response, what)
        data = read_limited(response, limit, what, expected=size)
        actual = sha256_digest(data)
        if actual != digest:
            raise DigestMismatchError(
                f"{what} has sha256 {actual}: the bytes in the registry were altered or "
                "corrupted; they are not used. Push the artifact again")
        if size is not None and len(data) != size:
            raise DigestMismatchError(
                f"{what} is {len(data)} bytes but its descriptor says {size}: the manifest "
                "is inconsistent; push the artifact again")
        return data

    def _split(self, repository: str, host: str | None,
               ref: ChartReference | None) -> tuple[str, str]:
        if ref is not None:
            return ref.host, ref.repository
        if host is not None:
            return host, repository.strip("/")
        first, sep, rest = repository.strip("/").partition("/")
        # docker's rule: the first component is a registry host when it has '.' or ':'
        if not sep or not rest or not ("." in first or ":" in first or first == "localhost"):
            raise InvalidReferenceError(
                f"repository {repository!r} does not name its registry host: write it as "
                "host[:port]/path/name")
        return first, rest

    # -- charts ----------------------------------------------------------------------------

    def fetch_chart(self, ref: ChartReference, digest: str) -> ChartArtifact:
        """The chart at ``digest``: manifest, config and chart layer, all checked."""
        _check_digest(digest, "chart digest")
        manifest = self.get_manifest(ref.repository, digest, ref=ref)

        def get_blob(blob: str, size: int, limit: int) -> bytes:
            return self.get_blob(ref.repository, blob, size, limit, ref=ref)

        parts = read_chart(manifest.media_type, manifest.data, f"manifest {digest} of {ref}",
                           self.limits, get_blob)
        return ChartArtifact(name=parts.name, version=parts.version, digest=digest,
                             manifest=manifest.raw, config=parts.config, layer=parts.layer)

    # -- signatures ------------------------------------------------------------------------

    def find_signatures(self, ref: ChartReference, digest: str,
                        artifact_types: Sequence[str] = (mt.BUNDLE_ARTIFACT_TYPE,),
                        ) -> SignatureArtifacts:
        """Signature artifacts of ``digest``: the legacy ``.sig`` tag and OCI 1.1 referrers."""
        _check_digest(digest, "signed digest")
        return discover_signatures(self, ref, digest, tuple(artifact_types))

    def referrers_api(self, ref: ChartReference, digest: str) -> Manifest | None:
        """The referrers API's index for ``digest``, or None when the registry has no API.

        None means "use the ``sha256-<hex>`` tag instead" (404/400/405/406, or an answer
        that is not an image index), as the OCI distribution spec 1.1 tells clients.
        """
        transport = self._transport(ref.host)
        what = f"the referrers of {ref}@{digest}"
        url = transport.url(f"/v2/{ref.repository}/referrers/{digest}")
        response = transport.do_request(url, "GET", headers={"Accept": mt.OCI_INDEX})
        if response.status_code in _REFERRERS_FALLBACK:
            response.close()
            return None
        if response.status_code != 200:
            raise status_error(response, what)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        raw = read_limited(response, self.limits.max_manifest_bytes, what)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        media_type = data.get("mediaType") or content_type
        if media_type != mt.OCI_INDEX or not isinstance(data.get("manifests"), list):
            return None
        return Manifest(raw=raw, media_type=media_type, digest=sha256_digest(raw), data=data)


def _system_ca_bundle() -> bytes:
    """The CA bundle requests would use for a public host (the environment's, or certifi's)."""
    for name in (os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("CURL_CA_BUNDLE"),
                 requests.utils.DEFAULT_CA_BUNDLE_PATH):
        if not name:
            continue
        try:
            return Path(name).read_bytes()
        except OSError:
            continue
    return b""

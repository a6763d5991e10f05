"""The registry client: resolve a chart version to a digest, fetch a chart by digest.

Every manifest and blob is checked against the sha256 it was asked by, and capped in size
before (from the descriptor or Content-Length) and while (streaming) it is downloaded.
An exact version costs one HEAD; a range lists the tags (paginated, bounded) and picks the
highest. Every public operation has a total deadline (retries, redirects and the token
exchange included); the HTTP exchanges go through a :class:`~chartguard.oci.transport.Transport`.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from chartguard.digest import DIGEST
from chartguard.oci import mediatypes as mt
from chartguard.oci._metered import MeteredTransport
from chartguard.oci._requests_transport import (
    RequestsTransport,
    system_ca_bundle,
    write_private,
)
from chartguard.oci._retry import Backoff
from chartguard.oci._transport import HostSession, read_limited, status_error
from chartguard.oci.chart import read_chart, read_provenance
from chartguard.oci.credentials import RegistryCredentials, TLSConfig
from chartguard.oci.errors import (
    BlobNotFoundError,
    ChartContentError,
    ConnectionBrokenError,
    DigestMismatchError,
    InvalidReferenceError,
    ManifestNotFoundError,
    OCIError,
    RegistryResponseError,
    SizeLimitExceededError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
)
from chartguard.oci.holds import HostHolds
from chartguard.oci.limits import Limits, MiB
from chartguard.oci.manifest import Manifest, sha256_digest
from chartguard.oci.reference import ChartReference
from chartguard.oci.signatures import SignatureArtifacts, discover_signatures
from chartguard.oci.transport import Deadline, Response, Transport
from chartguard.oci.versions import (
    is_exact_version,
    parse_constraint,
    select_version,
    tag_for_version,
)
from chartguard.untrusted import UntrustedInputError, escape, loads_json

__all__ = ["ChartArtifact", "Limits", "Manifest", "MiB", "RegistryClient", "ResolvedChart",
           "sha256_digest"]

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_REFERRERS_FALLBACK = frozenset({400, 404, 405, 406})
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?next"?', re.IGNORECASE)
# the operation in progress in this context: (client, its deadline); nested calls share it
_OPERATION: ContextVar[tuple[RegistryClient, Deadline] | None] = ContextVar(
    "chartguard_oci_operation", default=None)


@dataclass(frozen=True)
class ResolvedChart:
    """A version constraint resolved: the chart version, the tag holding it, its digest."""

    version: str
    tag: str
    digest: str


@dataclass(frozen=True)
class ChartArtifact:
    """A Helm chart fetched by digest; ``layer`` is the chart .tgz, byte for byte."""

    name: str
    version: str
    digest: str
    manifest: bytes
    config: bytes
    layer: bytes
    #: the provenance layer (a ``.prov``), when it was asked for and the manifest has one
    provenance: bytes | None = None

    @property
    def file_name(self) -> str:
        """The archive's name as ``helm package`` writes it (and a ``.prov`` names it)."""
        return f"{self.name}-{self.version}.tgz"

    @property
    def layer_digest(self) -> str:
        """The chart .tgz's sha256 (Flux's artifact digest), as the manifest names it."""
        return sha256_digest(self.layer)


def _check_digest(digest: str, what: str) -> None:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise InvalidReferenceError(
            f"{what} {escape(repr(digest), 100)} is not a sha256 digest (sha256:<64 hex>): "
            "use the digest the registry reported")


class RegistryClient:
    """A client for OCI registries holding Helm charts and their signatures.

    Credentials and TLS material come only from the arguments (never ~/.docker or
    ~/.netrc); they are sent to the origin (scheme://host:port) of the reference asked
    about, never to a host the registry redirects to or links to. The client keeps one
    connection pool per registry host; call :meth:`close` (or use it as a context manager)
    to release them and the temporary files TLS material needs.

    Time: ``timeout`` bounds connecting and each read; ``deadline`` bounds each public
    operation as a whole (:meth:`resolve`, :meth:`fetch_chart`, :meth:`find_signatures`,
    :meth:`list_tags`, ...), retries, redirects and the token exchange included. ``retries``
    is how many more times one request (or one manifest or blob download whose connection
    broke) is tried, after a jittered exponential backoff or the registry's ``Retry-After``.

    ``transport`` replaces the HTTP layer (one exchange, see :mod:`chartguard.oci.transport`);
    ``tls`` configures the default one and cannot be combined with it. ``clock``, ``sleep``,
    ``wall_clock`` (HTTP-date ``Retry-After``) and ``rng`` (the backoff's jitter) are for
    tests that drive time themselves.

    ``holds``: the registry hosts that asked (Retry-After) to be left alone for a while; give
    every client of a process the same :class:`~chartguard.oci.holds.HostHolds` (on the same
    ``clock``) so that none of them sends to such a host before the wait is over. By default
    the client has its own.

    Thread safety: one client may be used from several threads at once (concurrent
    reconciles); connection pools and bearer tokens are shared. A client carries ONE set
    of credentials and TLS settings, sent to whichever host a reference names, so share a
    client only among objects of the same HelmRepository (same URL, credentials, TLS
    settings, scheme). Do not call :meth:`close` while other threads use it.
    """

    def __init__(self, *, plain_http: bool = False, tls: TLSConfig | None = None,
                 credentials: RegistryCredentials | None = None, limits: Limits | None = None,
                 timeout: float = 10.0, deadline: float = 60.0, retries: int = 2,
                 tags_page_size: int = 1000, transport: Transport | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall_clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, holds: HostHolds | None = None) -> None:
        if transport is not None and tls is not None:
            raise ValueError("tls configures the default transport: configure TLS in the "
                             "transport passed in instead")
        self.plain_http = plain_http
        self.limits = limits or Limits()
        self.deadline = deadline
        self._credentials = credentials
        self._timeout = timeout
        self._retries = retries
        self._page_size = tags_page_size
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._backoff = Backoff(rng)
        self._holds = holds if holds is not None else HostHolds(clock=clock,
                                                                wall_clock=wall_clock)
        self._transports: dict[str, HostSession] = {}
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
                    "redirect-ca.crt", system_ca_bundle() + b"\n" + tls.ca_pem))
            if tls.cert_pem and tls.key_pem:
                self._cert = (str(self._write("tls.crt", tls.cert_pem)),
                              str(self._write("tls.key", tls.key_pem)))
        self._http: Transport = transport if transport is not None else RequestsTransport(
            verify=self._verify, foreign_verify=self._foreign_verify, cert=self._cert)
        # what the sessions send through: every exchange counted for /metrics
        self._metered = MeteredTransport(self._http)

    def _write(self, name: str, data: bytes) -> Path:
        assert self._tmp is not None
        return write_private(self._tmp, name, data)

    def close(self) -> None:
        with self._lock:
            self._transports.clear()
        self._http.close()
        if self._tmp is not None:
            self._cleanup()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _session(self, host: str) -> HostSession:
        with self._lock:
            session = self._transports.get(host)
            if session is None:
                session = HostSession(
                    host, plain_http=self.plain_http, transport=self._metered,
                    credentials=self._credentials, timeout=self._timeout,
                    retries=self._retries, max_token_bytes=self.limits.max_token_bytes,
                    sleep=self._sleep, backoff=self._backoff, wall_clock=self._wall_clock,
                    holds=self._holds)
                self._transports[host] = session
            return session

    @contextmanager
    def _operation(self) -> Iterator[Deadline]:
        """The deadline of the public operation in progress (a new one at the outermost)."""
        active = _OPERATION.get()
        if active is not None and active[0] is self:
            yield active[1]
            return
        deadline = Deadline(self.deadline, self._clock)
        token = _OPERATION.set((self, deadline))
        try:
            yield deadline
        finally:
            _OPERATION.reset(token)

    # -- resolve -------------------------------------------------------------------------

    def resolve(self, ref: ChartReference, version: str = "*") -> ResolvedChart:
        """The tag and manifest digest ``version`` (exact, or a constraint) resolves to."""
        # "" (or None) means any version, as in Helm and Flux; whitespace-only is malformed
        wanted = version.strip() if version else "*"
        with self._operation():
            if is_exact_version(wanted):
                tag = tag_for_version(wanted)
                digest = self._head_digest(ref, tag)
                if digest is None:
                    raise VersionNotFoundError(
                        f"chart {ref} has no version {wanted} (no tag {tag}): push that "
                        "version or change the version in the spec")
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
        """Every tag of the chart's repository, following the registry's ``Link`` pages.

        Bounded: at most ``limits.max_tags`` tags and ``limits.max_tag_list_bytes`` bytes
        over all pages, at most ``limits.max_tag_pages`` pages.
        """
        limits = self.limits
        what = f"the tag list of {ref}"
        with self._operation() as deadline:
            session = self._session(ref.host)
            url: str | None = session.url(f"/v2/{ref.repository}/tags/list?n={self._page_size}")
            tags: list[str] = []
            seen: set[str] = set()
            read = 0
            while url is not None:
                if url in seen:
                    raise RegistryResponseError(
                        f"{what}: the registry's pagination (Link header) loops back to a "
                        "page already read: the registry is broken; report it to its operator")
                if len(seen) >= limits.max_tag_pages:
                    raise RegistryResponseError(
                        f"{what} has more than {limits.max_tag_pages} pages: the registry's "
                        "pagination does not end")
                seen.add(url)
                response = session.request(url, deadline=deadline)
                if response.status_code == 404:
                    response.close()
                    raise VersionNotFoundError(
                        f"repository {ref.host}/{ref.repository} does not exist (no tags): "
                        "check the chart name and the repository URL, or push the chart")
                if response.status_code != 200:
                    raise status_error(response, what)
                link = response.headers.get("Link", "")
                try:
                    body = read_limited(response, limits.max_tag_list_bytes - read, what,
                                        deadline=deadline)
                except SizeLimitExceededError:
                    raise SizeLimitExceededError(
                        f"{what} is more than {limits.max_tag_list_bytes:,} bytes over its "
                        "pages (the limit): the repository holds too many tags to choose a "
                        "version from; pin an exact version") from None
                read += len(body)
                page = _tag_page(body, what)
                tags.extend(page)
                if len(tags) > limits.max_tags:
                    raise SizeLimitExceededError(
                        f"{what} has more than {limits.max_tags:,} tags (the limit): the "
                        "repository holds too many tags to choose a version from; pin an "
                        "exact version")
                url = _next_page(url, link) if page else None
            return tags

    def _head_digest(self, ref: ChartReference, tag: str) -> str | None:
        """The digest of the manifest at ``tag`` (one HEAD), or None when there is none."""
        with self._operation() as deadline:
            session = self._session(ref.host)
            url = session.url(f"/v2/{ref.repository}/manifests/{tag}")
            response = session.request(url, "HEAD", deadline=deadline,
                                       headers={"Accept": mt.MANIFEST_ACCEPT})
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
                f"tag {escape(repr(reference), 140)} is not a valid OCI tag: use letters, "
                "digits, '.', '_', '-'")
        what = f"manifest {host}/{repository}@{reference}" if by_digest else (
            f"manifest {host}/{repository}:{reference}")
        with self._operation() as deadline:
            raw, headers = self._download(
                host, f"/v2/{repository}/manifests/{reference}", deadline, what,
                ManifestNotFoundError(f"{what} does not exist in the registry: check the "
                                      "version or digest"),
                self.limits.max_manifest_bytes, headers={"Accept": mt.MANIFEST_ACCEPT})
            content_type = headers.get("Content-Type", "").split(";")[0].strip()
            claimed = headers.get("Docker-Content-Digest", "")
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
            data = loads_json(raw, what=what)
        except UntrustedInputError as err:
            raise UnsupportedMediaTypeError(
                f"{err} ({digest}): it is not a manifest chartguard reads; check what was "
                "pushed") from None
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
            raise UnsupportedMediaTypeError(
                f"{what} has an invalid size {escape(repr(size), 40)} in its descriptor: "
                "check what was pushed")
        if size is not None and size > limit:
            raise SizeLimitExceededError(
                f"{what} is {size} bytes by its descriptor, over the limit of {limit} bytes: "
                "raise the limit if this is expected, or check what was pushed")
        with self._operation() as deadline:
            data, _ = self._download(host, f"/v2/{repository}/blobs/{digest}", deadline, what,
                                     BlobNotFoundError(f"{what} is missing from the registry: "
                                                       "push the artifact again"),
                                     limit, expected=size)
        actual = sha256_digest(data)
        if actual != digest:
            raise DigestMismatchError(
                f"{what} has sha256 {actual} (digest mismatch): the bytes were altered or "
                "corrupted (in the registry or on the way); they are not used. Push the "
                "artifact again if it persists")
        if size is not None and len(data) != size:
            raise DigestMismatchError(
                f"{what} is {len(data)} bytes but its descriptor says {size}: the manifest "
                "is inconsistent; push the artifact again")
        return data

    def _download(self, host: str, path: str, deadline: Deadline, what: str,
                  missing: OCIError, limit: int, *, expected: int | None = None,
                  headers: dict[str, str] | None = None) -> tuple[bytes, Mapping[str, str]]:
        """A GET's body (capped) and headers; a connection that breaks while the body is read
        is tried again, like a failed request, within the retries and the deadline."""
        session = self._session(host)
        attempt = 0
        while True:
            response = self._get(host, path, deadline, what, missing, headers)
            try:
                return read_limited(response, limit, what, expected=expected,
                                    deadline=deadline), response.headers
            except ConnectionBrokenError:
                if attempt >= session.retries or not session.pause(attempt, deadline):
                    raise
            attempt += 1

    def _get(self, host: str, path: str, deadline: Deadline, what: str, missing: OCIError,
             headers: dict[str, str] | None = None) -> Response:
        """A GET answered 200 (to be read by the caller); 404 raises ``missing``."""
        session = self._session(host)
        response = session.request(session.url(path), deadline=deadline, headers=headers)
        if response.status_code == 404:
            response.close()
            raise missing
        if response.status_code != 200:
            raise status_error(response, what)
        return response

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
                f"repository {escape(repr(repository), 140)} does not name its registry "
                "host: write it as host[:port]/path/name")
        return first, rest

    # -- charts ----------------------------------------------------------------------------

    def fetch_chart(self, ref: ChartReference, digest: str, *, provenance: bool = False,
                    version: str | None = None) -> ChartArtifact:
        """The chart at ``digest``: manifest, config and chart layer, all checked; with
        ``provenance``, its provenance layer too (None when the manifest has none).

        ``version``: the version the digest was resolved for (its tag's): the chart must say
        it is that version. A tag moved to another version's manifest (an old signed chart
        tagged as a new version by anyone who may push) is refused: a signature or a
        provenance covers the chart, not the tag pointing at it."""
        _check_digest(digest, "chart digest")
        with self._operation():
            return self._fetch_chart(ref, digest, provenance, version)

    def _fetch_chart(self, ref: ChartReference, digest: str, provenance: bool = False,
                     version: str | None = None) -> ChartArtifact:
        manifest = self.get_manifest(ref.repository, digest, ref=ref)
        def get_blob(blob: str, size: int, limit: int) -> bytes:
            return self.get_blob(ref.repository, blob, size, limit, ref=ref)

        where = f"manifest {digest} of {ref}"
        parts = read_chart(manifest.media_type, manifest.data, where, self.limits, get_blob)
        if parts.name != ref.name:
            # `helm push` stores a chart under its own name; another chart there (a signed one
            # copied over) would be installed as this one
            raise ChartContentError(
                f"{where} is the chart {escape(parts.name)!r}, not {ref.name!r}: the "
                f"repository {ref.name} holds another chart; push {ref.name} there with "
                "`helm push`")
        if version is not None and parts.version != version:
            raise ChartContentError(
                f"{where} is version {escape(parts.version)!r} of {ref.name}, not "
                f"{escape(version)!r}: the tag of version {escape(version)} points at another "
                f"version's chart; push version {escape(version)} with `helm push`")
        prov = read_provenance(manifest.data, where, get_blob) if provenance else None
        return ChartArtifact(name=parts.name, version=parts.version, digest=digest,
                             manifest=manifest.raw, config=parts.config, layer=parts.layer,
                             provenance=prov)

    # -- signatures ------------------------------------------------------------------------

    def find_signatures(self, ref: ChartReference, digest: str,
                        artifact_types: Sequence[str] = (mt.BUNDLE_ARTIFACT_TYPE,), *,
                        attestations: bool = False) -> SignatureArtifacts:
        """Signature artifacts of ``digest``: the legacy ``.sig`` tag and OCI 1.1 referrers
        (and with ``attestations`` the legacy ``.att`` tag).

        A candidate that cannot be read is listed in the answer's ``failures``; the others
        are still returned.
        """
        _check_digest(digest, "signed digest")
        with self._operation():
            return discover_signatures(self, ref, digest, tuple(artifact_types),
                                       attestations=attestations)

    def referrers_api(self, ref: ChartReference, digest: str) -> Manifest | None:
        """The referrers API's index for ``digest``, or None when the registry has no API.

        None means "use the ``sha256-<hex>`` tag instead" (404/400/405/406, or an answer
        that is not an image index), as the OCI distribution spec 1.1 tells clients.
        """
        _check_digest(digest, "signed digest")
        what = f"the referrers of {ref}@{digest}"
        with self._operation() as deadline:
            session = self._session(ref.host)
            url = session.url(f"/v2/{ref.repository}/referrers/{digest}")
            response = session.request(url, deadline=deadline,
                                       headers={"Accept": mt.OCI_INDEX})
            if response.status_code in _REFERRERS_FALLBACK:
                response.close()
                return None
            if response.status_code != 200:
                raise status_error(response, what)
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            raw = read_limited(response, self.limits.max_manifest_bytes, what,
                               deadline=deadline)
        try:
            data = loads_json(raw, what=what)
        except UntrustedInputError:
            return None  # not (sane) JSON: not an index either; the referrers tag may be
        if not isinstance(data, dict):
            return None
        media_type = data.get("mediaType") or content_type
        if media_type != mt.OCI_INDEX or not isinstance(data.get("manifests"), list):
            return None
        return Manifest(raw=raw, media_type=media_type, digest=sha256_digest(raw), data=data)


def _tag_page(body: bytes, what: str) -> list[str]:
    try:
        doc = loads_json(body, what=what)
    except UntrustedInputError as err:
        raise RegistryResponseError(
            f"{what} is not a JSON tag list ({err}): check the registry URL") from None
    page = doc.get("tags") if isinstance(doc, dict) else None
    if page is None and isinstance(doc, dict):
        page = []  # distribution answers "tags": null for an empty repository
    if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
        raise RegistryResponseError(f"{what} is not a JSON tag list: check the registry URL")
    return page


def _next_page(current: str, link: str) -> str | None:
    """The next page a ``Link: <url>; rel="next"`` header names (relative to ``current``)."""
    match = _NEXT_LINK.search(link)
    return urllib.parse.urljoin(current, match.group(1)) if match else None


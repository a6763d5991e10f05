"""An OCI registry in memory, behind chartguard's transport seam: no process, no socket.

``RegistryClient(transport=MockTransport(registry.handle))`` runs every line of the client
(retries, redirects, auth challenges, pagination, size caps, digest checks) against answers
computed here, so unit tests can say exactly what a registry does, faults included:

- :class:`MemoryRegistry` speaks enough of the distribution API (manifests by tag or digest,
  HEAD, blobs, tag lists paginated with ``Link``, the referrers API or its absence), with
  optional Basic or Bearer auth (a token realm on another host) and blobs redirected to
  storage on another host; ``faults`` replaces the answer to one path;
- :class:`MockTransport` records every request and hands it to a handler;
- :class:`FakeClock` is a clock and a ``sleep`` that only move when told to (or when a
  :class:`MockResponse` trickles).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from requests.structures import CaseInsensitiveDict

from chartguard.oci import mediatypes as mt
from chartguard.oci.transport import Deadline, ReadError, Request, TransportError

__all__ = ["FakeClock", "MemoryRegistry", "MockResponse", "MockTransport", "digest_of"]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeClock:
    """``clock()`` and ``sleep()`` for a client; time passes only through them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class MockResponse:
    """An answer from memory. ``chunks`` stream the body (``body`` is one chunk);
    ``per_chunk`` seconds pass on ``clock`` before each chunk (a trickling server), and the
    transport's deadline is honoured as the real transport honours it."""

    def __init__(self, status_code: int = 200, body: bytes = b"", *,
                 headers: Mapping[str, str] | None = None,
                 chunks: Iterable[bytes] | None = None, clock: FakeClock | None = None,
                 per_chunk: float = 0.0, content_length: bool = True) -> None:
        self.status_code = status_code
        self.headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(headers or {})
        if content_length and chunks is None:
            self.headers.setdefault("Content-Length", str(len(body)))
        self._chunks = chunks if chunks is not None else [body]
        self._clock = clock
        self._per_chunk = per_chunk
        self.deadline: Deadline | None = None  # set by MockTransport
        self.closed = False
        self.read_bytes = 0

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        for chunk in self._chunks:
            for start in range(0, max(len(chunk), 1), chunk_size):
                if self._clock is not None and self._per_chunk:
                    self._clock.now += self._per_chunk
                if self.deadline is not None and self.deadline.expired():
                    raise ReadError("timed out")
                piece = chunk[start:start + chunk_size]
                self.read_bytes += len(piece)
                if piece:
                    yield piece

    def close(self) -> None:
        self.closed = True


Handler = Callable[[Request], MockResponse]


class MockTransport:
    """A :class:`~chartguard.oci.transport.Transport` answering from ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.responses: list[MockResponse] = []
        self.closed = False

    def send(self, request: Request, *, timeout: float, deadline: Deadline) -> MockResponse:
        del timeout
        self.requests.append(request)
        if deadline.expired():
            raise TransportError("timed out")
        response = self.handler(request)
        response.deadline = deadline
        self.responses.append(response)
        return response

    def close(self) -> None:
        self.closed = True

    def paths(self, method: str | None = None) -> list[str]:
        return [urllib.parse.urlsplit(r.url).path for r in self.requests
                if method is None or r.method == method]


def _json(status: int, doc: object, headers: Mapping[str, str] | None = None) -> MockResponse:
    return MockResponse(status, json.dumps(doc).encode(),
                        headers={"Content-Type": "application/json", **(headers or {})})


@dataclass
class MemoryRegistry:
    """One registry host (``host``) holding repositories in memory."""

    host: str = "registry.test"
    page_size: int | None = None  # tag list pages; None: everything at once
    referrers_api: bool = False
    auth: str | None = None  # None, "basic" or "bearer"
    username: str = "user"
    password: str = "Passw0rd-memory"
    token_host: str = "auth.test"
    storage_host: str | None = None  # blobs answered 307 to this host
    clock: FakeClock | None = None
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> tag -> digest
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: (method, path) -> the answer to give instead (a fault)
    faults: dict[tuple[str, str], Callable[[], MockResponse]] = field(default_factory=dict)
    token_requests: list[Request] = field(default_factory=list)

    # -- content ---------------------------------------------------------------------

    def push_blob(self, data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def push_manifest(self, repository: str, tag: str | None, doc: object, *,
                      raw: bytes | None = None, media_type: str | None = None) -> str:
        body = raw if raw is not None else json.dumps(doc, separators=(",", ":")).encode()
        kind = media_type or (doc.get("mediaType") if isinstance(doc, dict) else None) or \
            mt.OCI_MANIFEST
        digest = digest_of(body)
        self.manifests[(repository, digest)] = (body, str(kind))
        if tag is not None:
            self.tags.setdefault(repository, {})[tag] = digest
        return digest

    def push_chart(self, repository: str, version: str, *, name: str | None = None,
                   layer: bytes | None = None) -> str:
        """A chart as ``helm push`` lays it out: a Helm config and a .tgz holding the same
        Chart.yaml (``layer``: other bytes, as they are)."""
        chart = name or repository.rsplit("/", 1)[-1]
        config = self.push_blob(json.dumps({"name": chart, "version": version}).encode())
        content = self.push_blob(layer if layer is not None else chart_archive(chart, version))
        return self.push_manifest(repository, version.replace("+", "_"), {
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.HELM_CONFIG, **config},
            "layers": [{"mediaType": mt.HELM_CHART_LAYER, **content}]})

    def push_artifact(self, repository: str, tag: str | None, *, artifact_type: str,
                      layers: Sequence[tuple[str, bytes, Mapping[str, str]]],
                      subject: str | None = None) -> tuple[str, dict[str, Any]]:
        """A signature-like manifest; returns its digest and its index descriptor."""
        doc: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": mt.OCI_EMPTY, **self.push_blob(b"{}")},
            "layers": [{"mediaType": kind, **self.push_blob(data),
                        **({"annotations": dict(ann)} if ann else {})}
                       for kind, data, ann in layers]}
        if subject is not None:
            doc["subject"] = {"mediaType": mt.OCI_MANIFEST, "digest": subject,
                              "size": len(self.manifests[(repository, subject)][0])}
        digest = self.push_manifest(repository, tag, doc)
        size = len(self.manifests[(repository, digest)][0])
        return digest, {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": size,
                        "artifactType": artifact_type}

    # -- the API ---------------------------------------------------------------------

    def handle(self, request: Request) -> MockResponse:
        url = urllib.parse.urlsplit(request.url)
        if url.netloc == self.token_host:
            return self._token(request, url)
        if url.netloc == self.storage_host:
            digest = url.path.rsplit("/", 1)[-1]
            blob = self.blobs.get(digest)
            return MockResponse(200, blob) if blob is not None else MockResponse(404)
        if url.netloc != self.host:
            return MockResponse(502)
        fault = self.faults.get((request.method, url.path))
        if fault is not None:
            return fault()
        denied = self._check_auth(request, url.path)
        if denied is not None:
            return denied
        path = url.path
        if path == "/v2/":
            return _json(200, {})
        name, kind, ref = self._route(path)
        if kind == "manifests":
            return self._manifest(request.method, name, ref)
        if kind == "blobs":
            if self.storage_host:
                return MockResponse(307, headers={
                    "Location": f"https://{self.storage_host}/storage/{ref}?sig=abc"})
            blob = self.blobs.get(ref)
            if blob is None:
                return _json(404, {"errors": [{"code": "BLOB_UNKNOWN"}]})
            return MockResponse(200, b"" if request.method == "HEAD" else blob,
                                headers={"Content-Length": str(len(blob))})
        if kind == "tags":
            return self._tag_list(name, urllib.parse.parse_qs(url.query))
        if kind == "referrers":
            return self._referrers(name, ref)
        return _json(404, {"errors": [{"code": "NOT_FOUND"}]})

    @staticmethod
    def _route(path: str) -> tuple[str, str, str]:
        rest = path[len("/v2/"):]
        for kind in ("manifests", "blobs", "referrers"):
            name, sep, ref = rest.rpartition(f"/{kind}/")
            if sep:
                return name, kind, ref
        if rest.endswith("/tags/list"):
            return rest[:-len("/tags/list")], "tags", ""
        return rest, "", ""

    def _manifest(self, method: str, name: str, ref: str) -> MockResponse:
        digest = ref if ref.startswith("sha256:") else self.tags.get(name, {}).get(ref, "")
        found = self.manifests.get((name, digest))
        if found is None:
            return _json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        body, kind = found
        headers = {"Content-Type": kind, "Docker-Content-Digest": digest,
                   "Content-Length": str(len(body))}
        return MockResponse(200, b"" if method == "HEAD" else body, headers=headers)

    def _tag_list(self, name: str, query: dict[str, list[str]]) -> MockResponse:
        if name not in self.tags:
            return _json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})
        every = sorted(self.tags[name])
        last = query.get("last", [""])[0]
        rest = [t for t in every if t > last]
        size = self.page_size or len(rest) or 1
        page, more = rest[:size], rest[size:]
        headers = {}
        if more:
            headers["Link"] = f'</v2/{name}/tags/list?n={size}&last={page[-1]}>; rel="next"'
        return _json(200, {"name": name, "tags": page}, headers)

    def _referrers(self, name: str, digest: str) -> MockResponse:
        if not self.referrers_api:
            return MockResponse(404)
        entries = []
        for (repo, manifest_digest), (body, _) in self.manifests.items():
            doc = json.loads(body)
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if repo == name and isinstance(subject, dict) and subject.get("digest") == digest:
                entries.append({"mediaType": mt.OCI_MANIFEST, "digest": manifest_digest,
                                "size": len(body), "artifactType": doc.get("artifactType")})
        return _json(200, {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                           "manifests": entries}, {"Content-Type": mt.OCI_INDEX})

    # -- auth ------------------------------------------------------------------------

    def _basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _token_for(self, scope: str) -> str:
        return "token-" + hashlib.sha256(scope.encode()).hexdigest()[:16]

    def _check_auth(self, request: Request, path: str) -> MockResponse | None:
        given = request.headers.get("Authorization", "")
        if self.auth == "basic" and given != self._basic():
            return _json(401, {"errors": [{"code": "UNAUTHORIZED"}]},
                         {"WWW-Authenticate": 'Basic realm="memory"'})
        if self.auth == "bearer":
            name, _, _ = self._route(path)
            scope = f"repository:{name}:pull"
            if given != f"Bearer {self._token_for(scope)}":
                return _json(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {
                    "WWW-Authenticate": f'Bearer realm="https://{self.token_host}/token",'
                                        f'service="{self.host}",scope="{scope}"'})
        return None

    def _token(self, request: Request, url: urllib.parse.SplitResult) -> MockResponse:
        self.token_requests.append(request)
        if request.headers.get("Authorization", "") != self._basic():
            return _json(401, {"details": "bad credentials"})
        scope = urllib.parse.parse_qs(url.query).get("scope", [""])[0]
        return _json(200, {"token": self._token_for(scope)})


def chart_archive(name: str, version: str, padding: bytes = b"") -> bytes:
    """A minimal chart archive as ``helm package`` lays it out: ``<name>/Chart.yaml`` first
    (and ``padding`` as ``<name>/padding.txt``, to make it as large as a test needs)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        files = [("Chart.yaml", f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode())]
        if padding:
            files.append(("padding.txt", padding))
        for path, data in files:
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()

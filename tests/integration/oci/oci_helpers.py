"""Helpers for the OCI client tests: charts pushed by real helm, raw registry API access.

``RawRegistry`` talks to the real registry with requests the way other OCI clients (cosign,
oras) would: it uploads blobs and manifests that helm would never push (wrong media types,
oversized layers, referrers with a ``subject`` and their ``sha256-<hex>`` tag index).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import ssl
import threading
import urllib.parse
from typing import Any

import requests

from chartguard.oci import (
    ChartReference,
    RegistryClient,
    RegistryCredentials,
    TLSConfig,
)
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.registry import Registry, TLSFiles

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RawRegistry:
    """Direct distribution-API access to a test registry (uploads helm would not make)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.session = requests.Session()
        if registry.username and registry.password:
            self.session.auth = (registry.username, registry.password)

    @property
    def _verify(self) -> bool | str:
        return str(self.registry.tls.ca_cert) if self.registry.tls else True

    def push_blob(self, repository: str, data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        start = self.session.post(f"{self.registry.url}/v2/{repository}/blobs/uploads/",
                                  timeout=10, verify=self._verify)
        assert start.status_code == 202, start.text
        location = urllib.parse.urljoin(self.registry.url, start.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = self.session.put(f"{location}{sep}digest={digest}", data=data, timeout=30,
                                headers={"Content-Type": "application/octet-stream"},
                                verify=self._verify)
        assert done.status_code == 201, done.text
        return {"digest": digest, "size": len(data)}

    def push_manifest(self, repository: str, reference: str, manifest: dict[str, Any],
                      media_type: str = OCI_MANIFEST) -> str:
        raw = json.dumps(manifest, separators=(",", ":")).encode()
        answer = self.session.put(
            f"{self.registry.url}/v2/{repository}/manifests/{reference}", data=raw,
            headers={"Content-Type": media_type}, timeout=10, verify=self._verify)
        assert answer.status_code == 201, answer.text
        return digest_of(raw)

    def push_artifact(self, repository: str, reference: str, *, config_type: str,
                      layers: list[tuple[str, bytes, dict[str, str]]],
                      artifact_type: str | None = None,
                      subject: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Push config + layers + a manifest; return (digest, its descriptor)."""
        config = self.push_blob(repository, b"{}")
        manifest: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, **config},
            "layers": [{"mediaType": mt, **self.push_blob(repository, data),
                        **({"annotations": ann} if ann else {})}
                       for mt, data, ann in layers],
        }
        if artifact_type:
            manifest["artifactType"] = artifact_type
        if subject:
            manifest["subject"] = subject
        raw = json.dumps(manifest, separators=(",", ":")).encode()
        digest = self.push_manifest(repository, reference, manifest)
        descriptor = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)}
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        return digest, descriptor

    def manifest(self, repository: str, reference: str) -> dict[str, Any]:
        answer = self.session.get(
            f"{self.registry.url}/v2/{repository}/manifests/{reference}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}, timeout=10,
            verify=self._verify)
        assert answer.status_code == 200, answer.text
        doc: dict[str, Any] = answer.json()
        return doc


def client_for(registry: Registry, **kw: Any) -> RegistryClient:
    """A client configured the way this registry needs (plain HTTP, CA, credentials)."""
    if registry.tls:
        kw.setdefault("tls", TLSConfig(ca_pem=registry.tls.ca_pem()))
    else:
        kw.setdefault("plain_http", True)
    if registry.username and registry.password:
        kw.setdefault("credentials", RegistryCredentials(registry.username, registry.password))
    return RegistryClient(**kw)


def push_chart(helm: HelmEnv, registry: Registry, name: str, version: str,
               path: str = "charts") -> PushedChart:
    return helm.make_chart(registry, name, version, path=path)


def reference(chart: PushedChart) -> ChartReference:
    return ChartReference.parse(chart.url, chart.name)


class PaginatingProxy:
    """Forwards to the real registry; serves tag lists ``page`` tags at a time with ``Link``.

    Debian's docker-registry 2.8 ignores ``n`` on tag lists, so this stands in for the
    registries that paginate (as the distribution spec allows); every other request is
    passed through unchanged.
    """

    def __init__(self, registry: Registry, page: int, referrers_api: str | None = None) -> None:
        self.registry = registry
        self.page = page
        # "index": answer /referrers/<digest> from the sha256-<hex> tag index, as a registry
        # with the API would; "junk": answer it with JSON that is not an index
        self.referrers_api = referrers_api
        self.link_base = ""  # set to "http://other:port" to send pagination elsewhere
        self.link_loop = False  # every page's Link names the first page again
        self.tags_body: bytes | None = None  # served as the tag list instead of the tags
        self.tag_requests: list[str] = []
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _forward(self, method: str) -> None:
                proxy.seen.append((method, self.path))
                url = urllib.parse.urlsplit(self.path)
                if method == "GET" and url.path.endswith("/tags/list"):
                    return self._tags(url)
                if "/referrers/" in url.path and proxy.referrers_api:
                    return self._referrers(url)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("accept", "authorization")}
                answer = requests.request(method, f"{proxy.registry.url}{self.path}",
                                          headers=headers, timeout=10, allow_redirects=False)
                self.send_response(answer.status_code)
                for key in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate",
                            "Location"):
                    if key in answer.headers:
                        self.send_header(key, answer.headers[key])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(answer.content)
                return None

            def _referrers(self, url: urllib.parse.SplitResult) -> None:
                name, _, digest = url.path[len("/v2/"):].partition("/referrers/")
                if proxy.referrers_api and proxy.referrers_api.isdigit():
                    self.send_response(int(proxy.referrers_api))  # a registry without the API
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'{"hello": "not an index"}'
                if proxy.referrers_api == "index":
                    answer = requests.get(
                        f"{proxy.registry.url}/v2/{name}/manifests/{digest.replace(':', '-')}",
                        headers={"Accept": OCI_INDEX}, timeout=10)
                    body = answer.content if answer.status_code == 200 else json.dumps(
                        {"schemaVersion": 2, "mediaType": OCI_INDEX,
                         "manifests": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", OCI_INDEX)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _tags(self, url: urllib.parse.SplitResult) -> None:
                proxy.tag_requests.append(self.path)
                if proxy.tags_body is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(proxy.tags_body)))
                    self.end_headers()
                    self.wfile.write(proxy.tags_body)
                    return
                query = urllib.parse.parse_qs(url.query)
                every = sorted(requests.get(f"{proxy.registry.url}{url.path}",
                                            timeout=10).json()["tags"])
                last = query.get("last", [""])[0]
                rest = [t for t in every if t > last]
                page, more = rest[:proxy.page], rest[proxy.page:]
                body = json.dumps({"name": url.path, "tags": page}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if proxy.link_loop:
                    more, page = rest, rest[:proxy.page]  # the same first page, forever
                if more:
                    after = "" if proxy.link_loop else page[-1]
                    link = f"{proxy.link_base}{url.path}?n={proxy.page}&last={after}"
                    self.send_header("Link", f'<{link}>; rel="next"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_HEAD(self) -> None:
                self._forward("HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class RedirectingProxy:
    """A registry whose blobs live in storage on another host, as S3/GCS-backed ones do.

    Requests are forwarded to the real registry, but a blob GET that the registry would
    answer is redirected (307) to a storage server addressed as ``localhost`` (another host
    name than the registry's ``127.0.0.1``). The storage server records the headers each
    request carried and serves the blob it fetched from the registry itself.
    """

    def __init__(self, registry: Registry, status: int = 307,
                 tls: TLSFiles | None = None) -> None:
        """With ``tls``, both the front and the storage serve HTTPS with that certificate."""
        self.registry = registry
        self.storage_requests: list[dict[str, str]] = []
        # answer 401 with a Bearer challenge whose realm is the storage host itself
        self.storage_challenge = False
        auth = (registry.username, registry.password) if registry.username else None
        proxy = self

        class Storage(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.storage_requests.append({k.lower(): v for k, v in self.headers.items()})
                if proxy.storage_challenge:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="http://localhost:'
                                     f'{proxy.storage_port}/token",service="storage"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                blob_path = urllib.parse.urlsplit(self.path).path[len("/storage"):]
                answer = requests.get(f"{registry.url}{blob_path}", auth=auth, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        class Front(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _forward(self, method: str) -> None:
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("accept", "authorization")}
                is_blob = method == "GET" and "/blobs/sha256:" in self.path
                answer = requests.request("HEAD" if is_blob else method,
                                          f"{registry.url}{self.path}", headers=headers,
                                          timeout=10, allow_redirects=False)
                body = b"" if is_blob or method == "HEAD" else answer.content
                if is_blob and answer.status_code == 200:
                    self.send_response(status)
                    self.send_header("Location", f"{scheme}://localhost:{proxy.storage_port}"
                                                 f"/storage{self.path}?X-Amz-Signature=abc")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(answer.status_code)
                for key in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate"):
                    if key in answer.headers:
                        self.send_header(key, answer.headers[key])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_HEAD(self) -> None:
                self._forward("HEAD")

        scheme = "https" if tls else "http"
        self.storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storage)
        self.storage_port = self.storage.server_address[1]
        self.front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls.cert), str(tls.key))
            for server in (self.storage, self.front):
                server.socket = context.wrap_socket(server.socket, server_side=True)
        self.host = f"127.0.0.1:{self.front.server_address[1]}"
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True)
                        for s in (self.storage, self.front)]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        for server in (self.front, self.storage):
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)

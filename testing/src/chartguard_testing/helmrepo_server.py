"""An HTTP(S) Helm repository for tests: a directory served as ``helm repo index`` made it.

:func:`build_repository` packages charts with the real ``helm package`` and indexes them with
the real ``helm repo index`` (chart URLs relative to the index, or absolute with ``--url``);
:func:`run_helm_repository` serves such a directory from a thread of the test process on
127.0.0.1 and a free port: optionally over TLS with a CA made for the test (and a client
certificate required), behind basic auth, with ETags (``If-None-Match`` answered 304) or not.
Every request is recorded (path, status, whether it carried credentials), so a test can count
what the operator asked for and check where credentials went. Stopped when the context ends.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import TLSFiles, make_tls


@dataclass(frozen=True)
class Hit:
    """One request the server answered."""

    path: str
    status: int
    authorized: bool  # it carried an Authorization header
    conditional: bool  # it carried If-None-Match or If-Modified-Since


@dataclass
class HelmRepoServer:
    """A running repository; ``url`` is the repository URL (``<scheme>://127.0.0.1:P/<base>``)."""

    root: Path
    base: str
    server: ThreadingHTTPServer
    tls: TLSFiles | None = None
    username: str | None = None
    password: str | None = None
    etags: bool = True
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        port = self.server.server_address[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/{self.base}" if self.base else self.origin

    def requests(self, path: str, status: int | None = None) -> list[Hit]:
        """The requests for ``path`` (relative to the base, e.g. ``index.yaml``)."""
        full = f"/{self.base}/{path}" if self.base else f"/{path}"
        with self.lock:
            return [h for h in self.hits if h.path == full
                    and (status is None or h.status == status)]

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest() + '"'


def _handler(repo: HelmRepoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the hits are recorded

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            auth = self.headers.get("Authorization")
            conditional = bool(self.headers.get("If-None-Match")
                               or self.headers.get("If-Modified-Since"))
            status = self._answer(path, auth)
            repo.record(Hit(path, status, auth is not None, conditional))

        def _answer(self, path: str, auth: str | None) -> int:
            if repo.username is not None:
                token = base64.b64encode(f"{repo.username}:{repo.password}".encode()).decode()
                if auth != f"Basic {token}":
                    return self._send(401, b"unauthorized",
                                      {"WWW-Authenticate": 'Basic realm="charts"'})
            prefix = f"/{repo.base}/" if repo.base else "/"
            name = path[len(prefix):] if path.startswith(prefix) else ""
            target = repo.root / name
            if not name or "/" in name or not target.is_file():
                return self._send(404, b"not found")
            data = target.read_bytes()
            headers = {"Content-Type": "application/x-yaml" if name.endswith(".yaml")
                       else "application/gzip"}
            if repo.etags:
                tag = _etag(data)
                headers["ETag"] = tag
                if self.headers.get("If-None-Match") == tag:
                    return self._send(304, b"", headers)
            return self._send(200, data, headers)

        def _send(self, status: int, body: bytes,
                  headers: dict[str, str] | None = None) -> int:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            return status

    return Handler


@contextmanager
def run_helm_repository(root: Path, *, workdir: Path, base: str = "charts",
                        auth: tuple[str, str] | None = None, tls: bool = True,
                        client_ca: Path | None = None, etags: bool = True,
                        tls_files: TLSFiles | None = None) -> Iterator[HelmRepoServer]:
    """Serve ``root`` at ``/<base>/`` on 127.0.0.1 (a free port); ``client_ca``: require a
    client certificate signed by it. Stopped (and its port released) when the block ends."""
    files = tls_files or (make_tls(workdir / "tls") if tls else None)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    repo = HelmRepoServer(root=root, base=base.strip("/"), server=server, tls=files,
                          username=auth[0] if auth else None,
                          password=auth[1] if auth else None, etags=etags)
    server.RequestHandlerClass = _handler(repo)
    server.daemon_threads = True
    if files is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.cert, files.key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True, name="helm-repository")
    thread.start()
    try:
        yield repo
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def make_client_certificate(tls: TLSFiles, directory: Path) -> tuple[Path, Path]:
    """A client certificate (and its key) signed by ``tls``'s CA: (tls.crt, tls.key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chartguard client")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "client.crt", directory / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def build_repository(helm: HelmEnv, root: Path, charts: list[tuple[str, str]], *,
                     url: str | None = None) -> Path:
    """Package ``(name, version)`` charts with ``helm package`` into ``root`` and index them
    with ``helm repo index`` (``url``: absolute chart URLs, ``--url``; else relative ones).
    Returns the index file."""
    root.mkdir(parents=True, exist_ok=True)
    for name, version in charts:
        package = helm.package(helm.create(name, version))
        (root / package.name).write_bytes(package.read_bytes())
    args = ["repo", "index", str(root)]
    if url:
        args += ["--url", url]
    helm.run(*args)
    return root / "index.yaml"

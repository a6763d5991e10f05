"""Registries configured beyond what ``chartguard_testing.registry`` offers.

- bearer-token auth (docker's token spec), as ghcr.io or Docker Hub run it: Debian's
  docker-registry is configured with ``auth: token`` and trusts one self-signed certificate;
  a small token service (in this process, on 127.0.0.1) checks Basic credentials and signs
  ES256 JWTs with that certificate's key, granting exactly the scope asked for. Every token
  request is recorded so tests can see the flow a client went through.
- mutual TLS: ``http.tls.clientcas`` makes the registry demand a client certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chartguard_testing import procs, tools
from chartguard_testing.registry import Registry, TLSFiles, make_tls

SERVICE = "chartguard-token-registry"
ISSUER = "chartguard-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """Issues JWTs for ``username``/``password``; refuses anyone else (anonymous included)."""

    username: str
    password: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    requests: list[dict[str, str]] = field(default_factory=list)
    anonymous: bool = False  # also grant tokens to requests without credentials (public pulls)

    def token(self, scope: str, subject: str) -> str:
        access = []
        for item in filter(None, scope.split(" ")):
            kind, name, actions = item.split(":", 2) if item.count(":") >= 2 else (
                item, "", "")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [
            base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode()))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(),
                                                  ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def handle(self, query: dict[str, str], authorization: str) -> tuple[int, bytes]:
        record = {"scope": query.get("scope", ""), "service": query.get("service", ""),
                  "auth": authorization.split(" ", 1)[0] if authorization else ""}
        self.requests.append(record)
        expected = "Basic " + base64.b64encode(
            f"{self.username}:{self.password}".encode()).decode()
        if authorization == expected:
            subject = self.username
        elif self.anonymous and not authorization:
            subject = ""
        else:
            return 401, b'{"details": "invalid credentials"}'
        token = self.token(record["scope"], subject)
        return 200, json.dumps({"token": token, "expires_in": 300}).encode()


def _certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))


@contextmanager
def run_token_registry(workdir: Path, username: str, password: str, *, tls: bool = False,
                       ) -> Iterator[tuple[Registry, TokenService]]:
    """A registry (plain HTTP, or TLS with its own CA) that demands bearer tokens from a
    local token service, whose realm is always plain HTTP."""
    root = Path(tempfile.mkdtemp(prefix="chartguard-token-registry-", dir=workdir))
    tls_files = make_tls(root / "tls") if tls else None
    tls_lines = ("  tls:", f"    certificate: {tls_files.cert}",
                 f"    key: {tls_files.key}") if tls_files else ()
    key = ec.generate_private_key(ec.SECP256R1())
    service = TokenService(username, password, key, _certificate(key))
    (root / "signer.crt").write_bytes(service.cert.public_bytes(serialization.Encoding.PEM))

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_POST(self) -> None:
            # helm tries the OAuth2 POST first; 405 (not 501, which it retries) sends it
            # straight to the GET token flow, as registries without OAuth2 answer
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            status, body = service.handle(query, self.headers.get("Authorization", ""))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with _serve(root, top=(
                "auth:", "  token:",
                f"    realm: http://127.0.0.1:{server.server_address[1]}/token",
                f"    service: {SERVICE}", f"    issuer: {ISSUER}",
                f"    rootcertbundle: {root / 'signer.crt'}"), http=tls_lines, tls=tls_files,
                username=username, password=password) as registry:
            yield registry, service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


@contextmanager
def run_mtls_registry(workdir: Path) -> Iterator[tuple[Registry, ClientCert]]:
    """A TLS registry that refuses clients without a certificate signed by its CA."""
    root = Path(tempfile.mkdtemp(prefix="chartguard-mtls-registry-", dir=workdir))
    try:
        tls = make_tls(root / "tls")
        client = _client_cert(tls, root / "client")
        with _serve(root, http=("  tls:", f"    certificate: {tls.cert}", f"    key: {tls.key}",
                                "    clientcas:", f"      - {tls.ca_cert}"),
                    tls=tls, client=client) as registry:
            yield registry, client
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _client_cert(tls: TLSFiles, directory: Path) -> ClientCert:
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chartguard")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True)
    files = ClientCert(directory / "tls.crt", directory / "tls.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


@contextmanager
def _serve(root: Path, *, http: tuple[str, ...] = (), top: tuple[str, ...] = (),
           username: str | None = None, password: str | None = None,
           tls: TLSFiles | None = None, client: ClientCert | None = None) -> Iterator[Registry]:
    """docker-registry with extra config lines under ``http:`` and at the top level."""
    port = procs.free_port()
    storage = root / "storage"
    storage.mkdir()
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
             "storage:", "  filesystem:", f"    rootdirectory: {storage}",
             "http:", f"  addr: 127.0.0.1:{port}", f"  secret: {secrets.token_hex(16)}",
             *http, *top]
    config = root / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = root / "registry.log"
    with log.open("wb") as logf:
        proc = subprocess.Popen([tools.docker_registry(), "serve", str(config)], stdout=logf,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    registry = Registry(host=f"127.0.0.1:{port}", root=root, storage=storage, proc=proc,
                        username=username, password=password, tls=tls, log=log)
    try:
        procs.wait_until(lambda: _answers(f"{registry.url}/v2/", tls, client), timeout=15,
                         what=f"docker-registry on {registry.host}", proc=proc)
        yield registry
    finally:
        procs.stop(proc)


def _answers(url: str, tls: TLSFiles | None, client: ClientCert | None) -> bool:
    context = None
    if tls:
        context = ssl.create_default_context(cafile=str(tls.ca_cert))
        if client:
            context.load_cert_chain(str(client.cert), str(client.key))
    try:
        with urllib.request.urlopen(url, timeout=1, context=context):  # noqa: S310
            return True
    except urllib.error.HTTPError as err:
        return err.code == 401

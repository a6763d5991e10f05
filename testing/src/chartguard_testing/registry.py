"""A real OCI registry for tests and the demo: Debian's ``docker-registry`` (distribution 2.8).

Three variants: plain HTTP, htpasswd (bcrypt) basic auth, TLS with a CA made for the run.
Each instance has its own storage in a temporary directory, binds 127.0.0.1 on a free port
and is stopped by PID. Storage paths are exposed so tests can tamper with stored blobs.

Measured: it starts in ~25 ms; it has no referrers API (``/v2/<name>/referrers/<digest>``
answers 404), so OCI 1.1 referrers are found through the ``sha256-<hex>`` tag fallback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chartguard_testing import procs, tools


@dataclass(frozen=True)
class TLSFiles:
    """A CA and a server certificate for 127.0.0.1/localhost, as PEM files."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


@dataclass
class Registry:
    """A running registry. ``host`` is ``127.0.0.1:PORT``."""

    host: str
    root: Path
    storage: Path
    proc: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None
    tls: TLSFiles | None = None
    log: Path = field(default_factory=lambda: Path("/dev/null"))

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def plain_http(self) -> bool:
        return self.tls is None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def oci(self, path: str = "charts") -> str:
        """``oci://host/path``: a HelmRepository URL for this registry."""
        return f"oci://{self.host}/{path.strip('/')}"

    def blob_path(self, digest: str) -> Path:
        """Where the registry stores the bytes of ``digest`` (to tamper with them)."""
        algo, hexd = digest.split(":", 1)
        return (self.storage / "docker/registry/v2/blobs" / algo / hexd[:2] / hexd / "data")


def make_tls(directory: Path) -> TLSFiles:
    """Generate a throwaway CA and a server certificate valid for 127.0.0.1 and localhost."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chartguard test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / "ca.crt", directory / "ca.key",
                     directory / "tls.crt", directory / "tls.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.ca_key.write_bytes(ca_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


def _config(port: int, storage: Path, htpasswd: Path | None, tls: TLSFiles | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        f"  secret: {secrets.token_hex(16)}",
    ]
    if tls:
        lines += ["  tls:", f"    certificate: {tls.cert}", f"    key: {tls.key}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: chartguard-test", f"    path: {htpasswd}"]
    return "\n".join(lines) + "\n"


def _answers(url: str, ca: Path | None) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(url, timeout=1, context=ctx) as resp:  # noqa: S310
            return int(resp.status) == 200
    except urllib.error.HTTPError as err:
        return err.code == 401  # auth-protected: it is up


@contextmanager
def run_registry(*, auth: tuple[str, str] | None = None, tls: bool = False,
                 workdir: Path | None = None) -> Iterator[Registry]:
    """Start a registry; yield it; stop it by PID and remove its storage."""
    root = Path(tempfile.mkdtemp(prefix="chartguard-registry-", dir=workdir))
    try:
        storage = root / "storage"
        storage.mkdir()
        htpasswd_file: Path | None = None
        if auth:
            htpasswd_file = root / "htpasswd"
            out = subprocess.run(
                [tools.htpasswd(), "-Bbn", auth[0], auth[1]],
                check=True, capture_output=True)
            htpasswd_file.write_bytes(out.stdout)
        tls_files = make_tls(root / "tls") if tls else None
        port = procs.free_port()
        config = root / "config.yml"
        config.write_text(_config(port, storage, htpasswd_file, tls_files))
        log = root / "registry.log"
        with log.open("wb") as logf:
            proc = subprocess.Popen(
                [tools.docker_registry(), "serve", str(config)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        reg = Registry(host=f"127.0.0.1:{port}", root=root, storage=storage, proc=proc,
                       username=auth[0] if auth else None,
                       password=auth[1] if auth else None, tls=tls_files, log=log)
        try:
            procs.wait_until(
                lambda: _answers(f"{reg.url}/v2/", tls_files.ca_cert if tls_files else None),
                timeout=15, what=f"docker-registry on {reg.host}", proc=proc)
            yield reg
        finally:
            procs.stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)

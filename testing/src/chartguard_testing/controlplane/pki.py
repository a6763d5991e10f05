"""Certificates and keys for a throwaway control plane, made with ``cryptography``.

One CA signs the API server's serving certificate and every client certificate (admin,
controller-manager, scheduler, kwok); the API server trusts it as ``--client-ca-file``. The
service-account key pair signs and checks ServiceAccount tokens. ECDSA P-256 throughout:
generating it takes microseconds, where RSA-2048 takes tens of milliseconds.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# the API server's service network: its first address is the in-cluster `kubernetes` Service
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: CertPair
    serving: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    kwok: CertPair
    sa_key: Path   # PKCS#8 private key: --service-account-signing-key-file / -private-key-file
    sa_pub: Path   # --service-account-key-file


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(directory: Path, stem: str, subject: x509.Name, ca_key: ec.EllipticCurvePrivateKey,
           ca_name: x509.Name, *, server: bool = False,
           sans: list[x509.GeneralName] | None = None) -> CertPair:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def make_pki(directory: Path) -> Pki:
    """Write a CA, serving and client certificates and the service-account keys."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("chartguard-test-ca")
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))
    ca = CertPair(directory / "ca.crt", directory / "ca.key")
    ca.cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, ca.key)
    sans: list[x509.GeneralName] = [
        x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default",
                                  "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local")]
    sans += [x509.IPAddress(ipaddress.ip_address(a))
             for a in ("127.0.0.1", KUBERNETES_SERVICE_IP)]
    serving = _issue(directory, "apiserver", _name("kube-apiserver"), ca_key, ca_name,
                     server=True, sans=sans)
    # system:masters: the group RBAC's bootstrap policy binds to cluster-admin
    admin = _issue(directory, "admin", _name("chartguard-admin", "system:masters"), ca_key,
                   ca_name)
    # the names the bootstrap roles system:kube-controller-manager / system:kube-scheduler
    # are bound to; the controller-manager also gets system:masters because it runs every
    # controller under its own identity (--use-service-account-credentials=false)
    cm = _issue(directory, "controller-manager",
                _name("system:kube-controller-manager", "system:masters"), ca_key, ca_name)
    sched = _issue(directory, "scheduler", _name("system:kube-scheduler"), ca_key, ca_name)
    kwok = _issue(directory, "kwok", _name("kwok", "system:masters"), ca_key, ca_name)
    sa = _key()
    sa_key = _write_key(sa, directory / "sa.key")
    sa_pub = directory / "sa.pub"
    sa_pub.write_bytes(sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Pki(ca, serving, admin, cm, sched, kwok, sa_key, sa_pub)

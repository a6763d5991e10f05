"""Registry credentials and TLS material, read from Kubernetes Secret data (Flux's keys).

Nothing here reads ~/.docker or the environment: credentials come only from the Secret the
spec names. A ``kubernetes.io/dockerconfigjson`` Secret is matched to the registry host the
way docker's credential file store does it (exact key first, then every key reduced to its
hostname: ``https://host/v1/`` -> ``host``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from chartguard.oci.errors import CredentialsError
from chartguard.untrusted import UntrustedInputError, loads_json

DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"


@dataclass(frozen=True)
class RegistryCredentials:
    """A username and password (or token) for one registry; the password never prints."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r}, password=<redacted>)"


@dataclass(frozen=True)
class TLSConfig:
    """PEM material: a CA to trust instead of the system's, and a client certificate."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.cert_pem is None) != (self.key_pem is None):
            raise CredentialsError(
                "TLS client authentication needs both tls.crt and tls.key: add the missing "
                "one to the Secret, or remove the other")


def _hostname(key: str) -> str:
    # docker's credentials.ConvertToHostname: drop the scheme, keep what precedes the path
    for scheme in ("http://", "https://"):
        if key.startswith(scheme):
            key = key[len(scheme):]
            break
    return key.partition("/")[0]


def _text(data: Mapping[str, bytes], key: str) -> str | None:
    raw = data.get(key)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        raise CredentialsError(
            f"Secret key {key!r} is not UTF-8 text: store the value itself, not binary") from None


def _from_docker_config(raw: str, host: str) -> RegistryCredentials:
    try:
        config = loads_json(raw, what=f"Secret key {DOCKER_CONFIG_JSON_KEY!r}")
    except UntrustedInputError as err:
        raise CredentialsError(
            f"{err}: recreate it with "
            "`kubectl create secret docker-registry`") from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        raise CredentialsError(
            f"Secret key {DOCKER_CONFIG_JSON_KEY!r} has no \"auths\" object: recreate it "
            "with `kubectl create secret docker-registry`")
    entry = auths.get(host)
    if entry is None:
        entry = next((v for k, v in auths.items() if _hostname(k) == host), None)
    if not isinstance(entry, dict):
        known = ", ".join(sorted(_hostname(k) for k in auths)) or "none"
        raise CredentialsError(
            f"the docker config Secret has no auths entry for registry {host} (entries for: "
            f"{known}): add one for {host}")
    username = entry.get("username") or ""
    password = entry.get("password") or ""
    auth = entry.get("auth")
    if auth:  # docker decodes "auth" and lets it win over username/password
        try:
            decoded = base64.b64decode(str(auth), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(
                f"the docker config auths entry for {host} has an \"auth\" value that is not "
                "base64 of user:password: recreate the Secret") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(
                f"the docker config auths entry for {host} has an \"auth\" value without "
                "':' between user and password: recreate the Secret")
    if not isinstance(username, str) or not isinstance(password, str) or not (
            username and password):
        raise CredentialsError(
            f"the docker config auths entry for {host} has no username and password: set "
            "\"auth\" or \"username\" and \"password\"")
    return RegistryCredentials(username, password)


def credentials_from_secret(data: Mapping[str, bytes], host: str) -> RegistryCredentials | None:
    """Credentials for ``host`` from Secret ``data``; None when the Secret holds none.

    ``.dockerconfigjson`` wins over ``username``/``password`` keys when both are present.
    A Secret that names credentials but cannot supply them for ``host`` is a
    CredentialsError (fix the Secret), never a silent anonymous pull.
    """
    docker = _text(data, DOCKER_CONFIG_JSON_KEY)
    if docker is not None:
        return _from_docker_config(docker, host)
    username, password = _text(data, "username"), _text(data, "password")
    if username is None and password is None:
        return None
    if not username or not password:
        raise CredentialsError(
            "the credentials Secret must have both 'username' and 'password' keys, non-empty: "
            "add the missing one")
    return RegistryCredentials(username, password)


def tls_from_secret(data: Mapping[str, bytes]) -> TLSConfig:
    """TLS material from a Secret with Flux's keys ``ca.crt``, ``tls.crt``, ``tls.key``."""
    ca, cert, key = data.get("ca.crt"), data.get("tls.crt"), data.get("tls.key")
    for name, value in (("ca.crt", ca), ("tls.crt", cert)):
        if value is not None and b"-----BEGIN CERTIFICATE-----" not in value:
            raise CredentialsError(
                f"Secret key {name!r} is not a PEM certificate: store the PEM text")
    if key is not None and b"PRIVATE KEY-----" not in key:
        raise CredentialsError("Secret key 'tls.key' is not a PEM private key: store the PEM text")
    return TLSConfig(ca_pem=ca or None, cert_pem=cert or None, key_pem=key or None)

"""Credentials and TLS material come from Secret data only, matched to the host like docker."""

from __future__ import annotations

import base64
import json

import pytest

from chartguard.oci import (
    CredentialsError,
    RegistryCredentials,
    TLSConfig,
    credentials_from_secret,
    tls_from_secret,
)


def _dockerconfig(auths: dict[str, dict[str, str]]) -> dict[str, bytes]:
    return {".dockerconfigjson": json.dumps({"auths": auths}).encode()}


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("key", [
    "registry.example.com:5000",
    "https://registry.example.com:5000",
    "http://registry.example.com:5000/",
    "https://registry.example.com:5000/v1/",
    "registry.example.com:5000/some/path",
])
def test_dockerconfig_key_matches_host_as_docker_does(key: str) -> None:
    data = _dockerconfig({"other.io": {"auth": _auth("x", "y")},
                          key: {"auth": _auth("alice", "pa:ss")}})
    creds = credentials_from_secret(data, "registry.example.com:5000")
    assert creds == RegistryCredentials("alice", "pa:ss")  # ':' in the password survives


def test_exact_key_wins_over_a_key_reduced_to_the_same_host() -> None:
    data = _dockerconfig({"https://ghcr.io/v1/": {"auth": _auth("old", "1")},
                          "ghcr.io": {"auth": _auth("new", "2")}})
    assert credentials_from_secret(data, "ghcr.io") == RegistryCredentials("new", "2")


def test_dockerconfig_username_password_fields_and_auth_precedence() -> None:
    plain = _dockerconfig({"ghcr.io": {"username": "bob", "password": "pw"}})
    assert credentials_from_secret(plain, "ghcr.io") == RegistryCredentials("bob", "pw")
    both = _dockerconfig({"ghcr.io": {"username": "bob", "password": "pw",
                                      "auth": _auth("carol", "pw2")}})
    assert credentials_from_secret(both, "ghcr.io") == RegistryCredentials("carol", "pw2")


def test_host_match_is_not_a_prefix_or_port_blind_match() -> None:
    data = _dockerconfig({"ghcr.io:5000": {"auth": _auth("a", "b")},
                          "ghcr.io.evil.com": {"auth": _auth("c", "d")}})
    with pytest.raises(CredentialsError, match=r"no auths entry for registry ghcr\.io "):
        credentials_from_secret(data, "ghcr.io")


@pytest.mark.parametrize(("data", "match"), [
    ({".dockerconfigjson": b"{not json"}, "not valid JSON"),
    ({".dockerconfigjson": b"[" * 100_000 + b"]" * 100_000}, "nested deeper than 64 levels"),
    ({".dockerconfigjson": b'{"credsStore": "desktop"}'}, "no \"auths\""),
    (_dockerconfig({"ghcr.io": {"auth": "%%%"}}), "not base64"),
    (_dockerconfig({"ghcr.io": {"auth": base64.b64encode(b"nocolon").decode()}}), "without ':'"),
    (_dockerconfig({"ghcr.io": {}}), "no username and password"),
    ({"username": b"u"}, "both 'username' and 'password'"),
    ({"password": b"p"}, "both 'username' and 'password'"),
    ({"username": b"u", "password": b""}, "both 'username' and 'password'"),
    ({"username": b"\xff", "password": b"p"}, "not UTF-8"),
])
def test_unusable_secrets_say_what_to_fix(data: dict[str, bytes], match: str) -> None:
    with pytest.raises(CredentialsError, match=match) as caught:
        credentials_from_secret(data, "ghcr.io")
    assert "s3cret" not in str(caught.value)


def test_username_password_secret_and_empty_secret() -> None:
    data = {"username": b"chartguard", "password": b"s3cret-Passw0rd"}
    assert credentials_from_secret(data, "any.io") == RegistryCredentials(
        "chartguard", "s3cret-Passw0rd")
    assert credentials_from_secret({}, "any.io") is None
    assert credentials_from_secret({"ca.crt": b"x"}, "any.io") is None


def test_password_never_shows_in_repr_or_str() -> None:
    creds = RegistryCredentials("alice", "s3cret-Passw0rd")
    assert "s3cret" not in repr(creds)
    assert "s3cret" not in str(creds)
    assert "alice" in repr(creds)


PEM_CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def test_tls_from_secret_reads_fluxs_keys() -> None:
    tls = tls_from_secret({"ca.crt": PEM_CERT, "tls.crt": PEM_CERT, "tls.key": PEM_KEY})
    assert tls == TLSConfig(ca_pem=PEM_CERT, cert_pem=PEM_CERT, key_pem=PEM_KEY)
    assert "MIIE" not in repr(tls)
    assert tls_from_secret({"ca.crt": PEM_CERT}) == TLSConfig(ca_pem=PEM_CERT)
    assert tls_from_secret({}) == TLSConfig()


@pytest.mark.parametrize(("data", "match"), [
    ({"tls.crt": PEM_CERT}, "both tls.crt and tls.key"),
    ({"tls.key": PEM_KEY}, "both tls.crt and tls.key"),
    ({"ca.crt": b"not pem"}, "'ca.crt' is not a PEM certificate"),
    ({"tls.crt": PEM_CERT, "tls.key": b"junk"}, "'tls.key' is not a PEM private key"),
])
def test_tls_secret_errors(data: dict[str, bytes], match: str) -> None:
    with pytest.raises(CredentialsError, match=match):
        tls_from_secret(data)

"""Authentication and TLS against the real registry: good and bad credentials, the custom
CA and its absence, plain HTTP only when asked, and nothing read from ~/.docker."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from custom_registries import ClientCert, TokenService
from oci_helpers import reference

from chartguard.cli import main
from chartguard.oci import (
    AuthenticationError,
    ChartReference,
    Hint,
    RegistryClient,
    RegistryCredentials,
    RegistryResponseError,
    TLSConfig,
    TLSVerificationError,
    credentials_from_secret,
    tls_from_secret,
)
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry

FAST = 3.0  # seconds: every failure here must be reported at least this quickly


def test_basic_auth_with_good_credentials_pulls_the_chart(
        auth_registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    client = make_client(auth_registry)
    resolved = client.resolve(reference(chart), "^1")
    assert resolved.digest == chart.digest
    assert client.fetch_chart(reference(chart), chart.digest).layer == \
        chart.package.read_bytes()


def test_bad_password_is_an_authentication_error_within_seconds(
        auth_registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    client = make_client(auth_registry,
                         credentials=RegistryCredentials("chartguard", "wrong-Passw0rd"))
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="refused user 'chartguard'") as caught:
        client.resolve(reference(chart), "1.0.0")
    assert time.monotonic() - started < FAST
    assert "wrong-Passw0rd" not in str(caught.value)
    assert "check the username and password" in str(caught.value)


def test_no_credentials_says_the_registry_needs_some(
        auth_registry: Registry, helm_env: HelmEnv) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    with RegistryClient(plain_http=True) as client, pytest.raises(
            AuthenticationError, match="requires credentials") as caught:
        client.resolve(reference(chart), ">=1")
    # the library names no flag or spec field: the caller maps the hint to its own words
    assert caught.value.hints == (Hint.CREDENTIALS,)
    assert "--" not in str(caught.value)
    assert "secretRef" not in str(caught.value)


def test_docker_config_and_oras_env_are_never_read(
        auth_registry: Registry, helm_env: HelmEnv, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    good = base64.b64encode(b"chartguard:s3cret-Passw0rd").decode()
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": good}}}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("ORAS_USER", "chartguard")
    monkeypatch.setenv("ORAS_PASS", "s3cret-Passw0rd")
    with RegistryClient(plain_http=True) as client, pytest.raises(AuthenticationError):
        client.resolve(reference(chart), "1.0.0")


def test_dockerconfigjson_secret_authenticates_end_to_end(
        auth_registry: Registry, helm_env: HelmEnv) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    auth = base64.b64encode(b"chartguard:s3cret-Passw0rd").decode()
    secret = {".dockerconfigjson": json.dumps(
        {"auths": {f"https://{auth_registry.host}/v1/": {"auth": auth}}}).encode()}
    credentials = credentials_from_secret(secret, auth_registry.host)
    with RegistryClient(plain_http=True, credentials=credentials) as client:
        assert client.fetch_chart(reference(chart), chart.digest).version == "1.0.0"


def test_cli_password_stdin(auth_registry: Registry, helm_env: HelmEnv, out_dir: Path,
                            monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    url = f"{chart.url}/demo"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-Passw0rd\n"))
    assert main(["pull", url, "--version", "1.0.0", "-d", str(out_dir), "--plain-http",
                 "--username", "chartguard", "--password-stdin"]) == 0
    assert (out_dir / "demo-1.0.0.tgz").read_bytes() == chart.package.read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO("nope\n"))
    assert main(["pull", url, "--version", "1.0.0", "-d", str(out_dir), "--plain-http",
                 "--username", "chartguard", "--password-stdin"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "AuthenticationError" not in err
    assert "refused user 'chartguard'" in err


def test_tls_with_the_custom_ca_despite_requests_ca_bundle(
        tls_registry: Registry, helm_env: HelmEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE override a Session's verify: ours must still win
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert tls_registry.tls is not None
    chart = helm_env.make_chart(tls_registry, "demo", "1.0.0")
    tls = tls_from_secret({"ca.crt": tls_registry.tls.ca_pem()})
    with RegistryClient(tls=tls) as client:
        resolved = client.resolve(reference(chart), "*")
        assert client.fetch_chart(reference(chart), resolved.digest).layer == \
            chart.package.read_bytes()


def test_tls_without_the_ca_fails_clearly_and_fast(
        tls_registry: Registry, helm_env: HelmEnv) -> None:
    chart = helm_env.make_chart(tls_registry, "demo", "1.0.0")
    started = time.monotonic()
    with RegistryClient() as client, pytest.raises(
            TLSVerificationError, match=r"CERTIFICATE_VERIFY_FAILED.*give the CA"):
        client.resolve(reference(chart), "1.0.0")
    assert time.monotonic() - started < FAST


def test_cli_ca_file(tls_registry: Registry, helm_env: HelmEnv, out_dir: Path) -> None:
    assert tls_registry.tls is not None
    chart = helm_env.make_chart(tls_registry, "demo", "1.0.0")
    assert main(["pull", f"{chart.url}/demo", "--version", "1.0.0", "-d", str(out_dir),
                 "--ca-file", str(tls_registry.tls.ca_cert)]) == 0
    assert (out_dir / "demo-1.0.0.tgz").read_bytes() == chart.package.read_bytes()


def test_plain_http_only_when_asked(registry: Registry, tls_registry: Registry,
                                    helm_env: HelmEnv) -> None:
    plain = helm_env.make_chart(registry, "demo", "1.0.0")
    # not asked: HTTPS is spoken to the plain registry, and that fails
    with RegistryClient() as client, pytest.raises(TLSVerificationError, match="plain HTTP"):
        client.resolve(reference(plain), "1.0.0")
    # asked for plain HTTP against a TLS registry: said plainly
    assert tls_registry.tls is not None
    secure = helm_env.make_chart(tls_registry, "demo", "1.0.0")
    with RegistryClient(plain_http=True) as client, pytest.raises(
            RegistryResponseError, match="serves HTTPS, not plain HTTP"):
        client.resolve(reference(secure), "1.0.0")
    # TLS material is never used for plain HTTP
    with RegistryClient(plain_http=True, tls=TLSConfig(ca_pem=tls_registry.tls.ca_pem())
                        ) as client:
        assert client.resolve(reference(plain), "1.0.0").digest == plain.digest


def test_tls_material_files_are_private_and_removed_on_close(tls_registry: Registry) -> None:
    assert tls_registry.tls is not None
    client = RegistryClient(tls=TLSConfig(ca_pem=tls_registry.tls.ca_pem()))
    tmp = client._tmp  # the one place the CA is written to
    assert tmp is not None
    assert (tmp.stat().st_mode & 0o777) == 0o700
    assert ((tmp / "ca.crt").stat().st_mode & 0o777) == 0o600
    client.close()
    assert not tmp.exists()


def test_bearer_token_flow_from_www_authenticate(
        token_registry: tuple[Registry, TokenService], helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    registry, service = token_registry
    chart = helm_env.make_chart(registry, "demo", "1.0.0")  # helm logs in through tokens
    service.requests.clear()
    client = make_client(registry)
    resolved = client.resolve(reference(chart), "^1")
    assert client.fetch_chart(reference(chart), resolved.digest).layer == \
        chart.package.read_bytes()
    # one token for the repository, asked with our Basic credentials, reused afterwards
    assert service.requests == [{"scope": "repository:charts/demo:pull",
                                 "service": "chartguard-token-registry", "auth": "Basic"}]


def test_bearer_token_refused_is_an_authentication_error(
        token_registry: tuple[Registry, TokenService], helm_env: HelmEnv) -> None:
    registry, _ = token_registry
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    for credentials, who in ((RegistryCredentials("chartguard", "bad"), "user 'chartguard'"),
                             (None, "anonymous access")):
        started = time.monotonic()
        with RegistryClient(plain_http=True, credentials=credentials) as client, \
                pytest.raises(AuthenticationError, match=f"token service .* refused {who}"):
            client.resolve(reference(chart), "1.0.0")
        assert time.monotonic() - started < FAST


def test_client_certificate_from_a_flux_tls_secret(
        mtls_registry: tuple[Registry, ClientCert], helm_env: HelmEnv, tmp_path: Path) -> None:
    registry, client_cert = mtls_registry
    assert registry.tls is not None
    package = helm_env.package(helm_env.create("demo", "1.0.0"))
    helm_env.run("push", str(package), registry.oci("charts"), "--ca-file",
                 str(registry.tls.ca_cert), "--cert-file", str(client_cert.cert),
                 "--key-file", str(client_cert.key))
    ref = ChartReference.parse(registry.oci("charts"), "demo")
    secret = {"ca.crt": registry.tls.ca_pem(), "tls.crt": client_cert.cert.read_bytes(),
              "tls.key": client_cert.key.read_bytes()}
    with RegistryClient(tls=tls_from_secret(secret)) as client:
        resolved = client.resolve(ref, "1.0.0")
        assert client.fetch_chart(ref, resolved.digest).layer == package.read_bytes()
    # the CA alone is not enough for this registry: a clear TLS error, quickly
    started = time.monotonic()
    with RegistryClient(tls=TLSConfig(ca_pem=registry.tls.ca_pem())) as client, \
            pytest.raises(TLSVerificationError, match="wants a client certificate"):
        client.resolve(ref, "1.0.0")
    assert time.monotonic() - started < FAST

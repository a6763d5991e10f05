"""What a hostile or odd registry cannot make the client do: leak credentials to another
host or over plain HTTP, loop forever, accept a malformed tag list; and one client shared
by concurrent reconciles."""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from custom_registries import ClientCert, TokenService
from oci_helpers import PaginatingProxy, RawRegistry, RedirectingProxy, reference

from chartguard.oci import (
    AuthenticationError,
    ChartReference,
    Limits,
    OCIError,
    RegistryClient,
    RegistryCredentials,
    RegistryResponseError,
    SizeLimitExceededError,
    TLSConfig,
    UnsupportedMediaTypeError,
    sha256_digest,
)
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry, make_tls

FAST = 3.0  # seconds
PASSWORD = "s3cret-Passw0rd"  # the auth_registry fixture's


@pytest.mark.parametrize("status", [307, 302])
def test_blob_redirected_to_another_host_is_fetched_without_our_authorization(
        status: int, auth_registry: Registry, helm_env: HelmEnv, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, make_client: Callable[..., RegistryClient],
        redirecting_proxy: Callable[..., RedirectingProxy]) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    proxy = redirecting_proxy(auth_registry, status)
    # requests would add ~/.netrc credentials for the storage host on a redirect: not ours
    netrc = tmp_path / "netrc"
    netrc.write_text("machine localhost login netrc-user password netrc-Passw0rd\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    artifact = make_client(auth_registry).fetch_chart(ref, chart.digest)
    assert artifact.layer == chart.package.read_bytes()
    assert len(proxy.storage_requests) == 2  # config and chart layer, both redirected
    assert [r.get("authorization") for r in proxy.storage_requests] == [None, None]


def test_a_challenge_from_the_redirect_target_never_gets_our_credentials(
        auth_registry: Registry, helm_env: HelmEnv, make_client: Callable[..., RegistryClient],
        redirecting_proxy: Callable[..., RedirectingProxy]) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    proxy = redirecting_proxy(auth_registry)
    proxy.storage_challenge = True  # storage asks for a token from a realm of its choosing
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    with pytest.raises(AuthenticationError, match="denied access to blob"):
        make_client(auth_registry).fetch_chart(ref, chart.digest)
    assert proxy.storage_requests  # it was asked, and only ever without credentials
    assert all("authorization" not in r for r in proxy.storage_requests)


def test_netrc_is_never_read_for_the_registry_itself(
        auth_registry: Registry, helm_env: HelmEnv, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login chartguard password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with RegistryClient(plain_http=True) as client, pytest.raises(
            AuthenticationError, match="requires credentials"):
        client.resolve(reference(chart), "1.0.0")


def test_token_realm_over_plain_http_never_gets_the_password_of_a_tls_registry(
        tls_token_registry: tuple[Registry, TokenService]) -> None:
    registry, service = tls_token_registry
    assert registry.tls is not None
    ref = ChartReference.parse(registry.oci("charts"), "demo")
    with RegistryClient(tls=TLSConfig(ca_pem=registry.tls.ca_pem()),
                        credentials=RegistryCredentials("chartguard", "t0ken-Passw0rd")
                        ) as client, pytest.raises(
            AuthenticationError, match=r"token realm .*plain HTTP") as caught:
        client.resolve(ref, "1.0.0")
    assert service.requests == []  # nothing was sent there, least of all the password
    assert "t0ken-Passw0rd" not in str(caught.value)


def test_anonymous_bearer_token_flow_for_public_charts(
        token_registry: tuple[Registry, TokenService], helm_env: HelmEnv) -> None:
    registry, service = token_registry
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    service.anonymous = True
    service.requests.clear()
    with RegistryClient(plain_http=True) as client:
        resolved = client.resolve(reference(chart), "^1")
        assert client.fetch_chart(reference(chart), resolved.digest).layer == \
            chart.package.read_bytes()
    assert service.requests == [{"scope": "repository:charts/demo:pull",
                                 "service": "chartguard-token-registry", "auth": ""}]


def test_password_never_in_errors_or_logs(
        auth_registry: Registry, token_registry: tuple[Registry, TokenService],
        helm_env: HelmEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    token, _ = token_registry
    wrong = "wr0ng-Passw0rd-never-shown"
    failures: list[OCIError] = []
    for registry in (auth_registry, token):
        ref = ChartReference.parse(registry.oci("charts"), "demo")
        with RegistryClient(plain_http=True,
                            credentials=RegistryCredentials("chartguard", wrong)) as client:
            with pytest.raises(AuthenticationError) as caught:
                client.resolve(ref, "*")
            failures.append(caught.value)
            assert wrong not in repr(vars(client))
    with RegistryClient(plain_http=True, credentials=RegistryCredentials("chartguard",
                                                                         PASSWORD)) as client:
        client.fetch_chart(reference(chart), chart.digest)
    for error in failures:
        chained = [error, error.__cause__, error.__context__]
        assert all(wrong not in f"{e!s} {e!r}" for e in chained if e is not None)
    assert wrong not in caplog.text
    assert PASSWORD not in caplog.text


def test_tag_list_link_to_the_same_host_over_another_scheme_is_refused(
        registry: Registry, helm_env: HelmEnv, make_client: Callable[..., RegistryClient],
        paginating_proxy: Callable[[int], PaginatingProxy]) -> None:
    for version in ("0.1.0", "0.2.0"):
        helm_env.make_chart(registry, "demo", version)
    proxy = paginating_proxy(1)
    proxy.link_base = f"https://{proxy.host}"
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    with pytest.raises(RegistryResponseError, match="https://"):
        make_client(registry).resolve(ref, "*")
    assert len(proxy.tag_requests) == 1


def test_tag_list_link_loop_fails_fast(
        registry: Registry, helm_env: HelmEnv, make_client: Callable[..., RegistryClient],
        paginating_proxy: Callable[[int], PaginatingProxy]) -> None:
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        helm_env.make_chart(registry, "demo", version)
    proxy = paginating_proxy(1)
    proxy.link_loop = True
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    started = time.monotonic()
    with pytest.raises(RegistryResponseError, match=r"pagination .*loops"):
        make_client(registry).resolve(ref, "*")
    assert time.monotonic() - started < FAST
    assert len(proxy.tag_requests) <= 3


@pytest.mark.parametrize("body", [
    b'{"tags": "1.0.0"}', b'["1.0.0"]', b'{"tags": [1, 2]}', b"not json", b'{"tags": {}}',
])
def test_tag_list_that_is_not_a_list_of_strings_is_refused(
        body: bytes, registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient],
        paginating_proxy: Callable[[int], PaginatingProxy]) -> None:
    helm_env.make_chart(registry, "demo", "1.0.0")
    proxy = paginating_proxy(100)
    proxy.tags_body = body
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    with pytest.raises(RegistryResponseError, match="not a JSON tag list"):
        make_client(registry).resolve(ref, "*")


def test_manifest_over_the_cap_is_refused(
        registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    with pytest.raises(SizeLimitExceededError, match=f"manifest .*@{chart.digest} is .* over "
                                                     "the limit of 100 bytes"):
        make_client(registry, limits=Limits(max_manifest_bytes=100)).fetch_chart(
            reference(chart), chart.digest)


def test_one_client_serves_concurrent_reconciles(
        token_registry: tuple[Registry, TokenService], helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    registry, _ = token_registry  # bearer tokens: shared auth state under concurrency
    charts = [helm_env.make_chart(registry, "demo", v) for v in ("1.0.0", "1.1.0", "2.0.0")]
    client = make_client(registry)

    def reconcile(n: int) -> tuple[str, bytes]:
        chart = charts[n % len(charts)]
        resolved = client.resolve(reference(chart), chart.version)
        return resolved.digest, client.fetch_chart(reference(chart), resolved.digest).layer

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(reconcile, range(48)))
    for n, (digest, layer) in enumerate(results):
        chart = charts[n % len(charts)]
        assert (digest, layer) == (chart.digest, chart.package.read_bytes())
    assert len(client._transports) == 1  # one connection pool per registry host


def test_redirect_to_storage_with_the_registrys_private_ca_works_over_tls(
        registry: Registry, helm_env: HelmEnv, tmp_path: Path,
        make_client: Callable[..., RegistryClient],
        redirecting_proxy: Callable[..., RedirectingProxy]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    tls = make_tls(tmp_path / "front-tls")  # front (the registry) and storage share this CA
    proxy = redirecting_proxy(registry, 307, tls)
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    with RegistryClient(tls=TLSConfig(ca_pem=tls.ca_pem())) as client:
        assert client.fetch_chart(ref, chart.digest).layer == chart.package.read_bytes()
    assert len(proxy.storage_requests) == 2


def test_redirect_targets_trust_the_system_bundle_plus_the_registry_ca(
        tls_registry: Registry) -> None:
    assert tls_registry.tls is not None
    ca = tls_registry.tls.ca_pem()
    with RegistryClient(tls=TLSConfig(ca_pem=ca)) as client:
        own = Path(str(client._verify)).read_bytes()
        redirect = Path(str(client._foreign_verify)).read_bytes()
    assert own == ca  # the registry itself: only the CA its Secret names
    assert redirect.endswith(ca)
    assert redirect.count(b"BEGIN CERTIFICATE") > 10  # and the system's public CAs


def test_manifest_listing_the_chart_layer_twice_is_refused(
        registry: Registry, helm_env: HelmEnv, raw_registry: RawRegistry,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    manifest = raw_registry.manifest("charts/demo", chart.digest)
    manifest["layers"] = manifest["layers"] * 2
    twice = raw_registry.push_manifest("charts/demo", "1.0.1", manifest)
    with pytest.raises(UnsupportedMediaTypeError, match="has 2 chart layers"):
        make_client(registry).fetch_chart(reference(chart), twice)


def test_fetched_chart_is_exactly_the_verified_bytes(
        registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    # what the reconciler stores and helm installs is what the digest pins, nothing else
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    artifact = make_client(registry).fetch_chart(reference(chart), chart.digest)
    manifest = json.loads(artifact.manifest)
    assert sha256_digest(artifact.manifest) == artifact.digest == chart.digest
    assert manifest["layers"][0]["digest"] == sha256_digest(artifact.layer)
    assert artifact.layer_digest == sha256_digest(chart.package.read_bytes())
    assert manifest["config"]["digest"] == sha256_digest(artifact.config)


def test_client_key_file_is_private_and_removed_even_without_close(
        mtls_registry: tuple[Registry, ClientCert]) -> None:
    registry, cert = mtls_registry
    assert registry.tls is not None
    client = RegistryClient(tls=TLSConfig(ca_pem=registry.tls.ca_pem(),
                                          cert_pem=cert.cert.read_bytes(),
                                          key_pem=cert.key.read_bytes()))
    tmp = client._tmp
    assert tmp is not None
    assert ((tmp / "tls.key").stat().st_mode & 0o777) == 0o600
    assert (tmp / "tls.key").read_bytes() == cert.key.read_bytes()
    del client  # a reconcile that forgot close(): the key must not outlive the client
    gc.collect()
    assert not tmp.exists()

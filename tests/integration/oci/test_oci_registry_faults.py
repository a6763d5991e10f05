"""The registry client against the fault proxy in front of a real registry, over real sockets:
each fault ends in the error that names it, within the deadline, and a transient one heals
inside the operation (the operator tests in tests/integration/chaos do the same end to end)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chartguard.oci import (
    AuthenticationError,
    ChartReference,
    ConnectionBrokenError,
    DeadlineExceededError,
    DigestMismatchError,
    RateLimitedError,
    RegistryClient,
    RegistryCredentials,
    RegistryResponseError,
    RegistryServerError,
    sha256_digest,
)
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.faultproxy import FaultProxy
from chartguard_testing.registry import Registry


@pytest.fixture
def chart(registry: Registry, helm_env: HelmEnv) -> PushedChart:
    return helm_env.make_chart(registry, "demo", "1.0.0")


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry)
    yield proxy
    proxy.close()


def _client(proxy: FaultProxy, **kw: float | int | RegistryCredentials) -> RegistryClient:
    return RegistryClient(plain_http=True, **kw)  # type: ignore[arg-type]


def _ref(proxy: FaultProxy) -> ChartReference:
    return ChartReference.parse(proxy.oci(), "demo")


def _layer(chart: PushedChart) -> str:
    return sha256_digest(chart.package.read_bytes())


def test_a_short_5xx_burst_heals_within_the_operation_a_long_one_is_named(
        proxy: FaultProxy, chart: PushedChart) -> None:
    with _client(proxy) as client:
        proxy.burst(503, path="/manifests/1.0.0", times=2)
        assert client.resolve(_ref(proxy), "1.0.0").digest == chart.digest
        assert len(proxy.seen("/manifests/1.0.0", "burst")) == 2
        proxy.burst(503, path="/manifests/1.0.0")
        with pytest.raises(RegistryServerError, match=r"\(503\) after retries"):
            client.resolve(_ref(proxy), "1.0.0")
        assert len(proxy.seen("/manifests/1.0.0", "burst")) == 2 + 3  # bounded


def test_retry_after_is_waited_when_it_fits_and_refused_at_once_when_not(
        proxy: FaultProxy, chart: PushedChart) -> None:
    with _client(proxy, deadline=20) as client:
        proxy.rate_limit(1, path="/manifests/1.0.0", times=1)
        assert client.resolve(_ref(proxy), "1.0.0").digest == chart.digest
        first, second = proxy.seen("/manifests/1.0.0")
        assert second.at - first.at >= 1.0
        proxy.rate_limit(120, path="/manifests/1.0.0")
        started = time.monotonic()
        with pytest.raises(RateLimitedError, match=r"asked to wait 120 s \(Retry-After\)"):
            client.resolve(_ref(proxy), "1.0.0")
        assert time.monotonic() - started < 1.0
        # the host is held: the next operation is refused at once, nothing sent
        sent = len(proxy.requests)
        with pytest.raises(RateLimitedError, match=r"nothing is sent to it before"):
            client.resolve(_ref(proxy), "1.0.0")
        assert len(proxy.requests) == sent


def test_a_connection_reset_mid_blob_is_retried_then_named(
        proxy: FaultProxy, chart: PushedChart) -> None:
    layer = _layer(chart)
    with _client(proxy) as client:
        proxy.reset_body(path=layer, times=1)
        assert client.fetch_chart(_ref(proxy), chart.digest).layer == (
            chart.package.read_bytes())
        proxy.reset_body(path=layer)
        with pytest.raises(ConnectionBrokenError, match="connection to the registry broke"):
            client.fetch_chart(_ref(proxy), chart.digest)
    assert len(proxy.seen(layer, "reset")) == 1 + 3


def test_a_trickling_blob_ends_at_the_deadline(proxy: FaultProxy, chart: PushedChart) -> None:
    proxy.trickle(path=_layer(chart), interval=0.5)
    started = time.monotonic()
    with _client(proxy, timeout=2, deadline=3) as client, pytest.raises(
            DeadlineExceededError, match=r"did not finish within 3 s"):
        client.fetch_chart(_ref(proxy), chart.digest)
    assert time.monotonic() - started < 3 + 1


def test_a_trickle_that_stops_mid_blob_is_downloaded_again(
        proxy: FaultProxy, chart: PushedChart) -> None:
    proxy.trickle(path=_layer(chart), interval=0.1)
    timer = threading.Timer(0.5, proxy.clear)  # the fault ends while the blob trickles
    timer.start()
    try:
        with _client(proxy, deadline=10) as client:
            assert client.fetch_chart(_ref(proxy), chart.digest).layer == (
                chart.package.read_bytes())
    finally:
        timer.join()
    assert len(proxy.seen(_layer(chart))) == 2  # the trickled one, then the whole one


def test_bytes_swapped_in_flight_are_refused(proxy: FaultProxy, chart: PushedChart) -> None:
    proxy.swap_bytes(path=_layer(chart))
    with _client(proxy) as client, pytest.raises(DigestMismatchError,
                                                 match=r"\(digest mismatch\)"):
        client.fetch_chart(_ref(proxy), chart.digest)


@pytest.mark.parametrize("via", [None, "/v2/charts/demo/manifests/elsewhere"])
def test_a_redirect_loop_is_too_many_redirects(proxy: FaultProxy, chart: PushedChart,
                                               via: str | None) -> None:
    proxy.redirect_loop(path="/manifests/1.0.0", via=via)
    with _client(proxy) as client, pytest.raises(RegistryResponseError,
                                                 match="too many redirects"):
        client.resolve(_ref(proxy), "1.0.0")
    if via is not None:
        assert len(proxy.seen(via, "redirect")) == 3


def test_credentials_accepted_then_refused(auth_registry: Registry, helm_env: HelmEnv,
                                           tmp_path: Path) -> None:
    chart = helm_env.make_chart(auth_registry, "demo", "1.0.0")
    proxy = FaultProxy(auth_registry)
    try:
        assert auth_registry.username is not None
        assert auth_registry.password is not None
        credentials = RegistryCredentials(auth_registry.username, auth_registry.password)
        with RegistryClient(plain_http=True, credentials=credentials) as client:
            assert client.resolve(_ref(proxy), "1.0.0").digest == chart.digest
            proxy.refuse_auth()
            with pytest.raises(AuthenticationError, match="refused user 'chartguard'"):
                client.resolve(_ref(proxy), "1.0.0")
            proxy.clear()
            assert client.resolve(_ref(proxy), "1.0.0").digest == chart.digest
    finally:
        proxy.close()

"""Retries against a faulty registry: bounded, jittered, Retry-After honoured when it fits and
reported at once when it does not, broken downloads tried again, loops and altered bytes named.

Time is a FakeClock (the client's ``clock`` and ``sleep``), the wall clock a fixed number, the
jitter a seeded ``random.Random``: nothing here waits for real.
"""

from __future__ import annotations

import email.utils
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from chartguard.oci import (
    ChartReference,
    ConnectionBrokenError,
    DigestMismatchError,
    RateLimitedError,
    RegistryClient,
    RegistryResponseError,
    RegistryServerError,
)
from chartguard.oci._retry import CAP, MAX_RETRY_AFTER, Backoff, retry_after
from chartguard.oci.transport import ReadError, Request
from chartguard_testing.memory_registry import (
    FakeClock,
    MemoryRegistry,
    MockResponse,
    MockTransport,
)

REPO = "charts/demo"
WALL = 1_800_000_000.0  # the wall clock of these tests (2027-01-15)


def _ref(registry: MemoryRegistry) -> ChartReference:
    return ChartReference.parse(f"oci://{registry.host}/charts", "demo")


def _client(registry: MemoryRegistry, answers: list[MockResponse], *, seed: int = 1,
            **kw: Any) -> tuple[RegistryClient, MockTransport, FakeClock]:
    """A client whose first requests get ``answers``, then the registry's own."""
    clock = FakeClock()

    def handler(request: Request) -> MockResponse:
        return answers.pop(0) if answers else registry.handle(request)

    transport = MockTransport(handler)
    client = RegistryClient(transport=transport, clock=clock, sleep=clock.sleep,
                            wall_clock=lambda: WALL + clock.now, rng=random.Random(seed), **kw)
    return client, transport, clock


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling() -> None:
    backoff = Backoff(random.Random(7))
    draws = {attempt: [backoff.delay(attempt) for _ in range(200)] for attempt in range(8)}
    for attempt, values in draws.items():
        ceiling = min(CAP, 0.25 * 2 ** attempt)
        assert all(0 <= v <= ceiling for v in values)
        # spread over the whole range, not a fixed step: the lowest and highest tenths are hit
        assert min(values) < ceiling / 10
        assert max(values) > ceiling * 0.9
    assert backoff.ceiling(60) == CAP


def test_two_clients_failing_together_do_not_retry_in_step() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    slept = []
    for seed in (1, 2):
        client, _, clock = _client(registry, [MockResponse(503), MockResponse(503)], seed=seed)
        client.resolve(_ref(registry), "1.0.0")
        slept.append(clock.slept)
    assert slept[0] != slept[1]


def test_a_5xx_burst_longer_than_the_retries_is_reported_after_them() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    client, transport, clock = _client(registry, [MockResponse(503) for _ in range(10)],
                                       retries=3)
    with pytest.raises(RegistryServerError, match=r"\(503\) after retries") as caught:
        client.resolve(_ref(registry), "1.0.0")
    assert caught.value.retryable
    assert len(transport.requests) == 4  # bounded: one try and three retries
    assert len(clock.slept) == 3


# -- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_waited_exactly(status: int) -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    client, transport, clock = _client(
        registry, [MockResponse(status, headers={"Retry-After": "7"})])
    assert client.resolve(_ref(registry), "1.0.0").digest == digest
    assert clock.slept == [7.0]
    assert len(transport.requests) == 2


def test_retry_after_as_an_http_date_is_waited_until_then() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    clock_start = FakeClock().now
    when = email.utils.formatdate(WALL + clock_start + 12, usegmt=True)
    client, _, clock = _client(registry, [MockResponse(429, headers={"Retry-After": when})])
    assert client.resolve(_ref(registry), "1.0.0").digest == digest
    assert clock.slept == [pytest.approx(12.0)]


def test_retry_after_longer_than_the_cap_fails_at_once_saying_how_long() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    client, transport, clock = _client(
        registry, [MockResponse(429, headers={"Retry-After": "3600"})], deadline=7200)
    with pytest.raises(RateLimitedError) as caught:
        client.resolve(_ref(registry), "1.0.0")
    message = str(caught.value)
    assert "rate limited chartguard (429)" in message
    assert "asked to wait 3600 s (Retry-After)" in message
    assert f"at most {MAX_RETRY_AFTER:g} s" in message
    assert caught.value.retry_after == 3600
    assert caught.value.retryable
    assert clock.slept == []  # nothing waited: the answer is at once
    assert len(transport.requests) == 1


def test_retry_after_that_does_not_fit_the_deadline_fails_at_once() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    client, transport, clock = _client(
        registry, [MockResponse(503, headers={"Retry-After": "20"})], deadline=10)
    with pytest.raises(RateLimitedError, match=r"unavailable \(503\).*asked to wait 20 s.*"
                                               r"of its 10 s deadline"):
        client.resolve(_ref(registry), "1.0.0")
    assert clock.slept == []
    assert len(transport.requests) == 1


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "Thu, 99 Foo 2027 00:00:00 GMT"])
def test_a_malformed_retry_after_falls_back_to_the_backoff(value: str) -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    client, _, clock = _client(registry, [MockResponse(429, headers={"Retry-After": value})])
    assert client.resolve(_ref(registry), "1.0.0").digest == digest
    assert len(clock.slept) == 1
    assert clock.slept[0] <= 0.25


def test_retry_after_parsing() -> None:
    assert retry_after({"Retry-After": "0"}, WALL) == 0
    assert retry_after({"Retry-After": " 42 "}, WALL) == 42
    assert retry_after({"Retry-After": "9" * 40}, WALL) == float("inf")
    assert retry_after({"Retry-After": email.utils.formatdate(WALL - 60, usegmt=True)},
                       WALL) == 0  # a date in the past: no wait
    assert retry_after({}, WALL) is None


def test_a_429_still_there_after_the_retries_says_rate_limited() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    client, _, clock = _client(
        registry, [MockResponse(429, headers={"Retry-After": "1"}) for _ in range(3)],
        retries=2)
    with pytest.raises(RegistryServerError, match=r"rate limited chartguard .*\(429\) after "
                                                  r"retries \(it asked to wait 1\.0 s\)"):
        client.resolve(_ref(registry), "1.0.0")
    assert clock.slept == [1.0, 1.0]


# -- downloads whose connection breaks ----------------------------------------------------------


class _Broken(MockResponse):
    """Headers and the first bytes of the body, then the connection breaks."""

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        yield b"\x1f\x8b"
        raise ReadError("ProtocolError")


def _layer(registry: MemoryRegistry, digest: str) -> str:
    layer: str = json.loads(registry.manifests[(REPO, digest)][0])["layers"][0]["digest"]
    return layer


def test_a_blob_whose_connection_breaks_once_is_downloaded_again() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    layer = _layer(registry, digest)
    path = f"/v2/{REPO}/blobs/{layer}"
    broke: list[bool] = []

    def once() -> MockResponse:
        if broke:
            return MockResponse(200, registry.blobs[layer])
        broke.append(True)
        return _Broken(200)

    registry.faults[("GET", path)] = once
    client, transport, clock = _client(registry, [])
    assert client.fetch_chart(_ref(registry), digest).digest == digest
    assert transport.paths("GET").count(path) == 2
    assert len(clock.slept) == 1


def test_a_blob_whose_connection_always_breaks_fails_naming_the_broken_connection() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    path = f"/v2/{REPO}/blobs/{_layer(registry, digest)}"
    registry.faults[("GET", path)] = lambda: _Broken(200)
    client, transport, _ = _client(registry, [], retries=2)
    with pytest.raises(ConnectionBrokenError, match="the connection to the registry broke"):
        client.fetch_chart(_ref(registry), digest)
    assert transport.paths("GET").count(path) == 3  # bounded by the retries


# -- what is not retried --------------------------------------------------------------------


def test_a_redirect_loop_is_too_many_redirects() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    path = f"/v2/{REPO}/manifests/1.0.0"
    registry.faults[("HEAD", path)] = lambda: MockResponse(302, headers={"Location": path})
    client, transport, _ = _client(registry, [])
    with pytest.raises(RegistryResponseError, match=r"too many redirects: .* more than 5 "
                                                    r"times \(a redirect loop\)"):
        client.resolve(_ref(registry), "1.0.0")
    assert len(transport.requests) == 6


def test_bytes_altered_on_the_way_are_a_digest_mismatch_and_not_retried() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    layer = _layer(registry, digest)
    path = f"/v2/{REPO}/blobs/{layer}"
    good = registry.blobs[layer]
    altered = good[:10] + bytes([good[10] ^ 0xFF]) + good[11:]
    registry.faults[("GET", path)] = lambda: MockResponse(200, altered)
    client, transport, _ = _client(registry, [])
    with pytest.raises(DigestMismatchError, match=r"\(digest mismatch\): .*altered or corrupted"):
        client.fetch_chart(_ref(registry), digest)
    assert transport.paths("GET").count(path) == 1

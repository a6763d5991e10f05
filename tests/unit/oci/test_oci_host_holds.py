"""A registry host that asked (Retry-After) to wait gets no request before the wait is over,
from any client sharing the holds: the next operations fail at once with RateLimitedError
without a request, or sleep the rest of a short wait; the hold is capped and ends by itself.

Time is a FakeClock shared by the clients and the holds; nothing here waits for real.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from chartguard.oci import (
    ChartReference,
    HostHolds,
    RateLimitedError,
    RegistryClient,
    RegistryCredentials,
)
from chartguard.oci.transport import Request
from chartguard_testing.memory_registry import (
    FakeClock,
    MemoryRegistry,
    MockResponse,
    MockTransport,
)

WALL = 1_800_000_000.0  # 2027-01-15T08:00:00Z, the wall clock at FakeClock's 0


def _setup() -> tuple[MemoryRegistry, FakeClock, HostHolds]:
    registry = MemoryRegistry()
    registry.push_chart("charts/app", "1.0.0")
    registry.push_chart("other/web", "1.0.0")
    clock = FakeClock()
    return registry, clock, HostHolds(clock=clock, wall_clock=lambda: WALL + clock.now)


def _client(registry: MemoryRegistry, clock: FakeClock, holds: HostHolds,
            answers: list[MockResponse] | None = None,
            **kw: Any) -> tuple[RegistryClient, MockTransport]:
    pending = list(answers or [])

    def handler(request: Request) -> MockResponse:
        return pending.pop(0) if pending else registry.handle(request)

    transport = MockTransport(handler)
    kw.setdefault("sleep", clock.sleep)
    return RegistryClient(transport=transport, clock=clock,
                          wall_clock=lambda: WALL + clock.now, rng=random.Random(1),
                          holds=holds, **kw), transport


def _ref(registry: MemoryRegistry, repository: str = "charts", name: str = "app",
         ) -> ChartReference:
    return ChartReference.parse(f"oci://{registry.host}/{repository}", name)


def _limited(seconds: int) -> MockResponse:
    return MockResponse(429, headers={"Retry-After": str(seconds)})


def test_after_a_long_retry_after_no_chart_of_that_host_is_asked_before_it_is_over() -> None:
    registry, clock, holds = _setup()
    app, app_wire = _client(registry, clock, holds, [_limited(120)], deadline=10)
    # another HelmRepository of the same host (other path, other credentials): another client
    web, web_wire = _client(registry, clock, holds, deadline=10,
                            credentials=RegistryCredentials("u", "p"))
    with pytest.raises(RateLimitedError, match=r"asked to wait 120 s"):
        app.resolve(_ref(registry), "1.0.0")
    assert len(app_wire.requests) == 1
    clock.now += 100  # 20 s of the wait left: more than the 10 s deadline
    for client, ref in ((app, _ref(registry)), (web, _ref(registry, "other", "web"))):
        with pytest.raises(RateLimitedError) as caught:
            client.resolve(ref, "1.0.0")
        message = str(caught.value)
        assert (f"registry {registry.host} rate limited chartguard (429) and asked to wait "
                "120 s (Retry-After)") in message
        assert "nothing is sent to it before 2027-01-15T08:18:40Z" in message  # 1000 + 120 s
        assert "charts/app" not in message  # the path asked belongs to whoever asked it
        assert caught.value.retry_after == pytest.approx(20)
        assert caught.value.retryable
    assert len(app_wire.requests) == 1  # not one more request reached the registry
    assert web_wire.requests == []
    assert clock.slept == []
    clock.now += 20  # over: both ask again, and are answered
    assert app.resolve(_ref(registry), "1.0.0").version == "1.0.0"
    assert web.resolve(_ref(registry, "other", "web"), "1.0.0").version == "1.0.0"


def test_the_rest_of_a_wait_that_fits_the_deadline_is_slept_before_the_request() -> None:
    registry, clock, holds = _setup()
    app, _ = _client(registry, clock, holds, [_limited(20)], deadline=10)
    with pytest.raises(RateLimitedError):
        app.resolve(_ref(registry), "1.0.0")
    clock.now += 16
    web, wire = _client(registry, clock, holds, deadline=10)
    assert web.resolve(_ref(registry, "other", "web"), "1.0.0").version == "1.0.0"
    assert clock.slept == [pytest.approx(4)]  # the 4 s left, then sent
    assert len(wire.requests) == 1


def test_a_retry_after_that_was_waited_holds_the_other_clients_for_as_long() -> None:
    registry, clock, holds = _setup()
    web, web_wire = _client(registry, clock, holds, deadline=30)
    during: list[float] = []

    def sleep(seconds: float) -> None:  # 3 s into app's 7 s wait, web asks for its chart
        end = clock.now + seconds
        clock.sleep(3)
        assert web.resolve(_ref(registry, "other", "web"), "1.0.0").version == "1.0.0"
        during.append(clock.now)
        clock.sleep(max(0.0, end - clock.now))  # one clock: web's wait passed for app too

    app, app_wire = _client(registry, clock, holds, [_limited(7)], deadline=30, sleep=sleep)
    started = clock.now
    assert app.resolve(_ref(registry), "1.0.0").version == "1.0.0"
    # web slept the 4 s left of the wait before its request: nothing reached the registry
    # within the 7 s but app's first request
    assert clock.slept == [3, pytest.approx(4), pytest.approx(0)]
    assert during == [pytest.approx(started + 7)]
    assert len(web_wire.requests) == 1
    assert len(app_wire.requests) == 2
    assert holds.get(registry.host) is None  # over once the wait is


def test_other_hosts_are_not_held() -> None:
    registry, clock, holds = _setup()
    app, _ = _client(registry, clock, holds, [_limited(120)], deadline=10)
    with pytest.raises(RateLimitedError):
        app.resolve(_ref(registry), "1.0.0")
    elsewhere = MemoryRegistry(host="elsewhere.test")
    elsewhere.push_chart("charts/app", "1.0.0")
    client, wire = _client(elsewhere, clock, holds, deadline=10)
    assert client.resolve(_ref(elsewhere), "1.0.0").version == "1.0.0"
    assert len(wire.requests) == 1


def test_a_day_long_retry_after_holds_the_host_only_for_max_hold() -> None:
    registry, clock, _ = _setup()
    holds = HostHolds(max_hold=300, clock=clock, wall_clock=lambda: WALL + clock.now)
    app, wire = _client(registry, clock, holds, [_limited(86400)], deadline=10)
    with pytest.raises(RateLimitedError) as caught:
        app.resolve(_ref(registry), "1.0.0")
    assert caught.value.retry_after == 86400  # what the registry asked, for the caller
    clock.now += 280
    with pytest.raises(RateLimitedError, match="asked to wait 86400 s") as held:
        app.resolve(_ref(registry), "1.0.0")
    assert held.value.retry_after == pytest.approx(20)  # of 300, not of 86400
    assert len(wire.requests) == 1
    clock.now += 20
    assert app.resolve(_ref(registry), "1.0.0").version == "1.0.0"
    assert len(wire.requests) == 2
    assert clock.slept == []


def test_a_shorter_wait_never_shortens_a_hold_and_zero_holds_nothing() -> None:
    clock = FakeClock()
    holds = HostHolds(clock=clock, wall_clock=lambda: WALL + clock.now)
    holds.hold("r.test", 0, status=429)
    assert holds.get("r.test") is None
    holds.hold("r.test", 60, status=429)
    holds.hold("r.test", 5, status=503)
    hold = holds.get("r.test")
    assert hold is not None
    assert (hold.left, hold.asked, hold.status) == (60, 60, 429)
    holds.hold("r.test", 90, status=503)
    hold = holds.get("r.test")
    assert hold is not None
    assert (hold.left, hold.asked, hold.status) == (90, 90, 503)
    clock.now += 90
    assert holds.get("r.test") is None

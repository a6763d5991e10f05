"""The registry client counts every HTTP exchange for ``/metrics``: by outcome and status
class, redirect hops and retries each once, and the body bytes it read; never a host or a
path as a label."""

from __future__ import annotations

import os
from typing import Any

import pytest

from chartguard import metrics
from chartguard.oci import (
    AuthenticationError,
    ChartReference,
    RegistryClient,
    RegistryUnreachableError,
    TLSVerificationError,
)
from chartguard.oci.transport import ConnectError, TLSError
from chartguard_testing.memory_registry import (
    FakeClock,
    MemoryRegistry,
    MockResponse,
    MockTransport,
    chart_archive,
)
from chartguard_testing.scrape import Samples

REQUESTS = "chartguard_registry_requests_total"
BYTES = "chartguard_registry_downloaded_bytes_total"


def now() -> Samples:
    return Samples.parse(metrics.exposition())


def test_a_chart_pull_counts_each_exchange_and_the_bytes_it_read() -> None:
    registry = MemoryRegistry(storage_host="storage.test")  # blobs redirected: 307 then 200
    digest = registry.push_chart("charts/demo", "1.0.0",
                                 layer=chart_archive("demo", "1.0.0", os.urandom(5000)))
    clock = FakeClock()
    transport = MockTransport(registry.handle)
    client = RegistryClient(transport=transport, clock=clock, sleep=clock.sleep)
    before = now()
    client.fetch_chart(ChartReference.parse(f"oci://{registry.host}/charts", "demo"), digest)
    moved = now().since(before)
    statuses = [response.status_code for response in transport.responses]
    assert statuses.count(307) == 2  # config and layer, each redirected to storage
    assert moved.total(REQUESTS, outcome="answered", code="2xx") == statuses.count(200)
    assert moved.total(REQUESTS, outcome="answered", code="3xx") == 2
    assert moved.total(REQUESTS) == len(transport.requests)
    read = sum(response.read_bytes for response in transport.responses)
    assert read > 5000  # the layer, the config and the manifest
    assert moved.total(BYTES, code="2xx") == read
    scraped = metrics.exposition().decode()
    assert "storage.test" not in scraped
    assert "charts/demo" not in scraped


def test_error_answers_count_under_their_status_class_with_their_bodies() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart("charts/demo", "1.0.0")
    denied = b'{"errors":[{"code":"DENIED"}]}'
    registry.faults[("GET", f"/v2/charts/demo/manifests/{digest}")] = lambda: MockResponse(
        403, denied)
    client = RegistryClient(transport=MockTransport(registry.handle))
    before = now()
    with pytest.raises(AuthenticationError, match="403 DENIED"):
        client.fetch_chart(ChartReference.parse(f"oci://{registry.host}/charts", "demo"),
                           digest)
    moved = now().since(before)
    assert moved.total(REQUESTS, outcome="answered", code="4xx") == 1
    assert moved.total(REQUESTS) == 1
    assert moved.total(BYTES, code="4xx") == len(denied)  # read for its error code
    assert moved.total(BYTES, code="2xx") == 0


@pytest.mark.parametrize(("error", "outcome"), [
    (ConnectError("connection failed"), "unreachable"),
    (TLSError("CERTIFICATE_VERIFY_FAILED"), "tls_error"),
])
def test_exchanges_without_an_answer_count_each_attempt(error: Exception, outcome: str) -> None:
    def handle(_request: Any) -> MockResponse:
        raise error

    clock = FakeClock()
    transport = MockTransport(handle)
    client = RegistryClient(transport=transport, clock=clock, sleep=clock.sleep, retries=2)
    before = now()
    with pytest.raises((RegistryUnreachableError, TLSVerificationError)):
        client.resolve(ChartReference.parse("oci://registry.test/charts", "demo"), "1.0.0")
    moved = now().since(before)
    assert moved.total(REQUESTS, outcome=outcome, code="none") == len(transport.requests)
    assert moved.total(REQUESTS) == len(transport.requests)
    assert len(transport.requests) == (3 if outcome == "unreachable" else 1)  # retried or not

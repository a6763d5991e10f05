"""chartguard.metrics: each recording function moves exactly its own series, labels stay in
their fixed sets, the scrape-time gauges read their sources, and ``/metrics`` is served.

The metric objects are process-wide, so each test compares a scrape before and after."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from chartguard import metrics
from chartguard_testing.scrape import Samples


def now() -> Samples:
    return Samples.parse(metrics.exposition())


@pytest.fixture
def sources() -> Iterator[None]:
    yield
    metrics.sample_objects(None)
    metrics.sample_store(None)


def test_a_reconcile_moves_flux_per_object_histogram_and_the_kind_result_histogram() -> None:
    before = now()
    metrics.reconciled("HelmChart", "team-a", "podinfo", "success", 0.2)
    metrics.reconciled("HelmChart", "team-a", "podinfo", "failure", 3.0)
    after = now()
    moved = after.since(before)
    flux = {"kind": "HelmChart", "name": "podinfo", "namespace": "team-a"}
    assert moved.total("gotk_reconcile_duration_seconds_count", **flux) == 2
    assert moved.total("gotk_reconcile_duration_seconds_sum", **flux) == pytest.approx(3.2)
    for result, seconds in (("success", 0.2), ("failure", 3.0)):
        labels = {"kind": "HelmChart", "result": result}
        assert moved.total("chartguard_reconcile_duration_seconds_count", **labels) == 1
        assert moved.total("chartguard_reconcile_duration_seconds_sum", **labels) == (
            pytest.approx(seconds))
    # Flux's buckets: 10 from 10 ms to 30 min; 0.2 s is in the one up to 0.5646 s
    assert after.has("gotk_reconcile_duration_seconds_bucket", le="0.01", **flux)
    assert after.has("gotk_reconcile_duration_seconds_bucket", le="1800.0", **flux)
    assert moved.total("gotk_reconcile_duration_seconds_bucket", le="0.1472", **flux) == 0
    assert moved.total("gotk_reconcile_duration_seconds_bucket", le="0.5646", **flux) == 1


def test_a_deleted_object_loses_its_own_series_but_not_the_aggregate() -> None:
    metrics.reconciled("HelmRelease", "ns", "gone-soon", "success", 0.1)
    assert now().has("gotk_reconcile_duration_seconds_count", name="gone-soon")
    before = now()
    metrics.reconciled("HelmRelease", "ns", "gone-soon", "success", 0.1, gone=True)
    after = now()
    assert not after.has("gotk_reconcile_duration_seconds_count", name="gone-soon")
    labels = {"kind": "HelmRelease", "result": "success"}
    assert after.total("chartguard_reconcile_duration_seconds_count", **labels) - before.total(
        "chartguard_reconcile_duration_seconds_count", **labels) == 1
    metrics.reconciled("HelmRelease", "ns", "other", "success", 0.1)
    metrics.forget("HelmRelease", "ns", "other")
    metrics.forget("HelmRelease", "ns", "never-seen")  # not an error
    assert not now().has("gotk_reconcile_duration_seconds_count", name="other")


def test_verifications_count_by_outcome_and_format_and_cache_hits_apart() -> None:
    before = now()
    metrics.verification("verified", "legacy_keyless")
    metrics.verification("verified", "bundle_keyless")
    metrics.verification("unsigned", "none")
    metrics.verification_cache(hit=True)
    metrics.verification_cache(hit=True)
    metrics.verification_cache(hit=False)
    moved = now().since(before)

    assert moved.total("chartguard_verifications_total", outcome="verified",
                       format="legacy_keyless") == 1
    assert moved.total("chartguard_verifications_total", outcome="verified",
                       format="bundle_keyless") == 1
    assert moved.total("chartguard_verifications_total", format="legacy_key") == 0
    assert moved.total("chartguard_verifications_total", outcome="unsigned", format="none") == 1
    assert moved.total("chartguard_verifications_total", outcome="failed") == 0
    assert moved.total("chartguard_verification_cache_hits_total") == 2
    assert moved.total("chartguard_verification_cache_misses_total") == 1


def test_registry_exchanges_count_by_outcome_and_status_class_with_their_bytes() -> None:
    before = now()
    code = metrics.registry_answer(206)
    metrics.registry_bytes(code, 1000)
    metrics.registry_bytes(metrics.registry_answer(404), 60)
    metrics.registry_failure("unreachable")
    metrics.registry_failure("tls_error")
    moved = now().since(before)

    assert code == "2xx"
    assert moved.total("chartguard_registry_requests_total", outcome="answered", code="2xx") == 1
    assert moved.total("chartguard_registry_requests_total", outcome="answered", code="4xx") == 1
    assert moved.total("chartguard_registry_requests_total", outcome="unreachable",
                       code="none") == 1
    assert moved.total("chartguard_registry_requests_total", outcome="tls_error", code="none") == 1
    assert moved.total("chartguard_registry_downloaded_bytes_total", code="2xx") == 1000
    assert moved.total("chartguard_registry_downloaded_bytes_total", code="4xx") == 60


def test_helm_commands_are_timed_by_action_and_failures_counted_apart() -> None:
    before = now()
    metrics.helm_command("install", 12.5, failed=False)
    metrics.helm_command("upgrade", 2.0, failed=True)
    moved = now().since(before)

    assert moved.total("chartguard_helm_command_duration_seconds_count", action="install") == 1
    assert moved.total("chartguard_helm_command_duration_seconds_sum", action="install") == 12.5
    assert moved.total("chartguard_helm_command_failures_total", action="install") == 0
    assert moved.total("chartguard_helm_command_duration_seconds_count", action="upgrade") == 1
    assert moved.total("chartguard_helm_command_failures_total", action="upgrade") == 1


def test_a_label_value_outside_its_fixed_set_is_recorded_as_other() -> None:
    # whatever a caller passes, no outside text (a URL, a chart name) becomes a label value
    metrics.helm_command("install https://evil.example/\x1b[31m", 1.0, failed=True)
    metrics.verification("verified", "a-format-from-a-payload")
    metrics.registry_bytes("999", 10)
    text = metrics.exposition().decode()
    assert "evil.example" not in text
    assert "a-format-from-a-payload" not in text
    after = now()
    assert after.has("chartguard_helm_command_failures_total", action="other")
    assert after.has("chartguard_verifications_total", outcome="verified", format="other")
    assert after.has("chartguard_registry_downloaded_bytes_total", code="other")
    assert metrics.status_class(200) == "2xx"
    assert metrics.status_class(99) == metrics.status_class(600) == "other"


def test_objects_and_store_are_read_from_their_sources_at_each_scrape(sources: None) -> None:
    assert not now().has("chartguard_objects")
    assert not now().has("chartguard_store_artifacts")
    counts = [("HelmChart", "True", 2), ("HelmRelease", "False", 1), ("HelmChart", "True", 1)]
    usage = (3, 4096)
    metrics.sample_objects(lambda: counts)
    metrics.sample_store(lambda: usage)
    scraped = now()
    assert scraped.total("chartguard_objects", kind="HelmChart", ready="True") == 3
    assert scraped.total("chartguard_objects", kind="HelmRelease", ready="False") == 1
    # every kind and status is there, at zero when no object is in it
    for kind in ("HelmRepository", "HelmChart", "HelmRelease"):
        for ready in ("True", "False", "Unknown"):
            assert scraped.has("chartguard_objects", kind=kind, ready=ready)
    assert scraped.total("chartguard_objects", kind="HelmRepository") == 0
    assert scraped.total("chartguard_store_artifacts") == 3
    assert scraped.total("chartguard_store_bytes") == 4096
    counts = [("HelmChart", "False", 1)]
    usage = (0, 0)
    again = now()  # read again, never a stale copy
    assert again.total("chartguard_objects", kind="HelmChart", ready="True") == 0
    assert again.total("chartguard_objects", kind="HelmChart", ready="False") == 1
    assert again.total("chartguard_store_artifacts") == 0


def test_the_exposition_has_process_metrics_and_no_created_series() -> None:
    names = now().names()
    assert "process_resident_memory_bytes" in names or "python_info" in names
    assert not any(name.endswith("_created") for name in names)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_metrics_over_http_and_a_busy_port_is_a_clear_error() -> None:
    port = _free_port()
    server = metrics.serve(port, "127.0.0.1")
    try:
        assert server.port == port
        metrics.helm_command("rollback", 0.5, failed=False)
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain")
            scraped = Samples.parse(answer.read())
        assert scraped.total("chartguard_helm_command_duration_seconds_count",
                             action="rollback") >= 1
        with pytest.raises(metrics.MetricsServerError,
                           match=rf"cannot serve metrics on 127\.0\.0\.1:{port} \(.+\): choose "
                                 "a free port"):
            metrics.serve(port, "127.0.0.1")
    finally:
        server.close()
    with pytest.raises(urllib.error.URLError):  # closed: nothing listens any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)

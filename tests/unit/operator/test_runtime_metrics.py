"""The operator runtime's metrics without a cluster: each reconcile pass timed under its kind
and result (and Flux's per-object histogram, dropped when the object goes), the objects by
Ready read from the watch caches, and the ``--metrics-*`` flags of ``chartguard run``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from chartguard import metrics
from chartguard.cli import build_parser
from chartguard.cli.run import config_from
from chartguard.operator.config import OperatorConfig
from chartguard.operator.kube import Kube
from chartguard.operator.runtime import CHARTS, FINALIZER, RELEASES, REPOSITORIES, Runtime
from chartguard_testing.scrape import Samples

NS = "team-a"


class _Kube:
    """Answers the runtime's writes with the object as patched; records nothing else."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def patch_finalizers(self, group: str, version: str, plural: str, namespace: str,
                         name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        value = ops[-1]["value"]
        finalizers = value if isinstance(value, list) else [value]
        return {"metadata": {"namespace": namespace, "name": name, "generation": 1,
                             "finalizers": finalizers}}

    def patch_status(self, group: str, version: str, plural: str, namespace: str, name: str,
                     status: dict[str, Any], *,
                     resource_version: str | None = None) -> dict[str, Any]:
        return {"metadata": {"namespace": namespace, "name": name, "generation": 1},
                "status": status}

    def post_event(self, involved: Any, type_: str, reason: str, message: str,
                   annotations: Any) -> None:
        self.events.append(reason)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    yield Runtime(OperatorConfig(artifact_dir=tmp_path / "store", helm_home=tmp_path / "helm"),
                  cast(Kube, _Kube()))
    metrics.sample_objects(None)
    metrics.sample_store(None)


def body(kind: str, name: str, ready: str | None = None, **extra: Any) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    group = "helm.toolkit.fluxcd.io/v2" if kind == "HelmRelease" else (
        "source.toolkit.fluxcd.io/v1")
    return {"apiVersion": group, "kind": kind,
            "metadata": {"namespace": NS, "name": name, "generation": 1, "resourceVersion": "1",
                         **extra.pop("metadata", {})},
            "spec": extra.pop("spec", {}), "status": {"conditions": conditions}}


def now() -> Samples:
    return Samples.parse(metrics.exposition())


def test_objects_by_ready_come_from_the_watch_caches(runtime: Runtime) -> None:
    runtime.observe_chart(None, body("HelmChart", "a", "True"))
    runtime.observe_chart(None, body("HelmChart", "b", "False"))
    runtime.observe_chart(None, body("HelmChart", "c"))  # not reconciled yet
    runtime.observe_release(None, body("HelmRelease", "r", "True"))
    runtime.observe_repository(None, body("HelmRepository", "repo", "Unknown"))
    assert sorted(runtime.ready_counts()) == [
        ("HelmChart", "False", 1), ("HelmChart", "True", 1), ("HelmChart", "Unknown", 1),
        ("HelmRelease", "True", 1), ("HelmRepository", "Unknown", 1)]
    runtime.observe_chart("DELETED", body("HelmChart", "a", "True"))
    assert ("HelmChart", "True", 1) not in runtime.ready_counts()


def test_start_makes_the_gauges_scrapeable_and_stop_removes_them(runtime: Runtime) -> None:
    runtime.observe_release(None, body("HelmRelease", "r", "True"))
    runtime.store.put(b"chart bytes")
    metrics.sample_objects(runtime.ready_counts)  # what start() registers
    metrics.sample_store(runtime.store.usage)
    scraped = now()
    assert scraped.total("chartguard_objects", kind="HelmRelease", ready="True") == 1
    assert scraped.total("chartguard_store_artifacts") == 1
    assert scraped.total("chartguard_store_bytes") == len(b"chart bytes")


def test_each_pass_is_timed_under_its_kind_and_result(runtime: Runtime) -> None:
    suspended = body("HelmRelease", "paused", spec={"suspend": True})
    invalid = body("HelmChart", "broken", spec={"chart": "x"},  # no sourceRef: stalled
                   metadata={"finalizers": [FINALIZER]})
    repository = body("HelmRepository", "repo", spec={"url": "oci://registry.test/charts",
                                                      "type": "oci", "interval": "5m"},
                      metadata={"finalizers": [FINALIZER]})
    runtime.observe_release(None, suspended)
    runtime.observe_chart(None, invalid)
    runtime.observe_repository(None, repository)
    before = now()
    assert runtime.reconcile((RELEASES, NS, "paused")) is None
    assert runtime.reconcile((CHARTS, NS, "broken")) is None
    assert runtime.reconcile((REPOSITORIES, NS, "repo")) is not None  # requeued at interval
    assert runtime.reconcile((CHARTS, NS, "never-seen")) is None  # no object: not a pass
    moved = now().since(before)
    name = "chartguard_reconcile_duration_seconds_count"
    assert moved.total(name, kind="HelmRelease", result="suspended") == 1
    assert moved.total(name, kind="HelmChart", result="stalled") == 1
    assert moved.total(name, kind="HelmRepository", result="success") == 1
    assert moved.total(name) == 3
    flux = "gotk_reconcile_duration_seconds_count"
    assert moved.total(flux, kind="HelmChart", namespace=NS, name="broken") == 1
    assert not now().has(flux, name="never-seen")


def test_flux_series_of_a_deleted_object_goes_with_it(runtime: Runtime) -> None:
    repository = body("HelmRepository", "old", spec={"url": "oci://registry.test/charts",
                                                     "type": "oci", "interval": "5m"},
                      metadata={"finalizers": [FINALIZER]})
    runtime.observe_repository(None, repository)
    runtime.reconcile((REPOSITORIES, NS, "old"))
    flux = "gotk_reconcile_duration_seconds_count"
    assert now().has(flux, kind="HelmRepository", name="old")
    # deletion requested: the pass that lets it go is counted, its own series removed
    deleting = {**repository, "metadata": {**repository["metadata"], "resourceVersion": "2",
                                           "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    runtime.observe_repository("MODIFIED", deleting)
    before = now()
    runtime.reconcile((REPOSITORIES, NS, "old"))
    assert now().since(before).total("chartguard_reconcile_duration_seconds_count",
                                     kind="HelmRepository", result="success") == 1
    assert not now().has(flux, kind="HelmRepository", name="old")
    # and a DELETED event drops whatever a pass may have recorded meanwhile
    metrics.reconciled("HelmRepository", NS, "old", "success", 0.1)
    runtime.observe_repository("DELETED", deleting)
    assert not now().has(flux, kind="HelmRepository", name="old")


ALL = "0.0.0.0"  # noqa: S104 - the pod's default, compared here, never bound


def test_metrics_flags_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from(build_parser().parse_args(["run"]))
    assert (config.metrics_port, config.metrics_address) == (0, ALL)  # off by default
    monkeypatch.setenv("CHARTGUARD_METRICS_PORT", "8080")
    config = config_from(build_parser().parse_args(["run"]))
    assert (config.metrics_port, config.metrics_address) == (8080, ALL)
    config = config_from(build_parser().parse_args(
        ["run", "--metrics-port", "9090", "--metrics-address", "127.0.0.1"]))
    assert (config.metrics_port, config.metrics_address) == (9090, "127.0.0.1")
    monkeypatch.setenv("CHARTGUARD_METRICS_PORT", "metrics")
    with pytest.raises(ValueError, match="CHARTGUARD_METRICS_PORT='metrics' is not a valid "
                                         "--metrics-port"):
        config_from(build_parser().parse_args(["run"]))
    with pytest.raises(ValueError, match="--metrics-port 70000: use a port from 1 to 65535"):
        config_from(build_parser().parse_args(["run", "--metrics-port", "70000"]))


def test_a_release_gets_a_chart_only_as_this_process_bound_its_file(runtime: Runtime) -> None:
    """chart_verified gives the verified manifest digest only while the HelmChart's status names
    the store file this process fetched for it; a status naming another file gives None."""
    from chartguard.operator.runtime import CHARTS
    from chartguard.reconcile.helmchart import Verified

    def chart(digest: str) -> dict[str, Any]:
        return {"metadata": {"name": "app", "namespace": "ns", "resourceVersion": digest[-1]},
                "status": {"artifact": {"digest": digest,
                                        "revision": "1.0.0@sha256:" + "m" * 64}}}

    bound, other = "sha256:" + "a" * 63 + "1", "sha256:" + "b" * 63 + "2"
    assert runtime.chart_verified("ns", "app") is None  # nothing verified yet
    runtime._mem((CHARTS, "ns", "app")).verified = Verified("sha256:" + "m" * 64, "p",
                                                             artifact=bound)
    runtime.charts.put(chart(bound))
    assert runtime.chart_verified("ns", "app") == "sha256:" + "m" * 64
    runtime.charts.put(chart(other))  # a status written by someone else
    assert runtime.chart_verified("ns", "app") is None

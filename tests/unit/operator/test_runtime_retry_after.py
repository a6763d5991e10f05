"""A HelmChart whose registry asked (Retry-After) to wait is not tried again before that wait,
nor later than its interval, with jitter on top; other failures keep the doubling backoff.
Through the runtime's own reconcile pass, with a registry that answers with the error."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from chartguard import metrics
from chartguard.oci import (
    ChartArtifact,
    ChartReference,
    OCIError,
    RateLimitedError,
    RegistryCredentials,
    RegistryServerError,
    ResolvedChart,
    SignatureArtifacts,
    TLSConfig,
)
from chartguard.operator.config import OperatorConfig
from chartguard.operator.kube import Kube
from chartguard.operator.runtime import CHARTS, Runtime, failure_delay

NS = "team-a"
INTERVAL = 30.0


class _Kube:
    """Answers the runtime's writes with the object as patched."""

    def patch_finalizers(self, group: str, version: str, plural: str, namespace: str,
                         name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return {**_chart(), "metadata": {**_chart()["metadata"], "finalizers": ["x"]}}

    def patch_status(self, group: str, version: str, plural: str, namespace: str, name: str,
                     status: dict[str, Any], *,
                     resource_version: str | None = None) -> dict[str, Any]:
        return {**_chart(), "status": status}

    def post_event(self, *_: Any) -> None:
        pass


class _Failing:
    """A registry (and its factory) whose every call raises ``error``."""

    def __init__(self, error: OCIError) -> None:
        self.error = error
        self.calls = 0

    def client(self, key: str, *, plain_http: bool, credentials: RegistryCredentials | None,
               tls: TLSConfig | None) -> _Failing:
        return self

    def resolve(self, ref: ChartReference, version: str = "*") -> ResolvedChart:
        self.calls += 1
        raise self.error

    def fetch_chart(self, ref: ChartReference, digest: str, *,
                    version: str | None = None) -> ChartArtifact:
        raise self.error

    def find_signatures(self, ref: ChartReference, digest: str, *,
                        attestations: bool = False) -> SignatureArtifacts:
        raise self.error


def _chart() -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"namespace": NS, "name": "app", "generation": 1,
                         "resourceVersion": "1", "finalizers": ["finalizers.fluxcd.io"]},
            "spec": {"chart": "app", "version": "1.0.0", "interval": f"{INTERVAL:g}s",
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}


def _runtime(tmp_path: Path, error: OCIError) -> Runtime:
    runtime = Runtime(OperatorConfig(artifact_dir=tmp_path / "store",
                                     helm_home=tmp_path / "helm"), cast(Kube, _Kube()))
    runtime.env = replace(runtime.env, registries=_Failing(error))
    runtime.repositories.put({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"namespace": NS, "name": "charts", "generation": 1},
        "spec": {"type": "oci", "url": "oci://registry.test/charts", "interval": "5m"}})
    runtime.charts.put(_chart())
    return runtime


def _limited(seconds: float) -> RateLimitedError:
    return RateLimitedError(f"registry registry.test rate limited chartguard (429): it asked "
                            f"to wait {seconds:g} s (Retry-After)", retry_after=seconds)


@pytest.fixture(autouse=True)
def _no_samplers() -> Any:
    yield
    metrics.sample_objects(None)
    metrics.sample_store(None)


@pytest.mark.parametrize(("error", "low", "high"), [
    (_limited(6), 6.0, 6.6),  # what the registry asked, jitter on top
    (_limited(86400), INTERVAL, INTERVAL * 1.1),  # a day: the interval at most
    (RegistryServerError("registry failed (503) after retries"), 1.0, 1.1),  # the backoff
])
def test_a_chart_is_requeued_after_the_registrys_retry_after_capped_at_its_interval(
        tmp_path: Path, error: OCIError, low: float, high: float) -> None:
    runtime = _runtime(tmp_path, error)
    delays = [runtime.reconcile((CHARTS, NS, "app")) for _ in range(3)]
    assert runtime.env.registries.calls == 3  # type: ignore[attr-defined]
    first = delays[0]
    assert first is not None
    assert low <= first <= high, delays
    # later failures in a row never come back sooner than the registry said
    assert all(d is not None and d >= low for d in delays), delays
    status = (runtime.charts.get(NS, "app") or {}).get("status") or {}
    fetch = next(c for c in status["conditions"] if c["type"] == "FetchFailed")
    if isinstance(error, RateLimitedError):
        assert f"asked to wait {error.retry_after:g} s (Retry-After)" in fetch["message"]


def test_failure_delay_keeps_the_jitter_above_the_retry_after() -> None:
    rng = random.Random(3)
    wait = timedelta(seconds=6)
    draws = [failure_delay(1, INTERVAL, wait, rng) for _ in range(200)]
    assert min(draws) >= 6.0
    assert max(draws) <= 6.6
    assert max(draws) - min(draws) > 0.4  # spread, not one fixed instant for every chart
    # the backoff grown past the registry's wait is kept; both stay within the interval
    assert 16.0 <= failure_delay(5, INTERVAL, wait, rng) <= 17.6
    assert INTERVAL <= failure_delay(40, INTERVAL, timedelta(days=1), rng) <= INTERVAL * 1.1
    # an interval shorter than 1 s still waits 1 s (the floor every failure has)
    assert 1.0 <= failure_delay(1, 0.2, wait, rng) <= 1.1

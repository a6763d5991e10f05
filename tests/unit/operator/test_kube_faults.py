"""The operator under a misbehaving Kubernetes API, without a cluster: which answers the
client retries and how long it waits, status writes redone on a fresh read after a 409, a pass
the API failed retried after a bounded backoff, and changes found by a re-listing."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chartguard import metrics
from chartguard.operator import kube as kube_module
from chartguard.operator.caches import Secrets
from chartguard.operator.config import OperatorConfig
from chartguard.operator.handlers import KopfBackoffs
from chartguard.operator.kube import (
    BACKOFF_MAX,
    RETRIES,
    RETRY_AFTER_MAX,
    Kube,
    KubeError,
    backoff,
    retry_after,
)
from chartguard.operator.runtime import (
    _API_RETRY,
    CHARTS,
    FINALIZER,
    RELEASES,
    Runtime,
    _ceiling,
)
from chartguard.reconcile.seams import SecretNotFoundError

NS = "team-a"


class _Answer:
    def __init__(self, data: bytes) -> None:
        self.data = data


def _api_error(status: int, reason: str, headers: dict[str, str] | None = None) -> ApiException:
    err = ApiException(status=status, reason=reason)
    err.headers = headers or {}
    return err


class _Script:
    """A client call answering from a script: exceptions are raised, bytes returned."""

    def __init__(self, *answers: Exception | bytes) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, *args: Any, **kw: Any) -> _Answer:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return _Answer(answer)


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(kube_module.time, "sleep", waits.append)
    return waits


@pytest.fixture
def kube() -> Kube:
    return Kube(kubernetes.client.ApiClient())


def test_load_shed_and_server_errors_are_retried_honouring_retry_after(
        kube: Kube, slept: list[float], caplog: pytest.LogCaptureFixture) -> None:
    call = _Script(_api_error(429, "Too Many Requests", {"Retry-After": "3"}),
                   _api_error(503, "Service Unavailable"), b'{"ok": true}')
    assert kube._call("status of helmcharts a/b", call) == {"ok": True}
    assert call.calls == 3
    assert slept[0] >= 3  # never sooner than the server asked
    assert slept[1] <= BACKOFF_MAX
    assert "429 Too Many Requests; trying again in 3." in caplog.text
    assert "503 Service Unavailable; trying again in" in caplog.text


def test_retries_are_bounded_and_the_last_error_names_the_fault(
        kube: Kube, slept: list[float]) -> None:
    call = _Script(*[_api_error(500, "Internal Server Error")] * (RETRIES + 1))
    with pytest.raises(KubeError) as err:
        kube._call("patch helmcharts a/b", call)
    assert (err.value.status, str(err.value)) == (500, "patch helmcharts a/b: 500 Internal "
                                                       "Server Error")
    assert call.calls == RETRIES + 1
    assert len(slept) == RETRIES
    assert sum(slept) <= RETRIES * BACKOFF_MAX


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_answers_a_retry_cannot_change_are_not_retried(
        kube: Kube, slept: list[float], status: int) -> None:
    call = _Script(_api_error(status, "No"))
    with pytest.raises(KubeError) as err:
        kube._call("x", call)
    assert err.value.status == status
    assert (call.calls, slept) == (1, [])


def test_no_connection_is_retried_a_read_timeout_is_not(kube: Kube, slept: list[float]) -> None:
    call = _Script(ConnectionRefusedError(111, "refused"), b"{}")
    assert kube._call("x", call) == {}
    assert call.calls == 2

    class ReadTimeoutError(Exception):  # urllib3's, known by name
        pass

    call = _Script(ReadTimeoutError("read timed out"))
    with pytest.raises(KubeError, match=r"x: no answer \(read timed out\)"):
        kube._call("x", call)
    assert call.calls == 1


def test_backoff_grows_with_jitter_is_capped_and_never_below_retry_after() -> None:
    for attempt in range(8):
        step = min(0.5 * 2 ** attempt, BACKOFF_MAX)
        for _ in range(50):
            assert step / 2 <= backoff(attempt, None) <= step
    assert backoff(0, 2.0) >= 2.0
    assert backoff(0, 3600.0) == RETRY_AFTER_MAX  # a server asking for an hour is not obeyed
    assert {round(backoff(3, None), 6) for _ in range(20)} != {round(backoff(3, None), 6)}
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after(None) is None


class _FakeKube:
    """The API as the runtime sees it: status patches refused with 409 ``conflicts`` times,
    another writer's status on every fresh read."""

    def __init__(self, conflicts: int, stored: dict[str, Any]) -> None:
        self.conflicts = conflicts
        self.stored = stored
        self.patches: list[tuple[dict[str, Any], str | None]] = []
        self.reads = 0

    def patch_status(self, group: str, version: str, plural: str, namespace: str, name: str,
                     status: dict[str, Any], *,
                     resource_version: str | None = None) -> dict[str, Any]:
        self.patches.append((dict(status), resource_version))
        if self.conflicts > 0:
            self.conflicts -= 1
            raise KubeError(f"status of {plural} {namespace}/{name}: 409 Conflict", 409)
        self.stored["status"] = {**self.stored.get("status", {}), **status}
        self.stored["metadata"]["resourceVersion"] = "99"
        return self.stored

    def get_custom(self, group: str, version: str, plural: str, namespace: str,
                   name: str) -> dict[str, Any]:
        self.reads += 1
        self.stored["metadata"]["resourceVersion"] = str(10 + self.reads)
        return self.stored

    def post_event(self, *args: Any) -> None:
        pass


def _runtime(tmp_path: Path, kube: Any) -> Runtime:
    return Runtime(OperatorConfig(artifact_dir=tmp_path / "store", helm_home=tmp_path / "h"),
                   cast(Kube, kube))


@pytest.fixture
def cleanup_metrics() -> Iterator[None]:
    yield
    metrics.sample_objects(None)
    metrics.sample_store(None)


def test_a_conflicting_status_write_is_redone_against_a_fresh_read(
        tmp_path: Path, cleanup_metrics: None) -> None:
    ours = {"metadata": {"namespace": NS, "name": "app", "resourceVersion": "5"},
            "status": {"observedGeneration": 1}}
    # meanwhile another writer set observedGeneration 2 and a key of its own
    stored = {"metadata": {"namespace": NS, "name": "app", "resourceVersion": "6"},
              "status": {"observedGeneration": 2, "theirs": "kept"}}
    kube = _FakeKube(2, stored)
    runtime = _runtime(tmp_path, kube)
    assert runtime._patch_status((CHARTS, NS, "app"), ours, {"observedGeneration": 2,
                                                              "url": "u"}) is None
    first, second, third = kube.patches
    assert first == ({"observedGeneration": 2, "url": "u"}, None)
    # worked out again against what is stored, and only if it is still at that version
    assert second == ({"url": "u"}, "11")
    assert third == ({"url": "u"}, "12")
    assert stored["status"] == {"observedGeneration": 2, "theirs": "kept", "url": "u"}
    assert runtime.charts.get(NS, "app") is not None


def test_conflicts_beyond_the_redos_fail_the_write_and_the_pass_is_retried_soon(
        tmp_path: Path, cleanup_metrics: None) -> None:
    stored = {"metadata": {"namespace": NS, "name": "app", "resourceVersion": "6"},
              "status": {}}
    kube = _FakeKube(100, stored)
    runtime = _runtime(tmp_path, kube)
    refused = runtime._patch_status((CHARTS, NS, "app"), stored, {"url": "u"})
    assert refused is not None
    assert refused.status == 409
    assert len(kube.patches) == 4  # bounded
    assert _ceiling(refused) == _API_RETRY  # retried soon
    assert _ceiling(KubeError("x: 403 Forbidden", 403)) > _API_RETRY  # RBAC: backs off


class _DownKube:
    """Every read fails as an API server that does not answer."""

    def get_custom(self, *args: Any) -> None:
        raise KubeError("helmrepositories team-a/charts: no answer (MaxRetryError)")


def test_a_pass_the_api_failed_is_retried_after_a_bounded_backoff_without_a_traceback(
        tmp_path: Path, cleanup_metrics: None, caplog: pytest.LogCaptureFixture) -> None:
    runtime = _runtime(tmp_path, _DownKube())
    runtime.charts.put({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"namespace": NS, "name": "app", "generation": 1, "resourceVersion": "1",
                     "finalizers": [FINALIZER]},
        "spec": {"chart": "app", "version": "*", "interval": "10m",
                 "sourceRef": {"kind": "HelmRepository", "name": "charts"}}})
    delays = []
    with caplog.at_level(logging.WARNING, logger="chartguard"):
        for _ in range(8):
            delay = runtime.reconcile((CHARTS, NS, "app"))
            assert delay is not None
            delays.append(delay)
    assert delays[0] < 2  # the first retry comes soon
    assert max(delays) <= _API_RETRY * 1.1  # and none waits longer than the cap
    assert "the Kubernetes API failed: helmrepositories team-a/charts: no answer" in caplog.text
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


def test_a_secret_changed_behind_an_expired_watch_requeues_its_users_on_the_relisting(
        tmp_path: Path, cleanup_metrics: None) -> None:
    runtime = _runtime(tmp_path, object())
    user = (RELEASES, NS, "app")
    runtime.secret_users.update(user, [(NS, "values")])
    runtime.configmap_users.update(user, [(NS, "cm")])

    def body(name: str, rv: str) -> dict[str, Any]:
        return {"metadata": {"namespace": NS, "name": name, "resourceVersion": rv}, "data": {}}

    runtime.observe_secret(None, body("values", "3"))  # the first listing: nothing changed
    runtime.observe_configmap(None, body("cm", "3"))
    assert len(runtime.release_queue) == 0
    runtime.observe_secret(None, body("values", "3"))  # a re-listing, unchanged
    assert len(runtime.release_queue) == 0
    runtime.observe_configmap(None, body("cm", "9"))  # a re-listing: changed meanwhile
    assert len(runtime.release_queue) == 1
    runtime.release_queue.clear()
    runtime.observe_secret(None, body("values", "10"))
    assert len(runtime.release_queue) == 1


def test_kopfs_own_requests_are_retried_for_ever_within_a_ceiling() -> None:
    """kopf gives up a request after its last backoff, and a watch that gives up stops the
    operator: the schedule chartguard gives kopf never ends, each wait bounded."""
    schedule = KopfBackoffs(ceiling=30.0)
    waits = list(itertools.islice(iter(schedule), 1000))
    assert len(waits) == 1000
    assert waits[0] >= 1.0
    assert max(waits) <= 33.0
    assert sum(waits[-10:]) >= 300  # no busy loop however long it lasts
    assert next(iter(schedule)) < 2  # a new request starts over


class _Secrets:
    """The API's Secrets: whatever ``data`` holds now (None: deleted)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] | None = {"cosign.pub": b"old key"}
        self.reads = 0

    def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self.reads += 1
        return self.data


def test_a_secret_deleted_behind_an_expired_watch_is_not_served_from_the_cache() -> None:
    api = _Secrets()
    secrets = Secrets(cast(Kube, api))

    def body(name: str, rv: str) -> dict[str, Any]:
        return {"metadata": {"namespace": NS, "name": name, "resourceVersion": rv}}

    secrets.observe(body("key", "1"), deleted=False, listing=True)  # the first listing
    secrets.observe(body("other", "2"), deleted=False, listing=True)
    assert secrets.get(NS, "key") == {"cosign.pub": b"old key"}
    assert secrets.get(NS, "key") == {"cosign.pub": b"old key"}
    assert api.reads == 1  # cached
    api.data = None  # deleted while the watch was expired: no event says so
    secrets.observe(body("other", "2"), deleted=False, listing=True)  # the re-listing
    with pytest.raises(SecretNotFoundError):
        secrets.get(NS, "key")

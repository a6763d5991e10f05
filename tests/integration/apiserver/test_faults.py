"""The emulator's fault modes (test equipment for the chaos tests): each does what the real
API server does in that situation, and only when switched on."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import requests

from chartguard_testing.apiserver import KubeAPI

CM = "/api/v1/namespaces/default/configmaps"


def _create(api: KubeAPI, name: str) -> str:
    r = requests.post(api.url + CM, json={"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": name}, "data": {"n": "0"}},
                      timeout=5)
    assert r.status_code == 201, r.text
    rv: str = r.json()["metadata"]["resourceVersion"]
    return rv


def _touch(api: KubeAPI, name: str, value: str) -> requests.Response:
    return requests.patch(f"{api.url}{CM}/{name}", data=json.dumps({"data": {"n": value}}),
                          headers={"Content-Type": "application/merge-patch+json"}, timeout=5)


def _watch(api: KubeAPI, **params: str) -> list[dict[str, Any]]:
    r = requests.get(api.url + CM, params={"watch": "true", "timeoutSeconds": "1", **params},
                     stream=True, timeout=10)
    assert r.status_code == 200
    return [json.loads(line) for line in r.iter_lines() if line]


class _Reader(threading.Thread):
    """A watch read in a thread: the events it got and how it ended."""

    def __init__(self, api: KubeAPI, rv: str) -> None:
        super().__init__(daemon=True)
        self.response = requests.get(api.url + CM, params={
            "watch": "true", "resourceVersion": rv, "timeoutSeconds": "30"},
            stream=True, timeout=10)
        self.events: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line:
                    self.events.append(json.loads(line))
        except requests.RequestException as exc:
            self.error = exc


def _wait_watchers(api: KubeAPI, n: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if api.faults.stall_watches() >= n:  # stalling counts the open watches
            return
        time.sleep(0.05)
    raise AssertionError("the watch never opened")


def test_a_dropped_watch_is_cut_mid_stream_and_resumes_from_its_version(
        kube_api: KubeAPI) -> None:
    rv = _create(kube_api, "c1")
    reader = _Reader(kube_api, rv)
    assert _touch(kube_api, "c1", "1").status_code == 200
    deadline = time.monotonic() + 5
    while not reader.events and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e["type"] for e in reader.events] == ["MODIFIED"]
    assert kube_api.faults.drop_watches() == 1
    reader.join(5)
    assert not reader.is_alive()
    assert reader.error is not None  # cut, not ended: the chunked body never completed
    seen = reader.events[-1]["object"]["metadata"]["resourceVersion"]
    _touch(kube_api, "c1", "2")
    assert [e["object"]["data"] for e in _watch(kube_api, resourceVersion=seen)] == [{"n": "2"}]
    assert kube_api.faults.delivered("drop") == 1


def test_a_stalled_watch_delivers_nothing_and_what_it_missed_stays_resumable(
        kube_api: KubeAPI) -> None:
    rv = _create(kube_api, "c1")
    reader = _Reader(kube_api, rv)
    _wait_watchers(kube_api, 1)
    _touch(kube_api, "c1", "1")
    time.sleep(0.3)
    assert reader.events == []
    kube_api.faults.drop_watches()
    reader.join(5)
    assert [e["object"]["data"] for e in _watch(kube_api, resourceVersion=rv)] == [{"n": "1"}]


def test_compaction_answers_an_older_resume_with_the_real_servers_410_event(
        kube_api: KubeAPI) -> None:
    first = _create(kube_api, "c1")
    _touch(kube_api, "c1", "1")
    now = kube_api.faults.compact()
    (event,) = _watch(kube_api, resourceVersion=first)
    # kube-apiserver's watch cache: HTTP 200, one ERROR event, Status 410 Expired
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert event["object"]["message"].startswith(f"too old resource version: {first} (")
    assert _watch(kube_api, resourceVersion=str(now)) == []  # the current one still resumes
    assert kube_api.faults.delivered("expired") == 1


def test_expire_answers_the_next_resuming_watches_only(kube_api: KubeAPI) -> None:
    rv = _create(kube_api, "c1")
    kube_api.faults.expire_next(1)
    assert _watch(kube_api)[0]["type"] == "ADDED"  # a list-watch does not resume: not expired
    (event,) = _watch(kube_api, resourceVersion=rv)
    assert event["object"]["code"] == 410
    assert _watch(kube_api, resourceVersion=rv) == []
    assert kube_api.faults.delivered("expired") == 1


def test_conflicts_hit_the_next_status_writes_of_one_resource(kube_api: KubeAPI) -> None:
    _create(kube_api, "c1")
    kube_api.faults.conflict("configmaps", 2, subresource=None)
    for _ in range(2):
        r = _touch(kube_api, "c1", "x")
        assert r.status_code == 409
        status = r.json()
        assert status["reason"] == "Conflict"
        assert status["details"] == {"name": "c1", "kind": "configmaps"}
        assert status["message"] == (
            'Operation cannot be fulfilled on configmaps "c1": the object has been modified; '
            "please apply your changes to the latest version and try again")
    assert _touch(kube_api, "c1", "x").status_code == 200
    assert requests.get(f"{kube_api.url}{CM}/c1", timeout=5).json()["data"] == {"n": "x"}


@pytest.mark.parametrize(("code", "reason"), [(429, "TooManyRequests"),
                                              (503, "ServiceUnavailable"),
                                              (500, "InternalError")])
def test_error_bursts_match_method_and_path_and_carry_retry_after(
        kube_api: KubeAPI, code: int, reason: str) -> None:
    _create(kube_api, "c1")
    kube_api.faults.errors(code, 2, method="PATCH", path="/configmaps/c1", agent="^python",
                           retry_after=1)
    assert requests.get(f"{kube_api.url}{CM}/c1", timeout=5).status_code == 200  # GET: no
    other = requests.patch(f"{kube_api.url}{CM}/c1", data=json.dumps({"data": {"n": "z"}}),
                           headers={"Content-Type": "application/merge-patch+json",
                                    "User-Agent": "kubectl/v1.35.0"}, timeout=5)
    assert other.status_code == 200  # another client: no
    for _ in range(2):
        r = _touch(kube_api, "c1", "y")
        assert r.status_code == code
        assert r.headers["Retry-After"] == "1"
        assert r.json()["reason"] == reason
        assert r.json()["details"]["retryAfterSeconds"] == 1
    assert _touch(kube_api, "c1", "y").status_code == 200
    assert kube_api.faults.delivered(f"error {code}") == 2


def test_a_server_stopped_and_started_keeps_objects_versions_and_port(
        kube_api: KubeAPI) -> None:
    _create(kube_api, "c1")
    rv = _touch(kube_api, "c1", "5").json()["metadata"]["resourceVersion"]
    requests.post(kube_api.url + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                  json={"apiVersion": "apiextensions.k8s.io/v1",
                        "kind": "CustomResourceDefinition",
                        "metadata": {"name": "things.example.com"},
                        "spec": {"group": "example.com", "scope": "Namespaced",
                                 "names": {"kind": "Thing", "plural": "things"},
                                 "versions": [{"name": "v1", "served": True,
                                               "storage": True}]}},
                  timeout=5).raise_for_status()
    old_pid = kube_api.proc.pid
    kube_api.stop_server()
    with pytest.raises(requests.ConnectionError):
        requests.get(kube_api.url + CM, timeout=2)
    kube_api.start_server()
    assert kube_api.proc.pid != old_pid
    body = requests.get(f"{kube_api.url}{CM}/c1", timeout=5).json()
    assert body["data"] == {"n": "5"}
    assert body["metadata"]["resourceVersion"] == rv
    # versions go on from where they were; the restarted watch cache has no older history
    assert int(_touch(kube_api, "c1", "6").json()["metadata"]["resourceVersion"]) > int(rv)
    (event,) = _watch(kube_api, resourceVersion="1")
    assert event["object"]["code"] == 410
    things = requests.get(kube_api.url + "/apis/example.com/v1/namespaces/default/things",
                          timeout=5)
    assert things.status_code == 200  # the CRD is served again


def test_no_real_api_path_is_a_chaos_control(kube_api: KubeAPI) -> None:
    r = requests.post(kube_api.url + "/chaos/v1/nonsense", json={}, timeout=5)
    assert r.status_code == 404
    r = requests.post(kube_api.url + "/chaos/v1/errors", json={"code": 418, "count": 1},
                      timeout=5)
    assert r.status_code == 400

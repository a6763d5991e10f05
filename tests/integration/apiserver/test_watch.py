"""Watch semantics clients depend on: resume from a resourceVersion, 410 when too old,
initial events closed by a bookmark, selectors, and timeoutSeconds ending the stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from chartguard_testing.apiserver import KubeAPI, run_apiserver

CM = "/api/v1/namespaces/default/configmaps"


def _create(api: KubeAPI, name: str, labels: dict[str, str] | None = None) -> str:
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": {"n": "1"}}
    r = requests.post(api.url + CM, json=body, timeout=5)
    assert r.status_code == 201, r.text
    rv: str = r.json()["metadata"]["resourceVersion"]
    return rv


def _touch(api: KubeAPI, name: str, value: str) -> str:
    r = requests.patch(f"{api.url}{CM}/{name}", data=json.dumps({"data": {"n": value}}),
                       headers={"Content-Type": "application/merge-patch+json"}, timeout=5)
    assert r.status_code == 200, r.text
    rv: str = r.json()["metadata"]["resourceVersion"]
    return rv


def _watch(api: KubeAPI, **params: str) -> list[dict[str, Any]]:
    """Every event of a watch that the server ends after one second."""
    r = requests.get(api.url + CM, params={"watch": "true", "timeoutSeconds": "1", **params},
                     stream=True, timeout=10)
    assert r.status_code == 200
    return [json.loads(line) for line in r.iter_lines() if line]


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


def test_watch_resumes_after_the_given_resource_version(kube_api: KubeAPI) -> None:
    since = _create(kube_api, "c1")
    _create(kube_api, "c2")
    rv = _touch(kube_api, "c1", "2")
    events = _watch(kube_api, resourceVersion=since)
    assert _summary(events) == [("ADDED", "c2"), ("MODIFIED", "c1")]
    assert events[-1]["object"]["metadata"]["resourceVersion"] == rv
    assert events[-1]["object"]["data"] == {"n": "2"}
    assert _watch(kube_api, resourceVersion=rv) == []  # nothing newer


def test_watch_from_a_compacted_resource_version_answers_410(tmp_path: Path) -> None:
    with run_apiserver(tmp_path, history=5) as api:
        first = _create(api, "c1")
        for n in range(10):
            _touch(api, "c1", str(n))
        (event,) = _watch(api, resourceVersion=first)
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410
        assert event["object"]["reason"] == "Expired"
        # a fresh list gives a resourceVersion that can be watched from again
        listed = requests.get(api.url + CM, timeout=5).json()
        assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
        rv = listed["metadata"]["resourceVersion"]
        assert _watch(api, resourceVersion=rv) == []


def test_watch_list_sends_initial_events_then_the_end_bookmark(kube_api: KubeAPI) -> None:
    _create(kube_api, "c1")
    _create(kube_api, "c2")
    events = _watch(kube_api, sendInitialEvents="true", allowWatchBookmarks="true",
                    resourceVersionMatch="NotOlderThan")
    assert _summary(events)[:2] == [("ADDED", "c1"), ("ADDED", "c2")]
    bookmark = events[2]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"}


def test_watch_honours_label_selectors(kube_api: KubeAPI) -> None:
    _create(kube_api, "mine", {"owner": "helm", "name": "web"})
    _create(kube_api, "other", {"owner": "helm", "name": "api"})
    _create(kube_api, "plain")
    events = _watch(kube_api, labelSelector="owner=helm,name in (web, db)")
    assert _summary(events) == [("ADDED", "mine")]
    events = _watch(kube_api, labelSelector="!owner")
    assert _summary(events) == [("ADDED", "plain")]


def test_stale_put_is_a_conflict_and_failed_json_patch_test_is_422(kube_api: KubeAPI) -> None:
    old_rv = _create(kube_api, "c1")
    _touch(kube_api, "c1", "2")
    stale = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "c1", "resourceVersion": old_rv}, "data": {"n": "3"}}
    r = requests.put(f"{kube_api.url}{CM}/c1", json=stale, timeout=5)
    assert r.status_code == 409
    assert r.json()["reason"] == "Conflict"
    r = requests.patch(f"{kube_api.url}{CM}/c1",
                       data=json.dumps([{"op": "test", "path": "/data/n", "value": "9"}]),
                       headers={"Content-Type": "application/json-patch+json"}, timeout=5)
    assert r.status_code == 422

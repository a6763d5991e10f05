"""Bad requests get a 4xx Status (never a 500 or a traceback), dropped watches are let go,
and what the emulator keeps for watches is bounded by ``--history``."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from chartguard_testing import procs
from chartguard_testing.apiserver import KubeAPI, run_apiserver
from chartguard_testing.apiserver.resources import Catalog
from chartguard_testing.apiserver.server import start
from chartguard_testing.apiserver.storage import OVERFLOW, Store

CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _status(r: requests.Response, code: int) -> dict[str, Any]:
    """The answer is a Status object with ``code`` and a message, and nothing else."""
    assert r.status_code == code, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    status: dict[str, Any] = r.json()
    assert status["kind"] == "Status"
    assert status["code"] == code
    assert status["message"]
    assert "Traceback" not in r.text
    return status


def test_unknown_paths_and_resources_are_404_status(kube_api: KubeAPI) -> None:
    for path in ("/api/v1/namespaces/default/gizmos", "/apis/example.com/v1/gizmos",
                 "/apis/apps/v9/deployments", "/api/v2/pods", "/nonsense",
                 f"{CM}/c1/logs", "/api/v1/namespaces/default/configmaps/a/b/c/d"):
        _status(requests.get(kube_api.url + path, timeout=5), 404)
    assert requests.get(kube_api.url + "/apis/example.com", timeout=5).status_code == 404


BAD_BODIES: list[tuple[str, str, str, bytes | str, dict[str, str]]] = [
    # (method, path, what, body, headers)
    ("POST", CM, "not JSON", b"{nope", {}),
    ("POST", CM, "not UTF-8", b"\xff\xfe{", {}),
    ("POST", CM, "a JSON list", b"[1, 2]", {}),
    ("POST", CM, "metadata a string", json.dumps({"metadata": "x"}), {}),
    ("POST", CM, "name a number", json.dumps({"metadata": {"name": 5}}), {}),
    ("POST", CM, "labels a list", json.dumps({"metadata": {"name": "c", "labels": ["a"]}}), {}),
    ("POST", CM, "finalizers a string",
     json.dumps({"metadata": {"name": "c", "finalizers": "x"}}), {}),
    ("POST", CM, "ownerReferences not objects",
     json.dumps({"metadata": {"name": "c", "ownerReferences": ["x"]}}), {}),
    ("POST", DEPLOY, "spec a string", json.dumps({"metadata": {"name": "d"}, "spec": "x"}), {}),
    ("POST", DEPLOY, "replicas a string",
     json.dumps({"metadata": {"name": "d"}, "spec": {"replicas": "many"}}), {}),
    ("PUT", f"{CM}/base", "not JSON", b"]", {}),
    ("PATCH", f"{CM}/base", "merge patch not JSON", b"{", MERGE),
    ("PATCH", f"{CM}/base", "merge patch a list", b"[]", MERGE),
    ("PATCH", f"{CM}/base", "merge patch a string", b'"x"', MERGE),
    ("PATCH", f"{CM}/base", "merge patch makes labels a list",
     b'{"metadata": {"labels": ["a"]}}', MERGE),
    ("PATCH", f"{CM}/base", "strategic patch with a bad directive",
     b'{"$deleteFromPrimitiveList/data": 5}',
     {"Content-Type": "application/strategic-merge-patch+json"}),
    ("PUT", f"{CM}/base", "data a list", json.dumps({"metadata": {"name": "base"},
                                                      "data": ["x"]}), {}),
    ("POST", DEPLOY, "template a string",
     json.dumps({"metadata": {"name": "d"}, "spec": {"template": "x"}}), {}),
    ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "CRD without names",
     json.dumps({"metadata": {"name": "x.example.com"}, "spec": {"group": "example.com",
                                                                  "versions": [{}]}}), {}),
    ("PATCH", f"{CM}/base", "strategic patch a list", b"[1]",
     {"Content-Type": "application/strategic-merge-patch+json"}),
    ("PATCH", f"{CM}/base", "json patch an object", b"{}",
     {"Content-Type": "application/json-patch+json"}),
    ("PATCH", f"{CM}/base", "json patch op a string", b'["x"]',
     {"Content-Type": "application/json-patch+json"}),
    ("PATCH", f"{CM}/base", "json patch path a number", b'[{"op": "remove", "path": 3}]',
     {"Content-Type": "application/json-patch+json"}),
    ("PATCH", f"{CM}/base", "apply patch not YAML", b"a: [",
     {"Content-Type": "application/apply-patch+yaml"}),
    ("PATCH", f"{CM}/base", "apply patch a scalar", b"just text",
     {"Content-Type": "application/apply-patch+yaml"}),
    ("POST", CM, "protobuf garbage", b"k8s\x00\x0a\xff",
     {"Content-Type": "application/vnd.kubernetes.protobuf"}),
]


@pytest.mark.parametrize(("method", "path", "what", "body", "headers"), BAD_BODIES,
                         ids=[b[2] for b in BAD_BODIES])
def test_malformed_bodies_are_4xx_status(kube_api: KubeAPI, method: str, path: str, what: str,
                                         body: bytes | str, headers: dict[str, str]) -> None:
    base = {"metadata": {"name": "base"}, "data": {"k": "v"}}
    assert requests.post(kube_api.url + CM, json=base, timeout=5).status_code == 201
    r = requests.request(method, kube_api.url + path, data=body,
                         headers={"Content-Type": "application/json", **headers}, timeout=5)
    status = _status(r, r.status_code)
    assert 400 <= r.status_code < 500, f"{what}: {status}"
    # the stored object and the server survive: a later list still works
    listed = requests.get(kube_api.url + CM, timeout=5).json()["items"]
    assert [o["metadata"]["name"] for o in listed] == ["base"]
    assert listed[0]["data"] == {"k": "v"}


@pytest.mark.parametrize("query", [
    {"fieldSelector": "metadata.name"}, {"labelSelector": "a in (b"},
    {"labelSelector": "a,,=b=c"},
    {"watch": "true", "timeoutSeconds": "soon"}, {"watch": "true", "resourceVersion": "x"},
])
def test_malformed_queries_are_400_status(kube_api: KubeAPI, query: dict[str, str]) -> None:
    _status(requests.get(kube_api.url + CM, params=query, timeout=5), 400)


def test_a_watch_whose_client_hangs_up_is_let_go() -> None:
    async def scenario() -> None:
        store = Store(Catalog())
        port = procs.free_port()
        runner = await start(store, "127.0.0.1", port)
        try:
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET {CM}?watch=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert (await reader.readline()).startswith(b"HTTP/1.1 200")
                assert len(store.watchers) == 1
                writer.close()  # hang up; no event will ever come for that watch to fail on
                await writer.wait_closed()
                for _ in range(100):
                    if not store.watchers:
                        break
                    await asyncio.sleep(0.05)
                assert not store.watchers, "the dropped watch is still subscribed"
        finally:
            await runner.cleanup()
    asyncio.run(scenario())


def test_kept_changes_and_an_unread_watch_are_bounded_by_history() -> None:
    async def scenario() -> None:
        store = Store(Catalog(), history=5)
        watcher = store.subscribe()
        cm = store.catalog.get("", "v1", "configmaps")
        store.create(cm, "default", {"metadata": {"name": "c"}, "data": {"n": "0"}})
        for n in range(50):
            store.patch(cm, "default", "c", "application/merge-patch+json",
                        json.dumps({"data": {"n": str(n)}}).encode())
        assert len(store.events) == 5
        # a watcher that stopped reading holds at most `history` changes, then is told
        # it fell behind (its client gets 410 Expired and re-lists, as with a real apiserver)
        assert watcher.qsize() <= 5
        while watcher.get_nowait() is not OVERFLOW:
            pass
        assert watcher.empty()
        store.unsubscribe(watcher)
        assert not store.watchers
    asyncio.run(scenario())


def test_a_watch_that_stops_reading_is_ended_with_410(tmp_path: Path) -> None:
    """30 MB of changes to a client that reads nothing: the server does not hold them; once
    ``history`` changes wait, the watch gets 410 Expired and ends (the client re-lists)."""
    with run_apiserver(tmp_path, history=5) as api:
        port = int(api.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(f"GET {CM}?watch=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            big = "x" * 1_000_000
            for n in range(30):
                r = requests.post(api.url + CM, timeout=10,
                                  json={"metadata": {"name": f"c{n}"}, "data": {"k": big}})
                assert r.status_code == 201
            received = bytearray()
            while not received.endswith(b"\r\n0\r\n\r\n"):  # the end of the chunked answer
                chunk = client.recv(1 << 20)
                assert chunk, "the server closed the connection without ending the watch"
                received += chunk
    assert b'"reason": "Expired"' in received
    assert received.count(b'"type": "ADDED"') < 30

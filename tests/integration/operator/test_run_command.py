"""``chartguard run`` as an operator process: flags from CHARTGUARD_* variables, a health
endpoint, JSON logs, label-selector sharding, and a clean exit on SIGTERM within seconds."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest
from operator_support import (
    Charts,
    Cluster,
    Operator,
    helmchart,
    repository,
    wait_for,
)

from chartguard_testing import procs
from chartguard_testing.proxy import CountingProxy


def test_env_configured_operator_serves_health_logs_json_shards_and_stops_on_sigterm(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ns = cluster.ns
    charts.push("mine", "1.0.0")
    charts.push("theirs", "1.0.0")
    mine = helmchart("mine", ns, "mine", "1.0.0", "charts", None)
    mine["metadata"]["labels"] = {"sharding.fluxcd.io/key": "shard1"}
    theirs = helmchart("theirs", ns, "theirs", "1.0.0", "charts", None)
    theirs["metadata"]["labels"] = {"sharding.fluxcd.io/key": "shard2"}
    repo = repository("charts", ns, proxy.oci())
    repo["metadata"]["labels"] = {"sharding.fluxcd.io/key": "shard1"}
    cluster.kubectl.apply(repo, mine, theirs)
    port = procs.free_port()
    monkeypatch.setenv("CHARTGUARD_LOG_FORMAT", "json")
    monkeypatch.setenv("CHARTGUARD_HEALTH_PORT", str(port))
    monkeypatch.setenv("CHARTGUARD_SELECTOR", "sharding.fluxcd.io/key in (shard1)")
    operator.start()
    wait_for(lambda: cluster.condition("helmchart", ns, "mine", "Ready").get("status") == "True",
             "the labelled chart", operator=operator)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200

    time.sleep(1.0)
    # another shard's object: only the CRD's status default, set by the API server
    assert cluster.status("helmchart", ns, "theirs") == {"observedGeneration": -1}
    lines = [line for line in operator.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any("pulled 'mine' chart" in r.get("message", "") for r in records)

    assert operator.proc is not None
    started = time.monotonic()
    os.kill(operator.proc.pid, signal.SIGTERM)
    code = operator.proc.wait(timeout=10)
    assert code == 0
    assert time.monotonic() - started < 5

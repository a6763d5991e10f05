"""High availability: two ``chartguard run --peering`` processes on one API, of which only the
one of the higher priority reconciles; the other stands by (kopf's watches and chartguard's own
work queue paused), takes over when the first stops, and steps back when it returns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_support import EMULATOR_ONLY, Cluster, Operator, OperatorTarget, wait_for

from chartguard_testing import tools
from chartguard_testing.apiserver.kubectl import Kubectl

PEERING_CRDS = Path(tools.REPO_ROOT) / "deploy" / "chart" / "chartguard" / "files" / (
    "kopf-peering-crds.yaml")
PEERING = "chartguard-ha"
# the line the reconciling replica logs for the test's HelmChart on every attempt
RECONCILED = re.compile(r"HelmChart flux-system/podinfo: failed to get source: "
                        r"HelmRepository 'flux-system/absent' not found")


@pytest.fixture
def replicas(kube: OperatorTarget, tmp_path: Path) -> Iterator[dict[str, Operator]]:
    ops = {}
    for name in ("a", "b"):
        op = Operator(kube, tmp_path / name, args=("--peering", PEERING))
        op.workdir.mkdir()
        ops[name] = op
    yield ops
    for op in ops.values():
        if op.proc is not None and op.proc.poll() is None:
            op.stop()
        if op.log.exists():
            assert "Traceback" not in op.output(), op.output()[-6000:]


def reconciles(op: Operator) -> int:
    return len(RECONCILED.findall(op.output()))


def peers(kubectl: Kubectl) -> dict[str, dict[str, object]]:
    body = json.loads(kubectl("get", "clusterkopfpeering", PEERING, "-o", "json").stdout)
    status: dict[str, dict[str, object]] = body.get("status") or {}
    return status


@EMULATOR_ONLY
def test_one_replica_reconciles_the_other_stands_by_and_takes_over(
        kube: OperatorTarget, kubectl: Kubectl, cluster: Cluster,
        replicas: dict[str, Operator]) -> None:
    kubectl("apply", "-f", str(PEERING_CRDS))
    a, b = replicas["a"], replicas["b"]
    a.start("--peering-priority", "200")
    # no peering object yet: the operator creates it, then leads
    wait_for(lambda: "leads and reconciles" in a.output(), "a leads", operator=a)
    assert f"peering: created ClusterKopfPeering {PEERING}" in a.output()
    wait_for(lambda: any(p.get("priority") == 200 for p in peers(kubectl).values()),
             "a's keep-alive in the peering object", operator=a)
    b.start("--peering-priority", "100")
    wait_for(lambda: "stands by: replica" in b.output(), "b stands by", operator=b)
    assert re.search(r"stands by: replica \S+ \(priority 200\) reconciles", b.output())

    kubectl.apply({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
                   "metadata": {"name": "podinfo", "namespace": "flux-system"},
                   # a short interval: the failure's retries come every second, so a replica
                   # whose own queue ran on while standing by would show it
                   "spec": {"chart": "podinfo", "version": "*", "interval": "1s",
                            "sourceRef": {"kind": "HelmRepository", "name": "absent"}}})
    # a reconciles (the status is its) and retries; b, standing by, never does
    wait_for(lambda: cluster.condition("helmchart", "flux-system", "podinfo", "Ready")
             .get("reason") == "SourceUnavailable", "the HelmChart's status", operator=a)
    wait_for(lambda: reconciles(a) >= 3, "a's retries", operator=a)
    assert reconciles(b) == 0, b.output()[-4000:]

    # a stops cleanly: it leaves the peering object, b resumes (kopf and its queue) at once
    assert a.stop() == 0
    wait_for(lambda: "leads and reconciles" in b.output(), "b takes over", timeout=30,
             operator=b)
    assert "Resuming operations after the pause" in b.output()  # kopf's watches too
    wait_for(lambda: reconciles(b) >= 1, "b reconciles the HelmChart", operator=b)
    assert all(p.get("priority") != 200 for p in peers(kubectl).values())

    # a returns with its higher priority: b steps back and its queue goes quiet
    before = a.output()
    a.start("--peering-priority", "200")
    wait_for(lambda: a.output().count("leads and reconciles") > before.count(
        "leads and reconciles"), "a leads again", operator=a)
    wait_for(lambda: b.output().count("stands by") >= 2, "b stands by again", operator=b)
    assert "Pausing operations in favour of" in b.output()  # kopf paused its watches
    wait_for(lambda: reconciles(a) > len(RECONCILED.findall(before)) + 5,
             "a reconciles again", operator=a)
    log = b.output()
    after_pause = log[log.rindex("stands by"):]
    # at most a reconcile that was already running when b stood by
    assert len(RECONCILED.findall(after_pause)) <= 1, after_pause[-4000:]

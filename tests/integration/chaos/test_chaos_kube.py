"""The Kubernetes API misbehaves under a running operator: watches cut, stalled or expired
(410), status writes refused with 409 Conflict, bursts of 5xx/429, the API server stopped and
started again. Each test has a verified HelmChart and HelmRelease Ready first, then the fault,
then a change that must be reconciled without restarting the operator; the row it adds to the
chaos table measures helm's release history against the signed charts and what was kept."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from chaos_support import helm_records
from operator_support import Charts, Cluster, Operator, OperatorTarget, helmrelease, repository
from operator_support import secret as secret_body

from chartguard.operator.kube import RETRY_AFTER_MAX
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.chaos import NONE, unverified_installs

pytestmark = pytest.mark.chaos

VERIFY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
RELEASE, CHART = "app", "flux-system-app"  # the HelmChart a release in flux-system implies
#: how long a change may take once the fault is set (each costs the operator seconds at most)
CONVERGE = 30.0


@dataclass
class Scene:
    """A verified chart installed by a HelmRelease, and what the test changed since."""

    cluster: Cluster
    charts: Charts
    operator: Operator
    api: KubeAPI
    signed: list[bytes] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return self.cluster.ns

    def sign(self, version: str) -> None:
        pushed = self.charts.push("app", version)
        self.charts.sign_with_key(pushed, "good")
        self.signed.append(pushed.package.read_bytes())

    def patch_release(self, spec: dict[str, Any]) -> None:
        self.cluster.kubectl("patch", "helmrelease", "-n", self.ns, RELEASE, "--type", "merge",
                             "-p", json.dumps({"spec": spec}))

    def converged(self, version: str, values: dict[str, Any], what: str,
                  timeout: float = CONVERGE) -> None:
        """The release reconciled its latest generation and helm deployed ``version`` with
        ``values``: waited for, failing with the operator's log."""

        def done() -> bool:
            body = self.cluster.body("helmrelease", self.ns, RELEASE)
            ready = [c for c in body.get("status", {}).get("conditions", [])
                     if c["type"] == "Ready"]
            if not ready or ready[0]["status"] != "True" or ready[0].get(
                    "observedGeneration") != body["metadata"]["generation"]:
                return False
            newest = _newest(helm_records(self.cluster))
            return newest is not None and _summary(newest) == ("deployed", version, values)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.operator.proc is not None and self.operator.proc.poll() is not None:
                break
            if done():
                return
            time.sleep(0.25)
        newest = _newest(helm_records(self.cluster))
        ready = self.cluster.condition("helmrelease", self.ns, RELEASE, "Ready")
        raise AssertionError(f"{what}: not converged on {version} {values} in {timeout:.0f}s: "
                             f"Ready {ready}; newest revision "
                             f"{_summary(newest) if newest else None}\n"
                             f"--- operator log (tail) ---\n{self.operator.output()[-6000:]}")

    def lost(self, version: str, values: dict[str, Any]) -> str:
        """What is missing of the last verified artifact and the release (NONE: nothing)."""
        missing = []
        records = helm_records(self.cluster)
        pending = sorted(f"rev {r['version']} {r['info']['status']}" for r in records
                         if str(r["info"]["status"]).startswith("pending"))
        if pending:
            missing.append(f"release left {', '.join(pending)}")
        newest = _newest(records)
        if newest is None or _summary(newest) != ("deployed", version, values):
            missing.append(f"release not deployed at {version} with {values}: "
                           f"{_summary(newest) if newest else 'no revision'}")
        artifact = self.cluster.status("helmchart", self.ns, CHART).get("artifact") or {}
        if not str(artifact.get("revision", "")).startswith(f"{version}@"):
            missing.append(f"HelmChart artifact is {artifact.get('revision')!r}, not {version}")
        stored = self.operator.artifacts / str(artifact.get("path", "-"))
        if not stored.is_file():
            missing.append(f"artifact file {artifact.get('path')!r} missing")
        elif "sha256:" + hashlib.sha256(stored.read_bytes()).hexdigest() != artifact.get(
                "digest"):
            missing.append("artifact file does not match its digest")
        return "; ".join(missing) or NONE

    def unverified(self) -> list[str]:
        return unverified_installs(helm_records(self.cluster), self.signed)

    def log_has(self, *words: str) -> None:
        log = self.operator.output()
        for word in words:
            assert word in log, f"{word!r} not in the operator's log:\n{log[-6000:]}"


def _newest(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(records, key=lambda r: int(r["version"]), default=None)


def _summary(record: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (str(record["info"]["status"]), str(record["chart"]["metadata"]["version"]),
            record.get("config") or {})


@pytest.fixture
def scene(cluster: Cluster, charts: Charts, operator: Operator,
          kube: OperatorTarget) -> Scene:
    """HelmChart and HelmRelease (verify set) Ready on app 1.0.0, values ``{"count": 1}``."""
    assert isinstance(kube.api, KubeAPI)
    s = Scene(cluster, charts, operator, kube.api)
    s.sign("1.0.0")
    release = helmrelease(RELEASE, s.ns, "app", "charts", version="1.0.0", verify=VERIFY,
                          values={"count": 1})
    cluster.kubectl.apply(secret_body("cosign-pub", s.ns,
                                      {"cosign.pub": charts.key("good").public_pem}),
                          repository("charts", s.ns, charts.registry.oci()), release)
    operator.start()
    s.converged("1.0.0", {"count": 1}, "first install", timeout=60)
    assert cluster.condition("helmchart", s.ns, CHART, "Ready")["status"] == "True"
    return s


def test_watches_cut_mid_stream_resume_from_their_version(
        scene: Scene, chaos_row: Any) -> None:
    dropped = scene.api.faults.drop_watches()
    assert dropped >= 5  # kopf watches the three Flux kinds, Secrets and ConfigMaps
    scene.patch_release({"values": {"count": 2}})
    time.sleep(0.3)
    scene.api.faults.drop_watches()  # again, while the change is on its way
    scene.converged("1.0.0", {"count": 2}, "values change after the watches were cut")
    chaos_row("kube", "watch streams cut mid-stream (twice)",
              f"{dropped} watches resumed from their resourceVersion; values change upgraded",
              unverified=scene.unverified(), lost=scene.lost("1.0.0", {"count": 2}))


def test_a_change_missed_by_an_expired_watch_is_found_by_the_relisting(
        scene: Scene, chaos_row: Any) -> None:
    """410 Gone: what changed while the watches were stalled is beyond the (compacted)
    history; the re-listing must still reconcile it, a ConfigMap's change included."""
    ns = scene.ns
    scene.cluster.kubectl("create", "configmap", "app-values", "-n", ns,
                          "--from-literal=values.yaml=extra: 1")
    scene.patch_release({"valuesFrom": [{"kind": "ConfigMap", "name": "app-values"}]})
    scene.converged("1.0.0", {"count": 1, "extra": 1}, "valuesFrom added")
    assert scene.api.faults.stall_watches() >= 5
    scene.cluster.kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "app-values", "namespace": ns},
                                 "data": {"values.yaml": "extra: 2"}})
    scene.api.faults.compact()
    scene.api.faults.drop_watches()
    scene.converged("1.0.0", {"count": 1, "extra": 2}, "ConfigMap changed behind an expired watch")
    expired = scene.api.faults.delivered("expired")
    assert expired >= 1  # the watches really resumed into a 410 and listed again
    chaos_row("kube", "watches stalled, then 410 Expired",
              f"{expired} watches re-listed; ConfigMap changed unseen re-queued its release",
              unverified=scene.unverified(), lost=scene.lost("1.0.0", {"count": 1, "extra": 2}))


def test_status_writes_refused_with_409_are_redone_on_a_fresh_read(
        scene: Scene, chaos_row: Any) -> None:
    scene.sign("1.0.1")
    conflicts = 6  # more than one pass redoes at once: the pass is retried too
    scene.api.faults.conflict("helmcharts", conflicts)
    scene.api.faults.conflict("helmreleases", conflicts)
    scene.patch_release({"chart": {"spec": {"version": "1.0.1"}}})
    scene.converged("1.0.1", {"count": 1}, "new signed version under status conflicts")
    state = scene.api.faults.state()["delivered"]
    assert state.get("conflict helmcharts/status") == conflicts
    assert state.get("conflict helmreleases/status") == conflicts
    scene.log_has("409 Conflict", "fresh read")
    chaos_row("kube", f"409 Conflict x{conflicts}/kind, status writes",
              "re-read, re-patched at its resourceVersion, pass retried; 1.0.1 up",
              unverified=scene.unverified(), lost=scene.lost("1.0.1", {"count": 1}))


#: (code, method, path, client, Retry-After, how many, what the table calls them)
BURSTS = {
    "503": (503, "PATCH", r"/status$", "^chartguard", 1, 8, "status writes"),
    "500": (500, "", r"/apis/(source|helm)\.toolkit\.fluxcd\.io/", "^(chartguard|kopf)",
            None, 8, "Flux APIs, operator+kopf"),
    "429": (429, "", r"/api/v1/namespaces/[^/]+/secrets", "", 1, 6, "Secrets, +helm"),
}


@pytest.mark.parametrize("fault", sorted(BURSTS))
def test_bursts_of_server_errors_are_retried_with_backoff(
        scene: Scene, chaos_row: Any, fault: str) -> None:
    code, method, path, agent, retry_after, count, where = BURSTS[fault]
    scene.sign("1.0.1")
    scene.api.faults.errors(code, count, method=method, path=path, agent=agent,
                            retry_after=retry_after)
    started = time.monotonic()
    scene.patch_release({"chart": {"spec": {"version": "1.0.1"}}, "values": {"count": 3}})
    scene.converged("1.0.1", {"count": 3}, f"upgrade under {count}x {code}")
    took = time.monotonic() - started
    assert scene.api.faults.delivered(f"error {code}") == count  # all of them were met
    retries = [float(m) for m in re.findall(
        rf"Kubernetes API: [^\n]*: {code} [^\n]*; trying again in ([0-9.]+)s",
        scene.operator.output())]
    if "chartguard" in agent:
        assert retries, "the operator never retried"
    assert max(retries) <= RETRY_AFTER_MAX  # bounded, however often it failed
    if retry_after is not None:
        assert min(retries) >= retry_after  # Retry-After honoured
    chaos_row("kube", f"{code} x{count}" + (f" Retry-After {retry_after}" if retry_after
                                             else "") + f", {where}",
              f"retried: backoff+jitter{', >= Retry-After' if retry_after else ''}, "
              f"max {max(retries, default=0):.1f}s; upgraded in {took:.0f}s",
              unverified=scene.unverified(), lost=scene.lost("1.0.1", {"count": 3}))


def test_the_api_server_stopped_and_started_again_is_resumed_without_a_restart(
        scene: Scene, chaos_row: Any) -> None:
    scene.patch_release({"chart": {"spec": {"version": "1.x", "interval": "2s"}}})
    scene.converged("1.0.0", {"count": 1}, "chart interval shortened")
    pid = scene.operator.proc.pid if scene.operator.proc else None
    scene.api.stop_server()
    scene.sign("1.0.1")  # during the outage: the chart's next pass finds it
    time.sleep(4)
    scene.api.start_server()
    scene.patch_release({"values": {"count": 4}})  # and after it
    scene.converged("1.0.1", {"count": 4}, "changes during and after the outage")
    assert scene.operator.proc is not None
    assert scene.operator.proc.pid == pid
    assert scene.operator.proc.poll() is None  # never restarted
    chaos_row("kube", "API server stopped 4s, started again",
              "calls and passes retried, watches back; changes during+after applied",
              unverified=scene.unverified(), lost=scene.lost("1.0.1", {"count": 4}))


def test_the_api_server_stopped_in_the_middle_of_a_helm_upgrade(
        scene: Scene, chaos_row: Any) -> None:
    """helm wrote its pending-upgrade record, then the API went away: helm can record
    neither success nor failure. Once the server is back the release must not stay pending."""
    scene.patch_release({"upgrade": {"remediation": {"retries": 2}}})
    scene.converged("1.0.0", {"count": 1}, "remediation retries set")
    # hold helm's writes of the chart's Deployment back (a 429: client-go waits Retry-After)
    scene.api.faults.errors(429, 1, path=r"/deployments/", retry_after=3)
    scene.patch_release({"values": {"count": 5}})
    pending = f"{scene.api.url}/api/v1/namespaces/{scene.ns}/secrets?labelSelector=" \
              "owner%3Dhelm%2Cstatus%3Dpending-upgrade"
    deadline = time.monotonic() + CONVERGE
    while not requests.get(pending, timeout=5).json()["items"]:
        assert time.monotonic() < deadline, scene.operator.output()[-4000:]
        time.sleep(0.05)
    scene.api.stop_server()
    time.sleep(4)  # helm's held-back write finds no server
    scene.api.start_server()
    stuck = [r["version"] for r in helm_records(scene.cluster)
             if r["info"]["status"] == "pending-upgrade"]
    assert stuck, "helm recorded the cut upgrade's end after all: nothing was tested"
    scene.converged("1.0.0", {"count": 5}, "upgrade cut by the outage")
    after = {int(r["version"]): r["info"]["status"] for r in helm_records(scene.cluster)}
    chaos_row("kube", "API server stopped mid helm upgrade",
              f"pending rev {stuck[0]} now {after.get(int(stuck[0]))}; then "
              + ", ".join(f"rev {v} {after[v]}" for v in sorted(after) if v > int(stuck[0])),
              unverified=scene.unverified(), lost=scene.lost("1.0.0", {"count": 5}))

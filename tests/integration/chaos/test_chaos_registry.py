"""Registry faults under a running operator (``make chaos``, group "registry").

Each test puts the fault proxy (``chartguard_testing.faultproxy``) between ``chartguard run``
and a real registry, with a HelmChart ``app`` (chart app) and a HelmRelease ``web`` (chart web,
its own HelmChart ``flux-system-web``), both key-verified and Ready, the release installed by
real helm. Then, while the fault lasts: the HelmChart's FetchFailed (and Ready) names the fault
with Flux's reason, the HelmRelease is Ready=False (``SourceNotReady``) saying the same, the
last verified artifact and its file stay, helm's release is untouched (same revision, still
deployed). Once the fault is off the operator recovers by itself, without a restart: Ready
again, on the same artifact when nothing new was asked for (no new file in the store), or on
the newer version a blob fault held back, verified, never the altered bytes.

Faults on a chart's own blob need a download: those tests ask for a newer version (1.1.0,
pushed and signed) while the fault is on its layer, as a user raising the version would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from chaos_support import helm_records
from operator_support import (
    Charts,
    Cluster,
    Operator,
    helmchart,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard.oci import sha256_digest
from chartguard_testing.chaos import NONE, unverified_installs
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.faultproxy import FaultProxy
from chartguard_testing.registry import Registry
from chartguard_testing.sigstore_local import LocalSigstore

KEY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
INTERVAL = "2s"  # the charts' and the release's: the operator's backoff is capped by it
DEADLINE = 5  # seconds, --registry-deadline: the trickle ends within it
FLAGS = ("--registry-deadline", str(DEADLINE), "--registry-timeout", "3")
CHART, RELEASE = "app", "web"
RELEASE_CHART = f"flux-system-{RELEASE}"  # the HelmChart the HelmRelease owns
GROUP = "registry"

pytestmark = pytest.mark.chaos


@dataclass
class Scene:
    """The objects of one test, Ready before the fault, and what must survive it."""

    cluster: Cluster
    operator: Operator
    proxy: FaultProxy
    charts: Charts
    signed: list[bytes]
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by HelmChart
    revision: int = 0  # helm's last revision of the release
    stored: set[str] = field(default_factory=set)  # the store's files

    @property
    def ns(self) -> str:
        return self.cluster.ns

    def release_state(self) -> tuple[int, str, str]:
        """(revision, status, chart version) of helm's last record of the release."""
        records = [r for r in helm_records(self.cluster) if r.get("name") == RELEASE]
        if not records:
            return 0, "", ""
        last = max(records, key=lambda r: int(r["version"]))
        meta = (last.get("chart") or {}).get("metadata") or {}
        return int(last["version"]), str(last["info"]["status"]), str(meta.get("version"))

    def files(self) -> set[str]:
        return {p.name for p in (self.operator.artifacts / "sha256").iterdir()}

    def ready(self, kind: str, name: str) -> bool:
        return self.cluster.condition(kind, self.ns, name, "Ready").get("status") == "True"

    def wait_ready(self) -> float:
        """Both HelmCharts and the HelmRelease Ready; the seconds it took."""
        started = time.monotonic()
        for kind, name in (("helmchart", CHART), ("helmchart", RELEASE_CHART),
                           ("helmrelease", RELEASE)):
            wait_for(lambda k=kind, n=name: self.ready(k, n),  # type: ignore[misc]
                     f"{kind} {name} Ready", operator=self.operator)
        return time.monotonic() - started

    def remember(self) -> None:
        """What must survive the fault: artifacts, their files, helm's revision."""
        for name in (CHART, RELEASE_CHART):
            self.artifacts[name] = dict(self.cluster.status("helmchart", self.ns,
                                                            name)["artifact"])
        self.revision, status, _ = self.release_state()
        assert status == "deployed"
        self.stored = self.files()

    def chart_failed(self, reason: str, words: str, name: str = CHART) -> dict[str, Any]:
        """Wait until HelmChart ``name`` has FetchFailed=True with ``reason`` and ``words``
        (and Ready=False saying the same); return the FetchFailed condition."""
        def failed() -> bool:
            cond = self.cluster.condition("helmchart", self.ns, name, "FetchFailed")
            return (cond.get("status") == "True" and cond.get("reason") == reason
                    and words in cond.get("message", ""))
        wait_for(failed, f"HelmChart {name}: FetchFailed {reason} naming {words!r}",
                 operator=self.operator)
        cond = self.cluster.condition("helmchart", self.ns, name, "FetchFailed")
        ready = self.cluster.condition("helmchart", self.ns, name, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", reason), ready
        assert words in ready["message"]
        return cond

    def release_waiting(self, words: str) -> dict[str, Any]:
        """Wait until the HelmRelease is Ready=False saying ``words`` (its chart's fault)."""
        def waiting() -> bool:
            cond = self.cluster.condition("helmrelease", self.ns, RELEASE, "Ready")
            return cond.get("status") == "False" and words in cond.get("message", "")
        wait_for(waiting, f"HelmRelease {RELEASE} Ready=False naming {words!r}",
                 operator=self.operator)
        cond = self.cluster.condition("helmrelease", self.ns, RELEASE, "Ready")
        assert cond["reason"] == "SourceNotReady", cond  # helm-controller's reason
        return cond

    def kept(self) -> list[str]:
        """What of the last good state is missing now (empty: all held)."""
        lost = []
        for name, good in self.artifacts.items():
            now = self.cluster.status("helmchart", self.ns, name).get("artifact") or {}
            if (now.get("revision"), now.get("digest")) != (good["revision"], good["digest"]):
                lost.append(f"{name} artifact replaced by {now.get('revision')}")
            if not (self.operator.artifacts / good["path"]).is_file():
                lost.append(f"{name} artifact file {good['path']} gone")
        revision, status, _ = self.release_state()
        if (revision, status) != (self.revision, "deployed"):
            lost.append(f"release at revision {revision} {status or 'absent'}, not "
                        f"{self.revision} deployed")
        if self.files() != self.stored:
            lost.append(f"store changed: {sorted(self.files() ^ self.stored)}")
        return lost

    def hold(self, faulted: Callable[[], int], at_least: int = 2) -> list[str]:
        """Let the fault hit at least ``at_least`` more requests (retries, requeues), then
        say what of the last good state is missing."""
        before = faulted()
        wait_for(lambda: faulted() >= before + at_least, "the fault to last",
                 operator=self.operator)
        return self.kept()


def _setup(cluster: Cluster, operator: Operator, proxy: FaultProxy, charts: Charts,
           *extra: dict[str, Any], repo: dict[str, Any] | None = None) -> Scene:
    ns = cluster.ns
    signed = []
    for name in (CHART, RELEASE):
        pushed = charts.push(name, "1.0.0")
        charts.sign_with_key(pushed, "good")
        signed.append(pushed.package.read_bytes())
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("good").public_pem}), *extra,
        repo or repository("charts", ns, proxy.oci()),
        helmchart(CHART, ns, CHART, "1.0.0", "charts", KEY, interval=INTERVAL),
        helmrelease(RELEASE, ns, RELEASE, "charts", KEY, version="1.0.0", interval=INTERVAL))
    operator.start(*FLAGS)
    scene = Scene(cluster, operator, proxy, charts, signed)
    scene.wait_ready()
    scene.remember()
    return scene


def _recover(scene: Scene, proxy: FaultProxy) -> tuple[float, list[str]]:
    """Fault off; Ready again without a restart, on the same artifacts with no new file and
    the release untouched. The seconds it took, and what did not hold."""
    pid = scene.operator.proc.pid if scene.operator.proc else None
    proxy.clear()
    seconds = scene.wait_ready()
    assert scene.operator.proc is not None
    assert scene.operator.proc.pid == pid
    assert scene.operator.proc.poll() is None  # the same process: no restart
    lost = scene.kept()
    for name in (CHART, RELEASE_CHART):
        fetch = scene.cluster.condition("helmchart", scene.ns, name, "FetchFailed")
        assert fetch == {}, (name, fetch)  # failure conditions exist only while true
    return seconds, lost


def _lost(*problems: list[str]) -> str:
    found = [p for group in problems for p in group]
    return "; ".join(found) if found else NONE


@pytest.fixture
def faults(registry: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry)
    yield proxy
    proxy.close()


# -- faults on every request of the chart's resolution ----------------------------------------

MANIFEST = "/manifests/1.0.0"  # the HEAD an exact version costs, each interval


def test_a_503_burst_longer_than_the_retries_is_named_and_heals_by_itself(
        cluster: Cluster, charts: Charts, operator: Operator, faults: FaultProxy,
        chaos_row: Callable[..., None]) -> None:
    scene = _setup(cluster, operator, faults, charts)
    # a short burst is absorbed by the retries: nothing fails
    faults.burst(503, path=f"/{CHART}{MANIFEST}", times=2)
    stamp = cluster.request_reconcile("helmchart", cluster.ns, CHART)
    wait_for(lambda: cluster.status("helmchart", cluster.ns, CHART).get(
        "lastHandledReconcileAt") == stamp, "reconcile through a short burst", operator=operator)
    assert scene.ready("helmchart", CHART)
    assert cluster.condition("helmchart", cluster.ns, CHART, "FetchFailed") == {}
    assert len(faults.seen(MANIFEST, "burst")) == 2
    # a long one is named, and survived
    faults.burst(503, path=MANIFEST)
    cond = scene.chart_failed("ChartPullError", "(503) after retries")
    release = scene.release_waiting("(503) after retries")
    during = scene.hold(lambda: len(faults.seen(MANIFEST, "burst")), at_least=4)
    seconds, after = _recover(scene, faults)
    chaos_row(GROUP, "503 burst beyond the retries",
              f"{cond['reason']} '503 after retries', release {release['reason']}; "
              f"ok in {seconds:.0f}s",
              unverified=unverified_installs(helm_records(cluster), scene.signed),
              lost=_lost(during, after))


WAIT = 6  # seconds of Retry-After: longer than the deadline, so not waited within a pass


def test_429_retry_after_is_waited_within_a_pass_when_it_fits_and_honoured_across_passes(
        cluster: Cluster, charts: Charts, operator: Operator, faults: FaultProxy,
        chaos_row: Callable[..., None]) -> None:
    scene = _setup(cluster, operator, faults, charts)
    # 1 s fits the deadline: waited, then the request is sent again and the chart stays Ready
    path = f"/{CHART}{MANIFEST}"  # HelmChart app's alone: the release's chart is chart web
    faults.rate_limit(1, path=path, times=1)
    stamp = cluster.request_reconcile("helmchart", cluster.ns, CHART)
    wait_for(lambda: cluster.status("helmchart", cluster.ns, CHART).get(
        "lastHandledReconcileAt") == stamp, "reconcile through a 429", operator=operator)
    assert scene.ready("helmchart", CHART)
    seen = faults.seen(path)
    limited = next(n for n, r in enumerate(seen) if r.fault == "rate-limit")
    retried = seen[limited + 1]  # the same reconcile's next request: one pass per key at once
    assert retried.at - seen[limited].at >= 1.0, "Retry-After: 1 not waited"
    # 6 s does not fit the 5 s deadline: named at once, and honoured although both charts
    # come back every 2 s (their interval): no request for a chart reaches the registry
    # before the wait it was told is over, then it recovers
    since = time.monotonic()
    faults.rate_limit(WAIT, path=MANIFEST)
    words = f"asked to wait {WAIT:.1f} s (Retry-After)"
    cond = scene.chart_failed("ChartPullError", words)
    assert "rate limited chartguard" in cond["message"]
    scene.chart_failed("ChartPullError", words, RELEASE_CHART)
    scene.release_waiting(words)
    during = scene.hold(lambda: len(faults.seen(path, "rate-limit")), at_least=1)
    seconds, after = _recover(scene, faults)
    gaps = []
    for name in (CHART, RELEASE):  # every request of either chart (manifests, tags, blobs)
        asked = [r for r in faults.seen(f"/charts/{name}/") if r.at >= since]
        assert any(r.fault == "rate-limit" for r in asked), (name, asked)
        assert asked[-1].fault is None  # recovered: the registry's own answer
        for limited_at, next_at in ((r.at, n.at) for r, n in itertools.pairwise(asked)
                                    if r.fault == "rate-limit"):
            assert next_at - limited_at >= WAIT, (
                f"chart {name} asked again {next_at - limited_at:.2f} s after a 429 that "
                f"said wait {WAIT} s")
            gaps.append(next_at - limited_at)
    chaos_row(GROUP, f"429 Retry-After: 1 s, then {WAIT} s",
              f"1s waited; {WAIT}s: {cond['reason']}, no ask for {min(gaps):.1f}s after "
              f"429; ok in {seconds:.0f}s",
              unverified=unverified_installs(helm_records(cluster), scene.signed),
              lost=_lost(during, after))


def test_a_redirect_loop_is_too_many_redirects_and_heals_by_itself(
        cluster: Cluster, charts: Charts, operator: Operator, faults: FaultProxy,
        chaos_row: Callable[..., None]) -> None:
    scene = _setup(cluster, operator, faults, charts)
    faults.redirect_loop(path=MANIFEST)  # to itself
    cond = scene.chart_failed("ChartPullError", "too many redirects")
    release = scene.release_waiting("too many redirects")
    during = scene.kept()
    # between two paths
    faults.clear()
    via = f"/v2/charts/{CHART}/manifests/elsewhere"
    faults.redirect_loop(path=f"/{CHART}{MANIFEST}", via=via)
    stamp = cluster.request_reconcile("helmchart", cluster.ns, CHART)
    wait_for(lambda: cluster.status("helmchart", cluster.ns, CHART).get(
        "lastHandledReconcileAt") == stamp, "reconcile in a two-path loop", operator=operator)
    assert faults.seen(via, "redirect")
    scene.chart_failed("ChartPullError", "too many redirects")
    during += scene.kept()
    seconds, after = _recover(scene, faults)
    chaos_row(GROUP, "redirect loop (to itself, via a 2nd path)",
              f"{cond['reason']} 'too many redirects', release {release['reason']}; "
              f"ok in {seconds:.0f}s",
              unverified=unverified_installs(helm_records(cluster), scene.signed),
              lost=_lost(during, after))


def test_credentials_accepted_then_refused_is_an_authentication_failure(
        cluster: Cluster, auth_registry: Registry, helm_env: HelmEnv, sigstore: LocalSigstore,
        operator: Operator, chaos_row: Callable[..., None]) -> None:
    ns = cluster.ns
    charts = Charts(auth_registry, helm_env, sigstore)
    proxy = FaultProxy(auth_registry)
    try:
        assert auth_registry.username is not None
        assert auth_registry.password is not None
        scene = _setup(
            cluster, operator, proxy, charts,
            secret("creds", ns, {"username": auth_registry.username.encode(),
                                 "password": auth_registry.password.encode()}),
            repo=repository("charts", ns, proxy.oci(), secretRef={"name": "creds"}))
        proxy.refuse_auth()
        cond = scene.chart_failed("AuthenticationFailed", "refused user 'chartguard'")
        scene.chart_failed("AuthenticationFailed", "refused user 'chartguard'", RELEASE_CHART)
        release = scene.release_waiting("refused user 'chartguard'")
        during = scene.hold(lambda: len(proxy.seen("", "refuse-auth")))
        seconds, after = _recover(scene, proxy)
        shown = operator.output() + str(cluster.body("helmchart", ns, CHART))
        assert auth_registry.password not in shown
        chaos_row(GROUP, "credentials accepted, then refused",
                  f"{cond['reason']} 'refused user', release {release['reason']}; "
                  f"ok in {seconds:.0f}s",
                  unverified=unverified_installs(helm_records(cluster), scene.signed),
                  lost=_lost(during, after))
    finally:
        proxy.close()


# -- faults on the blob of a newer version ----------------------------------------------------

BLOB_FAULTS = {
    # case: (fault on a layer, words of the condition, table gist)
    "reset": (lambda proxy, layer: proxy.reset_body(path=layer, after=200),
              "the connection to the registry broke", "connection broke"),
    "trickle": (lambda proxy, layer: proxy.trickle(path=layer, interval=1.0),
                f"did not finish within {DEADLINE} s", f"{DEADLINE}s deadline"),
    "swap": (lambda proxy, layer: proxy.swap_bytes(path=layer),
             "(digest mismatch)", "digest mismatch"),
}
BLOB_CASES = {
    "reset": "connection reset mid-blob",
    "trickle": "blob trickled at 1 byte/s",
    "swap": "bytes swapped in a newer blob",
}


def _newer(scene: Scene, proxy: FaultProxy,
           fault: Callable[[FaultProxy, str], None]) -> list[str]:
    """Version 1.1.0 of both charts, signed, its layers faulted before anyone can fetch
    them; then the HelmChart and the HelmRelease ask for it. The layers' digests."""
    ns = scene.ns
    layers = []
    helm, registry = scene.charts.helm, scene.charts.registry
    for name in (CHART, RELEASE):
        package = helm.package(helm.create(name, "1.1.0"))
        layer = sha256_digest(package.read_bytes())  # helm pushes the .tgz as it is
        fault(proxy, layer)
        layers.append(layer)
        pushed = PushedChart(name=name, version="1.1.0", digest=helm.push(package, registry),
                             package=package, repository=f"{registry.host}/charts/{name}",
                             url=registry.oci())
        scene.charts.sign_with_key(pushed, "good")
        scene.signed.append(package.read_bytes())
    scene.cluster.kubectl("patch", "helmchart", "-n", ns, CHART, "--type", "merge", "-p",
                          '{"spec": {"version": "1.1.0"}}')
    scene.cluster.kubectl("patch", "helmrelease", "-n", ns, RELEASE, "--type", "merge", "-p",
                          '{"spec": {"chart": {"spec": {"version": "1.1.0"}}}}')
    return layers


@pytest.mark.parametrize("case", list(BLOB_FAULTS))
def test_a_blob_fault_holds_back_the_newer_version_and_heals_by_itself(
        case: str, cluster: Cluster, charts: Charts, operator: Operator, faults: FaultProxy,
        chaos_row: Callable[..., None]) -> None:
    fault, words, gist = BLOB_FAULTS[case]
    scene = _setup(cluster, operator, faults, charts)
    layers = _newer(scene, faults, fault)
    cond = scene.chart_failed("ChartPullError", words)
    scene.chart_failed("ChartPullError", words, RELEASE_CHART)
    scene.release_waiting(words)
    during = scene.hold(lambda: sum(len([r for r in faults.seen(layer) if r.fault])
                                    for layer in layers))
    # the newer version was never installed while its bytes could not be had whole
    revision, _, version = scene.release_state()
    assert (revision, version) == (scene.revision, "1.0.0")
    faults.clear()
    started = time.monotonic()
    wait_for(lambda: scene.release_state()[1:] == ("deployed", "1.1.0") and scene.ready(
        "helmrelease", RELEASE), "the newer version installed", operator=operator)
    for name in (CHART, RELEASE_CHART):
        wait_for(lambda n=name: scene.ready("helmchart", n) and cluster.revision(  # type: ignore[misc]
            cluster.ns, n).startswith("1.1.0@"), f"{name} on 1.1.0", operator=operator)
        artifact = cluster.status("helmchart", cluster.ns, name)["artifact"]
        assert artifact["digest"] in layers
        assert (operator.artifacts / artifact["path"]).is_file()
    seconds = time.monotonic() - started
    revision, status, _ = scene.release_state()
    assert (revision, status) == (scene.revision + 1, "deployed")
    assert operator.proc is not None
    assert operator.proc.poll() is None
    chaos_row(GROUP, BLOB_CASES[case],
              f"{cond['reason']} '{gist}', 1.0.0 kept; 1.1.0 installed in {seconds:.0f}s",
              unverified=unverified_installs(helm_records(cluster), scene.signed),
              lost=_lost(during))

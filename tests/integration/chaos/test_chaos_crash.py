"""Crash consistency: ``chartguard run`` SIGKILLed with its helm processes (its whole process
group, as a pod kill does) at random moments while HelmReleases are installed, upgraded (new
signed chart versions, values changes) and deleted, HelmCharts created and deleted, and
unsigned or wrongly signed versions pushed and asked for; restarted after each kill.

At the end it has converged: every HelmRelease Ready at the version and values last asked for
(helm's record deployed, the ConfigMap its chart makes saying so), no record left pending-*
(the operator unlocks them, as helm-controller does), deleted releases uninstalled and their
objects gone, the artifact store holding only whole archives named by their sha256, and no
revision helm ever recorded (read after every kill, so uninstalled ones count too) of a chart
that was not signed with the trusted key.

Kill moments come from a seeded random (printed; ``CHARTGUARD_CHAOS_SEED`` replays a run),
aimed at a running helm, a chart download under way (the registry is behind a proxy that makes
each blob take half a second) or any moment.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_support import (
    SlowBlobProxy,
    SlowRelay,
    helm_records,
    store_problems,
)
from operator_support import (
    Charts,
    Cluster,
    Operator,
    OperatorTarget,
    helmchart,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard_testing import procs, tools
from chartguard_testing.chaos import NONE, record_fingerprint, unverified_installs
from chartguard_testing.charts import PushedChart
from chartguard_testing.registry import Registry

REPO = "charts"
VERIFY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
RELEASES = ("alpha", "beta", "gamma")
TEMPLATE = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
data:
  greeting: {{ .Values.greeting | quote }}
  version: {{ .Chart.Version | quote }}
"""
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
UP = "Initial authentication has finished"  # kopf's, once the operator is up


@pytest.fixture
def slow_proxy(registry: Registry) -> Iterator[SlowBlobProxy]:
    proxy = SlowBlobProxy(registry, delay=0.5)
    yield proxy
    proxy.close()


@pytest.fixture
def slow_helm(kube: OperatorTarget, tmp_path: Path) -> Iterator[str]:
    """helm as the operator runs it, but talking to the API server through a relay that
    delays each request: its records stay pending long enough to be killed in."""
    config = yaml.safe_load(kube.kubeconfig.read_text())
    server = urllib.parse.urlsplit(config["clusters"][0]["cluster"]["server"])
    relay = SlowRelay(server.netloc, delay=0.1)
    slow_config = relay.kubeconfig(kube.kubeconfig, tmp_path / "slow-kubeconfig")
    wrapper = tmp_path / "helm-slow-api"
    wrapper.write_text(f"#!/bin/sh\nKUBECONFIG={shlex.quote(str(slow_config))}\n"
                       f"export KUBECONFIG\nexec {shlex.quote(tools.helm())} \"$@\"\n")
    wrapper.chmod(0o755)
    yield str(wrapper)
    relay.close()


@dataclass
class Workload:
    """What the test asks of the cluster, and what it therefore expects at the end."""

    rng: random.Random
    cluster: Cluster
    charts: Charts
    src: Path
    url: str
    archives: list[bytes] = field(default_factory=list)  # every chart signed with the key
    signed: dict[str, list[str]] = field(default_factory=dict)  # chart -> signed versions
    live: dict[str, tuple[str, str]] = field(default_factory=dict)  # release -> want
    bad: dict[str, str] = field(default_factory=dict)  # release -> unverifiable version
    deleted: set[str] = field(default_factory=set)
    helmcharts: dict[str, str] = field(default_factory=dict)  # HelmChart -> version
    deleted_charts: set[str] = field(default_factory=set)
    pushed: int = 0
    done: list[str] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return self.cluster.ns

    def push(self, name: str, version: str, signer: str | None) -> PushedChart:
        """A small chart (one ConfigMap) pushed by helm, signed by ``signer`` or not."""
        self.pushed += 1
        root = self.src / f"{self.pushed}" / name
        (root / "templates").mkdir(parents=True)
        (root / "Chart.yaml").write_text(yaml.safe_dump(
            {"apiVersion": "v2", "name": name, "version": version}))
        (root / "values.yaml").write_text("greeting: hello\n")
        (root / "templates" / "cm.yaml").write_bytes(TEMPLATE)
        helm = self.charts.helm
        package = helm.package(root)
        digest = helm.push(package, self.charts.registry)
        chart = PushedChart(name=name, version=version, digest=digest, package=package,
                            repository=f"{self.charts.registry.host}/{REPO}/{name}",
                            url=self.charts.registry.oci())
        if signer is not None:
            self.charts.sign_with_key(chart, signer)
        if signer == "trusted":
            self.archives.append(package.read_bytes())
            self.signed.setdefault(name, []).append(version)
        return chart

    def new_signed(self, name: str) -> str:
        versions = self.signed.get(name, [])
        version = f"0.1.{len(versions)}"
        self.push(name, version, "trusted")
        return version

    def apply_release(self, name: str) -> None:
        version, greeting = self.live[name]
        version = self.bad.get(name, version)
        self.cluster.kubectl.apply(helmrelease(
            name, self.ns, name, REPO, VERIFY, version=version, interval="1m",
            releaseName=name, targetNamespace=self.ns, values={"greeting": greeting}))

    def exists(self, kind: str, name: str) -> bool:
        out = self.cluster.kubectl("get", kind, "-n", self.ns, "-o", "json").stdout
        return any(i["metadata"]["name"] == name for i in json.loads(out)["items"])

    # -- the steps -------------------------------------------------------------------------

    def step(self) -> None:
        """One change, picked at random among those that make sense now."""
        steps = [(self.upgrade_chart, 3), (self.change_values, 3)]
        if len(self.live) > 1:
            steps.append((self.delete_release, 1))
        if self.deleted:
            steps.append((self.recreate_release, 2))
        if self.live:
            steps.append((self.ask_unverifiable, 1))
        steps.append((self.churn_helmchart, 1))
        run = self.rng.choices([s for s, _ in steps], weights=[w for _, w in steps])[0]
        self.done.append(run())

    def _pick_live(self) -> str:
        return self.rng.choice(sorted(self.live))

    def upgrade_chart(self) -> str:
        if not self.live:
            return self.recreate_release()
        name = self._pick_live()
        version = self.new_signed(name)
        self.bad.pop(name, None)
        self.live[name] = (version, self.live[name][1])
        self.apply_release(name)
        return f"upgrade {name} to {version}"

    def change_values(self) -> str:
        if not self.live:
            return self.recreate_release()
        name = self._pick_live()
        greeting = f"hello-{self.rng.randrange(10**6)}"
        self.bad.pop(name, None)
        self.live[name] = (self.live[name][0], greeting)
        self.apply_release(name)
        return f"values of {name}"

    def delete_release(self) -> str:
        name = self._pick_live()
        self.cluster.kubectl("delete", "helmrelease", "-n", self.ns, name, "--wait=false")
        del self.live[name]
        self.bad.pop(name, None)
        self.deleted.add(name)
        return f"delete {name}"

    def recreate_release(self) -> str:
        # a release still being finalized (the operator was killed first) cannot be created
        ready = sorted(n for n in self.deleted if not self.exists("helmrelease", n))
        if not ready:
            return "nothing (deleted releases still finalizing)"
        name = self.rng.choice(ready)
        self.deleted.discard(name)
        self.live[name] = (self.rng.choice(self.signed[name]), "hello-again")
        self.apply_release(name)
        return f"reinstall {name}"

    def ask_unverifiable(self) -> str:
        """An unsigned or wrongly signed version is pushed and the release asks for it: the
        operator must refuse it and keep what runs."""
        name = self._pick_live()
        signer = self.rng.choice([None, "intruder"])
        version = f"0.9.{self.pushed}"
        self.push(name, version, signer)
        self.bad[name] = version
        self.apply_release(name)
        return f"{name} asks for {'unsigned' if signer is None else 'wrongly signed'} {version}"

    def churn_helmchart(self) -> str:
        alive = sorted(self.helmcharts)
        if alive and (len(alive) >= 2 or self.rng.random() < 0.4):
            name = self.rng.choice(alive)
            self.cluster.kubectl("delete", "helmchart", "-n", self.ns, name, "--wait=false")
            del self.helmcharts[name]
            self.deleted_charts.add(name)
            return f"delete HelmChart {name}"
        # a fresh name each time: a name reused while its deleted object still terminates
        # (finalizer, --wait=false) would be applied onto the object going away
        name = f"solo-{len(self.helmcharts) + len(self.deleted_charts)}"
        chart = self.rng.choice(RELEASES)
        version = self.rng.choice(self.signed[chart])
        self.helmcharts[name] = version
        self.cluster.kubectl.apply(helmchart(name, self.ns, chart, version, REPO, VERIFY,
                                             interval="1m"))
        return f"HelmChart {name} ({chart}@{version})"

    def settle(self) -> None:
        """Every release asks for a signed version again (what the end must converge to)."""
        for name in list(self.bad):
            del self.bad[name]
            self.apply_release(name)


# -- reading the outcome ------------------------------------------------------------------------


def _items(cluster: Cluster, kind: str) -> dict[str, dict[str, Any]]:
    out = cluster.kubectl("get", kind, "-n", cluster.ns, "-o", "json").stdout
    return {i["metadata"]["name"]: i for i in json.loads(out)["items"]}


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    gen = obj["metadata"].get("generation")
    return status.get("observedGeneration") == gen and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        and c.get("observedGeneration", gen) == gen for c in status.get("conditions", []))


def unconverged(work: Workload) -> list[str]:
    """What is not yet as the workload asked (empty: converged)."""
    cluster, wrong = work.cluster, []
    releases = _items(cluster, "helmreleases")
    charts = _items(cluster, "helmcharts")
    maps = {n: i.get("data") or {} for n, i in _items(cluster, "configmaps").items()}
    records: dict[str, list[dict[str, Any]]] = {}
    for record in helm_records(cluster):
        records.setdefault(record["name"], []).append(record)
    for name, rs in records.items():
        for r in rs:
            if r["info"]["status"] in PENDING:
                wrong.append(f"{name} rev {r['version']} {r['info']['status']}")
    for name, (version, greeting) in work.live.items():
        obj = releases.get(name)
        if obj is None or not _ready(obj):
            wrong.append(f"HelmRelease {name} not Ready")
            continue
        history = (obj.get("status") or {}).get("history") or [{}]
        if history[0].get("chartVersion") != version:
            wrong.append(f"HelmRelease {name} at {history[0].get('chartVersion')}, "
                         f"not {version}")
        newest = max(records.get(name, []), key=lambda r: r["version"], default=None)
        if newest is None or newest["info"]["status"] != "deployed" or (
                newest["chart"]["metadata"]["version"] != version):
            wrong.append(f"helm's newest record of {name} is not {version} deployed")
        if maps.get(f"{name}-cm") != {"greeting": greeting, "version": version}:
            wrong.append(f"ConfigMap {name}-cm is {maps.get(f'{name}-cm')}")
    for name in work.deleted:
        if name in releases:
            wrong.append(f"deleted HelmRelease {name} still there")
        if name in records:
            wrong.append(f"deleted release {name} still in helm's storage")
        if f"{name}-cm" in maps:
            wrong.append(f"deleted release {name}'s ConfigMap still there")
        if f"{cluster.ns}-{name}" in charts:
            wrong.append(f"deleted release {name}'s HelmChart still there")
    for name, version in work.helmcharts.items():
        obj = charts.get(name)
        artifact = ((obj or {}).get("status") or {}).get("artifact") or {}
        if obj is None or not _ready(obj) or (
                str(artifact.get("revision", "")).partition("@")[0] != version):
            wrong.append(f"HelmChart {name} not Ready at {version}")
    for name in work.deleted_charts:
        if name in charts:
            wrong.append(f"deleted HelmChart {name} still there")
    return wrong


def pending(cluster: Cluster) -> list[str]:
    """helm's records in a pending-* state now (names of their Secrets)."""
    out = cluster.kubectl("get", "secrets", "-n", cluster.ns, "-o", "name", "-l",
                          f"owner=helm,status in ({','.join(PENDING)})").stdout
    return out.split()


def lost(work: Workload, operator: Operator) -> str:
    """What of the last verified artifacts and the running releases is missing."""
    missing = []
    charts = _items(work.cluster, "helmcharts")
    for name in work.live:
        chart = charts.get(f"{work.ns}-{name}")
        digest = ((chart or {}).get("status") or {}).get("artifact", {}).get("digest", "")
        path = operator.artifacts / "sha256" / f"{digest.partition(':')[2]}.tgz"
        if not digest or not path.is_file():
            missing.append(f"{name}'s verified artifact")
    missing += unconverged(work)
    return NONE if not missing else "; ".join(missing)


# -- the run -------------------------------------------------------------------------------------


def crash_run(kills: int, cluster: Cluster, charts: Charts, operator: Operator,
              proxy: SlowBlobProxy, helm: str, tmp_path: Path) -> tuple[str, list[str], str]:
    """The workload with ``kills`` SIGKILLs; (what the operator did, unverified, lost)."""
    seed = int(os.environ.get("CHARTGUARD_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash chaos seed: {seed} (CHARTGUARD_CHAOS_SEED={seed} replays it)")
    rng = random.Random(seed)
    started = time.monotonic()
    ns = cluster.ns
    work = Workload(rng, cluster, charts, tmp_path / "chart-src", proxy.oci())
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("trusted").public_pem}),
        repository(REPO, ns, proxy.oci(), interval="1m"))
    for name in RELEASES:
        work.live[name] = (work.new_signed(name), "hello")
        work.apply_release(name)

    landed = {"helm": 0, "pending": 0, "download": 0, "other": 0}
    seen: dict[tuple[str, int, str], dict[str, Any]] = {}
    leftovers = 0
    for n in range(kills):
        ups = operator.output().count(UP) if operator.log.exists() else 0
        operator.start(own_group=True, helm=helm)
        assert operator.proc is not None
        group = operator.proc.pid
        for _ in range(rng.randint(1, 2)):
            work.step()
        aim = rng.choices(["helm", "pending", "download", "any", "start-up"],
                          weights=[3, 3, 2, 2, 1])[0]
        if aim != "start-up":  # else: while it starts (reads, lists, the store's clean-up)
            wait_for(lambda u=ups: operator.output().count(UP) > u,  # type: ignore[misc]
                     "the operator up", timeout=30, operator=operator)
        window = {"any": rng.uniform(0.2, 5.0), "start-up": rng.uniform(0.2, 2.0),
                  "download": 2.5}.get(aim, 4.0)
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            if aim == "helm" and "helm" in procs.group_processes(group).values():
                time.sleep(rng.uniform(0.1, 1.2))
                break
            if aim == "pending" and pending(cluster):
                break
            if aim == "download" and proxy.in_flight:
                time.sleep(rng.uniform(0, 0.3))
                break
            time.sleep(0.02)
        running = procs.group_processes(group).values()
        what = "helm" if "helm" in running else "download" if proxy.in_flight else "other"
        landed[what] += 1
        if what == "helm" and (locked := pending(cluster)):
            landed["pending"] += 1
            print("pending at kill:", locked)
        assert operator.proc.poll() is None, operator.output()[-4000:]
        operator.kill_group()
        procs.wait_until(lambda g=group: procs.group_processes(g) == {}, timeout=10,  # type: ignore[misc]
                         what="the operator's process group gone")
        leftovers += len(list((operator.artifacts / "sha256").glob(".tmp-*")))
        # every archive in the store is whole (a temporary may be left: the restart removes it)
        broken = [p for p in store_problems(operator.artifacts) if "/.tmp-" not in p]
        assert not broken, f"after kill {n + 1}: {broken}"
        for record in helm_records(cluster):
            seen[(record["name"], record["version"], record_fingerprint(record))] = record
        print(f"kill {n + 1}: {what} ({aim}) after {', '.join(work.done[-2:])}")

    work.settle()
    restarted = time.monotonic()
    last = operator.start(own_group=True, helm=helm).proc
    assert last is not None
    deadline = time.monotonic() + 100
    while (wrong := unconverged(work)) and time.monotonic() < deadline:
        assert last.poll() is None, operator.output()[-4000:]
        time.sleep(0.5)
    assert not wrong, f"not converged (seed {seed}): {wrong}\n{operator.output()[-6000:]}"
    converged = time.monotonic() - restarted
    print(f"whole run {time.monotonic() - started:.0f}s")
    for record in helm_records(cluster):
        seen[(record["name"], record["version"], record_fingerprint(record))] = record
    problems = store_problems(operator.artifacts)
    operator.stop()
    problems += store_problems(operator.artifacts)

    log = operator.output()
    removed = sum(int(m) for m in re.findall(r"removed (\d+) temporary file", log))
    workdirs = sum(int(m) for m in re.findall(r"removed (\d+) work director", log))
    # what was unlocked: helm's records say so (an Event may be lost to the next kill: the
    # operator posts a reconcile's Events when it ends, after the upgrade the unlock leads to)
    unlocked_revisions = {(r["name"], r["version"]) for r in seen.values()
                          if str(r["info"].get("description", "")).startswith(
                              "Release unlocked from stale")}
    for event in cluster.events(ns):
        found = re.match(r"Unlocked Helm release [^/]+/(\S+)\.v(\d+) ", event.get("message", ""))
        if event.get("reason") == "PendingRelease" and found:
            unlocked_revisions.add((found[1], int(found[2])))
    unlocked = len(unlocked_revisions)
    unverified = unverified_installs(list(seen.values()), work.archives)
    missing = lost(work, operator)
    if problems:
        missing = "; ".join([*problems, *([] if missing == NONE else [missing])])
    did = (f"unlocked {unlocked} pending release(s), removed {removed} partial store "
           f"file(s) (of {leftovers} left by kills) and {workdirs} helm work dir(s) at "
           f"restarts; {kills} SIGKILLs "
           f"({landed['helm']} mid-helm, {landed['pending']} with a record pending, "
           f"{landed['download']} mid-download, {landed['other']} elsewhere); converged "
           f"{converged:.0f}s after the last restart ({len(work.live)} Ready, "
           f"{len(work.deleted)} uninstalled, {len(work.helmcharts)} HelmCharts); "
           f"{len(seen)} helm revisions checked")
    print(did)
    return did, unverified, missing


@pytest.mark.chaos
@pytest.mark.timeout(480)
def test_an_operator_sigkilled_20_times_during_a_workload_converges(
        cluster: Cluster, charts: Charts, operator: Operator, slow_proxy: SlowBlobProxy,
        slow_helm: str, tmp_path: Path, chaos_row: Any) -> None:
    did, unverified, missing = crash_run(22, cluster, charts, operator, slow_proxy, slow_helm,
                                         tmp_path)
    chaos_row("crash", "SIGKILL x 22 during installs/upgrades/deletes", did,
              unverified=unverified, lost=missing)


@pytest.mark.chaos
@pytest.mark.timeout(480)
@pytest.mark.parametrize("kube", [pytest.param("real", marks=pytest.mark.xdist_group(
    "controlplane"))], indirect=True)
def test_an_operator_sigkilled_on_the_real_control_plane_converges(
        kube: OperatorTarget, cluster: Cluster, charts: Charts, operator: Operator,
        slow_proxy: SlowBlobProxy, slow_helm: str, tmp_path: Path, chaos_row: Any) -> None:
    """Fewer kills: helm's records and the unlock's rewrite go through a real API server."""
    did, unverified, missing = crash_run(8, cluster, charts, operator, slow_proxy, slow_helm,
                                         tmp_path)
    chaos_row("crash", "SIGKILL x 8 during installs/upgrades/deletes (real API server)", did,
              unverified=unverified, lost=missing)

"""The soak (`make soak`): one operator holding 1,000 HelmCharts and 1,000 HelmReleases for 30
intervals after all of them are Ready. Does it grow, and what does the steady state cost?

Real components on this machine: Debian's docker-registry with the charts pushed and signed
(`chartguard_testing.bulk_charts`: each chart its own repository, layer, manifest digest and
cosign key signature), reached ONLY through a counting proxy (`CountingProxy`, first sync
included); the Kubernetes API emulator (test equipment; `--kube real` for the real control
plane: kube-apiserver, etcd, controller-manager, scheduler and kwok, a Node per 100 releases);
kubectl applying the objects; the real helm 4; and `chartguard run` as its own process, given a
helm wrapper that records every helm process it starts and serving /metrics (scraped once per
interval, as Prometheus would).

The objects (namespace `soak`, one HelmRepository, one cosign public-key Secret):

- `--releases` R HelmReleases (default 1,000), each installing a chart of its own
  (`c0000` ...) with the blog's `verify` block, so each implies a HelmChart of its own;
- `--charts` N HelmCharts in all (default 1,000): the R the releases imply, plus N - R
  standalone HelmCharts (`s...`, charts `cR` ...) when N > R;
- every object at `spec.interval` = `--interval` (default 30 s: harsher than Flux's usual
  1m-10m, so 30 intervals fit in 15 minutes), the HelmRepository at 10m.

Once every HelmRelease is Ready and every HelmChart SourceVerified, one warm-up interval passes
(every object is reconciled at least once more), then `--intervals` (default 30) intervals are
measured. At the end of each, the operator process is sampled: RSS (/proc/PID/status VmRSS),
open file descriptors (/proc/PID/fd), threads (/proc/PID/status Threads), CPU seconds
(/proc/PID/stat utime+stime, and cutime+cstime: the helm processes it has reaped), the
registry requests the proxy saw (and how many were blob downloads), the helm processes the
wrapper recorded, and the reconciles /metrics counted by kind. RSS, fds and threads are also
polled every second for the interval's maximum.

Verdicts (exit 1 when any fails, so this is a check, not only a figure):

- RSS: GROWTH when each of the last 3 interval-end samples exceeds interval 1's by more than
  max(8 MiB, 5%) (`--rss-slack-mib`, `--rss-slack-pct`); fds and threads: GROWTH on any
  sustained increase of the interval's floor (the lowest of its 1 s polls: a connection in
  flight at a sample is not a leak, a leaked fd raises the floor for good), each of the last 3
  above interval 1's. With fewer intervals, the last ones that exist.
- helm processes per unchanged release per interval: must be 0 (the releases never change).

Side by side, in the same run with the operator still up: a `helm pull` + `chartguard verify`
loop doing what Flux's source-controller would without chartguard's caching (each chart pulled
and verified once per interval), through a second counting proxy in front of the same
registry, over a sample (`--loop-charts` 50 charts for `--loop-intervals` 3 rounds), its CPU
(helm and chartguard processes, from getrusage of our children) and requests per chart per
interval, scaled to N charts (the output says it is scaled).

Exit codes: 0 all OK, 1 a verdict failed (GROWTH, helm processes in the steady state, objects
no longer Ready at the end), 2 the setup never got every object Ready.

What it costs (2-core machine, default scale): 30 to 45 minutes, by the other load. Two runs
here with others' tests beside them: 42 minutes at load 4 to 25 (pushing and signing the 1,000
charts 101 s, installing the 1,000 releases 713 s with helm's CPU 8 at once, warm-up and 30
intervals 15.5 minutes, the loop's 150 pulls + verifications 10 minutes at 4 s each) and 30
minutes at load 1 to 16 (64 s, 582 s, 15.5 minutes, 3 minutes at 1.2 s each). Memory: ~180 MiB
for the operator, plus the emulator and the registry.

Reading the table: RSS moves by a few MiB between intervals and comes back down (transient
allocations of reconciles, kept a while and then returned by the allocator: 173 to 180
to 175 MiB in one run, 177 to 186 to 179 in the other); a leak does not come back down, which
is why the verdict wants the last 3 intervals all above interval 1.

Quick mode: `--charts 20 --releases 20 --intervals 3 --interval 5` (about a minute).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from chartguard_testing import cosign_signer as cs
from chartguard_testing import procs, tools
from chartguard_testing.apiserver import run_apiserver
from chartguard_testing.bulk_charts import push_signed_charts
from chartguard_testing.charts import HelmEnv
from chartguard_testing.controlplane import run_controlplane
from chartguard_testing.helm_calls import HelmCalls
from chartguard_testing.proxy import CountingProxy
from chartguard_testing.registry import Registry, run_registry
from chartguard_testing.scrape import Samples, scrape

NS = "soak"
CHARTGUARD = str(Path(sys.executable).with_name("chartguard"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
INSTALLED = "Helm install succeeded for release"
PULLED = "pulled 'c"
#: how many of the last interval-end samples must all be above interval 1 to call it growth
SUSTAINED = 3
RECONCILES = "chartguard_reconcile_duration_seconds_count"


# ---- the operator process, from /proc -------------------------------------------------------

@dataclass(frozen=True)
class ProcSample:
    rss_mib: float
    fds: int
    threads: int
    cpu_own: float  # utime + stime, seconds
    cpu_children: float  # cutime + cstime: the helm processes it has reaped


def proc_sample(pid: int) -> ProcSample:
    rss = float("nan")
    threads = -1
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return ProcSample(rss, fds, threads, own, children)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def servers_cpu(pids: list[int]) -> float:
    """CPU seconds the API server processes have used (what the steady state costs them)."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


# ---- the cluster: emulator or real control plane --------------------------------------------

@dataclass
class Kube:
    """kubectl and list calls on whichever API server runs."""

    kind: str
    env: dict[str, str]
    get: Callable[[str], Any]
    server_pids: list[int]

    def k(self, *args: str) -> str:
        return subprocess.run([tools.kubectl(), *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=900).stdout

    def items(self, group: str, plural: str) -> list[dict[str, Any]]:
        body = self.get(f"/apis/{group}/namespaces/{NS}/{plural}")
        items: list[dict[str, Any]] = body["items"]
        return items


@contextmanager
def kube(kind: str, work: Path, releases: int) -> Iterator[Kube]:
    if kind == "real":
        with run_controlplane(work / "cp", nodes=1 + releases // 100) as plane:
            yield Kube("real control plane (kube-apiserver " + plane.server_version + ", etcd, "
                       "kwok)", plane.env,
                       lambda path: plane.request("GET", path, timeout=120),
                       [plane.processes[name].pid for name in ("apiserver", "etcd")])
    else:
        with run_apiserver(work / "kube") as api:
            env = api.env
            subprocess.run([tools.kubectl(), "apply", "-f", str(tools.REPO_ROOT / "crds")],
                           env=env, check=True, capture_output=True, timeout=120)
            subprocess.run([tools.kubectl(), "wait", "--for=condition=Established", "crd",
                            "--all", "--timeout=30s"], env=env, check=True,
                           capture_output=True, timeout=120)
            yield Kube("API emulator", env,
                       lambda path: requests.get(api.url + path, timeout=120).json(),
                       [api.proc.pid])


def condition_true(item: dict[str, Any], kind: str) -> bool:
    status = item.get("status") or {}
    return any(c.get("type") == kind and c.get("status") == "True"
               and (kind != "Ready"
                    or c.get("observedGeneration", status.get("observedGeneration"))
                    == item["metadata"].get("generation"))
               for c in status.get("conditions", []))


@dataclass(frozen=True)
class Readiness:
    releases_ready: int
    charts_ready: int
    charts_verified: int
    charts: int


def readiness(cluster: Kube) -> Readiness:
    releases = cluster.items("helm.toolkit.fluxcd.io/v2", "helmreleases")
    charts = cluster.items("source.toolkit.fluxcd.io/v1", "helmcharts")
    return Readiness(sum(condition_true(r, "Ready") for r in releases),
                     sum(condition_true(c, "Ready") for c in charts),
                     sum(condition_true(c, "SourceVerified") for c in charts), len(charts))


# ---- the objects ------------------------------------------------------------------------------

def objects(url: str, charts: int, releases: int, interval: str) -> list[dict[str, Any]]:
    verify = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
    docs: list[dict[str, Any]] = [{
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": NS},
        "spec": {"type": "oci", "interval": "10m", "insecure": True, "url": url}}]
    for i in range(releases):
        docs.append({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": f"r{i:04d}", "namespace": NS},
            "spec": {"interval": interval, "chart": {"spec": {
                "chart": f"c{i:04d}", "version": "1.0.0", "reconcileStrategy": "ChartVersion",
                "sourceRef": {"kind": "HelmRepository", "name": "charts"}, "verify": verify}}}})
    for i in range(releases, charts):
        docs.append({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": f"s{i:04d}", "namespace": NS},
            "spec": {"chart": f"c{i:04d}", "version": "1.0.0", "interval": interval,
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                     "verify": verify}})
    return docs


# ---- one interval's figures ---------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    index: int  # 0: the warm-up
    seconds: float
    end: ProcSample
    max_rss_mib: float
    max_fds: int
    max_threads: int
    min_fds: int  # the interval's floor: in-flight connections come and go, a leak stays
    min_threads: int
    cpu_own: float
    cpu_children: float
    requests: int
    blobs: int
    helm: int
    reconciles: dict[str, float]
    api_cpu: float  # the API server's (+ etcd's) CPU seconds in the interval
    self_cpu: float  # this script's (the counting proxy's): constant work, a control for drift
    load: float  # the machine's 1-minute load average at the end


@dataclass
class Sampler:
    pid: int
    proxy: CountingProxy
    helm: HelmCalls
    metrics_url: str
    server_pids: list[int]
    last: ProcSample = field(init=False)
    last_api: float = field(init=False)
    last_self: float = field(init=False)
    last_requests: int = field(init=False)
    last_helm: int = field(init=False)
    last_metrics: Samples = field(init=False)
    last_time: float = field(init=False)

    def __post_init__(self) -> None:
        self.mark()

    def mark(self) -> None:
        self.last = proc_sample(self.pid)
        self.last_api = servers_cpu(self.server_pids)
        self.last_self = own_cpu()
        self.last_requests = len(self.proxy.requests)
        self.last_helm = len(self.helm.subcommands())
        self.last_metrics = scrape(self.metrics_url, timeout=30)
        self.last_time = time.monotonic()

    def interval(self, index: int, seconds: float) -> Interval:
        """Wait out one interval (polling RSS, fds and threads every second), then sample."""
        deadline = self.last_time + seconds
        peak = self.last
        peaks = [peak.rss_mib], [peak.fds], [peak.threads]
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            now = proc_sample(self.pid)
            peaks[0].append(now.rss_mib)
            peaks[1].append(now.fds)
            peaks[2].append(now.threads)
        end = proc_sample(self.pid)
        elapsed = time.monotonic() - self.last_time
        seen = self.proxy.requests[self.last_requests:]
        calls = len(self.helm.subcommands())
        metrics = scrape(self.metrics_url, timeout=30)
        moved = metrics.since(self.last_metrics)
        api = servers_cpu(self.server_pids)
        mine = own_cpu()
        result = Interval(
            index, elapsed, end, max(*peaks[0], end.rss_mib), max(*peaks[1], end.fds),
            max(*peaks[2], end.threads), min([*peaks[1][1:], end.fds]),
            min([*peaks[2][1:], end.threads]), end.cpu_own - self.last.cpu_own,
            end.cpu_children - self.last.cpu_children, len(seen),
            sum(1 for _, path in seen if "/blobs/" in path), calls - self.last_helm,
            {kind: moved.total(RECONCILES, kind=kind)
             for kind in ("HelmChart", "HelmRelease", "HelmRepository")},
            api - self.last_api, mine - self.last_self, os.getloadavg()[0])
        self.last, self.last_requests, self.last_helm = end, self.last_requests + len(seen), calls
        self.last_api, self.last_self = api, mine
        self.last_metrics, self.last_time = metrics, self.last_time + elapsed
        return result


ROW = ("{:>4} {:>6} {:>8} {:>8} {:>4} {:>4} {:>4} {:>4} {:>4} {:>7} {:>7} {:>6} {:>6} {:>6} "
       "{:>5} {:>6} {:>6} {:>6} {:>6} {:>5}")


def header() -> str:
    return "\n".join([
        ROW.format("int", "s", "RSS MiB", "max RSS", "fds", "min", "max", "thr", "min",
                   "CPU s", "+helm s",
                   "req", "req/ch", "blobs", "helm", "HC rec", "HR rec", "API s", "self s",
                   "load")])


def row(iv: Interval, charts: int) -> str:
    label = "w" if iv.index == 0 else str(iv.index)
    return ROW.format(
        label, f"{iv.seconds:.1f}", f"{iv.end.rss_mib:.1f}", f"{iv.max_rss_mib:.1f}",
        iv.end.fds, iv.min_fds, iv.max_fds, iv.end.threads, iv.min_threads,
        f"{iv.cpu_own:.2f}", f"{iv.cpu_children:.2f}",
        iv.requests, f"{iv.requests / max(charts, 1):.2f}", iv.blobs, iv.helm,
        f"{iv.reconciles['HelmChart']:.0f}", f"{iv.reconciles['HelmRelease']:.0f}",
        f"{iv.api_cpu:.2f}", f"{iv.self_cpu:.2f}", f"{iv.load:.1f}")


# ---- verdicts ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    name: str
    first: float
    last: float
    peak: float
    slack: float
    grew: bool
    unit: str

    def line(self) -> str:
        fmt = "{:.1f}" if self.unit == "MiB" else "{:.0f}"
        word = "GROWTH" if self.grew else "OK"
        return (f"  {self.name:<24} interval 1 {fmt.format(self.first)}, last "
                f"{fmt.format(self.last)}, max {fmt.format(self.peak)} {self.unit}; "
                f"allowed +{fmt.format(self.slack)}: {word}")


def verdict(name: str, ends: list[float], peaks: list[float], slack: float,
            unit: str) -> Verdict:
    """GROWTH when each of the last SUSTAINED interval-end values (fewer when there are fewer
    intervals after the first) exceeds interval 1's by more than ``slack``."""
    first = ends[0]
    later = ends[1:][-SUSTAINED:]
    grew = bool(later) and min(later) - first > slack
    return Verdict(name, first, ends[-1], max(peaks), slack, grew, unit)


# ---- the helm pull + chartguard verify loop ---------------------------------------------------

@dataclass(frozen=True)
class Loop:
    charts: int
    rounds: int
    cpu: float
    wall: float
    requests: int
    blobs: int
    failures: int

    @property
    def pulls(self) -> int:
        return self.charts * self.rounds


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pull_verify_loop(proxy: CountingProxy, helm: HelmEnv, pub: Path, work: Path, sample: int,
                     rounds: int) -> Loop:
    """Each of ``sample`` charts pulled by helm and verified by `chartguard verify` once per
    round, as a source-controller without chartguard's caches would once per interval."""
    pulled = work / "loop-pulled"
    failures = 0
    proxy.reset()
    cpu = children_cpu()
    start = time.perf_counter()
    for _ in range(rounds):
        for i in range(sample):
            pulled.mkdir(exist_ok=True)
            ref = f"{proxy.oci()}/c{i:04d}"
            failures += helm.run("pull", ref, "--version", "1.0.0", "--plain-http",
                                 "-d", str(pulled), check=False).returncode != 0
            failures += subprocess.run(
                [CHARTGUARD, "verify", ref, "--version", "1.0.0", "--key", str(pub),
                 "--plain-http"], capture_output=True, timeout=120, check=False,
            ).returncode != 0
            shutil.rmtree(pulled)
    wall = time.perf_counter() - start
    return Loop(sample, rounds, children_cpu() - cpu, wall, len(proxy.requests),
                len(proxy.seen("/blobs/")), failures)


# ---- the run ----------------------------------------------------------------------------------

@dataclass
class Run:
    kube: str = ""
    pushed_s: float = 0.0
    applied_s: float = 0.0
    ready_s: float = float("nan")
    ready: Readiness | None = None
    ready_end: Readiness | None = None
    idle: ProcSample | None = None
    at_ready: ProcSample | None = None
    installs: int = 0
    upgrades: int = 0
    intervals: list[Interval] = field(default_factory=list)
    loop: Loop | None = None
    log_errors: int = 0
    exit_code: int | None = None


def log_errors(text: str) -> int:
    return sum(1 for line in text.splitlines() if "Traceback" in line or "ERROR" in line)


def wait_ready(cluster: Kube, log: Path, proc: subprocess.Popen[bytes], charts: int,
               releases: int, timeout: float) -> Readiness | None:
    """Every release Ready and every HelmChart SourceVerified: the operator's log first (polling
    the API server would load what is measured), then the API every 5 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {proc.returncode}: see {log}")
        text = log.read_text(errors="replace")
        if text.count(INSTALLED) >= releases and text.count(PULLED) >= charts:
            break
        time.sleep(1.0)
    while time.monotonic() < deadline:
        state = readiness(cluster)
        if (state.releases_ready >= releases and state.charts_verified >= charts
                and state.charts_ready >= charts):
            return state
        time.sleep(5.0)
    return None


def run(args: argparse.Namespace, work: Path) -> Run:
    result = Run()
    n, r = args.charts, args.releases
    with run_registry(workdir=work) as reg:
        proxy = CountingProxy(reg)
        loop_proxy = CountingProxy(reg)
        try:
            soak(args, work, reg, proxy, loop_proxy, result, n, r)
        finally:
            proxy.close()
            loop_proxy.close()
    return result


def soak(args: argparse.Namespace, work: Path, reg: Registry, proxy: CountingProxy,
         loop_proxy: CountingProxy, result: Run, n: int, r: int) -> None:
    helm = HelmEnv(work / "helm")
    key = cs.generate_key_pair()
    pub = work / "cosign.pub"
    pub.write_bytes(key.public_pem)
    print(f"pushing and signing {n} charts ...", flush=True)
    start = time.perf_counter()
    push_signed_charts(reg, helm, key, n, layer_per_chart=True)
    result.pushed_s = time.perf_counter() - start
    counter = HelmCalls.create(work)
    with kube(args.kube, work, r) as cluster:
        result.kube = cluster.kind
        cluster.k("create", "namespace", NS)
        cluster.k("-n", NS, "create", "secret", "generic", "cosign-pub",
                  f"--from-file=cosign.pub={pub}")
        manifests = work / "objects.yaml"
        manifests.write_text(yaml.safe_dump_all(
            objects(proxy.oci("charts"), n, r, f"{args.interval:g}s")))
        metrics_port = procs.free_port()
        health_port = procs.free_port()
        log = work / "operator.log"
        argv = [CHARTGUARD, "run", "--namespace", NS, "--concurrency", str(args.concurrency),
                "--release-concurrency", str(args.release_concurrency),
                "--artifact-dir", str(work / "artifacts"), "--helm", str(counter.wrapper),
                "--helm-home", str(work / "operator-helm-home"),
                "--metrics-port", str(metrics_port), "--metrics-address", "127.0.0.1",
                "--health-port", str(health_port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=cluster.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        try:
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            procs.wait_until(lambda: bool(scrape(metrics_url).names()), timeout=120,
                             what="chartguard run /metrics", proc=proc)
            time.sleep(2.0)  # watching before the objects arrive
            result.idle = proc_sample(proc.pid)
            print(f"applying {r} HelmReleases and {n - r} standalone HelmCharts "
                  f"({n} HelmCharts in all) ...", flush=True)
            start = time.perf_counter()
            cluster.k("apply", "-f", str(manifests))
            result.applied_s = time.perf_counter() - start
            result.ready = wait_ready(cluster, log, proc, n, r, args.timeout)
            result.ready_s = time.perf_counter() - start
            result.at_ready = proc_sample(proc.pid)
            if result.ready is None:
                print(f"not all Ready after {args.timeout:.0f} s: giving up", flush=True)
                result.exit_code = 2
                return
            print(f"all Ready after {result.ready_s:.1f} s; one warm-up interval, then "
                  f"{args.intervals} intervals of {args.interval:g} s", flush=True)
            sampler = Sampler(proc.pid, proxy, counter, metrics_url, cluster.server_pids)
            print(header(), flush=True)
            for index in range(args.intervals + 1):
                iv = sampler.interval(index, args.interval)
                if proc.poll() is not None:
                    raise RuntimeError(f"the operator exited with {proc.returncode}: see {log}")
                result.intervals.append(iv)
                print(row(iv, n), flush=True)
            print(f"the loop: helm pull + chartguard verify of {args.loop_charts} charts, "
                  f"{args.loop_intervals} rounds ...", flush=True)
            result.loop = pull_verify_loop(loop_proxy, helm, pub, work, min(args.loop_charts, n),
                                           args.loop_intervals)
            result.ready_end = readiness(cluster)
        finally:
            procs.stop(proc, grace=15)
            text = log.read_text(errors="replace")
            result.log_errors = log_errors(text)
            calls = counter.subcommands()
            result.installs, result.upgrades = calls.count("install"), calls.count("upgrade")
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                (args.logs / "operator.log").write_text(text)
                (args.logs / "helm-calls").write_text("\n".join(calls))


# ---- the summary ------------------------------------------------------------------------------

def trend(ivs: list[Interval]) -> str:
    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)
    return (f"operator {mean([i.cpu_own for i in ivs]):.2f} s, API server "
            f"{mean([i.api_cpu for i in ivs]):.2f} s, proxy {mean([i.self_cpu for i in ivs]):.2f}"
            f" s per interval, load {mean([i.load for i in ivs]):.1f}")


def result_kube(res: Run) -> str:
    return "the emulator, one Python process" if res.kube == "API emulator" else \
        "kube-apiserver + etcd"


def summary(args: argparse.Namespace, res: Run) -> int:
    n, r = args.charts, args.releases
    print()
    print(f"SOAK: {r} HelmReleases + {n} HelmCharts ({r} made by the releases, {n - r} "
          f"standalone; each chart its own repository, digest and cosign key signature), "
          f"interval {args.interval:g} s, `chartguard run --concurrency {args.concurrency} "
          f"--release-concurrency {args.release_concurrency}`, on the {res.kube}; 2-core "
          f"machine shared with the API server, the registry, this script and other people's "
          "runs")
    print(f"  setup: pushed in {res.pushed_s:.1f} s, kubectl apply {res.applied_s:.1f} s, all "
          f"Ready {res.ready_s:.1f} s after the apply; {res.installs} helm installs")
    if res.idle is not None and res.at_ready is not None:
        print(f"  operator before the apply: RSS {res.idle.rss_mib:.1f} MiB, {res.idle.fds} fds, "
              f"{res.idle.threads} threads; when all Ready: RSS {res.at_ready.rss_mib:.1f} MiB, "
              f"{res.at_ready.fds} fds, {res.at_ready.threads} threads")
    if res.exit_code == 2 or res.ready is None:
        print("  NOT READY: the objects never all became Ready; nothing was measured")
        return 2
    measured = [iv for iv in res.intervals if iv.index > 0]
    k = len(measured)
    print(f"  measured: {k} intervals after the warm-up ({sum(iv.seconds for iv in measured):.0f}"
          " s)")
    rss_first = measured[0].end.rss_mib
    rss_slack = max(args.rss_slack_mib, rss_first * args.rss_slack_pct / 100)
    verdicts = [
        verdict("RSS (interval end)", [iv.end.rss_mib for iv in measured],
                [iv.max_rss_mib for iv in measured], rss_slack, "MiB"),
        verdict("fds (interval floor)", [float(iv.min_fds) for iv in measured],
                [float(iv.max_fds) for iv in measured], 0.0, ""),
        verdict("threads (interval floor)", [float(iv.min_threads) for iv in measured],
                [float(iv.max_threads) for iv in measured], 0.0, ""),
    ]
    print(f"  growth after interval 1 (GROWTH: each of the last {min(SUSTAINED, max(k - 1, 1))} "
          f"intervals above interval 1 by more than the allowance; RSS at each interval's end, "
          f"allowance max({args.rss_slack_mib:g} MiB, {args.rss_slack_pct:g}%); fds and threads "
          "at each interval's lowest of the 1 s polls, allowance 0):")
    for v in verdicts:
        print(v.line())
    cpu = [iv.cpu_own + iv.cpu_children for iv in measured]
    own = sum(iv.cpu_own for iv in measured) / k
    kids = sum(iv.cpu_children for iv in measured) / k
    mean_cpu = sum(cpu) / k
    print(f"  CPU per interval: mean {mean_cpu:.2f} s (operator {own:.2f} s + helm {kids:.2f} s;"
          f" min {min(cpu):.2f}, max {max(cpu):.2f}) = {100 * mean_cpu / args.interval:.1f}% of "
          f"one core; {1000 * mean_cpu / (n + r):.2f} ms per object per interval")
    if k >= 6:
        third = k // 3
        print(f"  CPU trend (the counting proxy in this script does the same work each interval: "
              f"when its CPU drifts too, the machine did): first {third} intervals "
              f"{trend(measured[:third])}; last {third} {trend(measured[-third:])}")
    api = sum(iv.api_cpu for iv in measured) / k
    loads = [iv.load for iv in measured]
    print(f"  API server CPU per interval: mean {api:.2f} s ({result_kube(res)}); machine load "
          f"(1-min average) {min(loads):.1f} to {max(loads):.1f} over the intervals")
    reqs = [iv.requests for iv in measured]
    blobs = sum(iv.blobs for iv in measured)
    print(f"  registry requests per interval: mean {sum(reqs) / k:.1f} (min {min(reqs)}, max "
          f"{max(reqs)}) = {sum(reqs) / k / n:.2f} per HelmChart, "
          f"{sum(reqs) / k / (n + r):.2f} per object (HelmReleases ask the registry nothing "
          f"themselves); blob downloads {blobs} in all")
    hc = sum(iv.reconciles["HelmChart"] for iv in measured) / k
    hr = sum(iv.reconciles["HelmRelease"] for iv in measured) / k
    print(f"  reconciles per interval (/metrics): HelmChart {hc:.0f} ({hc / n:.2f} per chart), "
          f"HelmRelease {hr:.0f} ({hr / max(r, 1):.2f} per release)")
    helm_calls = sum(iv.helm for iv in measured)
    helm_ok = helm_calls == 0
    per_release = helm_calls / max(r, 1) / k
    print(f"  helm processes per unchanged release per interval: {per_release:.2f} "
          f"({helm_calls} in {k} intervals; helm upgrades in the whole run: {res.upgrades}): "
          f"{'OK' if helm_ok else 'NOT 0'}")
    end = res.ready_end
    end_ok = (end is not None and end.releases_ready >= r and end.charts_ready >= n
              and end.charts_verified >= n)
    if end is not None:
        print(f"  at the end: {end.releases_ready}/{r} HelmReleases Ready, "
              f"{end.charts_ready}/{n} HelmCharts Ready, {end.charts_verified}/{n} "
              f"SourceVerified: {'OK' if end_ok else 'NOT READY'}; operator log errors: "
              f"{res.log_errors}")
    loop = res.loop
    if loop is not None and loop.pulls:
        cpu_per = loop.cpu / loop.pulls
        req_per = loop.requests / loop.pulls
        wall_per = loop.wall / loop.pulls
        print(f"  SIDE BY SIDE, per HelmChart per interval (loop measured on {loop.charts} "
              f"charts x {loop.rounds} rounds = {loop.pulls} pulls, {loop.failures} failed, "
              f"and SCALED to {n} charts):")
        op_cpu = mean_cpu / n
        op_req = sum(reqs) / k / n
        print(f"    {'':<34}{'CPU ms':>10}{'requests':>10}{'blobs':>8}{'CPU s/interval':>16}")
        print(f"    {'chartguard run (charts+releases)':<34}{1000 * op_cpu:>10.1f}"
              f"{op_req:>10.2f}{blobs / k / n:>8.2f}{mean_cpu:>16.1f}")
        print(f"    {'helm pull + chartguard verify':<34}{1000 * cpu_per:>10.1f}"
              f"{req_per:>10.2f}{loop.blobs / loop.pulls:>8.2f}{cpu_per * n:>16.1f}")
        print(f"    loop / chartguard: CPU {cpu_per / max(op_cpu, 1e-9):.0f}x, registry "
              f"requests {req_per / max(op_req, 1e-9):.1f}x; the loop takes {wall_per:.2f} s "
              f"wall per chart, {wall_per * n:.0f} s for {n} charts one after the other against "
              f"an interval of {args.interval:g} s")
    failed = [v.name for v in verdicts if v.grew]
    if not helm_ok:
        failed.append("helm processes")
    if not end_ok:
        failed.append("not Ready at the end")
    print(f"RESULT: {'FAIL (' + ', '.join(failed) + ')' if failed else 'OK'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--charts", type=int, default=1000,
                        help="HelmCharts in all, the releases' included (default 1000)")
    parser.add_argument("--releases", type=int, default=1000,
                        help="HelmReleases, each its own chart (default 1000; <= --charts)")
    parser.add_argument("--intervals", type=int, default=30,
                        help="measured intervals after the warm-up (default 30)")
    parser.add_argument("--interval", type=float, default=30.0,
                        help="spec.interval of every chart and release, seconds (default 30)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="chartguard's --concurrency (default 4, its default)")
    parser.add_argument("--release-concurrency", type=int, default=8,
                        help="chartguard's --release-concurrency (default 8: the installs)")
    parser.add_argument("--kube", choices=("emulator", "real"), default="emulator",
                        help="the API emulator (default) or the real control plane")
    parser.add_argument("--loop-charts", type=int, default=50,
                        help="charts in the helm pull + chartguard verify sample (default 50)")
    parser.add_argument("--loop-intervals", type=int, default=3,
                        help="rounds of the loop (default 3)")
    parser.add_argument("--rss-slack-mib", type=float, default=8.0)
    parser.add_argument("--rss-slack-pct", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=2400.0,
                        help="seconds from the apply to all Ready before giving up")
    parser.add_argument("--logs", type=Path,
                        help="keep the operator's log and the helm call record here")
    args = parser.parse_args(argv)
    if not 0 <= args.releases <= args.charts or args.charts < 1 or args.intervals < 1:
        parser.error("need 1 <= --charts, 0 <= --releases <= --charts, --intervals >= 1")
    with tempfile.TemporaryDirectory(prefix="chartguard-soak-") as tmp:
        result = run(args, Path(tmp))
    return summary(args, result)


if __name__ == "__main__":
    sys.exit(main())

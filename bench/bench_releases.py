"""HelmReleases at scale (`make bench`): chartguard's installs against a bare helm loop.

Real components on this machine: Debian's docker-registry with charts pushed and signed
(`chartguard_testing.bulk_charts` with a layer per chart: one `helm package` output renamed
`cNNNN` for each chart, so its Chart.yaml and Helm config agree as `helm push` writes them; each
chart its own repository, manifest digest and cosign key signature), the Kubernetes API
emulator (test equipment: it shares the 2 cores with everything else and is part of what is
measured), kubectl applying the objects, the real helm 4 and `chartguard run` as its own
process, given a helm wrapper that counts the helm processes it starts. Printed, never asserted:

1. N HelmReleases (`--releases`, default 200; all installing chart `c0000`, so each implies a
   HelmChart of its own on the same registry chart) from `kubectl apply` to all Ready (install
   with helm 4's `--wait=watcher --wait-for-jobs`, as Flux waits), against N bare sequential
   `helm upgrade --install --wait=watcher --wait-for-jobs` of the same chart bytes (the
   `.tgz` helm pulled, from local disk: the loop neither pulls nor verifies) on the same
   emulator, measured one after the other in one run; both times and their ratio
   (target: chartguard <= 1.2x the loop; `--release-concurrency` helm processes at once);
2. helm processes per unchanged release per interval (target 0): the N releases get a short
   `spec.interval` (`--interval`, default 10 s), the operator is restarted (every release is
   reconciled at start, then on its interval) and helm processes are counted for `--window`
   seconds, next to the release reconciles that ran no action (the operator's own debug lines);
3. the operator's peak RSS with 1,000 HelmCharts and 1,000 HelmReleases (`--rss-objects`;
   target <= 150 MiB) on a fresh emulator: each release installs a chart of its own
   (`c0000` ... `c0999`, each its own repository, digest and signature), so each of its 1,000
   HelmCharts is resolved, verified and stored on its own; measured once all 1,000 are
   installed and Ready (`--rss-release-concurrency` helm processes at once).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from chartguard_testing import cosign_signer as cs
from chartguard_testing import procs, tools
from chartguard_testing.apiserver import KubeAPI, run_apiserver
from chartguard_testing.bulk_charts import push_signed_charts
from chartguard_testing.charts import HelmEnv
from chartguard_testing.helm_calls import HelmCalls
from chartguard_testing.registry import Registry, run_registry

NS = "releases"
BARE_NS = "bare"
CLK_TCK = os.sysconf("SC_CLK_TCK")
INSTALLED = "Helm install succeeded for release"
#: `chartguard run` with the chartguard logger at DEBUG: a reconcile that ran no helm action
#: logs one DEBUG line (runtime._log_release), which phase 2 counts
DEBUG_LAUNCH = ("import logging, sys; logging.getLogger('chartguard').setLevel(logging.DEBUG); "
                "from chartguard.cli import main; sys.exit(main(sys.argv[1:]))")
UNCHANGED = re.compile(r"\[DEBUG\s*\] HelmRelease ")


# ---- measuring ----------------------------------------------------------------------------

def children_cpu(pid: int) -> float:
    """CPU seconds of the children ``pid`` has waited for (the operator's helm processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / CLK_TCK


def proc_status(pid: int) -> tuple[float, float, float]:
    """(RSS MiB, peak RSS MiB, CPU seconds) of a live process."""
    rss = hwm = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, hwm, (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Api:
    """kubectl on one emulator."""

    api: KubeAPI

    def k(self, *args: str) -> str:
        return subprocess.run([tools.kubectl(), *args], env=self.api.env, check=True,
                              capture_output=True, text=True, timeout=900).stdout

    def releases(self, namespace: str = NS) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = requests.get(
            f"{self.api.url}/apis/helm.toolkit.fluxcd.io/v2/namespaces/{namespace}/helmreleases",
            timeout=120).json()["items"]
        return items

    def setup(self, pub: Path, url: str) -> None:
        self.k("apply", "-f", str(Path(tools.REPO_ROOT) / "crds"))
        self.k("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
        self.k("create", "namespace", NS)
        self.k("-n", NS, "create", "secret", "generic", "cosign-pub",
               f"--from-file=cosign.pub={pub}")
        self.apply([{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                     "metadata": {"name": "charts", "namespace": NS},
                     "spec": {"type": "oci", "interval": "10m", "insecure": True, "url": url}}],
                   Path(str(self.api.kubeconfig) + ".repository.yaml"))

    def apply(self, docs: list[dict[str, Any]], path: Path) -> float:
        path.write_text(yaml.safe_dump_all(docs))
        start = time.perf_counter()
        self.k("apply", "-f", str(path))
        return time.perf_counter() - start


def ready_count(items: list[dict[str, Any]]) -> int:
    return sum(1 for item in items
               for cond in (item.get("status") or {}).get("conditions", [])
               if cond.get("type") == "Ready" and cond.get("status") == "True"
               and cond.get("observedGeneration") == item["metadata"].get("generation"))


def releases(n: int, *, shared_chart: bool, interval: str) -> list[dict[str, Any]]:
    """``flux create helmrelease`` + the blog's key block, N times."""
    return [{
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": f"r{i:04d}", "namespace": NS},
        "spec": {"interval": interval, "chart": {"spec": {
            "chart": "c0000" if shared_chart else f"c{i:04d}", "version": "1.0.0",
            "reconcileStrategy": "ChartVersion",
            "sourceRef": {"kind": "HelmRepository", "name": "charts"},
            "verify": {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}}}}}
        for i in range(n)]


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    log: Path

    def installed(self) -> int:
        return self.log.read_text(errors="replace").count(INSTALLED)

    def errors(self) -> int:
        return sum(1 for line in self.log.read_text(errors="replace").splitlines()
                   if "Traceback" in line or "ERROR" in line)


@contextmanager
def operator(api: KubeAPI, work: Path, name: str, helm: Path, *, concurrency: int,
             release_concurrency: int, debug: bool = False) -> Iterator[Operator]:
    head = [sys.executable, "-c", DEBUG_LAUNCH] if debug else [
        str(Path(sys.executable).with_name("chartguard"))]
    argv = [*head, "run", "--all-namespaces", "--concurrency", str(concurrency),
            "--release-concurrency", str(release_concurrency),
            "--artifact-dir", str(work / "artifacts"), "--helm", str(helm),
            "--helm-home", str(work / f"{name}-helm-home")]
    log = work / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=api.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        yield Operator(proc, log)
    finally:
        procs.stop(proc, grace=15)


def wait_installed(op: Operator, n: int, timeout: float) -> float:
    """Seconds until the operator logged n installs (the log, not the API: polling the
    emulator would load what is measured); NaN on timeout or exit."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if op.installed() >= n:
            return time.perf_counter() - start
        if op.proc.poll() is not None:
            break
        time.sleep(0.25)
    return float("nan")


# ---- the phases ---------------------------------------------------------------------------

@dataclass
class Releases:
    n: int
    bare_s: float
    bare_failed: int
    bare_api_cpu: float
    bare_helm_cpu: float
    chartguard_s: float
    apply_s: float
    ready: int
    installs: int
    helm_calls: int
    api_cpu: float
    operator_cpu: float
    helm_cpu: float
    peak_rss: float
    steady_helm: int
    steady_reconciles: int
    steady_window: float
    steady_cpu: float
    errors: int


def bare_loop(api: KubeAPI, helm: HelmEnv, chart: Path,
              n: int) -> tuple[float, int, float, float]:
    """N sequential `helm upgrade --install`: (seconds, failures, emulator CPU seconds, helm
    CPU seconds)."""
    cpu_before = proc_status(api.proc.pid)[2]
    helm_before = _own_children_cpu()
    failed = 0
    start = time.perf_counter()
    for i in range(n):
        proc = helm.run("upgrade", "--install", "--namespace", BARE_NS, "--create-namespace",
                        "--wait=watcher", "--wait-for-jobs", "--timeout", "5m0s",
                        f"b{i:04d}", str(chart), check=False,
                        env={"KUBECONFIG": str(api.kubeconfig)})
        failed += proc.returncode != 0
    elapsed = time.perf_counter() - start
    return (elapsed, failed, proc_status(api.proc.pid)[2] - cpu_before,
            _own_children_cpu() - helm_before)


def _own_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def phase_releases(args: argparse.Namespace, reg: Registry, helm: HelmEnv, pub: Path,
                   work: Path) -> Releases:
    n: int = args.releases
    counter = HelmCalls.create(work)
    with run_apiserver(work / "kube") as kube:
        api = Api(kube)
        api.setup(pub, reg.oci("charts"))
        chart = helm.pull(reg, "c0000", "1.0.0", work / "pulled")
        print(f"1. bare loop: {n} x `helm upgrade --install --wait=watcher --wait-for-jobs` of "
              f"{chart.name} ...", flush=True)
        bare_s, bare_failed, bare_api_cpu, bare_helm_cpu = bare_loop(kube, helm, chart, n)
        print(f"   {bare_s:.1f} s", flush=True)
        with operator(kube, work, "operator", counter.wrapper, concurrency=args.concurrency,
                      release_concurrency=args.release_concurrency) as op:
            time.sleep(3.0)  # up and watching before the objects arrive
            _, _, cpu_before = proc_status(op.proc.pid)
            helm_before = children_cpu(op.proc.pid)
            api_before = proc_status(kube.proc.pid)[2]
            print(f"1. chartguard: kubectl apply of {n} HelmReleases ...", flush=True)
            start = time.perf_counter()
            applied = api.apply(releases(n, shared_chart=True, interval="10m"),
                                work / "releases.yaml")
            waited = wait_installed(op, n, args.timeout - (time.perf_counter() - start))
            elapsed = applied + waited if waited == waited else float("nan")
            _, peak, cpu_after = proc_status(op.proc.pid)
            helm_cpu = children_cpu(op.proc.pid) - helm_before
            api_cpu = proc_status(kube.proc.pid)[2] - api_before
            print(f"   {elapsed:.1f} s", flush=True)
            ready = ready_count(api.releases())
            installs = counter.subcommands().count("install")
            helm_calls = len(counter.subcommands())
            errors = op.errors()
        # 2. a short interval, a restarted operator: every release reconciled at start and
        # then on its interval, none changed
        print(f"2. unchanged releases at interval {args.interval} s for {args.window} s ...",
              flush=True)
        api.apply(releases(n, shared_chart=True, interval=f"{args.interval}s"),
                  work / "releases-short.yaml")
        before = len(counter.subcommands())
        with operator(kube, work, "operator-steady", counter.wrapper,
                      concurrency=args.concurrency, release_concurrency=args.release_concurrency,
                      debug=True) as op2:
            time.sleep(args.window)
            steady_helm = len(counter.subcommands()) - before
            steady_reconciles = len(UNCHANGED.findall(op2.log.read_text(errors="replace")))
            steady_peak = proc_status(op2.proc.pid)
            errors += op2.errors()
    return Releases(n, bare_s, bare_failed, bare_api_cpu, bare_helm_cpu, elapsed, applied,
                    ready, installs, helm_calls, api_cpu, cpu_after - cpu_before, helm_cpu,
                    max(peak, steady_peak[1]),
                    steady_helm, steady_reconciles, args.window, steady_peak[2], errors)


@dataclass
class Memory:
    n: int
    idle_rss: float
    peak_rss: float
    seconds: float
    ready: int
    installs: int
    charts_verified: int
    errors: int
    operator_cpu: float
    helm_cpu: float
    api_cpu: float


def phase_memory(args: argparse.Namespace, reg: Registry, pub: Path, work: Path) -> Memory:
    n: int = args.rss_objects
    counter = HelmCalls.create(work / "rss")
    with run_apiserver(work / "kube-rss") as kube:
        api = Api(kube)
        api.setup(pub, reg.oci("charts"))
        with operator(kube, work / "rss", "operator-rss", counter.wrapper,
                      concurrency=args.concurrency,
                      release_concurrency=args.rss_release_concurrency) as op:
            time.sleep(3.0)
            idle, _, cpu_before = proc_status(op.proc.pid)
            helm_before = children_cpu(op.proc.pid)
            api_before = proc_status(kube.proc.pid)[2]
            print(f"3. chartguard: kubectl apply of {n} HelmReleases, each its own chart ...",
                  flush=True)
            start = time.perf_counter()
            applied = api.apply(releases(n, shared_chart=False, interval="10m"),
                                work / "rss" / "releases.yaml")
            waited = wait_installed(op, n, args.rss_timeout - (time.perf_counter() - start))
            elapsed = applied + waited if waited == waited else time.perf_counter() - start
            cpu = proc_status(op.proc.pid)[2] - cpu_before
            helm_cpu = children_cpu(op.proc.pid) - helm_before
            api_cpu = proc_status(kube.proc.pid)[2] - api_before
            time.sleep(5.0)  # the last status writes and watch events are in
            peak = proc_status(op.proc.pid)[1]
            print(f"   {elapsed:.1f} s", flush=True)
            ready = ready_count(api.releases())
            charts = requests.get(
                f"{kube.url}/apis/source.toolkit.fluxcd.io/v1/namespaces/{NS}/helmcharts",
                timeout=120).json()["items"]
            verified = sum(1 for item in charts
                           for cond in (item.get("status") or {}).get("conditions", [])
                           if cond.get("type") == "SourceVerified"
                           and cond.get("status") == "True")
            return Memory(n, idle, peak, elapsed, ready, counter.subcommands().count("install"),
                          verified, op.errors(), cpu, helm_cpu, api_cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--releases", type=int,
                        default=int(os.environ.get("CHARTGUARD_BENCH_RELEASES", "200")))
    parser.add_argument("--release-concurrency", type=int, default=4,
                        help="chartguard's --release-concurrency in 1. and 2. (default 4, "
                             "its default)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="chartguard's --concurrency (registry work; default 4)")
    parser.add_argument("--interval", type=int, default=10,
                        help="spec.interval of the unchanged releases in 2., seconds")
    parser.add_argument("--window", type=float, default=30.0,
                        help="seconds helm processes are counted in 2.")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds 1. may take to reach all installed")
    parser.add_argument("--rss-objects", type=int,
                        default=int(os.environ.get("CHARTGUARD_BENCH_RSS_OBJECTS", "1000")),
                        help="HelmReleases (and so HelmCharts) in 3.; 0 skips it")
    parser.add_argument("--rss-release-concurrency", type=int, default=8,
                        help="chartguard's --release-concurrency in 3. (default 8)")
    parser.add_argument("--rss-timeout", type=float, default=3600.0,
                        help="seconds 3. may take to reach all installed")
    parser.add_argument("--logs", type=Path,
                        help="keep the operators' logs and the helm call records here")
    args = parser.parse_args(argv)
    memory: Memory | None = None
    with tempfile.TemporaryDirectory(prefix="chartguard-bench-releases-") as tmp:
        work = Path(tmp)
        (work / "rss").mkdir()
        with run_registry(workdir=work) as reg:
            helm = HelmEnv(work / "helm")
            key = cs.generate_key_pair()
            pub = work / "cosign.pub"
            pub.write_bytes(key.public_pem)
            charts = max(1, args.rss_objects)
            print(f"pushing {charts} charts and their signatures ...", flush=True)
            pushing = time.perf_counter()
            push_signed_charts(reg, helm, key, charts, layer_per_chart=True)
            pushed = time.perf_counter() - pushing
            result = phase_releases(args, reg, helm, pub, work)
            if args.rss_objects > 0:
                memory = phase_memory(args, reg, pub, work)
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for kept in [*work.glob("*.log"), *work.glob("rss/*.log"),
                             *work.glob("**/helm-calls")]:
                    name = str(kept.relative_to(work)).replace("/", "-")
                    (args.logs / name).write_bytes(kept.read_bytes())
    r = result
    print()
    print(f"HelmReleases on the API emulator, real helm {helm_version()}, 2-core machine shared "
          f"with the emulator and the registry; {charts} charts pushed and signed in "
          f"{pushed:.1f} s")
    print(f"1. {r.n} releases of one chart, from kubectl apply to all installed:")
    print(f"   bare loop, {r.n} sequential `helm upgrade --install --wait`: {r.bare_s:.1f} s "
          f"({r.bare_s / r.n:.2f} s each; {r.bare_failed} failed); CPU: helm "
          f"{r.bare_helm_cpu:.1f} s, emulator {r.bare_api_cpu:.1f} s")
    print(f"   chartguard, --release-concurrency {args.release_concurrency} --concurrency "
          f"{args.concurrency}: {r.chartguard_s:.1f} s (kubectl apply {r.apply_s:.1f} s); "
          f"{r.ready}/{r.n} Ready; {r.installs} helm installs of {r.helm_calls} helm "
          f"processes; CPU: helm {r.helm_cpu:.1f} s, operator {r.operator_cpu:.1f} s, "
          f"emulator {r.api_cpu:.1f} s")
    print(f"   chartguard / bare loop: {r.chartguard_s / r.bare_s:.2f} (target <= 1.2)")
    intervals = r.steady_window / args.interval
    print(f"2. unchanged releases, interval {args.interval} s, {r.steady_window:.0f} s from an "
          f"operator restart: {r.steady_helm} helm processes in {r.steady_reconciles} release "
          f"reconciles = {r.steady_helm / r.n / intervals:.2f} helm processes per release per "
          f"interval (target 0); operator CPU {r.steady_cpu:.1f} s, start-up included")
    print(f"   operator peak RSS in 1. and 2.: {r.peak_rss:.0f} MiB; log errors: {r.errors}")
    if memory is not None:
        m = memory
        print(f"3. {m.n} HelmReleases + their {m.n} HelmCharts (each its own chart, repository, "
              f"digest and signature), --release-concurrency {args.rss_release_concurrency}: "
              f"{m.ready}/{m.n} Ready, {m.charts_verified}/{m.n} SourceVerified, "
              f"{m.installs} helm installs after {m.seconds:.1f} s; CPU: helm {m.helm_cpu:.1f} "
              f"s, operator {m.operator_cpu:.1f} s, emulator {m.api_cpu:.1f} s")
        print(f"   operator RSS idle {m.idle_rss:.0f} MiB, peak {m.peak_rss:.0f} MiB "
              f"(target <= 150 MiB); log errors: {m.errors}")
    return 0


def helm_version() -> str:
    out = subprocess.run([tools.helm(), "version", "--short"], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    return out.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())

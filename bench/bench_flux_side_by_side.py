"""chartguard beside Flux's own source-controller (`make bench-flux`, part of `make bench`;
Flux's controllers are built by `make flux-controllers`, part of `make tools`).

On ONE real control plane (etcd, kube-apiserver 1.36.3, controller-manager, scheduler, kwok:
`chartguard_testing.controlplane`, our CRDs from crds/) and ONE registry (Debian's
docker-registry, plain HTTP on 127.0.0.1), one after the other in one run:

1. N charts are pushed, each its own repository and manifest digest, each signed with one
   cosign key as `cosign sign --key` writes it (legacy `sha256-<hex>.sig`, no Rekor entry);
2. Flux's source-controller (v1.9.5, `make flux-controllers`) reconciles a HelmRepository
   (`type: oci`, `insecure: true`) and N HelmCharts with
   `verify: {provider: cosign, secretRef: {name: cosign-pub}}` in namespace `flux`, labelled
   `sharding.fluxcd.io/key: flux` (its `--watch-label-selector`);
3. it is stopped by PID, then `chartguard run` reconciles the same objects for the same charts in
   namespace `chartguard`, labelled `sharding.fluxcd.io/key: chartguard` (its `--namespace` and
   `--selector`), so no object ever has two writers.

For each side: seconds from `kubectl apply` to all N HelmCharts Ready=True and
SourceVerified=True (polled from the API server every 0.5 s), the controller's RSS when idle
before the apply and its peak RSS (VmHWM), and the CPU seconds it used from the apply to all
Ready (start-up excluded), and the CPU kube-apiserver + etcd used meanwhile (the API load each
controller causes); then the chartguard/Flux ratios. Printed, never
asserted. Both controllers get the same in-flight work (`--concurrency`: Flux's `--concurrent`,
chartguard's `--concurrency`).

Flux's source-controller reads HelmChart and HelmRepository through OUR CRDs (crds/, v1
storage); it also watches GitRepository, Bucket, OCIRepository and ExternalArtifact, whose CRDs
chartguard does not serve: they are applied from `.tools/flux-source-crds.yaml`, which
`make flux-controllers` copies from the source-controller module's config/crd/bases.

Then HelmReleases (`--releases`, default 100; 0 skips): R more charts are pushed (repository
`releases/cNNNN`, each its own layer, named in its Chart.yaml as in its Helm config, and its own
signature), and, one side after the other, Flux's source-controller + helm-controller (v1.6.4,
helm's Go SDK in-process) and then `chartguard run` (real helm 4 processes) reconcile a
HelmRepository and R HelmReleases with the blog's key block (`spec.chart.metadata.labels`
carries the shard label to the HelmCharts they create, as Flux's sharding needs), each in a
namespace and shard of its own (`flux-releases`, `chartguard-releases`), on a control plane
with a kwok Node per 50 releases (a Node takes 110 pods; Flux's releases stay while chartguard's
install). For each side: seconds from `kubectl apply` to all R HelmReleases Ready=True (current
generation), peak RSS (Flux: the two controllers' VmHWM added), CPU including the helm processes
chartguard starts, and the CPU kube-apiserver + etcd used meanwhile. Both install with their
default waiting (kstatus) and `--concurrent` / `--release-concurrency` = `--concurrency`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chartguard_testing import cosign_signer as cs
from chartguard_testing import flux, procs, tools
from chartguard_testing.bulk_charts import push_signed_charts
from chartguard_testing.charts import HelmEnv
from chartguard_testing.controlplane import ControlPlane, run_controlplane
from chartguard_testing.registry import Registry, run_registry

SHARD = flux.SHARD
CHARTGUARD = str(Path(sys.executable).with_name("chartguard"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    name: str
    ready: int
    verified: int
    seconds: float
    apply_seconds: float
    idle_rss_mib: float
    peak_rss_mib: float
    cpu_seconds: float
    api_cpu_seconds: float
    log_errors: int


# ---- charts -------------------------------------------------------------------------------

def push_charts(reg: Registry, helm: HelmEnv, key: cs.KeyPair, n: int) -> float:
    start = time.perf_counter()
    push_signed_charts(reg, helm, key, n)
    return time.perf_counter() - start


def _repository(namespace: str, labels: dict[str, str], url: str) -> dict[str, Any]:
    """The one HelmRepository every chart and release of a bench comes from."""
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": namespace, "labels": labels},
            "spec": {"type": "oci", "interval": "10m", "insecure": True, "url": url}}


def objects(namespace: str, shard: str, url: str, n: int) -> list[dict[str, Any]]:
    labels = {SHARD: shard}
    docs = [_repository(namespace, labels, url)]
    for i in range(n):
        docs.append({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": f"c{i:04d}", "namespace": namespace, "labels": labels},
            "spec": {"chart": f"c{i:04d}", "version": "1.0.0", "interval": "10m",
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                     "verify": {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}}})
    return docs


# ---- Flux's own CRDs for the kinds chartguard does not serve -------------------------------

def flux_extra_crds() -> list[Path]:
    """source-controller's CRDs except HelmChart and HelmRepository (ours are used)."""
    return [flux.source_crds()]


# ---- measuring ----------------------------------------------------------------------------

def proc_status(pid: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a live process."""
    hwm = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return hwm, cpu


def counts(plane: ControlPlane, namespace: str) -> tuple[int, int]:
    """(Ready=True for the current generation, SourceVerified=True) among the HelmCharts."""
    items = plane.request(
        "GET", f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/helmcharts",
        timeout=120)["items"]
    ready = verified = 0
    for item in items:
        status = item.get("status") or {}
        conds = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
        if (conds.get("Ready") == "True"
                and status.get("observedGeneration") == item["metadata"].get("generation")):
            ready += 1
        if conds.get("SourceVerified") == "True":
            verified += 1
    return ready, verified


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (127.0.0.1 only)
        return bool(answer.status == 200)


def api_cpu(plane: ControlPlane) -> float:
    """CPU seconds kube-apiserver and etcd have used: the API load a controller causes."""
    return sum(proc_status(plane.processes[name].pid)[1] for name in ("apiserver", "etcd"))


def run_side(name: str, plane: ControlPlane, reg: Registry, work: Path, pub: Path, n: int,
             argv: list[str], env: dict[str, str], health: str, timeout: float,
             logs: Path | None, preload: bool) -> Result:
    namespace = name
    kubectl = [tools.kubectl(), "--kubeconfig", str(plane.kubeconfig)]

    def k(*args: str) -> None:
        subprocess.run([*kubectl, *args], env=plane.env, check=True, capture_output=True,
                       text=True, timeout=900)

    k("create", "namespace", namespace)
    k("-n", namespace, "create", "secret", "generic", "cosign-pub",
      f"--from-file=cosign.pub={pub}")
    manifests = work / f"{name}.yaml"
    manifests.write_text(yaml.safe_dump_all(objects(namespace, name, reg.oci("charts"), n)))
    log = work / f"{name}.log"
    applied = float("nan")
    if preload:  # the objects wait for the controller: timed from its start
        print(f"{name}: applying {n} HelmCharts, then starting it ...", flush=True)
        applying = time.perf_counter()
        k("apply", "-f", str(manifests))
        applied = time.perf_counter() - applying
    api_before = api_cpu(plane)
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        idle_rss, cpu_before = float("nan"), 0.0
        if not preload:
            procs.wait_until(lambda: http_ok(health), timeout=120, what=name, proc=proc)
            time.sleep(2.0)  # watching before the objects arrive, as in bench_operator.py
            idle_rss, cpu_before = proc_status(proc.pid)
            api_before = api_cpu(plane)
            print(f"{name}: applying {n} HelmCharts ...", flush=True)
            start = time.perf_counter()
            k("apply", "-f", str(manifests))
            applied = time.perf_counter() - start
        ready = verified = 0
        while time.perf_counter() - start < timeout:
            ready, verified = counts(plane, namespace)
            if ready >= n and verified >= n:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: see {log}")
            time.sleep(0.5)
        elapsed = time.perf_counter() - start
        rss, cpu_after = proc_status(proc.pid)
        api_after = api_cpu(plane)
    finally:
        procs.stop(proc, grace=10)
    text = log.read_text(errors="replace")
    errors = sum(1 for line in text.splitlines()
                 if "Traceback" in line or "ERROR" in line or '"level":"error"' in line)
    print(f"{name}: {ready}/{n} Ready, {verified}/{n} SourceVerified after {elapsed:.1f} s",
          flush=True)
    if ready < n and errors:
        tail = [line for line in text.splitlines() if "error" in line.lower()][-5:]
        print("\n".join(f"  {line[:400]}" for line in tail), flush=True)
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
        (logs / log.name).write_text(text)
    return Result(name, ready, verified, elapsed, applied, idle_rss, rss, cpu_after - cpu_before,
                  api_after - api_before, errors)


# ---- HelmReleases: helm-controller (+ source-controller) beside chartguard -----------------

RELEASE_REPOSITORY = "releases"


@dataclass(frozen=True)
class ReleaseResult:
    name: str
    ready: int
    seconds: float
    apply_seconds: float
    peak_rss_mib: float
    cpu_seconds: float
    api_cpu_seconds: float
    log_errors: int


def release_objects(namespace: str, shard: str, url: str, n: int) -> list[dict[str, Any]]:
    labels = {SHARD: shard}
    docs = [_repository(namespace, labels, url)]
    for i in range(n):
        docs.append({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": f"r{i:04d}", "namespace": namespace, "labels": labels},
            "spec": {"interval": "10m", "chart": {"metadata": {"labels": labels}, "spec": {
                "chart": f"c{i:04d}", "version": "1.0.0", "reconcileStrategy": "ChartVersion",
                "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                "verify": {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}}}}})
    return docs


def releases_ready(plane: ControlPlane, namespace: str) -> int:
    items = plane.request(
        "GET", f"/apis/helm.toolkit.fluxcd.io/v2/namespaces/{namespace}/helmreleases",
        timeout=120)["items"]
    return sum(1 for item in items
               for cond in (item.get("status") or {}).get("conditions", [])
               if cond.get("type") == "Ready" and cond.get("status") == "True"
               and cond.get("observedGeneration") == item["metadata"].get("generation"))


def cpu_with_children(pid: int) -> float:
    """CPU seconds of a live process and of the children it has waited for (helm)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def run_release_side(name: str, plane: ControlPlane, url: str, work: Path, pub: Path, n: int,
                     commands: list[tuple[str, list[str], dict[str, str], str]],
                     timeout: float, logs: Path | None) -> ReleaseResult:
    """``commands``: (label, argv, env, health URL) of each process the side runs."""
    namespace = f"{name}-releases"
    kubectl = [tools.kubectl(), "--kubeconfig", str(plane.kubeconfig)]

    def k(*args: str) -> None:
        subprocess.run([*kubectl, *args], env=plane.env, check=True, capture_output=True,
                       text=True, timeout=900)

    k("create", "namespace", namespace)
    k("-n", namespace, "create", "secret", "generic", "cosign-pub",
      f"--from-file=cosign.pub={pub}")
    manifests = work / f"{namespace}.yaml"
    manifests.write_text(yaml.safe_dump_all(release_objects(namespace, f"{name}-hr", url, n)))
    running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for label, argv, env, _ in commands:
            log = work / f"{label}.log"
            with log.open("wb") as out:
                running.append((label, subprocess.Popen(argv, env=env, stdout=out,
                                                        stderr=subprocess.STDOUT), log))
        for (label, _, _, health), (_, proc, _) in zip(commands, running, strict=True):
            procs.wait_until(lambda h=health: http_ok(h), timeout=120,  # type: ignore[misc]
                             what=label, proc=proc)
        time.sleep(2.0)
        cpu_before = sum(cpu_with_children(proc.pid) for _, proc, _ in running)
        api_before = api_cpu(plane)
        print(f"{name}: applying {n} HelmReleases ...", flush=True)
        start = time.perf_counter()
        k("apply", "-f", str(manifests))
        applied = time.perf_counter() - start
        ready = 0
        while time.perf_counter() - start < timeout:
            ready = releases_ready(plane, namespace)
            if ready >= n:
                break
            for label, proc, log in running:
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited with {proc.returncode}: see {log}")
            time.sleep(1.0)
        elapsed = time.perf_counter() - start
        peak = sum(proc_status(proc.pid)[0] for _, proc, _ in running)
        cpu = sum(cpu_with_children(proc.pid) for _, proc, _ in running) - cpu_before
        api = api_cpu(plane) - api_before
    finally:
        for _, proc, _ in running:
            procs.stop(proc, grace=10)
    errors = 0
    for _, _, log in running:
        text = log.read_text(errors="replace")
        errors += sum(1 for line in text.splitlines()
                      if "Traceback" in line or "ERROR" in line or '"level":"error"' in line)
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            (logs / log.name).write_text(text)
    print(f"{name}: {ready}/{n} HelmReleases Ready after {elapsed:.1f} s", flush=True)
    return ReleaseResult(name, ready, elapsed, applied, peak, cpu, api, errors)


def release_sides(args: argparse.Namespace, plane: ControlPlane, reg: Registry, work: Path,
                  pub: Path) -> list[ReleaseResult]:
    n: int = args.releases
    url = reg.oci(RELEASE_REPOSITORY)
    results: list[ReleaseResult] = []
    if args.only in (None, "flux"):
        metrics, health, storage, hc_metrics, hc_health = (procs.free_port() for _ in range(5))
        (work / "flux-release-storage").mkdir()
        env = {**plane.env, "RUNTIME_NAMESPACE": "flux-releases"}
        shard = f"--watch-label-selector={SHARD} in (flux-hr)"
        results.append(run_release_side("flux", plane, url, work, pub, n, [
            ("flux-source-controller",
             [tools.find_tool("source-controller"), "--watch-all-namespaces", shard,
              "--enable-leader-election=false", "--log-level=info", "--log-encoding=json",
              f"--concurrent={args.concurrency}", f"--metrics-addr=127.0.0.1:{metrics}",
              f"--health-addr=127.0.0.1:{health}",
              f"--storage-path={work / 'flux-release-storage'}",
              f"--storage-addr=127.0.0.1:{storage}", f"--storage-adv-addr=127.0.0.1:{storage}",
              *args.flux_arg], env, f"http://127.0.0.1:{health}/readyz"),
            ("flux-helm-controller",
             [tools.find_tool("helm-controller"), "--watch-all-namespaces", shard,
              "--enable-leader-election=false", "--log-level=info", "--log-encoding=json",
              f"--concurrent={args.concurrency}", f"--metrics-addr=127.0.0.1:{hc_metrics}",
              f"--health-addr=127.0.0.1:{hc_health}", *args.helm_controller_arg],
             env, f"http://127.0.0.1:{hc_health}/readyz")], args.timeout, args.logs))
    if args.only in (None, "chartguard"):
        health = procs.free_port()
        results.append(run_release_side("chartguard", plane, url, work, pub, n, [
            ("chartguard-releases",
             [CHARTGUARD, "run", "--namespace", "chartguard-releases",
              "--selector", f"{SHARD} in (chartguard-hr)",
              "--concurrency", str(args.concurrency),
              "--release-concurrency", str(args.concurrency),
              "--artifact-dir", str(work / "chartguard-release-artifacts"),
              "--helm", tools.helm(), "--helm-home", str(work / "chartguard-helm-home"),
              "--health-port", str(health), *args.chartguard_arg],
             plane.env, f"http://127.0.0.1:{health}/healthz")], args.timeout, args.logs))
    return results


def print_releases(results: list[ReleaseResult], n: int, concurrency: int) -> None:
    print(f"HelmReleases: {n} (each its own chart, digest and cosign key signature), "
          f"--concurrent / --release-concurrency {concurrency}; Flux = source-controller + "
          "helm-controller (helm SDK in-process), chartguard = one process + helm processes")
    print(f"  {'':<12}{'all Ready':>12}{'(apply)':>10}{'peak RSS':>12}{'CPU+helm':>10}"
          f"{'API CPU':>10}{'Ready':>8}{'log errors':>12}")
    for r in results:
        print(f"  {r.name:<12}{r.seconds:>10.1f} s{r.apply_seconds:>8.1f} s"
              f"{r.peak_rss_mib:>8.0f} MiB{r.cpu_seconds:>8.1f} s{r.api_cpu_seconds:>8.1f} s"
              f"{r.ready:>8}{r.log_errors:>12}")
    by_name = {r.name: r for r in results}
    if len(by_name) == 2:
        cg, flux = by_name["chartguard"], by_name["flux"]
        print(f"  chartguard/Flux: time to all Ready {cg.seconds / flux.seconds:.2f}, "
              f"peak RSS {cg.peak_rss_mib / flux.peak_rss_mib:.2f}, "
              f"CPU {cg.cpu_seconds / max(flux.cpu_seconds, 0.01):.2f}, "
              f"API server + etcd CPU {cg.api_cpu_seconds / max(flux.api_cpu_seconds, 0.01):.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--charts", type=int,
                        default=int(os.environ.get("CHARTGUARD_BENCH_FLUX_CHARTS", "200")))
    parser.add_argument("--concurrency", type=int, default=4,
                        help="Flux's --concurrent and chartguard's --concurrency (default 4, "
                             "chartguard's default; Flux's is 2)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds each side may take to reach all Ready")
    parser.add_argument("--only", choices=("flux", "chartguard"),
                        help="run one side only")
    parser.add_argument("--flux-arg", action="append", default=[], metavar="ARG",
                        help="one more source-controller flag, e.g. --flux-arg=--concurrent=2 "
                             "(repeatable; a later flag wins)")
    parser.add_argument("--chartguard-arg", action="append", default=[], metavar="ARG",
                        help="one more `chartguard run` flag (repeatable)")
    parser.add_argument("--helm-controller-arg", action="append", default=[], metavar="ARG",
                        help="one more helm-controller flag (repeatable)")
    parser.add_argument("--releases", type=int,
                        default=int(os.environ.get("CHARTGUARD_BENCH_FLUX_RELEASES", "100")),
                        help="HelmReleases for the helm-controller comparison (0 skips it)")
    parser.add_argument("--logs", type=Path, help="keep both controllers' logs in this directory")
    parser.add_argument("--preload", action="store_true",
                        help="apply the objects first, then start the controller, and time from "
                             "its start (start-up and cache sync included; no kubectl apply "
                             "competing with it)")
    args = parser.parse_args(argv)
    n: int = args.charts
    source_controller = tools.find_tool("source-controller")
    extra_crds = flux_extra_crds()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="chartguard-fluxbench-") as tmp:
        work = Path(tmp)
        # a kwok Node takes 110 pods: enough Nodes for both sides' releases (one pod each)
        nodes = 1 + 2 * max(0, args.releases) // 100
        with run_registry(workdir=work) as reg, \
                run_controlplane(work / "cp", nodes=nodes) as plane:
            helm = HelmEnv(work / "helm")
            key = cs.generate_key_pair()
            pub = work / "cosign.pub"
            pub.write_bytes(key.public_pem)
            print(f"pushing {n} charts and their signatures ...", flush=True)
            pushed = push_charts(reg, helm, key, n)
            if args.releases > 0:
                print(f"pushing {args.releases} charts for HelmReleases ...", flush=True)
                push_signed_charts(reg, helm, key, args.releases, layer_per_chart=True,
                                   path=RELEASE_REPOSITORY)
            for crd in extra_crds:
                subprocess.run([tools.kubectl(), "apply", "-f", str(crd)], env=plane.env,
                               check=True, capture_output=True, timeout=120)
            subprocess.run([tools.kubectl(), "wait", "--for=condition=Established", "crd",
                            "--all", "--timeout=60s"], env=plane.env, check=True,
                           capture_output=True, timeout=120)
            if args.only in (None, "flux"):
                metrics, health, storage = (procs.free_port() for _ in range(3))
                (work / "flux-storage").mkdir()
                results.append(run_side(
                    "flux", plane, reg, work, pub, n,
                    [source_controller, "--watch-all-namespaces",
                     f"--watch-label-selector={SHARD} in (flux)",
                     "--enable-leader-election=false", "--log-level=info",
                     "--log-encoding=json", f"--concurrent={args.concurrency}",
                     f"--metrics-addr=127.0.0.1:{metrics}",
                     f"--health-addr=127.0.0.1:{health}",
                     f"--storage-path={work / 'flux-storage'}",
                     f"--storage-addr=127.0.0.1:{storage}",
                     f"--storage-adv-addr=127.0.0.1:{storage}", *args.flux_arg],
                    {**plane.env, "RUNTIME_NAMESPACE": "flux"},
                    f"http://127.0.0.1:{health}/readyz", args.timeout, args.logs,
                    args.preload))
            if args.only in (None, "chartguard"):
                health = procs.free_port()
                results.append(run_side(
                    "chartguard", plane, reg, work, pub, n,
                    [CHARTGUARD, "run", "--namespace", "chartguard",
                     "--selector", f"{SHARD} in (chartguard)",
                     "--concurrency", str(args.concurrency),
                     "--artifact-dir", str(work / "chartguard-artifacts"),
                     "--health-port", str(health), *args.chartguard_arg],
                    plane.env, f"http://127.0.0.1:{health}/healthz", args.timeout, args.logs,
                    args.preload))
            release_results = (release_sides(args, plane, reg, work, pub)
                               if args.releases > 0 else [])
    print()
    print(f"HelmCharts: {n} (own repository, digest and cosign key signature each, legacy .sig),"
          f" one real control plane (kube-apiserver {plane.server_version}) and one registry, "
          f"in-flight work {args.concurrency} on each side, 2 cores shared with the control "
          f"plane and the registry; pushed in {pushed:.1f} s")
    print(f"  {'':<12}{'all Ready':>12}{'(apply)':>10}{'idle RSS':>12}{'peak RSS':>12}"
          f"{'CPU':>10}{'API CPU':>10}{'Ready':>8}{'Verified':>10}{'log errors':>12}")
    for r in results:
        print(f"  {r.name:<12}{r.seconds:>10.1f} s{r.apply_seconds:>8.1f} s"
              f"{r.idle_rss_mib:>8.0f} MiB{r.peak_rss_mib:>8.0f} MiB"
              f"{r.cpu_seconds:>8.1f} s{r.api_cpu_seconds:>8.1f} s"
              f"{r.ready:>8}{r.verified:>10}{r.log_errors:>12}")
    by_name = {r.name: r for r in results}
    if len(by_name) == 2:
        cg, flux = by_name["chartguard"], by_name["flux"]
        print(f"  chartguard/Flux: time to all Ready {cg.seconds / flux.seconds:.2f}, "
              f"peak RSS {cg.peak_rss_mib / flux.peak_rss_mib:.2f}, "
              f"CPU {cg.cpu_seconds / max(flux.cpu_seconds, 0.01):.2f}, "
              f"API server + etcd CPU {cg.api_cpu_seconds / max(flux.api_cpu_seconds, 0.01):.2f}")
    if args.preload:
        print("  --preload: objects applied before each controller started; times and CPU from "
              "its start (start-up included)")
    if args.flux_arg or args.chartguard_arg:
        print(f"  extra flags: Flux {args.flux_arg}, chartguard {args.chartguard_arg}")
    if release_results:
        print()
        print_releases(release_results, args.releases, args.concurrency)
    return 0 if (all(r.ready >= n and r.verified >= n for r in results)
                 and all(r.ready >= args.releases for r in release_results)) else 1


if __name__ == "__main__":
    sys.exit(main())

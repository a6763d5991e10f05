"""The operator at scale (`make bench`): N signed HelmCharts applied at once.

Real components on this machine: Debian's docker-registry (the first sync goes straight to it;
the steady state is counted through a proxy in front of it), the Kubernetes API emulator (test
equipment: it shares the 2 cores with the operator and is part of what is measured), kubectl
applying the objects, and `chartguard run` as its own process.
Printed, never asserted:

- time from `kubectl apply` of N HelmCharts to all of them SourceVerified=True
  (target <= 60 s for N = 1,000 on 2 cores), and the operator's peak RSS (target <= 150 MiB);
- registry requests per unchanged chart per interval (target <= 1), next to what a
  `helm pull` + `chartguard verify` loop costs for the same chart, measured in the same run.

Each chart has its own repository and manifest digest (its Helm config names it) and its own
key signature, so every one is resolved, verified and stored on its own. The chart layer is
one `helm package` output, uploaded into every repository.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from chartguard_testing import cosign_signer as cs
from chartguard_testing import tools
from chartguard_testing.apiserver import run_apiserver
from chartguard_testing.bulk_charts import push_signed_charts
from chartguard_testing.charts import HelmEnv
from chartguard_testing.proxy import CountingProxy
from chartguard_testing.registry import Registry, run_registry

N = int(os.environ.get("CHARTGUARD_BENCH_CHARTS", "1000"))
CONCURRENCY = int(os.environ.get("CHARTGUARD_BENCH_CONCURRENCY", "8"))
INTERVAL_S = 10
WINDOW_S = 30
NS = "bench"
CHARTGUARD = str(Path(sys.executable).with_name("chartguard"))


def push_charts(reg: Registry, helm: HelmEnv, key: cs.KeyPair) -> float:
    start = time.perf_counter()
    push_signed_charts(reg, helm, key, N)
    return time.perf_counter() - start


def objects(url: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": NS},
        "spec": {"type": "oci", "interval": "10m", "insecure": True, "url": url}}]
    for i in range(N):
        docs.append({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": f"c{i:04d}", "namespace": NS},
            "spec": {"chart": f"c{i:04d}", "version": "1.0.0", "interval": f"{INTERVAL_S}s",
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                     "verify": {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}}})
    return docs


def verified_count(url: str) -> int:
    items = requests.get(f"{url}/apis/source.toolkit.fluxcd.io/v1/namespaces/{NS}/helmcharts",
                         timeout=60).json()["items"]
    return sum(1 for item in items for cond in (item.get("status") or {}).get("conditions", [])
               if cond.get("type") == "SourceVerified" and cond.get("status") == "True")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def baseline(proxy: CountingProxy, helm: HelmEnv, work: Path) -> tuple[int, int]:
    """Requests and blob downloads of one `helm pull` + `chartguard verify` of one chart."""
    proxy.reset()
    (work / "pulled").mkdir(exist_ok=True)
    helm.run("pull", f"{proxy.oci()}/c0000", "--version", "1.0.0", "--plain-http",
             "-d", str(work / "pulled"))
    subprocess.run([CHARTGUARD, "verify", f"{proxy.oci()}/c0000", "--version", "1.0.0",
                    "--key", str(work / "cosign.pub"), "--plain-http"], check=True,
                   capture_output=True, timeout=60)
    return len(proxy.requests), len(proxy.seen("/blobs/"))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="chartguard-bench-") as tmp:
        work = Path(tmp)
        with run_registry(workdir=work) as reg, run_apiserver(work / "kube") as api:
            proxy = CountingProxy(reg)
            helm = HelmEnv(work / "helm")
            key = cs.generate_key_pair()
            (work / "cosign.pub").write_bytes(key.public_pem)
            print(f"pushing {N} charts and their signatures ...", flush=True)
            pushed = push_charts(reg, helm, key)
            kubectl = [tools.kubectl(), "--kubeconfig", str(api.kubeconfig)]
            env = api.env

            def k(*args: str, stdin: str | None = None) -> None:
                subprocess.run([*kubectl, *args], env=env, check=True, capture_output=True,
                               input=stdin, text=True, timeout=600)

            k("apply", "-f", str(Path(tools.REPO_ROOT) / "crds"))
            k("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
            k("create", "namespace", NS)
            k("-n", NS, "create", "secret", "generic", "cosign-pub",
              f"--from-file=cosign.pub={work / 'cosign.pub'}")
            manifests = work / "charts.yaml"
            # the first sync goes straight to the registry (the counting proxy is Python test
            # equipment sharing the 2 cores); the steady state is counted through the proxy
            manifests.write_text(yaml.safe_dump_all(objects(reg.oci("charts"))))
            log = work / "operator.log"
            with log.open("wb") as out:
                operator = subprocess.Popen(
                    [CHARTGUARD, "run", "--all-namespaces", "--concurrency", str(CONCURRENCY),
                     "--artifact-dir", str(work / "artifacts")],
                    env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                time.sleep(2.0)  # the operator is up and watching before the objects arrive
                start = time.perf_counter()
                k("apply", "-f", str(manifests))
                applied = time.perf_counter() - start
                # progress from the operator's log (one line per chart written), so polling
                # does not load the emulator the operator is writing to; checked via the API
                # once at the end
                while time.perf_counter() - start < 600:
                    time.sleep(0.5)
                    if log.read_text(errors="replace").count(": pulled 'c") >= N:
                        break
                elapsed = time.perf_counter() - start
                done = verified_count(api.url)
                rss = peak_rss_mib(operator.pid)
                k("-n", NS, "patch", "helmrepository", "charts", "--type=merge",
                  "-p", json.dumps({"spec": {"url": proxy.oci()}}))
                time.sleep(INTERVAL_S)  # every chart looked again, through the proxy
                proxy.reset()
                time.sleep(WINDOW_S)
                steady = len(proxy.requests)
                steady_blobs = len(proxy.seen("/blobs/"))
                rss = max(rss, peak_rss_mib(operator.pid))
                stopping = time.perf_counter()
                operator.send_signal(signal.SIGTERM)
                operator.wait(timeout=60)
                stopped = time.perf_counter() - stopping
            finally:
                if operator.poll() is None:
                    operator.kill()
            loop_requests, loop_blobs = baseline(proxy, helm, work)
            proxy.close()
            errors = [line for line in log.read_text().splitlines()
                      if "Traceback" in line or "ERROR" in line]
    intervals = WINDOW_S / INTERVAL_S
    print(f"charts: {N} (own repository, digest and key signature each), operator "
          f"--concurrency {CONCURRENCY}, 2-core machine shared with the emulator and registry")
    print(f"  setup: pushed {N} charts + signatures in {pushed:.1f} s; kubectl apply took "
          f"{applied:.1f} s")
    print(f"  all SourceVerified=True: {done}/{N} after {elapsed:.1f} s from kubectl apply "
          "(target <= 60 s)")
    print(f"  operator peak RSS: {rss:.0f} MiB (target <= 150 MiB)")
    print(f"  unchanged charts, {WINDOW_S} s at interval {INTERVAL_S} s: {steady} registry "
          f"requests ({steady_blobs} blob downloads) = "
          f"{steady / N / intervals:.2f} requests per chart per interval (target <= 1)")
    print(f"  helm pull + chartguard verify of one chart: {loop_requests} requests, "
          f"{loop_blobs} blob downloads per interval")
    print(f"  SIGTERM to exit: {stopped:.1f} s; log errors: {len(errors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make e2e`: chartguard as users run it, on a kind cluster.

    python scripts/e2e.py check                 what is missing, if anything; exit 1 when so
    python scripts/e2e.py run --image IMAGE     the run (after `make base-tools cosign kind image`)

``check`` looks for a running container engine (``$CONTAINER_ENGINE``, default docker:
``docker info`` must answer, not just ``docker --version``) and for kind or the Go toolchain
that builds it (``make kind``); it names everything missing and exits 1, so `make e2e` stops
before building anything and never claims a pass.

``run``: a kind cluster of its own (``kind create cluster``), the operator's image (built by
`make image`) loaded into it, a registry (distribution's ``registry:2``) running in the
cluster, reached from here through ``kubectl port-forward`` on 127.0.0.1 and from the
operator through its Service, the deploy chart installed with helm (image from the cluster's
own store, ``pullPolicy: Never``), then ``pytest -m e2e tests/e2e``: the blog's flow with
charts pushed by real helm and signed by the real cosign (``.tools/cosign``). The cluster is
deleted afterwards (``E2E_KEEP=1`` keeps it and prints its kubeconfig); the exit code is
pytest's.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("CHARTGUARD_TOOLS_DIR", REPO / ".tools"))
REGISTRY_NAMESPACE = "e2e-registry"
REGISTRY_IMAGE = os.environ.get("E2E_REGISTRY_IMAGE", "registry:2")
OPERATOR_NAMESPACE = "chartguard-system"
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")

REGISTRY_MANIFESTS = f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {REGISTRY_NAMESPACE}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: registry
  namespace: {REGISTRY_NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: registry}}
  template:
    metadata:
      labels: {{app: registry}}
    spec:
      containers:
      - name: registry
        image: {REGISTRY_IMAGE}
        ports: [{{containerPort: 5000}}]
        readinessProbe:
          httpGet: {{path: /v2/, port: 5000}}
---
apiVersion: v1
kind: Service
metadata:
  name: registry
  namespace: {REGISTRY_NAMESPACE}
spec:
  selector: {{app: registry}}
  ports: [{{port: 5000, targetPort: 5000}}]
"""


def engine() -> str:
    return os.environ.get("CONTAINER_ENGINE", "docker")


def find(name: str) -> str | None:
    local = TOOLS / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def missing() -> list[str]:
    """What `make e2e` needs and this machine lacks, one line each (empty: nothing)."""
    lines: list[str] = []
    name = engine()
    if shutil.which(name) is None:
        lines.append(f"no container engine: `{name}` is not on PATH (install docker, or set "
                     "CONTAINER_ENGINE=podman)")
    else:
        try:
            info = subprocess.run([name, "info"], capture_output=True, text=True, timeout=30,
                                  check=False)
            answer, detail = info.returncode, (info.stderr.strip().splitlines() or [""])[-1]
        except subprocess.TimeoutExpired:
            answer, detail = -1, "no answer in 30 s"
        if answer != 0:
            lines.append(f"no container engine runs: `{name} info` failed ({detail[:200]}); "
                         "kind needs a running engine")
    if find("kind") is None and shutil.which("go") is None:
        lines.append("kind is missing and go is not installed to build it (`make kind` builds "
                     "sigs.k8s.io/kind through the Go module proxy)")
    return lines


def check() -> int:
    lines = missing()
    if not lines:
        print(f"make e2e: {engine()} runs; kind is here or buildable")
        return 0
    for line in lines:
        print(f"make e2e: {line}", file=sys.stderr)
    print("make e2e: nothing was run or tested", file=sys.stderr)
    return 1


def _run(*argv: str, env: dict[str, str] | None = None, timeout: float = 900,
         stdin: str | None = None) -> str:
    print("+ " + " ".join(argv), flush=True)
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} {' '.join(argv[1:3])} failed ({proc.returncode}):\n"
                           f"{proc.stderr.strip()[-4000:]}")
    return proc.stdout


@contextmanager
def port_forward(kubectl: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    """``kubectl port-forward`` to the registry on a free port of 127.0.0.1."""
    with log.open("wb") as out:
        proc = subprocess.Popen([*kubectl, "-n", REGISTRY_NAMESPACE, "port-forward",
                                 "--address", "127.0.0.1", "svc/registry", ":5000"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = _FORWARDING.search(log.read_text(errors="replace"))
            if found:
                yield int(found[1])
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"kubectl port-forward to the registry: {log.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run(image: str) -> int:
    if check() != 0:
        return 1
    kind, helm, kubectl_bin = find("kind"), find("helm"), find("kubectl")
    if kind is None or helm is None or kubectl_bin is None:
        print("make e2e: kind, helm and kubectl are needed: run `make base-tools kind`",
              file=sys.stderr)
        return 1
    repository, _, tag = image.rpartition(":")
    name = f"chartguard-e2e-{secrets.token_hex(3)}"
    keep = os.environ.get("E2E_KEEP") == "1"
    work = Path(tempfile.mkdtemp(prefix="chartguard-e2e-"))
    kubeconfig = work / "kubeconfig"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    if engine() == "podman":
        env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
    kubectl = [kubectl_bin, "--kubeconfig", str(kubeconfig)]
    created = False
    try:
        _run(kind, "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig),
             "--wait", "180s", env=env)
        created = True
        _run(kind, "load", "docker-image", image, "--name", name, env=env)
        _run(*kubectl, "apply", "-f", "-", stdin=REGISTRY_MANIFESTS, env=env)
        _run(*kubectl, "-n", REGISTRY_NAMESPACE, "rollout", "status", "deployment/registry",
             "--timeout=300s", env=env)
        _run(helm, "install", "chartguard", str(REPO / "deploy" / "chart" / "chartguard"),
             "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
             "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
             "--set", "image.pullPolicy=Never", "--set", "logFormat=text",
             "--wait", "--timeout", "5m", env=env)
        with port_forward(kubectl, env, work / "port-forward.log") as port:
            tests = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-m", "e2e", "-p", "no:cacheprovider",
                 str(REPO / "tests" / "e2e")],
                env={**env, "CHARTGUARD_E2E_KUBECONFIG": str(kubeconfig),
                     "CHARTGUARD_E2E_REGISTRY": f"127.0.0.1:{port}",
                     "CHARTGUARD_E2E_REGISTRY_IN_CLUSTER":
                         f"registry.{REGISTRY_NAMESPACE}.svc.cluster.local:5000",
                     "CHARTGUARD_E2E_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE},
                cwd=REPO, check=False)
        if tests.returncode != 0:
            logs = subprocess.run([*kubectl, "-n", OPERATOR_NAMESPACE, "logs",
                                   "deployment/chartguard", "--tail=200"], env=env,
                                  capture_output=True, text=True, timeout=60, check=False)
            print(f"--- operator log (tail) ---\n{logs.stdout}{logs.stderr}")
            print(f"make e2e: FAILED on kind cluster {name}", file=sys.stderr)
            return tests.returncode
        print(f"make e2e: passed on kind cluster {name} with {image}")
        return 0
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"make e2e: {err}", file=sys.stderr)
        print("make e2e: not completed; nothing is claimed", file=sys.stderr)
        return 1
    finally:
        if created and keep:
            print(f"make e2e: kept kind cluster {name}; KUBECONFIG={kubeconfig}")
        else:
            if created:
                subprocess.run([kind, "delete", "cluster", "--name", name], env=env,
                               capture_output=True, timeout=300, check=False)
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="say what is missing; exit 1 when anything is")
    runner = sub.add_parser("run", help="the kind cluster, image, registry, chart and tests")
    runner.add_argument("--image", required=True, help="the image `make image` built")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check()
    return run(args.image)


if __name__ == "__main__":
    sys.exit(main())

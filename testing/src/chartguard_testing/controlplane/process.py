"""A real Kubernetes control plane as processes on 127.0.0.1, for tests and the demo.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, all built from source
by ``make controlplane`` into ``.tools/``, started with generated certificates on free ports,
RBAC authorization on, our CRDs installed and one or more kwok Nodes Ready (kwok's default
stages make scheduled Pods Running and Ready, so Deployments, StatefulSets and Jobs reach the
states ``helm --wait`` waits for). Every process is stopped by its PID and the work directory
is removed on exit. This is what controller-runtime's envtest does, plus the controllers and
fake nodes envtest leaves out.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chartguard_testing import procs, tools
from chartguard_testing.controlplane.kubeconfig import write_kubeconfig
from chartguard_testing.controlplane.pki import SERVICE_CIDR, Pki, make_pki

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
CRDS = tools.REPO_ROOT / "crds"


class ApiError(RuntimeError):
    """The API server answered a request with an error status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ControlPlaneMissingError(tools.ToolMissingError):
    """A control-plane binary is not built: ``make controlplane`` (part of ``make tools``)."""


def binaries() -> dict[str, str]:
    """Paths of the control plane's binaries, or an error naming the make target."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in BINARIES:
        try:
            found[name] = tools.find_tool(name)
        except tools.ToolMissingError:
            missing.append(name)
    if "kwok" in found:
        stages = kwok_stages(found["kwok"])
        if not stages.is_file():
            missing.append(str(stages))
    if missing:
        raise ControlPlaneMissingError(
            f"{', '.join(missing)} not found in {tools.TOOLS_DIR}: run `make controlplane`")
    return found


def kwok_stages(kwok: str) -> Path:
    """kwok's default node and pod stages, which ``make controlplane`` puts beside the
    binary (the kwok binary has none built in; kwokctl normally hands them over)."""
    return Path(kwok).resolve().parent / "kwok-stages.yaml"


def available() -> bool:
    try:
        binaries()
    except ControlPlaneMissingError:
        return False
    return True


@dataclass
class ControlPlane:
    """A running control plane: where it answers, an admin kubeconfig, its processes."""

    url: str
    kubeconfig: Path
    workdir: Path
    pki: Pki
    server_version: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm: this kubeconfig and a discovery cache of its own."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(self.workdir / "kube-cache")}

    def request(self, method: str, path: str, body: object | None = None, *,
                content_type: str = "application/json", timeout: float = 30) -> Any:
        """One admin request to the API server; the decoded JSON answer."""
        return _request(self.url, self.pki, method, path, body, timeout=timeout,
                        content_type=content_type)

    def write_kubeconfig(self, path: Path, *, namespace: str | None = None,
                         token: str | None = None, user: str = "admin") -> Path:
        """A kubeconfig for this server: admin's certificate, or ``token`` when given."""
        if token is not None:
            return write_kubeconfig(path, server=self.url, ca=self.pki.ca.cert, user=user,
                                    token=token, namespace=namespace)
        return write_kubeconfig(path, server=self.url, ca=self.pki.ca.cert, user=user,
                                cert=self.pki.admin.cert, key=self.pki.admin.key,
                                namespace=namespace)


@dataclass(frozen=True)
class Namespaced:
    """One namespace of a shared control plane, as a KubeTarget: a kubeconfig whose context
    defaults to that namespace, and a kubectl discovery cache of its own."""

    plane: ControlPlane
    namespace: str
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(self.kubeconfig.parent / "kube-cache")}


def namespaced(plane: ControlPlane, namespace: str, workdir: Path) -> Namespaced:
    """Create ``namespace`` and a kubeconfig in ``workdir`` that defaults to it."""
    plane.request("POST", "/api/v1/namespaces",
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    config = plane.write_kubeconfig(workdir / "kubeconfig", namespace=namespace)
    return Namespaced(plane, namespace, config)


def _ssl_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    ctx.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return ctx


def _request(url: str, pki: Pki, method: str, path: str, body: object | None,
             *, timeout: float, content_type: str = "application/json") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,  # noqa: S310 (https)
                                 headers={"Content-Type": content_type,
                                          "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, context=_ssl_context(pki),  # noqa: S310 (https)
                                    timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        # read and close the answer (it holds a socket); the Status message says what failed
        detail = exc.read().decode(errors="replace")
        exc.close()
        raise ApiError(exc.code, f"{method} {path}: {exc.code} {detail}") from None
    return json.loads(raw) if raw else None


def _start(name: str, argv: list[str], workdir: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with (workdir / f"{name}.log").open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                env=env, stdin=subprocess.DEVNULL)


def _log_tail(workdir: Path, name: str, lines: int = 25) -> str:
    log = workdir / f"{name}.log"
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class _ExitedEarlyError(RuntimeError):
    """A component exited before it was ready."""


def _wait(check: Any, *, what: str, proc: subprocess.Popen[bytes], workdir: Path,
          timeout: float) -> None:
    try:
        procs.wait_until(check, timeout=timeout, what=what, proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        name = what.split()[0]
        kind = _ExitedEarlyError if isinstance(exc, RuntimeError) else RuntimeError
        raise kind(f"{exc}; the end of {workdir / (name + '.log')}:\n"
                   f"{_log_tail(workdir, name)}") from exc


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        return False
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def kwok_node(name: str) -> dict[str, Any]:
    """A Node kwok manages (the annotation its --manage-nodes-with-annotation-selector takes):
    no taint, so every Pod a chart creates can be scheduled on it."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name,
                     "annotations": {"kwok.x-k8s.io/node": "fake",
                                     "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": name,
                                "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
        "status": {"allocatable": capacity, "capacity": capacity,
                   "nodeInfo": {"architecture": "amd64", "kubeProxyVersion": "fake",
                                "kubeletVersion": "fake", "operatingSystem": "linux"},
                   "phase": "Running"},
    }


@contextmanager
def run_controlplane(workdir: Path | None = None, *, nodes: int = 1, crds: bool = True,
                     timeout: float = 180.0) -> Iterator[ControlPlane]:
    """Start the control plane; on exit stop every process by its PID.

    Without ``workdir`` everything (etcd's data, certificates, logs) lives in a fresh
    temporary directory, removed on exit; a given ``workdir`` is kept for its logs. A missing
    binary raises ControlPlaneMissingError naming ``make controlplane``.
    """
    bins = binaries()
    owned = workdir is None
    root = Path(tempfile.mkdtemp(prefix="chartguard-cp-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    try:
        with ExitStack() as stack:
            for attempt in range(2):
                try:
                    plane = _boot(bins, root / f"run{attempt}", stack, nodes=nodes, crds=crds,
                                  timeout=timeout)
                    break
                except _ExitedEarlyError:
                    # a free port taken by someone else between our probe and its bind:
                    # stop what started and try again once on other ports
                    stack.close()
                    if attempt:
                        raise
            yield plane
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def _boot(bins: dict[str, str], root: Path, stack: ExitStack, *, nodes: int, crds: bool,
          timeout: float) -> ControlPlane:
    deadline = time.monotonic() + timeout
    root.mkdir(parents=True, exist_ok=True)

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    def started(name: str, argv: list[str],
                env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = _start(name, argv, root, env)
        # stopped in reverse start order (kwok before the API server before etcd) by PID
        stack.callback(procs.stop, proc, grace=10.0)
        return proc

    pki = make_pki(root / "pki")
    etcd_port, peer_port, api_port = procs.free_port(), procs.free_port(), procs.free_port()
    etcd = started("etcd", [
        bins["etcd"], "--name=chartguard", f"--data-dir={root / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
        f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=chartguard=http://127.0.0.1:{peer_port}",
        # throwaway data: no fsync (tests share two cores with everything else)
        "--unsafe-no-fsync", "--log-level=warn",
    ])
    _wait(lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), what="etcd health",
          proc=etcd, workdir=root, timeout=left())

    url = f"https://127.0.0.1:{api_port}"
    apiserver = started("kube-apiserver", [
        bins["kube-apiserver"], f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={api_port}", f"--cert-dir={root / 'pki'}",
        f"--tls-cert-file={pki.serving.cert}", f"--tls-private-key-file={pki.serving.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC", "--allow-privileged=true", "--profiling=false",
        # the `kubernetes` Service cannot list 127.0.0.1 as an endpoint (loopback is refused),
        # and nothing here runs in a pod network that would use it
        "--endpoint-reconciler-type=none",
        "--v=0",
    ])
    ctx = _ssl_context(pki)
    _wait(lambda: _http_ok(f"{url}/readyz", ctx), what="kube-apiserver readyz",
          proc=apiserver, workdir=root, timeout=left())
    admin = write_kubeconfig(root / "admin.kubeconfig", server=url, ca=pki.ca.cert,
                             user="admin", cert=pki.admin.cert, key=pki.admin.key)
    cm_config = write_kubeconfig(root / "controller-manager.kubeconfig", server=url,
                                 ca=pki.ca.cert, user="system:kube-controller-manager",
                                 cert=pki.controller_manager.cert,
                                 key=pki.controller_manager.key)
    sched_config = write_kubeconfig(root / "scheduler.kubeconfig", server=url, ca=pki.ca.cert,
                                    user="system:kube-scheduler", cert=pki.scheduler.cert,
                                    key=pki.scheduler.key)
    kwok_config = write_kubeconfig(root / "kwok.kubeconfig", server=url, ca=pki.ca.cert,
                                   user="kwok", cert=pki.kwok.cert, key=pki.kwok.key)
    version = _request(url, pki, "GET", "/version", None, timeout=10)["gitVersion"]
    plane = ControlPlane(url=url, kubeconfig=admin, workdir=root, pki=pki,
                         server_version=str(version))
    plane.processes.update(etcd=etcd, apiserver=apiserver)
    # CRDs before the controller-manager: its garbage collector reads discovery when it
    # starts and then only every 30 s, so owners of our kinds would wait that long
    if crds:
        kubectl = tools.kubectl()
        subprocess.run([kubectl, "apply", "-f", str(CRDS)], env=plane.env, check=True,
                       capture_output=True, timeout=left())
        subprocess.run([kubectl, "wait", "--for=condition=established", "--timeout=60s",
                        "crd", "--all"], env=plane.env, check=True, capture_output=True,
                       timeout=left())

    plane.processes["controller-manager"] = started("kube-controller-manager", [
        bins["kube-controller-manager"], f"--kubeconfig={cm_config}",
        "--leader-elect=false", "--secure-port=0",
        # one identity for every controller (it is in system:masters), no per-controller
        # ServiceAccount tokens to bootstrap
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca.cert}",
        "--cluster-name=chartguard", f"--service-cluster-ip-range={SERVICE_CIDR}",
        # garbage collection, namespaces, deployments/replicasets/statefulsets/jobs,
        # service accounts and their tokens, endpoints: the defaults ("*") have them all
        "--controllers=*", "--v=0",
    ])
    plane.processes["scheduler"] = started("kube-scheduler", [
        bins["kube-scheduler"], f"--kubeconfig={sched_config}", "--leader-elect=false",
        "--secure-port=0", "--v=0",
    ])
    # HOME of its own, so no ~/.kwok/kwok.yaml is read; the stages kwokctl would give it:
    # nodes Ready with a lease, pods Running/Ready, completed (Jobs) and deleted
    (root / "kwok-home").mkdir(exist_ok=True)
    plane.processes["kwok"] = started("kwok", [
        bins["kwok"], f"--kubeconfig={kwok_config}", f"--config={kwok_stages(bins['kwok'])}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-ip=10.0.1.1", "--cidr=10.0.2.0/24", "--node-lease-duration-seconds=40",
        "--server-address=",
    ], env={**os.environ, "HOME": str(root / "kwok-home")})

    for i in range(nodes):
        plane.request("POST", "/api/v1/nodes", kwok_node(f"kwok-node-{i}"))

    def nodes_ready() -> bool:
        items = plane.request("GET", "/api/v1/nodes")["items"]
        ready = [n for n in items for c in n.get("status", {}).get("conditions", [])
                 if c["type"] == "Ready" and c["status"] == "True"]
        return len(ready) >= nodes

    def default_service_account() -> bool:
        try:
            plane.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            return True
        except ApiError:
            return False

    _wait(nodes_ready, what="kwok nodes Ready", proc=plane.processes["kwok"], workdir=root,
          timeout=left())
    # the serviceaccount controller is one of the controller-manager's first: its default
    # ServiceAccount is the sign that controllers run (Pods need it to be admitted)
    _wait(default_service_account, what="kube-controller-manager default ServiceAccount",
          proc=plane.processes["controller-manager"], workdir=root, timeout=left())
    return plane

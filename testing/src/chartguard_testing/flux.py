"""Flux's own source-controller and helm-controller as processes against a test's API, for
checks and benchmarks beside chartguard: test equipment.

The binaries (source-controller v1.9.5, helm-controller v1.6.4) and the CRDs of the source
kinds chartguard does not serve (``flux-source-crds.yaml``: Bucket, ExternalArtifact,
GitRepository, OCIRepository, which both controllers watch) are built and copied by
``make flux-controllers`` (part of ``make tools``, so CI has them) into ``.tools/``; a missing
one is an error naming that target, never a skip. Each controller runs on free ports of
127.0.0.1, watches one namespace (``--watch-all-namespaces=false`` with
``RUNTIME_NAMESPACE``), so it never touches another test's objects on a shared control plane,
and is stopped by its PID.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chartguard_testing import procs, tools
from chartguard_testing.apiserver.kubectl import KubeTarget

SOURCE_CONTROLLER = "source-controller"
HELM_CONTROLLER = "helm-controller"
SOURCE_CRDS = "flux-source-crds.yaml"
#: Flux's sharding label
SHARD = "sharding.fluxcd.io/key"


class FluxMissingError(tools.ToolMissingError):
    """Flux's controllers are not built: ``make flux-controllers``."""


def find(name: str) -> Path:
    """``.tools/<name>`` as ``make flux-controllers`` links it."""
    path = tools.TOOLS_DIR / name
    if not path.is_file():
        raise FluxMissingError(f"{name} not found in {tools.TOOLS_DIR}: run `make "
                               "flux-controllers` (part of `make tools`: Flux's source-controller"
                               " and helm-controller, built from source)")
    return path


def source_crds() -> Path:
    """The CRDs both controllers watch beside HelmRepository, HelmChart and HelmRelease."""
    return find(SOURCE_CRDS)


@dataclass
class FluxController:
    """One running controller: its process, its log, and (source-controller) the address
    its artifacts are served from."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    storage_address: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _ready(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (127.0.0.1 only)
        return bool(answer.status == 200)


@contextmanager
def run_controller(name: str, api: KubeTarget, namespace: str, workdir: Path,
                   *args: str) -> Iterator[FluxController]:
    """``name`` (source-controller or helm-controller) watching ``namespace`` of ``api``,
    with ``args`` added (``--watch-label-selector=...``); ready when its /readyz answers."""
    binary = find(name)
    workdir.mkdir(parents=True, exist_ok=True)
    metrics, health = procs.free_port(), procs.free_port()
    argv = [str(binary), "--watch-all-namespaces=false", "--enable-leader-election=false",
            "--log-level=debug", "--log-encoding=json",
            f"--metrics-addr=127.0.0.1:{metrics}", f"--health-addr=127.0.0.1:{health}"]
    storage = ""
    if name == SOURCE_CONTROLLER:
        storage = f"127.0.0.1:{procs.free_port()}"
        (workdir / "storage").mkdir(exist_ok=True)
        argv += [f"--storage-path={workdir / 'storage'}", f"--storage-addr={storage}",
                 f"--storage-adv-addr={storage}"]
    log = workdir / f"{name}.log"
    env = {**api.env, "RUNTIME_NAMESPACE": namespace}
    with log.open("ab") as out:
        proc = subprocess.Popen([*argv, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    controller = FluxController(name, proc, log, storage)
    try:
        try:
            procs.wait_until(lambda: _ready(f"http://127.0.0.1:{health}/readyz"), timeout=60,
                             what=name, proc=proc)
        except (TimeoutError, RuntimeError) as err:
            raise RuntimeError(f"{err}\n--- {name} log (tail) ---\n"
                               f"{controller.output()[-4000:]}") from None
        yield controller
    finally:
        procs.stop(proc, grace=10)

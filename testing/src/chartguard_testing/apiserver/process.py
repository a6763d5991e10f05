"""The emulator as a subprocess, for tests: a free port, a kubeconfig, stopped by PID."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chartguard_testing import procs


@dataclass(frozen=True)
class KubeAPI:
    """A running emulator: where it answers and a kubeconfig that points at it."""

    url: str
    kubeconfig: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm: this kubeconfig and a discovery cache of its own
        (kubectl caches discovery per host:port, and ports are reused between tests)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(self.kubeconfig.parent / "kube-cache")}


@contextmanager
def run_apiserver(workdir: Path, *, history: int | None = None,
                  timeout: float = 20.0) -> Iterator[KubeAPI]:
    """Start ``python -m chartguard_testing.apiserver`` in ``workdir``; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    api = _start(workdir, history, timeout)
    try:
        yield api
    finally:
        procs.stop(api.proc)


def _start(workdir: Path, history: int | None, timeout: float) -> KubeAPI:
    config = workdir / "kubeconfig"
    log = workdir / "apiserver.log"
    config.unlink(missing_ok=True)  # its appearance is the readiness signal
    for _ in range(3):
        # a free port can be taken by a parallel test before we bind it: try another one
        port = procs.free_port()
        argv = [sys.executable, "-m", "chartguard_testing.apiserver",
                "--kubeconfig", str(config), "--port", str(port)]
        if history is not None:
            argv += ["--history", str(history)]
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            # the kubeconfig is written once the server answers: its existence is readiness
            procs.wait_until(config.exists, timeout=timeout, what="test apiserver", proc=proc)
            return KubeAPI(f"http://127.0.0.1:{port}", config, proc, log)
        except RuntimeError:  # it exited before answering
            procs.stop(proc)
        except BaseException:
            procs.stop(proc)
            raise
    raise RuntimeError(f"the test apiserver exited three times before answering; see {log}")

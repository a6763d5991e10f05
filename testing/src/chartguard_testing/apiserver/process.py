"""The emulator as a subprocess, for tests: a free port, a kubeconfig, stopped by PID.

A test can stop the server and start it again on the same port with the same objects and
resourceVersions (:meth:`KubeAPI.stop_server`, :meth:`KubeAPI.start_server`: the state file
in the workdir), and switch its fault modes (:attr:`KubeAPI.faults`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chartguard_testing import procs
from chartguard_testing.apiserver.faults import FaultControl

STATE_FILE = "apiserver-state.json"


@dataclass(eq=False)
class KubeAPI:
    """A running emulator: where it answers and a kubeconfig that points at it; ``proc`` is
    the current server process (a new one after :meth:`start_server`)."""

    url: str
    kubeconfig: Path
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    history: int | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm: this kubeconfig and a discovery cache of its own
        (kubectl caches discovery per host:port, and ports are reused between tests)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(self.kubeconfig.parent / "kube-cache")}

    @property
    def faults(self) -> FaultControl:
        """Switch the fault modes of this emulator (:mod:`.faults`)."""
        return FaultControl(self.url)

    @property
    def state(self) -> Path:
        return self.kubeconfig.parent / STATE_FILE

    def stop_server(self) -> None:
        """Stop the server by PID (SIGTERM: open watches end, the objects are saved)."""
        procs.stop(self.proc)

    def start_server(self, timeout: float = 20.0) -> None:
        """Start a server again on the same port, from the objects the last one saved."""
        if self.proc.poll() is None:
            raise RuntimeError("the test apiserver still runs: stop_server() first")
        self.proc = _spawn(self.kubeconfig, self.port, self.history, self.log, self.state)
        try:
            procs.wait_until(lambda: _answers(self.url), timeout=timeout,
                             what="test apiserver (started again)", proc=self.proc)
        except BaseException:
            procs.stop(self.proc)
            raise


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


def _spawn(config: Path, port: int, history: int | None, log: Path,
           state: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "chartguard_testing.apiserver",
            "--kubeconfig", str(config), "--port", str(port), "--state", str(state)]
    if history is not None:
        argv += ["--history", str(history)]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
        return bool(response.status == 200)


def _start(workdir: Path, history: int | None, timeout: float) -> KubeAPI:
    config = workdir / "kubeconfig"
    log = workdir / "apiserver.log"
    config.unlink(missing_ok=True)  # its appearance is the readiness signal
    (workdir / STATE_FILE).unlink(missing_ok=True)  # a new server starts empty
    for _ in range(3):
        # a free port can be taken by a parallel test before we bind it: try another one
        port = procs.free_port()
        proc = _spawn(config, port, history, log, workdir / STATE_FILE)
        try:
            # the kubeconfig is written once the server answers: its existence is readiness
            procs.wait_until(config.exists, timeout=timeout, what="test apiserver", proc=proc)
            return KubeAPI(f"http://127.0.0.1:{port}", config, proc, log, port, history)
        except RuntimeError:  # it exited before answering
            procs.stop(proc)
        except BaseException:
            procs.stop(proc)
            raise
    raise RuntimeError(f"the test apiserver exited three times before answering; see {log}")

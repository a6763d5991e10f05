"""Real kubectl bound to one emulator, for tests that drive it the way users do."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml


class KubeTarget(Protocol):
    """What kubectl needs of an API: the emulator's KubeAPI, or a real cluster (make e2e)."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def env(self) -> dict[str, str]: ...


class KubectlError(AssertionError):
    """kubectl exited non-zero where the test expected success (its stderr included)."""


@dataclass
class Kubectl:
    """``binary`` run with ``--kubeconfig`` of ``api`` and its private discovery cache."""

    binary: str
    api: KubeTarget
    workdir: Path

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--kubeconfig", str(self.api.kubeconfig), *args]

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), env=self.api.env, input=stdin,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=self.workdir)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}")
        return proc

    def apply(self, *docs: object, server_side: bool = False) -> str:
        """``kubectl apply -f -`` of ``docs`` as one multi-document YAML stream."""
        flags = ["--server-side"] if server_side else []
        return self("apply", *flags, "-f", "-", stdin=yaml.safe_dump_all(docs)).stdout

    def popen(self, *args: str, out: Path) -> subprocess.Popen[bytes]:
        """Start a long-running kubectl (``get -w``, ``wait``); stop it with procs.stop."""
        with out.open("wb") as sink:
            return subprocess.Popen(self.argv(*args), env=self.api.env, stdout=sink,
                                    stderr=subprocess.STDOUT, cwd=self.workdir)

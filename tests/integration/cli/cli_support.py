"""``chartguard`` run as a user runs it, for the CLI tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from operator_support import OperatorTarget


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """The progress lines (stderr)."""
        return self.err.splitlines()


@dataclass
class Chartguard:
    """``python -m chartguard`` with the test's KUBECONFIG (as a user's shell has it)."""

    kube: OperatorTarget
    workdir: Path

    def __call__(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
                 ) -> Result:
        proc = subprocess.run([sys.executable, "-m", "chartguard", *args],
                              env=env if env is not None else self.kube.env,
                              capture_output=True, text=True, timeout=timeout, cwd=self.workdir)
        assert "Traceback" not in proc.stderr, proc.stderr
        return Result(proc.returncode, proc.stdout, proc.stderr)

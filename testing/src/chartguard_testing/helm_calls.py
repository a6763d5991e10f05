"""A helm that records every invocation: a wrapper script appending its arguments (one line per
process) to a file, then exec'ing the real helm (exec: whoever started the wrapper reaps helm
itself, so helm's CPU lands in its cutime/cstime). The operator tests, the chaos tests and the
benchmarks count helm processes with it (``chartguard run --helm <wrapper>``)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from chartguard_testing import tools

__all__ = ["HelmCalls"]


@dataclass(frozen=True)
class HelmCalls:
    """``wrapper`` is the helm to run; ``log`` gets one line of arguments per invocation."""

    wrapper: Path
    log: Path

    @classmethod
    def create(cls, directory: Path) -> HelmCalls:
        log = directory / "helm-calls"
        log.touch()
        wrapper = directory / "helm-recording"
        wrapper.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n'
                           f'exec {shlex.quote(tools.helm())} "$@"\n')
        wrapper.chmod(0o755)
        return cls(wrapper, log)

    def calls(self) -> list[str]:
        """Every invocation's arguments, in order."""
        return self.log.read_text().splitlines()

    def subcommands(self) -> list[str]:
        """Every invocation's first argument (``install``, ``upgrade``, ...), in order."""
        return [line.split(" ", 1)[0] for line in self.calls()]

    def releases(self) -> list[str]:
        """The invocations that install or change a release (install, upgrade, rollback)."""
        return [c for c in self.calls()
                if c.split(" ", 1)[0] in ("install", "upgrade", "rollback")]

"""Flux's progress lines (its ``stderrLogger``): one symbol, one line, on stderr.

``✚`` generating, ``►`` acting, ``◎`` waiting, ``✔`` done, ``⚠️`` warning, ``✗`` failed. Tables
and exported YAML go to stdout, so ``chartguard create … --export > file`` and pipes see only
the document. Every line is escaped (:func:`chartguard.cli._outcome.line`): names and messages
come from the cluster.
"""

from __future__ import annotations

import sys
from typing import TextIO

from chartguard.cli._outcome import EXIT_FAILED, line


class Progress:
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    def _say(self, symbol: str, text: str) -> None:
        out = self._out or sys.stderr
        print(f"{symbol} {line(text)}", file=out, flush=True)

    def generate(self, text: str) -> None:
        self._say("✚", text)

    def action(self, text: str) -> None:
        self._say("►", text)

    def waiting(self, text: str) -> None:
        self._say("◎", text)

    def success(self, text: str) -> None:
        self._say("✔", text)

    def warning(self, text: str) -> None:
        self._say("⚠️", text)

    def failure(self, text: str) -> int:
        """The command failed (exit 1): what went wrong and, where we know, what to do."""
        self._say("✗", text)
        return EXIT_FAILED

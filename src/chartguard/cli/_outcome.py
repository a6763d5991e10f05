"""How every ``chartguard`` command ends: exit codes, usage errors, failures, flag hints.

- 0 success; 1 failure: ``chartguard <cmd>: <what went wrong and what to fix>`` on stderr
  (a verification failure adds one indented line per signature tried); 2 usage error: the
  command's usage line, then ``chartguard <cmd>: error: <what>``, as argparse and cosign do.
- ``--output json``: every failure is also one JSON object on stdout (``error``,
  ``exitCode`` and the command's fields), so stdout always holds exactly one document.
- Every line printed here is escaped (:func:`chartguard.untrusted.escape`): text from a
  registry, a layout or a signed payload cannot forge lines or drive the terminal.
- Library errors do not name flags (the operator has none); they carry neutral hints, which
  each command words in terms of its own flags with :func:`hinted`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from chartguard.untrusted import escape

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Our own messages run longer than a quoted value; escape() caps each line at this.
_MAX_LINE = 4000


class UsageError(Exception):
    """The invocation cannot work as given (exit 2); the message says what to change."""


class CommandLineError(Exception):
    """argparse refused the command line; raised instead of exiting so JSON output works."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but its errors reach :class:`Reporter` (one place prints usage errors)."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(self, message)


def line(text: object) -> str:
    """``text`` as one printable line: control characters escaped, length capped."""
    return escape(text, limit=_MAX_LINE)


def hinted(err: BaseException, words: Mapping[object, str]) -> str:
    """The error's message, followed by the command's words for each hint the error carries.

    Library errors carry neutral hints (``chartguard.oci.Hint``); each command says them in
    terms of its own flags.
    """
    said = [words[hint] for hint in getattr(err, "hints", ()) if hint in words]
    return "; ".join([str(err), *dict.fromkeys(said)])


def wants_json(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for ``--output json`` (known before argparse has run)."""
    args = list(argv)
    return "--output=json" in args or any(
        a == "--output" and b == "json" for a, b in itertools.pairwise(args))


class Reporter:
    """Prints one command's outcome on stderr (text) and, with ``json_output``, on stdout."""

    def __init__(self, parser: argparse.ArgumentParser, *, json_output: bool = False) -> None:
        self.parser = parser
        self.json_output = json_output
        # what every JSON failure of this command carries (e.g. verify's "verified": false),
        # also for argparse's own errors, raised before the command's handler runs
        self.failure_fields: Mapping[str, Any] = parser.get_default("failure_fields") or {}

    @property
    def prog(self) -> str:
        return self.parser.prog  # "chartguard verify"

    def usage(self, what: str, **fields: Any) -> int:
        """A usage error: the usage line and what to change; exit 2."""
        text = line(what)
        self.parser.print_usage(sys.stderr)
        print(f"{self.prog}: error: {text}", file=sys.stderr)
        self._json(EXIT_USAGE, text, fields)
        return EXIT_USAGE

    def failure(self, what: str, *, details: Sequence[str] = (), **fields: Any) -> int:
        """A failure: one line (plus indented ``details``, one per item); exit 1."""
        text = line(what)
        print(f"{self.prog}: {text}", file=sys.stderr)
        for detail in details:
            print(f"  {line(detail)}", file=sys.stderr)
        self._json(EXIT_FAILED, text, fields)
        return EXIT_FAILED

    def warning(self, what: str) -> None:
        print(f"{self.prog}: warning: {line(what)}", file=sys.stderr)

    def result(self, doc: Mapping[str, Any] | None, text_lines: Sequence[str]) -> int:
        """Success: ``doc`` on stdout with JSON output, else ``text_lines``; exit 0."""
        if self.json_output and doc is not None:
            print(json.dumps(doc, indent=2))
        else:
            for text in text_lines:
                print(line(text))
        return EXIT_OK

    def _json(self, code: int, message: str, fields: Mapping[str, Any]) -> None:
        if self.json_output:
            print(json.dumps({**self.failure_fields, **fields, "error": message,
                              "exitCode": code}, indent=2))

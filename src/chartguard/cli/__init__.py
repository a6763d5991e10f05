"""``chartguard``: the command line. Each sub-command lives in its own module here.

``run`` is the operator; ``verify`` and ``pull`` work on a registry; ``get``, ``reconcile``,
``create``, ``suspend``/``resume`` and ``events`` are flux's commands for the three kinds, on the
current kubeconfig (their shared parts: ``_scope``, ``_kube``, ``_tables``, ``_wait``,
``_export``, ``_generate``, ``_progress``).

Exit codes are the same for every command: 0 success, 1 failure (one line on stderr saying
what to fix), 2 usage error (the usage line and what to change). They, the printing of
usage errors and failures, and the flag hints live in one place: :mod:`._outcome`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from chartguard import __version__
from chartguard.cli import create, events, get, pull, reconcile, run, suspend, verify
from chartguard.cli._outcome import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ArgumentParser,
    CommandLineError,
    Reporter,
    wants_json,
)

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="chartguard",
        description="Install only Helm charts whose cosign signatures are verified.")
    parser.add_argument("--version", action="version", version=f"chartguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run, verify, pull, get, reconcile, create, suspend, events):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(args_in)
    except CommandLineError as err:
        return Reporter(err.parser, json_output=wants_json(args_in)).usage(str(err))
    if extra:  # reported with the sub-command's usage, not the top-level one
        return Reporter(args.parser, json_output=wants_json(args_in)).usage(
            f"unrecognized arguments: {' '.join(extra)}")
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

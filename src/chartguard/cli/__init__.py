"""``chartguard``: the command line. Each sub-command lives in its own module here.

Exit codes are the same for every command: 0 success, 1 failure (one line on stderr saying
what to fix), 2 usage error (argparse's own).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chartguard import __version__
from chartguard.cli import pull, run, verify

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chartguard",
        description="Install only Helm charts whose cosign signatures are verified.")
    parser.add_argument("--version", action="version", version=f"chartguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (pull, run, verify):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

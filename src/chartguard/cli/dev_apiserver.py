"""`chartguard dev-apiserver`: run the Kubernetes API emulator (test equipment), foreground.

The emulator lives in :mod:`chartguard.testing.apiserver`; this only registers the command.
"""

from __future__ import annotations

import argparse
from typing import Any

from chartguard.testing.apiserver import server


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    p: argparse.ArgumentParser = sub.add_parser(
        "dev-apiserver", help="run the in-memory Kubernetes API emulator (test equipment)",
        description=server.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    server.add_arguments(p)
    p.set_defaults(handler=server.run)

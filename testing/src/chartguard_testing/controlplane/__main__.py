"""``python -m chartguard_testing.controlplane --kubeconfig PATH``: a real control plane in the
foreground until SIGINT or SIGTERM; then every process is stopped by PID."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from chartguard_testing.controlplane.process import ControlPlaneMissingError, run_controlplane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chartguard_testing.controlplane",
                                     description=__doc__)
    parser.add_argument("--kubeconfig", required=True, type=Path,
                        help="where to write the admin kubeconfig")
    parser.add_argument("--nodes", type=int, default=1, help="kwok Nodes to create")
    parser.add_argument("--no-crds", action="store_true", help="do not install crds/")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    try:
        with run_controlplane(nodes=args.nodes, crds=not args.no_crds) as plane:
            args.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plane.kubeconfig, args.kubeconfig)
            args.kubeconfig.chmod(0o600)
            print(f"control plane {plane.server_version} ready at {plane.url} in "
                  f"{time.monotonic() - started:.1f}s; kubeconfig {args.kubeconfig}; "
                  f"logs in {plane.workdir}", flush=True)
            while not stop.wait(1.0):
                dead = [n for n, p in plane.processes.items() if p.poll() is not None]
                if dead:
                    print(f"exited: {', '.join(dead)}; see {plane.workdir}", file=sys.stderr)
                    return 1
    except ControlPlaneMissingError as exc:
        print(exc, file=sys.stderr)
        return 2
    args.kubeconfig.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

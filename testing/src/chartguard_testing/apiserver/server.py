"""Run the emulator in this process: bind, answer, write the kubeconfig, stop on a signal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import yaml
from aiohttp import web

from chartguard_testing import procs
from chartguard_testing.apiserver.resources import Catalog
from chartguard_testing.apiserver.routes import build_app
from chartguard_testing.apiserver.storage import Store
from chartguard_testing.apiserver.watch import stop_all

CONTEXT = "chartguard-test-apiserver"


def kubeconfig(url: str, namespace: str = "default") -> str:
    """A kubeconfig for ``url`` with a dummy token (the emulator checks no credentials)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {"token": "test-apiserver-accepts-anything"}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT,
                                                    "namespace": namespace}}],
        "current-context": CONTEXT,
    })


def write_kubeconfig(path: Path, url: str) -> None:
    """Write atomically: whoever waits for the file finds a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(kubeconfig(url))
    tmp.chmod(0o600)
    tmp.replace(path)


async def start(store: Store, host: str, port: int) -> web.AppRunner:
    """Answer on host:port from now on; ``await runner.cleanup()`` stops it."""
    # handler_cancellation: a watch whose client hung up ends at once (its handler is
    # cancelled) instead of lingering until its timeout or a next event to write
    runner = web.AppRunner(build_app(store), access_log=None, shutdown_timeout=1.0,
                           handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def serve(port: int, kubeconfig_path: Path | None, *, history: int = 1000,
                host: str = "127.0.0.1", stop: asyncio.Event | None = None,
                state: Path | None = None) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT arrives; with ``state``, start from the
    objects saved there (when the file exists) and save them there when stopped."""
    store = Store(Catalog(), history=history)
    if state is not None and state.exists():
        store.load(state)
    runner = await start(store, host, port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if kubeconfig_path is not None:
        write_kubeconfig(kubeconfig_path, f"http://{host}:{port}")
    try:
        await stop.wait()
    finally:
        stop_all(store)
        await runner.cleanup()
        if state is not None:
            store.save(state)


DESCRIPTION = """\
Run a Kubernetes API EMULATOR on 127.0.0.1 for tests and the demo. It is test equipment,
not a cluster: real kubectl, helm (install/upgrade/rollback/uninstall --wait) and kopf
operators work against it, but no pods run, there is no authentication, RBAC or admission,
no schema validation, and everything is kept in memory only (lost on exit, unless --state
names a file to keep it in across a stop and a start).
Writes a kubeconfig once it answers; runs until interrupted (Ctrl-C or SIGTERM)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", type=Path, required=True,
                   help="where to write a kubeconfig pointing at the emulator")
    p.add_argument("--port", type=int, default=0,
                   help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--history", type=int, default=1000,
                   help="changes kept for watches to resume from; older resourceVersions "
                        "get 410 Expired (default: %(default)s)")
    p.add_argument("--state", type=Path, default=None,
                   help="start from the objects saved in this file (when it exists) and save "
                        "them there on SIGTERM/SIGINT: a stop and a start keep the objects "
                        "and resourceVersions, as etcd keeps them across a restart")


def run(args: argparse.Namespace) -> int:
    """Serve in the foreground; exit codes as every chartguard command."""
    if args.history < 1:
        print("chartguard_testing.apiserver: --history must be at least 1", file=sys.stderr)
        return 1
    port = args.port or procs.free_port()
    try:
        asyncio.run(serve(port, args.kubeconfig, history=args.history, state=args.state))
    except OSError as exc:
        print(f"chartguard_testing.apiserver: cannot listen on 127.0.0.1:{port} ({exc.strerror});"
              " pick another --port", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chartguard_testing.apiserver", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))

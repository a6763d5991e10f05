"""The flags every flux-like command shares, as flux has them: ``--kubeconfig``, ``--context``,
``-n/--namespace`` (default ``flux-system``, or ``$FLUX_SYSTEM_NAMESPACE`` as flux reads it)
and ``--timeout`` (default 5m, a Go duration), plus ``-A/--all-namespaces`` where listing
makes sense.

The Kubernetes client is imported only when a command connects, so ``chartguard --help``
stays light.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chartguard.api._fields import dns_label_problem
from chartguard.api.durations import parse_go_duration
from chartguard.cli._outcome import Reporter, UsageError
from chartguard.cli._progress import Progress

if TYPE_CHECKING:
    from chartguard.cli._kube import Kube

DEFAULT_NAMESPACE = "flux-system"
NAMESPACE_ENV = "FLUX_SYSTEM_NAMESPACE"
DEFAULT_TIMEOUT = "5m"


def add_scope_flags(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument("--kubeconfig", metavar="FILE",
                       help="the kubeconfig to use (default: $KUBECONFIG, else ~/.kube/config)")
    group.add_argument("--context", metavar="NAME",
                       help="the kubeconfig context to use (default: its current context)")
    group.add_argument("-n", "--namespace", metavar="NS", default=None,
                       help=f"the namespace of the objects (default: ${NAMESPACE_ENV}, else "
                            f"{DEFAULT_NAMESPACE})")
    if all_namespaces:
        group.add_argument("-A", "--all-namespaces", action="store_true",
                           help="the objects of every namespace")
    group.add_argument("--timeout", metavar="DURATION", default=DEFAULT_TIMEOUT,
                       help=f"how long to wait for the cluster (default {DEFAULT_TIMEOUT})")


@dataclass(frozen=True)
class Scope:
    """Where a command acts and how long it may take."""

    kubeconfig: str | None
    context: str | None
    namespace: str
    all_namespaces: bool
    timeout: float  # seconds

    @property
    def list_namespace(self) -> str | None:
        """The namespace to list in; None for every namespace (``-A``)."""
        return None if self.all_namespaces else self.namespace

    def connect(self) -> Kube:
        """A client of the cluster (``KubeError`` when the kubeconfig cannot be used)."""
        from chartguard.cli._kube import connect

        return connect(self.kubeconfig, self.context, timeout=min(self.timeout, 30.0))


def scope_from(args: argparse.Namespace) -> Scope:
    """The scope the flags ask for; ``UsageError`` saying what to fix."""
    namespace = args.namespace
    if namespace is None:
        namespace = DEFAULT_NAMESPACE
        from_env = os.environ.get(NAMESPACE_ENV, "")
        if from_env and dns_label_problem(from_env) is None:  # flux ignores a bad value too
            namespace = from_env
    elif problem := dns_label_problem(namespace):
        raise UsageError(f"--namespace: {problem}")
    try:
        timeout = parse_go_duration(args.timeout).total_seconds()
    except ValueError as err:
        raise UsageError(f"--timeout: {err}; write e.g. 5m or 90s") from None
    if timeout <= 0:
        raise UsageError(f"--timeout {args.timeout}: must be more than 0s")
    return Scope(kubeconfig=args.kubeconfig, context=args.context, namespace=namespace,
                 all_namespaces=bool(getattr(args, "all_namespaces", False)), timeout=timeout)


#: what a command does on the cluster, once its flags are known good
Body = Callable[[Scope, "Kube", Progress], int]


def run_command(args: argparse.Namespace, prepare: Callable[[Scope], Body]) -> int:
    """Run a flux-like command: flags first (``prepare`` raises ``UsageError``: exit 2), then
    the cluster (a ``KubeError``: one ``✗`` line, exit 1)."""
    from chartguard.cli._kube import KubeError

    try:
        scope = scope_from(args)
        body = prepare(scope)
    except UsageError as err:
        return Reporter(args.parser).usage(str(err))
    progress = Progress()
    try:
        return body(scope, scope.connect(), progress)
    except UsageError as err:  # found out on the cluster (e.g. a kind the object refers to)
        return progress.failure(str(err))
    except KubeError as err:
        return progress.failure(str(err))

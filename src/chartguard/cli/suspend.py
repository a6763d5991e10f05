"""``chartguard suspend|resume source helm|chart NAME``, ``… helmrelease NAME``.

As ``flux suspend`` / ``flux resume`` (``cmd/flux/suspend.go``, ``resume.go``): a merge patch of
``spec.suspend`` (resume removes the field, as flux's patch does), then ``resume`` waits until
the object is reconciled again and Ready for its new generation, and says what it holds. Unlike
flux, an object that is not there is a failure (exit 1), not only a line.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from chartguard.cli._kinds import HELM_CHART, HELM_RELEASE, HELM_REPOSITORY, Kind
from chartguard.cli._outcome import EXIT_FAILED, EXIT_OK
from chartguard.cli._progress import Progress
from chartguard.cli._scope import Body, Scope, add_scope_flags, run_command
from chartguard.cli._wait import settled
from chartguard.cli.reconcile import await_verdict, success_message

if TYPE_CHECKING:
    from chartguard.cli._kube import Kube


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    for verb, what in (("suspend", "stop reconciling an object until it is resumed"),
                       ("resume", "reconcile a suspended object again and wait until it is "
                                  "Ready")):
        cmd = sub.add_parser(verb, help=what, description=what[0].upper() + what[1:] + ".")
        kinds = cmd.add_subparsers(dest=f"{verb}_kind", required=True, metavar="KIND")
        source = kinds.add_parser("source", aliases=["sources"],
                                  help="a HelmRepository or HelmChart")
        source_kinds = source.add_subparsers(dest="source_kind", required=True,
                                             metavar="KIND")
        _leaf(source_kinds, verb, "helm", [], HELM_REPOSITORY)
        _leaf(source_kinds, verb, "chart", [], HELM_CHART)
        _leaf(kinds, verb, "helmrelease", ["hr"], HELM_RELEASE)


def _leaf(sub: Any, verb: str, name: str, aliases: list[str], kind: Kind) -> None:
    p: argparse.ArgumentParser = sub.add_parser(name, aliases=aliases, help=f"a {kind.name}",
                                                description=f"{verb.title()} a {kind.name}.")
    p.add_argument("name", metavar="NAME")
    add_scope_flags(p)
    p.set_defaults(handler=main, parser=p, kind=kind, verb=verb)


def main(args: argparse.Namespace) -> int:
    def prepare(_scope: Scope) -> Body:
        if args.verb == "suspend":
            return lambda scope, kube, progress: suspend(kube, progress, args.kind,
                                                         scope.namespace, args.name)
        return lambda scope, kube, progress: resume(kube, progress, args.kind, scope.namespace,
                                                    args.name, timeout=scope.timeout)

    return run_command(args, prepare)


def suspend(kube: Kube, progress: Progress, kind: Kind, namespace: str, name: str) -> int:
    if kube.get(kind, namespace, name) is None:
        return progress.failure(f"{kind.name} {name} not found in {namespace} namespace")
    progress.action(f"suspending {kind.human} {name} in {namespace} namespace")
    kube.merge_patch(kind, namespace, name, {"spec": {"suspend": True}})
    progress.success(f"{kind.human} suspended")
    return EXIT_OK


def resume(kube: Kube, progress: Progress, kind: Kind, namespace: str, name: str, *,
           timeout: float) -> int:
    deadline = time.monotonic() + timeout
    if kube.get(kind, namespace, name) is None:
        return progress.failure(f"{kind.name} object '{name}' not found in {namespace} "
                                "namespace")
    progress.action(f"resuming {kind.human} {name} in {namespace} namespace")
    kube.merge_patch(kind, namespace, name, {"spec": {"suspend": None}})
    progress.success(f"{kind.human} resumed")
    progress.waiting(f"waiting for {kind.name} reconciliation")
    outcome = await_verdict(kube, progress, kind, namespace, name, settled, deadline=deadline,
                            timeout=timeout)
    if outcome is None:
        return EXIT_FAILED
    verdict, body = outcome
    if not verdict.ready:
        return progress.failure(f"{kind.name} {name} reconciliation failed: {verdict.message}")
    progress.success(f"{kind.name} {name} reconciliation completed")
    progress.success(success_message(kind, body))
    return EXIT_OK

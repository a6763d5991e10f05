"""``chartguard reconcile source helm|chart NAME``, ``chartguard reconcile helmrelease NAME``.

As ``flux reconcile`` (``cmd/flux/reconcile.go``, ``reconcile_with_source.go``): the object is
annotated with ``reconcile.fluxcd.io/requestedAt`` (``--force`` and ``--reset`` add
``forceAt``/``resetAt`` with the same value, which is how helm-controller, and chartguard, tell
a force or reset request is new), then read until ``status.lastHandledReconcileAt`` holds that
value and Ready is final for the object's generation (:mod:`._wait`). ``--with-source``
reconciles the HelmChart a release installs from first, and before it the chart's
HelmRepository, so a newly pushed version is found, verified and installed in one command.

The value is an RFC 3339 time with nanoseconds, as flux writes it, in UTC.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chartguard.api.durations import format_duration
from chartguard.cli import _tables
from chartguard.cli._kinds import HELM_CHART, HELM_RELEASE, HELM_REPOSITORY, Kind
from chartguard.cli._outcome import EXIT_FAILED, EXIT_OK, UsageError
from chartguard.cli._progress import Progress
from chartguard.cli._scope import Body, Scope, add_scope_flags, run_command
from chartguard.cli._wait import ObjectGoneError, Verdict, WaitTimeoutError, handled, poll

if TYPE_CHECKING:
    from chartguard.cli._kube import Kube

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    rec = sub.add_parser("reconcile", help="ask chartguard to reconcile an object now and wait "
                                           "for the result, as `flux reconcile` does",
                         description="Trigger a reconciliation and wait for it to finish.")
    kinds = rec.add_subparsers(dest="reconcile_kind", required=True, metavar="KIND")
    source = kinds.add_parser("source", aliases=["sources"], help="a HelmRepository or "
                                                                  "HelmChart")
    source_kinds = source.add_subparsers(dest="source_kind", required=True, metavar="KIND")
    _leaf(source_kinds, "helm", [], HELM_REPOSITORY)
    chart = _leaf(source_kinds, "chart", [], HELM_CHART)
    chart.add_argument("--with-source", action="store_true",
                       help="reconcile the chart's HelmRepository first")
    release = _leaf(kinds, "helmrelease", ["hr"], HELM_RELEASE)
    release.add_argument("--with-source", action="store_true",
                         help="reconcile the release's HelmChart (and its HelmRepository) "
                              "first, so a new chart version is installed now")
    release.add_argument("--force", action="store_true",
                         help="force a one-off install or upgrade of the release")
    release.add_argument("--reset", action="store_true",
                         help="reset the release's failure counts (remediation retries)")


def _leaf(sub: Any, name: str, aliases: list[str], kind: Kind) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, aliases=aliases, help=f"a {kind.name}",
        description=f"Trigger a reconciliation of a {kind.name} and wait for it to finish.")
    p.add_argument("name", metavar="NAME")
    add_scope_flags(p)
    p.set_defaults(handler=main, parser=p, kind=kind, with_source=False, force=False,
                   reset=False)
    return p


def main(args: argparse.Namespace) -> int:
    def prepare(scope: Scope) -> Body:
        def body(scope: Scope, kube: Kube, progress: Progress) -> int:
            run = Run(kube, progress, deadline=time.monotonic() + scope.timeout,
                      timeout=scope.timeout)
            return run.reconcile(args.kind, scope.namespace, args.name,
                                 with_source=args.with_source, force=args.force,
                                 reset=args.reset)
        return body

    return run_command(args, prepare)


def rfc3339nano(now_ns: int | None = None) -> str:
    """Go's ``time.RFC3339Nano`` of now, in UTC: ``2024-05-01T12:00:00.123456789Z``."""
    ns = time.time_ns() if now_ns is None else now_ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return stamp + f".{fraction:09d}".rstrip("0").rstrip(".") + "Z"


def success_message(kind: Kind, body: Mapping[str, Any]) -> str:
    """What flux says of a reconciled object (its ``successMessage``)."""
    if kind is HELM_RELEASE:
        return f"applied revision {_tables.release_revision(body)}"
    if kind is HELM_REPOSITORY and _tables.spec_of(body).get("type") == "oci":
        return _tables.ready_and_message(body)[1]  # no artifact: Ready says it
    return f"fetched revision {_tables.artifact_revision(body)}"


def still_waiting(kind: Kind, namespace: str, name: str, timeout: float,
                  last: Mapping[str, Any] | None) -> str:
    """The failure line when the wait timed out: what Ready said last, or that nothing did."""
    text = (f"{kind.name} {namespace}/{name}: not reconciled within "
            f"{format_duration(timedelta(seconds=timeout))}")
    ready = _tables.condition(last, "Ready") if last is not None else None
    if ready is None:
        return f"{text} (no Ready condition: is chartguard running and watching {namespace}?)"
    return f"{text} (Ready {ready.get('status')}: {ready.get('message', '')})"


def await_verdict(kube: Kube, progress: Progress, kind: Kind, namespace: str, name: str,
                  judge: Callable[[Mapping[str, Any]], Verdict | None], *, deadline: float,
                  timeout: float) -> tuple[Verdict, Mapping[str, Any]] | None:
    """Read the object until ``judge`` decides; None once the failure line is printed (the
    object went away, or the deadline passed: then what Ready said last)."""
    try:
        return poll(lambda: kube.get(kind, namespace, name), judge, deadline=deadline)
    except ObjectGoneError:
        progress.failure(f"{kind.name} {namespace}/{name} was deleted")
    except WaitTimeoutError as err:
        progress.failure(still_waiting(kind, namespace, name, timeout, err.last))
    return None


class Run:
    """One ``reconcile`` command: requests, waits and progress lines against one deadline."""

    def __init__(self, kube: Kube, progress: Progress, *, deadline: float,
                 timeout: float) -> None:
        self.kube = kube
        self.progress = progress
        self.deadline = deadline
        self.timeout = timeout

    def reconcile(self, kind: Kind, namespace: str, name: str, *, with_source: bool = False,
                  force: bool = False, reset: bool = False) -> int:
        body = self.kube.get(kind, namespace, name)
        if body is None:
            return self.progress.failure(f"{kind.name} {namespace}/{name} not found")
        if _tables.suspended(body) == "True":
            return self.progress.failure(
                f"{kind.name} {namespace}/{name} is suspended: resume it first (chartguard "
                f"resume {kind.human} {name} -n {namespace})")
        if with_source:
            source = self._source(kind, namespace, body)
            if source is None:
                raise UsageError(f"{kind.name} {namespace}/{name} has no source chartguard can "
                                 "reconcile")
            source_kind, source_ns, source_name = source
            code = self.reconcile(source_kind, source_ns, source_name,
                                  with_source=source_kind is HELM_CHART)
            if code != EXIT_OK:
                return code
        return self._request_and_wait(kind, namespace, name, force=force, reset=reset)

    def _source(self, kind: Kind, namespace: str,
                body: Mapping[str, Any]) -> tuple[Kind, str, str] | None:
        """What ``--with-source`` reconciles first: flux's ``getSource``."""
        spec = _tables.spec_of(body)
        if kind is HELM_CHART:
            ref = spec.get("sourceRef") or {}
            if ref.get("kind") != HELM_REPOSITORY.name:
                raise UsageError(f"cannot reconcile source of kind {ref.get('kind')}: "
                                 "chartguard serves HelmRepository sources")
            return HELM_REPOSITORY, namespace, str(ref.get("name", ""))
        if kind is not HELM_RELEASE:
            return None
        chart_ref = spec.get("chartRef")
        if isinstance(chart_ref, Mapping):
            if chart_ref.get("kind") != HELM_CHART.name:
                raise UsageError(f"cannot reconcile source of kind {chart_ref.get('kind')}: "
                                 "chartguard serves HelmChart chart references")
            return (HELM_CHART, str(chart_ref.get("namespace") or namespace),
                    str(chart_ref.get("name", "")))
        template = (spec.get("chart") or {}).get("spec") or {}
        source_ns = (template.get("sourceRef") or {}).get("namespace") or namespace
        name = (body.get("metadata") or {}).get("name", "")
        return HELM_CHART, str(source_ns), f"{namespace}-{name}"

    def _request_and_wait(self, kind: Kind, namespace: str, name: str, *, force: bool,
                          reset: bool) -> int:
        self.progress.action(f"annotating {kind.name} {name} in {namespace} namespace")
        stamp = rfc3339nano()
        annotations = {REQUESTED_AT: stamp}
        if force:
            annotations[FORCE_AT] = stamp
        if reset:
            annotations[RESET_AT] = stamp
        self.kube.merge_patch(kind, namespace, name, {"metadata": {"annotations": annotations}})
        self.progress.success(f"{kind.name} annotated")
        self.progress.waiting(f"waiting for {kind.name} reconciliation")
        outcome = await_verdict(self.kube, self.progress, kind, namespace, name,
                                lambda b: handled(b, stamp), deadline=self.deadline,
                                timeout=self.timeout)
        if outcome is None:
            return EXIT_FAILED
        return self._verdict(kind, *outcome)

    def _verdict(self, kind: Kind, verdict: Verdict, body: Mapping[str, Any]) -> int:
        if not verdict.ready:
            # flux quotes the message for kinds without a source to reconcile
            message = f"'{verdict.message}'" if kind is HELM_REPOSITORY else verdict.message
            return self.progress.failure(f"{kind.name} reconciliation failed: {message}")
        self.progress.success(success_message(kind, body))
        return EXIT_OK

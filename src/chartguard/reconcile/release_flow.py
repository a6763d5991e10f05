"""One HelmRelease reconcile from start to end: refuse what cannot be honoured, prepare the
inputs (dependencies, the HelmChart, its verified artifact, the values), then let the release
loop run helm; and the deletion path (uninstall, then the owned HelmChart).

The steps live in their own modules (:mod:`.release_prepare`, :mod:`.helmrelease`); this one
joins them and turns a stop before helm into the conditions helm-controller writes for it.
Nothing here imports kopf or the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chartguard.api import HelmRelease
from chartguard.api import conditions as c
from chartguard.api.status import HelmReleaseStatus
from chartguard.helm.release import ReleaseStorage
from chartguard.reconcile.helmrelease import (
    reconcile_release,
    reset_failure_counts,
    uninstall_release,
)
from chartguard.reconcile.outcome import StepFailedError, WaitingError
from chartguard.reconcile.release_prepare import (
    PrepareEnv,
    ReleaseRefs,
    check_expressions,
    prepare_release,
    refuse_unsupported,
    release_chart_to_delete,
    release_refs,
    sync_release_chart,
)
from chartguard.reconcile.seams import ChartWriteError, Event, HelmActions, utcnow
from chartguard.reconcile.values import secret_strings


@dataclass(frozen=True)
class ReleaseEnv:
    """The I/O a release reconcile uses, built once at start-up."""

    helm: HelmActions
    storage: ReleaseStorage
    prepare: PrepareEnv
    now: Callable[[], datetime] = utcnow


@dataclass(frozen=True)
class ReleaseOutcome:
    status: HelmReleaseStatus
    events: tuple[Event, ...] = ()
    #: when to look again (before jitter or backoff); None: only when something changes
    requeue_after: timedelta | None = None
    failure: StepFailedError | None = None
    #: helm actions run, in order (install, upgrade, test, rollback, uninstall, unlock)
    actions: tuple[str, ...] = ()
    #: what the reconcile read, so a change of one re-reconciles the release
    secrets: frozenset[tuple[str, str]] = frozenset()
    configmaps: frozenset[tuple[str, str]] = frozenset()
    charts: frozenset[tuple[str, str]] = frozenset()
    dependencies: frozenset[tuple[str, str]] = frozenset()


def reconcile_helmrelease(release: HelmRelease, status: HelmReleaseStatus, env: ReleaseEnv, *,
                          requested_at: str = "", force: bool = False, reset: bool = False,
                          on_progress: Callable[[HelmReleaseStatus], None]
                          ) -> ReleaseOutcome:
    """The status ``release`` should have now, the Events to emit, when to look again.

    ``force``/``reset``: the ``reconcile.fluxcd.io/forceAt``/``resetAt`` request is new (the
    caller compared it with ``requestedAt`` and the status, as Flux does).
    """
    now = env.now()
    if requested_at:
        status = replace(status, last_handled_reconcile_at=requested_at)
    if reset:
        status = replace(reset_failure_counts(status), last_handled_reset_at=requested_at)
    if force:
        status = replace(status, last_handled_force_at=requested_at)
    status = replace(status, storage_namespace=release.release_namespace)
    # what the spec refers to is watched even when a step stops (a missing Secret created
    # later, a dependency becoming Ready, re-reconcile at once)
    refs = release_refs(release)
    try:
        refuse_unsupported(release)  # before anything is written for it
        check_expressions(release)
        sync = sync_release_chart(release, status, env.prepare)
        status = replace(status, helm_chart=sync.helm_chart)
        prepared = prepare_release(release, status, env.prepare, chart_sync=sync)
    except StepFailedError as err:
        return _stopped(release, status, err, now, refs)
    result = reconcile_release(release, status, env.helm, env.storage, chart=prepared.chart,
                               values=prepared.values, now=now, on_progress=on_progress,
                               force=force)
    return _with_refs(ReleaseOutcome(
        status=result.status, events=result.events, requeue_after=result.requeue_after,
        failure=result.failure, actions=sync.actions + result.actions), refs)


def finalize_helmrelease(release: HelmRelease, status: HelmReleaseStatus,
                         env: ReleaseEnv) -> ReleaseOutcome:
    """The release is being deleted: helm uninstall (a release already gone is fine), then the
    HelmChart it owns. A failure leaves both for the next try. What the release's Secrets give
    is kept out of helm's message, as in a release action."""
    sensitive = secret_strings(release, env.prepare.secrets, env.prepare.configmaps)
    result = uninstall_release(release, status, env.helm, env.storage, now=env.now(),
                               sensitive=sensitive)
    if result.failure is not None:
        return ReleaseOutcome(status=result.status, events=result.events,
                              requeue_after=release.spec.interval, failure=result.failure,
                              actions=result.actions)
    chart = release_chart_to_delete(release, status)
    if chart is not None:
        try:
            env.prepare.chart_writer.delete(*chart)
        except ChartWriteError as err:
            message = f"failed to delete HelmChart '{chart[0]}/{chart[1]}': {err}"
            return ReleaseOutcome(
                status=result.status, events=(Event("Warning", c.ARTIFACT_FAILED, message),),
                requeue_after=release.spec.interval,
                failure=StepFailedError(c.READY, c.ARTIFACT_FAILED, message, status=c.FALSE),
                actions=result.actions)
    return ReleaseOutcome(status=result.status, events=result.events, actions=result.actions)


def _stopped(release: HelmRelease, status: HelmReleaseStatus, err: StepFailedError,
             now: datetime, refs: ReleaseRefs | None = None) -> ReleaseOutcome:
    """A stop before helm ran: Ready False with the step's reason and message (and Stalled
    when only a spec change helps), as helm-controller marks it; the release stays as it is."""
    gen = release.metadata.generation
    conds = [dict(x) for x in status.conditions]
    conds = c.remove_condition(conds, c.RECONCILING)
    if err.condition not in (c.READY, c.STALLED):
        conds = c.set_condition(conds, err.condition, err.status, err.reason, err.message,
                                observed_generation=gen, now=now)
    for type_, value, reason in err.extra:
        conds = c.set_condition(conds, type_, value, reason, err.message,
                                observed_generation=gen, now=now)
    if err.stalled:
        conds = c.set_condition(conds, c.STALLED, c.TRUE, err.reason, err.message,
                                observed_generation=gen, now=now)
    else:
        conds = c.remove_condition(conds, c.STALLED)
    conds = c.set_condition(conds, c.READY, c.FALSE, err.reason, err.message,
                            observed_generation=gen, now=now)
    new = replace(status, conditions=tuple(conds),
                  observed_generation=gen if err.stalled else status.observed_generation)
    before = c.get_condition(status.conditions, c.READY) or {}
    # one Event per new reason to wait, not one per retry
    repeated = (before.get("status"), before.get("message")) == (c.FALSE, err.message)
    if err.stalled:
        requeue = None
    elif isinstance(err, WaitingError):
        requeue = err.requeue_after
    else:
        requeue = release.spec.interval  # the ceiling of the operator's backoff
    outcome = ReleaseOutcome(
        status=new, events=() if repeated else (Event("Warning", err.reason, err.message),),
        requeue_after=requeue, failure=err)
    return outcome if refs is None else _with_refs(outcome, refs)


def _with_refs(outcome: ReleaseOutcome, refs: ReleaseRefs) -> ReleaseOutcome:
    return replace(outcome, secrets=refs.secrets, configmaps=refs.configmaps,
                   charts=refs.charts, dependencies=refs.dependencies)

"""HelmRelease: bring helm's release to the verified chart and composed values, atomically.

helm-controller's AtomicRelease (internal/reconcile/atomic_release.go) as a bounded loop::

    state   helm's newest stored revision vs status.history and the desired chart/values
            (release_state.determine_state)
    action  install | upgrade | test | rollback | uninstall | unlock, or none
            (release_state.next_action, from remediation settings and failure counters)
    run     status written through ``on_progress`` first (Reconciling, Ready Unknown for a
            release action), then helm once; its outcome recorded (release_actions)

Each kind of action (release, test, remediate, unlock) runs at most once per reconcile and
the loop stops after a remediation, so a reconcile starts at most four helm processes and an
unchanged release none. Retries exhausted: Stalled, no requeue until something changes.
Under ``strategy: RetryOnFailure`` nothing is remediated: a failed release is upgraded again
after the strategy's ``retryInterval`` (ErrRetryAfterInterval), and never stalls for it.

The caller gathers the inputs first (dependencies Ready, the HelmChart's verified artifact,
the composed values), records ``lastHandled*At``, clears the counters on a ``resetAt``
request (:func:`reset_failure_counts`) and writes the returned status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chartguard.api import conditions as c
from chartguard.api.durations import format_duration
from chartguard.api.helmrelease import REINSTALL, HelmRelease
from chartguard.api.status import HelmReleaseStatus, Snapshot
from chartguard.helm.release import ReleaseStorage
from chartguard.reconcile import release_actions as act
from chartguard.reconcile import release_drift as drift
from chartguard.reconcile import release_history as h
from chartguard.reconcile.drift_rules import IgnoreRuleError, compile_rules
from chartguard.reconcile.outcome import (
    INVALID_SPEC,
    RetryAfterIntervalError,
    StepFailedError,
    safe,
)
from chartguard.reconcile.release_inputs import ComposedValues, ReadyChart
from chartguard.reconcile.release_state import (
    RETRIES_EXCEEDED,
    Action,
    ReleaseStalledError,
    StateStatus,
    active_remediation,
    active_retry,
    determine_state,
    ignore_test_failures,
    next_action,
    retries_exceeded_message,
)
from chartguard.reconcile.seams import ClusterError, ClusterObjects, Event, HelmActions, utcnow

STATE_ERROR = "StateError"
RECONCILE_ERROR = "ReconcileError"
#: helm-controller's ReconcilerTypeDriftCorrection and the action's Name()
DRIFT_CORRECTION = "drift correction"
DRIFT_CORRECTION_NAME = "correct cluster drift"
NO_DRIFT_MESSAGE = "No drift detected against the cluster state"

_RUN: dict[Action, Callable[[act.Scratch], str | None]] = {
    Action.INSTALL: act.install, Action.UPGRADE: act.upgrade, Action.TEST: act.test,
    Action.ROLLBACK: act.rollback, Action.UNINSTALL: act.uninstall_remediation,
    Action.UNLOCK: act.unlock,
}


@dataclass(frozen=True)
class ReleaseResult:
    """The status to write (conditions already set), the Events, and when to come back."""

    status: HelmReleaseStatus
    events: tuple[Event, ...] = ()
    #: success: spec.interval; a failure that will be retried: spec.interval as the ceiling of
    #: the caller's backoff (as for charts); ``timedelta(0)``: at once (the release moved);
    #: None: stalled, only a change of the spec or its inputs brings it back
    requeue_after: timedelta | None = None
    #: why the reconcile did not finish; its conditions are already in ``status``
    failure: StepFailedError | None = None
    #: the actions run, in order, for logs and tests ("install", "test", ...)
    actions: tuple[str, ...] = ()


def reset_failure_counts(status: HelmReleaseStatus) -> HelmReleaseStatus:
    """A ``reconcile.fluxcd.io/resetAt`` request: every remediation gets its retries back."""
    return replace(status, failures=0, install_failures=0, upgrade_failures=0)


def action_timeout(release: HelmRelease, action: Action) -> timedelta:
    """helm-controller's timeoutForAction: the action's own timeout, else spec.timeout."""
    spec = release.spec
    own = {Action.INSTALL: spec.install.timeout, Action.UPGRADE: spec.upgrade.timeout,
           Action.TEST: spec.test.timeout, Action.ROLLBACK: spec.rollback.timeout,
           Action.UNINSTALL: spec.uninstall.timeout}.get(action)
    return own or spec.timeout


def reconcile_release(release: HelmRelease, status: HelmReleaseStatus, helm: HelmActions,
                      storage: ReleaseStorage, *, chart: ReadyChart, values: ComposedValues,
                      now: datetime, on_progress: Callable[[HelmReleaseStatus], None],
                      force: bool = False, cluster: ClusterObjects | None = None
                      ) -> ReleaseResult:
    """Run the actions that bring the release to ``chart`` and ``values``. ``force``: an
    unhandled ``reconcile.fluxcd.io/forceAt`` request (one upgrade even when in sync, an
    install or upgrade even with retries exhausted). ``cluster``: where the released objects
    are read for ``spec.driftDetection`` (required when its mode is enabled or warn)."""
    s = act.Scratch(release=release, status=status, now=now, helm=helm, storage=storage,
                    chart=chart, values=values)
    wanted = release.spec.storage_namespace
    if wanted and wanted != release.release_namespace:
        message = (f"spec.storageNamespace {wanted!r} differs from the release namespace "
                   f"{release.release_namespace!r}: chartguard runs the helm CLI, which keeps "
                   "a release's records in the release's namespace; remove "
                   "spec.storageNamespace or set it to the release namespace")
        s.stall(INVALID_SPEC, message)
        s.mark(c.READY, c.FALSE, INVALID_SPEC, message)
        return _stalled(s, INVALID_SPEC, message)
    moved = _moved(release, s.status, chart)
    if moved is not None:
        return _uninstall_moved(s, on_progress, *moved)
    _attempt(s, chart, values)
    s.stored = list(storage.history(release.release_namespace, release.release_name))
    s.stored.sort(key=lambda r: r.version, reverse=True)
    ran_kinds: list[str] = []
    # each kind runs at most once, so the loop ends; the bound only guards against a bug
    for _ in range(len(Action) + 1):
        state = determine_state(release, s.stored[0] if s.stored else None, s.status, chart,
                                values.digest)
        if state.status is StateStatus.UNKNOWN:
            s.mark(c.READY, c.FALSE, STATE_ERROR,
                   f"Could not determine release state: {safe(state.reason)}")
            return _retry(s)
        try:
            action = next_action(state, release, s.status, force=force, stored=s.stored)
        except ReleaseStalledError as err:
            s.stall(err.reason, err.message)
            return _stalled(s, err.reason, err.message)
        _bookkeep(s, state.status, action, force=force)
        force = False  # a force request is handled once (meta.ShouldHandleForceRequest)
        if action is None and state.status is StateStatus.IN_SYNC:
            drift = _detect_drift(s, cluster)
            if drift is _DRIFT_UNKNOWN:
                return _retry(s)
            if drift is not None and release.spec.drift_detection_mode == "enabled":
                if DRIFT_CORRECTION in ran_kinds:  # corrected once, still drifted: come back
                    if active_retry(release, s.status) is not None:
                        return _retry_after_interval(s)
                    return _requeue(s)
                s.reconciling(c.PROGRESSING, f"Running '{DRIFT_CORRECTION_NAME}' action with "
                                             f"timeout of {format_duration(release.spec.timeout)}")
                on_progress(s.status)
                _correct_drift(s, cluster, drift)
                ran_kinds.append(DRIFT_CORRECTION)
                continue
        if action is None:
            s.delete(c.RECONCILING)
            s.summarize()
            return _done(s)
        if action.kind in ran_kinds:
            if active_retry(release, s.status) is not None:
                return _retry_after_interval(s)
            remediation = active_remediation(release, s.status)
            if remediation is None or not remediation.retries_exhausted(s.status):
                return _requeue(s)
            s.delete(c.RECONCILING)
            return _done(s)
        message = (f"Running '{action}' action with timeout of "
                   f"{format_duration(action_timeout(release, action))}")
        s.reconciling(c.PROGRESSING, message)
        if action.kind == "release":
            s.mark(c.READY, c.UNKNOWN, c.PROGRESSING, message)
            s.status = replace(s.status, last_attempted_release_action=str(action))
        on_progress(s.status)
        error = _RUN[action](s)
        if error is not None:
            if active_retry(release, s.status) is not None:
                return _retry_after_interval(s)
            if s.is_true(c.READY):
                s.mark(c.READY, c.FALSE, RECONCILE_ERROR, error)
            return _retry(s)
        if action.kind == "remediate":
            if active_retry(release, s.status) is not None:
                return _retry_after_interval(s)
            remediation = active_remediation(release, s.status)
            if (remediation is None or not remediation.retries_exhausted(s.status)
                    or remediation.uninstall_after_upgrade):
                return _requeue(s)
            message = retries_exceeded_message(release, s.status)
            s.stall(RETRIES_EXCEEDED, message)
            return _stalled(s, RETRIES_EXCEEDED, message)
        ran_kinds.append(action.kind)
    raise AssertionError("the release loop ran an action kind twice")  # pragma: no cover


def uninstall_release(release: HelmRelease, status: HelmReleaseStatus, helm: HelmActions,
                      storage: ReleaseStorage, *, now: datetime | None = None,
                      sensitive: frozenset[str] = frozenset()) -> ReleaseResult:
    """The HelmRelease is being deleted: uninstall what ``status`` says it released (helm
    honours spec.uninstall: keepHistory, deletionPropagation, timeout, disableHooks,
    disableWait). Nothing installed, or a release helm no longer has: done, nothing run.
    ``sensitive``: what the release's Secrets gave, kept out of helm's messages (a pre-delete
    hook quotes values too).

    One difference from helm-controller, which uninstalls only what ``status.history``
    records: an operator killed while helm ran never recorded the revision helm made (an
    install), or had just written an empty history (an upgrade taking over a release it did
    not know), and the release would outlive its HelmRelease. When the history is empty but
    an install or upgrade of the release was attempted, what helm holds under its name is
    uninstalled: that action was taking it over."""
    s = act.Scratch(release=release, status=status, now=now or utcnow(), helm=helm,
                    storage=storage, sensitive=sensitive)
    cur = s.latest or _unrecorded(release, status, storage)
    if (status.storage_namespace and cur is not None
            and act.uninstall(s, _target_of(release, cur), cur) is not None):
        return _retry(s)
    s.status = replace(s.status, history=(), storage_namespace="")
    return ReleaseResult(status=s.status, events=tuple(s.events), actions=tuple(s.calls))


def _unrecorded(release: HelmRelease, status: HelmReleaseStatus,
                storage: ReleaseStorage) -> Snapshot | None:
    """The revision a release action made that status never recorded (see
    :func:`uninstall_release`), or None."""
    if not (status.storage_namespace
            and status.last_attempted_release_action in ("install", "upgrade")):
        return None
    stored = storage.history(release.release_namespace, release.release_name)
    newest = max(stored, key=lambda r: r.version, default=None)
    if newest is None:
        return None
    return h.snapshot(newest, action="", oci_digest="")


# -- the steps around the loop ---------------------------------------------------------------


def _moved(release: HelmRelease, status: HelmReleaseStatus,
           chart: ReadyChart) -> tuple[Snapshot, str] | None:
    """The release recorded in status is not where the spec now puts it (helm-controller's
    ReleaseTargetChanged). A chart name change reinstalls under
    ``spec.upgrade.chartNameChangeStrategy: Reinstall`` (the default); under InPlaceUpdate the
    release is not moved: the state is out of sync (chart changed) and it is upgraded."""
    cur = h.latest(status.history)
    if not status.storage_namespace or cur is None:
        return None
    if status.storage_namespace != release.release_namespace:
        return cur, "storage namespace"
    if cur.namespace != release.release_namespace:
        return cur, "release namespace"
    if cur.name != release.release_name:
        return cur, "release name"
    if (cur.chart_name != chart.chart_name
            and release.spec.upgrade.chart_name_change_strategy == REINSTALL):
        return cur, "chart name"
    return None


def _target_of(release: HelmRelease, cur: Snapshot) -> HelmRelease:
    """``release`` naming the helm release ``cur`` records, wherever the spec now points."""
    if cur.name == release.release_name and cur.namespace == release.release_namespace:
        return release
    return replace(release, spec=replace(release.spec, release_name=cur.name,
                                         target_namespace=cur.namespace, storage_namespace=""))


def _uninstall_moved(s: act.Scratch, on_progress: Callable[[HelmReleaseStatus], None],
                     cur: Snapshot, what: str) -> ReleaseResult:
    """Uninstall the release at its old place first, or the install at the new one would find
    its resources taken; then start afresh, at once."""
    s.reconciling(c.PROGRESSING, f"release target configuration changed ({what}): running "
                                 f"uninstall for current release {act.full_name(cur)}")
    on_progress(s.status)
    if act.uninstall(s, _target_of(s.release, cur), cur) is not None:
        return _retry(s)
    s.status = replace(reset_failure_counts(s.status), history=(), storage_namespace="")
    return ReleaseResult(status=s.status, events=tuple(s.events),
                         requeue_after=timedelta(0), actions=tuple(s.calls))


def _attempt(s: act.Scratch, chart: ReadyChart, values: ComposedValues) -> None:
    """Record what this attempt releases; a change since the last attempt (generation, chart
    version or digest, values) gives the remediations their retries back (MustResetFailures)."""
    st = s.status
    if (st.last_attempted_generation != s.generation
            or st.last_attempted_revision != chart.version
            or (st.last_attempted_revision_digest
                and st.last_attempted_revision_digest != chart.oci_digest)
            or (st.last_attempted_config_digest
                and st.last_attempted_config_digest != values.digest)):
        st = reset_failure_counts(st)
    s.status = replace(st, storage_namespace=s.release.release_namespace,
                       last_attempted_generation=s.generation,
                       last_attempted_revision=chart.version,
                       last_attempted_revision_digest=chart.oci_digest,
                       last_attempted_config_digest=values.digest)


def _bookkeep(s: act.Scratch, state: StateStatus, action: Action | None, *,
              force: bool) -> None:
    """What actionForState does to the status besides choosing."""
    release = s.release
    retry = active_retry(release, s.status) is not None
    if state is StateStatus.IN_SYNC:
        if retry:  # nothing is ever rolled back to
            s.set_history(h.truncate_ignoring_previous(s.status.history))
        else:
            # keep the previous good release, so a later test failure can still roll back
            s.set_history(h.truncate(s.status.history,
                                     ignore_tests=ignore_test_failures(release, s.status)))
        if action is not None:
            return
        cur = s.latest
        assert cur is not None
        if s.is_true(c.REMEDIATED):
            # a rollback landed on what is now desired: that is an upgrade that succeeded
            s.replace_condition(c.REMEDIATED, c.RELEASED, c.UPGRADE_SUCCEEDED,
                                _success_message("upgrade", cur))
        if not s.is_true(c.READY) or not s.is_true(c.RELEASED):
            was = (s.condition(c.RELEASED) or {}).get("reason")
            if was in (c.INSTALL_FAILED, c.UPGRADE_FAILED):
                verb = "install" if was == c.INSTALL_FAILED else "upgrade"
                reason = c.INSTALL_SUCCEEDED if verb == "install" else c.UPGRADE_SUCCEEDED
                s.mark(c.RELEASED, c.TRUE, reason, _success_message(verb, cur))
                s.summarize()
    elif state is StateStatus.UNTESTED:
        cur = s.latest
        if s.is_true(c.REMEDIATED) and cur is not None:
            s.replace_condition(c.REMEDIATED, c.RELEASED, c.UPGRADE_SUCCEEDED,
                                _success_message("upgrade", cur))
    elif state is StateStatus.UNMANAGED:
        s.set_history(())  # it no longer describes what helm holds
    elif state is StateStatus.FAILED and retry:
        s.set_history(h.truncate_ignoring_previous(s.status.history))
    elif state is StateStatus.FAILED:
        remediation = active_remediation(release, s.status)
        if remediation is not None and remediation.failure_count(s.status) > 0 and not force:
            # cut back to where the failure began, so failures do not pile up
            s.set_history(h.truncate(s.status.history, ignore_tests=(
                remediation.ignore_test_failures(release.spec.test.ignore_failures))))


def _success_message(verb: str, cur: Snapshot) -> str:
    return c.release_action_message(verb, safe(cur.namespace), safe(cur.name), cur.version,
                                    safe(cur.chart_name), safe(cur.chart_version))


# -- drift (state.go's Drifted state, correct_cluster_drift.go) -------------------------------

#: the cluster state could not be determined: Ready False StateError is already marked
_DRIFT_UNKNOWN = drift.DriftReport(errors=("unknown",))


def _detect_drift(s: act.Scratch, cluster: ClusterObjects | None) -> drift.DriftReport | None:
    """The drift of the in-sync release's objects (None: none, or detection disabled), with
    the Drifted condition and the DriftDetected Event as helm-controller writes them."""
    release = s.release
    if release.spec.drift_detection_mode not in ("enabled", "warn"):
        s.delete(c.DRIFTED)  # a condition about a check no longer made would mislead
        return None
    cur, stored = s.latest, s.stored[0] if s.stored else None
    assert cur is not None
    assert stored is not None
    try:
        if cluster is None:
            raise ClusterError("the operator was started without access to released objects")
        digest, manifest = cluster.release_manifest(stored.namespace, stored.name,
                                                    stored.version)
        if digest != cur.digest:
            raise ClusterError(f"revision {stored.version} changed while it was read")
        rules = compile_rules(release.spec.drift_detection_ignore)
        as_user = s.helm.identity(release)
        objects = drift.desired_objects(manifest, stored.name, stored.namespace, cluster)
        report = drift.detect(objects, rules, cluster, as_user=as_user)
    except (ClusterError, drift.ManifestError, IgnoreRuleError) as err:
        report = drift.DriftReport(errors=(safe(err),))
    if not report.drifted:
        if report.errors:
            s.mark(c.READY, c.FALSE, STATE_ERROR, "Could not determine release state: unable "
                   f"to determine cluster state: {'; '.join(report.errors)}")
            return _DRIFT_UNKNOWN
        s.mark(c.DRIFTED, c.FALSE, c.NO_DRIFT_DETECTED, NO_DRIFT_MESSAGE)
        return None
    message = drift.drift_message(act.full_name(cur), report)
    s.events.append(Event("Warning", c.DRIFT_DETECTED, message))
    s.mark(c.DRIFTED, c.TRUE, c.DRIFT_DETECTED, message)
    return report


def _correct_drift(s: act.Scratch, cluster: ClusterObjects | None,
                   report: drift.DriftReport) -> None:
    """Put the drifted objects back (no helm revision); DriftCorrected or
    DriftCorrectionFailed. The loop then looks again."""
    assert cluster is not None  # detection needed it
    cur = s.latest
    assert cur is not None
    s.mark(c.READY, c.UNKNOWN, c.PROGRESSING, "correcting cluster drift")
    s.calls.append(DRIFT_CORRECTION_NAME)
    result = drift.correct(report, cluster, as_user=s.helm.identity(s.release))
    if result.errors:
        s.snapshot_event("Warning", c.DRIFT_CORRECTION_FAILED,
                         drift.correction_failed_message(act.full_name(cur), result), cur)
    elif result.done:
        s.snapshot_event("Normal", c.DRIFT_CORRECTED,
                         drift.corrected_message(act.full_name(cur), result), cur)


# -- results -----------------------------------------------------------------------------------


def _done(s: act.Scratch) -> ReleaseResult:
    return ReleaseResult(
        status=replace(s.status, observed_generation=s.generation), events=tuple(s.events),
        requeue_after=s.release.spec.interval, actions=tuple(s.calls))


def _stalled(s: act.Scratch, reason: str, message: str) -> ReleaseResult:
    return ReleaseResult(
        status=replace(s.status, observed_generation=s.generation), events=tuple(s.events),
        requeue_after=None, actions=tuple(s.calls),
        failure=StepFailedError(c.STALLED, reason, message, stalled=True))


def _retry(s: act.Scratch) -> ReleaseResult:
    """Not done; try again after a backoff (status.observedGeneration stays behind)."""
    ready = s.condition(c.READY) or {}
    failure = StepFailedError(c.READY, str(ready.get("reason") or c.FAILED),
                              str(ready.get("message", "")), status=c.FALSE)
    return ReleaseResult(status=s.status, events=tuple(s.events),
                         requeue_after=s.release.spec.interval, failure=failure,
                         actions=tuple(s.calls))


def _retry_after_interval(s: act.Scratch) -> ReleaseResult:
    """RetryOnFailure: no remediation; the release is tried again after the strategy's
    ``retryInterval`` (helm-controller's ErrRetryAfterInterval: Reconciling True
    ``retrying after <interval>``, not Stalled, the generation observed)."""
    retry = active_retry(s.release, s.status)
    assert retry is not None
    s.reconciling(c.PROGRESSING_WITH_RETRY, f"retrying after {format_duration(retry.interval)}")
    ready = s.condition(c.READY) or {}
    return ReleaseResult(
        status=replace(s.status, observed_generation=s.generation), events=tuple(s.events),
        requeue_after=retry.interval, actions=tuple(s.calls),
        failure=RetryAfterIntervalError(c.READY, str(ready.get("reason") or c.FAILED),
                                        str(ready.get("message", "")), status=c.FALSE))


def _requeue(s: act.Scratch) -> ReleaseResult:
    """A remediation ran, or the next action already ran in this reconcile: come back soon
    to carry on (helm-controller's ErrMustRequeue), saying why on Reconciling."""
    message = str((s.condition(c.READY) or {}).get("message", ""))
    s.reconciling(c.PROGRESSING_WITH_RETRY, message)
    return ReleaseResult(
        status=s.status, events=tuple(s.events), requeue_after=s.release.spec.interval,
        failure=StepFailedError(c.RECONCILING, c.PROGRESSING_WITH_RETRY, message),
        actions=tuple(s.calls))

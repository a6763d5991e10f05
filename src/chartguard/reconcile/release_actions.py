"""The helm actions of a HelmRelease reconcile, each recording its outcome as helm-controller does.

One function per action (internal/reconcile/install.go, upgrade.go, test.go,
rollback_remediation.go, uninstall_remediation.go, unlock.go, uninstall.go): it runs helm
once, reads helm's storage to see what the run wrote, updates ``status.history``, the
conditions (with helm-controller's reasons and words), the failure counters and the Events,
and returns an error message when the run changed nothing in helm's storage (the caller
retries it; such a failure never counts toward remediation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chartguard.api import conditions as c
from chartguard.api.helmrelease import HelmRelease
from chartguard.api.post_renderers import common_metadata_digest, post_renderers_digest
from chartguard.api.status import HelmReleaseStatus, Snapshot
from chartguard.helm.errors import HelmError
from chartguard.helm.release import ReleaseStorage, StoredRelease
from chartguard.reconcile import release_history as h
from chartguard.reconcile.outcome import safe
from chartguard.reconcile.release_inputs import ComposedValues, ReadyChart
from chartguard.reconcile.release_state import active_remediation, remediation_for
from chartguard.reconcile.seams import Event, HelmActions
from chartguard.reconcile.secret_values import redact

GROUP = "helm.toolkit.fluxcd.io"
#: helm-controller's event metadata (eventMeta: ``<group>/<key>``)
REVISION_ANNOTATION = f"{GROUP}/revision"
TOKEN_ANNOTATION = f"{GROUP}/token"
APP_VERSION_ANNOTATION = f"{GROUP}/app-version"
OCI_DIGEST_ANNOTATION = f"{GROUP}/oci-digest"

AWAITING_TESTS = "AwaitingTests"
PENDING_RELEASE = "PendingRelease"
UNINSTALL_REMEDIATION = "uninstall-remediation"  # status.history[].action


@dataclass
class Scratch:
    """One reconcile's working state: the status being built, the Events to emit, the helm
    storage history last read."""

    release: HelmRelease
    status: HelmReleaseStatus
    now: datetime
    helm: HelmActions
    storage: ReleaseStorage
    chart: ReadyChart | None = None
    values: ComposedValues | None = None
    stored: list[StoredRelease] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: helm actions started, in order ("install", "test", ...)
    calls: list[str] = field(default_factory=list)
    #: values Secrets gave when no values were composed (the uninstall of a deleted release)
    sensitive: frozenset[str] = frozenset()

    @property
    def generation(self) -> int:
        return self.release.metadata.generation

    def helm_says(self, error: HelmError) -> str:
        """helm's message, safe to show: without a value a Secret gave (helm quotes values in
        template errors)."""
        return safe(redact(error.message,
                           self.values.sensitive if self.values else self.sensitive))

    # -- conditions ----------------------------------------------------------------------

    def mark(self, type_: str, status: str, reason: str, message: str) -> None:
        self.status = replace(self.status, conditions=tuple(c.set_condition(
            self.status.conditions, type_, status, reason, message,
            observed_generation=self.generation, now=self.now)))

    def delete(self, type_: str) -> None:
        self.status = replace(self.status, conditions=tuple(
            c.remove_condition(self.status.conditions, type_)))

    def condition(self, type_: str) -> Mapping[str, Any] | None:
        return c.get_condition(self.status.conditions, type_)

    def is_true(self, type_: str) -> bool:
        return c.is_status(self.status.conditions, type_, c.TRUE)

    def reconciling(self, reason: str, message: str) -> None:
        """fluxcd/pkg MarkReconciling: Reconciling True, Stalled gone."""
        self.delete(c.STALLED)
        self.mark(c.RECONCILING, c.TRUE, reason, message)

    def stall(self, reason: str, message: str) -> None:
        """fluxcd/pkg MarkStalled: Stalled True, Reconciling gone."""
        self.delete(c.RECONCILING)
        self.mark(c.STALLED, c.TRUE, reason, message)

    def replace_condition(self, target: str, replacement: str, reason: str,
                          message: str) -> None:
        """``target`` becomes ``replacement`` (keeping its transition time), as
        helm-controller's replaceCondition does."""
        old = self.condition(target)
        if old is None:
            return
        self.delete(replacement)
        self.mark(replacement, c.TRUE, reason, message)
        since = old.get("lastTransitionTime")
        self.status = replace(self.status, conditions=tuple(
            {**cond, "lastTransitionTime": since}
            if cond.get("type") == replacement and since else cond
            for cond in self.status.conditions))
        self.delete(target)

    def summarize(self) -> None:
        test = self.release.spec.test
        self.status = replace(self.status, conditions=tuple(c.summarize_release_ready(
            self.status.conditions, test_enabled=test.enable,
            ignore_test_failures=test.ignore_failures, observed_generation=self.generation,
            now=self.now)))

    # -- history and storage -------------------------------------------------------------

    @property
    def latest(self) -> Snapshot | None:
        return h.latest(self.status.history)

    def set_history(self, history: Sequence[Snapshot]) -> None:
        self.status = replace(self.status, history=h.newest_first(history))

    def read_storage(self, release: HelmRelease | None = None,
                     written: StoredRelease | None = None) -> tuple[list[StoredRelease],
                                                                    list[StoredRelease]]:
        """helm's history after an action, and the revisions it added or changed (newest
        first). ``written``, what helm said it wrote, stands in for a storage read that lags."""
        target = release or self.release
        before = {s.version: s.digest for s in self.stored}
        after = list(self.storage.history(target.release_namespace, target.release_name))
        if written is not None:
            after = [s for s in after if s.version != written.version] + [written]
        after.sort(key=lambda s: s.version, reverse=True)
        changed = [s for s in after if before.get(s.version) != s.digest]
        self.stored = after
        return after, changed

    def refresh(self, stored: StoredRelease, *, action: str | None = None,
                test_hooks: Mapping[str, Mapping[str, str]] | None = None,
                hooks_known: bool = False) -> bool:
        """Update the snapshot of ``stored``'s revision, keeping what helm does not know (OCI
        and values digests, test results unless given, action unless given); False when no
        snapshot has that revision."""
        history = list(self.status.history)
        for i, snap in enumerate(history):
            if h.targets(snap, stored):
                history[i] = h.snapshot(
                    stored, action=snap.action if action is None else action,
                    oci_digest=snap.oci_digest, config_digest=snap.config_digest,
                    test_hooks=test_hooks if hooks_known else snap.test_hooks)
                self.set_history(history)
                return True
        return False

    def prepend(self, snap: Snapshot) -> None:
        self.set_history([snap, *(s for s in self.status.history
                                  if not (s.name == snap.name and s.namespace == snap.namespace
                                          and s.version == snap.version))])

    # -- events --------------------------------------------------------------------------

    def event(self, type_: str, reason: str, message: str, *, revision: str, token: str,
              app_version: str = "", oci_digest: str = "") -> None:
        meta = {REVISION_ANNOTATION: revision, TOKEN_ANNOTATION: token,
                APP_VERSION_ANNOTATION: app_version, OCI_DIGEST_ANNOTATION: oci_digest}
        self.events.append(Event(type_, reason, message, {k: v for k, v in meta.items() if v}))

    def snapshot_event(self, type_: str, reason: str, message: str, snap: Snapshot) -> None:
        self.event(type_, reason, message, revision=snap.chart_version,
                   token=snap.config_digest, app_version=snap.app_version,
                   oci_digest=snap.oci_digest)


def full_name(snap: Snapshot) -> str:
    return safe(h.full_name(snap))


def chart_of(snap: Snapshot) -> str:
    return safe(h.chart_of(snap))


# -- install and upgrade (internal/reconcile/install.go, upgrade.go) ---------------------------


def install(s: Scratch) -> str | None:
    s.status = replace(s.status, last_attempted_release_action="install")
    # an install starts a new release lifecycle: never roll back to what came before it
    s.set_history(())
    return _release(s, "install")


def upgrade(s: Scratch) -> str | None:
    s.status = replace(s.status, last_attempted_release_action="upgrade")
    return _release(s, "upgrade")


def _release(s: Scratch, action: str) -> str | None:
    assert s.chart is not None
    assert s.values is not None
    chart, values = s.chart, s.values
    s.delete(c.TEST_SUCCESS)
    s.delete(c.REMEDIATED)
    run = s.helm.install if action == "install" else s.helm.upgrade
    error: HelmError | None = None
    written: StoredRelease | None = None
    s.calls.append(action)
    try:
        written = run(s.release, chart.file, values.values)
    except HelmError as err:
        error = err
    _, changed = s.read_storage(written=written)
    if changed:
        newest, *older = changed
        s.prepend(h.snapshot(newest, action=action, config_digest=values.digest,
                             oci_digest=s.status.last_attempted_revision_digest))
        for other in older:  # e.g. the revision an upgrade superseded
            s.refresh(other)
    if error is not None:
        message = (f"Helm {action} failed for release {s.release.release_namespace}/"
                   f"{s.release.release_name} with chart {safe(chart.chart_name)}@"
                   f"{safe(chart.version)}: {s.helm_says(error)}")
        s.status = replace(s.status, failures=s.status.failures + 1)
        reason = c.INSTALL_FAILED if action == "install" else c.UPGRADE_FAILED
        s.mark(c.RELEASED, c.FALSE, reason, message)
        s.event("Warning", reason, message, revision=chart.version, token=values.digest,
                app_version=changed[0].app_version if changed else "",
                oci_digest=s.status.last_attempted_revision_digest)
        s.summarize()
        if not changed and not error.storage_changed:
            return message  # nothing to remediate: retried as it is
        if action == "install":
            s.status = replace(s.status, install_failures=s.status.install_failures + 1)
        else:
            s.status = replace(s.status, upgrade_failures=s.status.upgrade_failures + 1)
        return None
    cur = s.latest
    assert cur is not None  # helm returned the revision it wrote
    message = c.release_action_message(action, safe(cur.namespace), safe(cur.name),
                                       cur.version, safe(cur.chart_name),
                                       safe(cur.chart_version))
    reason = c.INSTALL_SUCCEEDED if action == "install" else c.UPGRADE_SUCCEEDED
    s.mark(c.RELEASED, c.TRUE, reason, message)
    if s.release.spec.test.enable and not h.has_been_tested(cur):
        s.mark(c.TEST_SUCCESS, c.UNKNOWN, AWAITING_TESTS,
               f"Helm release {full_name(cur)} with chart {chart_of(cur)} is awaiting tests")
    s.status = replace(s.status, last_applied_revision=cur.chart_version,
                       observed_post_renderers_digest=post_renderers_digest(s.release.spec),
                       observed_common_metadata_digest=common_metadata_digest(s.release.spec))
    strategy = (s.release.spec.install if action == "install" else s.release.spec.upgrade).strategy
    if strategy.retry:
        # RetryOnFailure: failures count only while the release is failed (ClearFailures)
        s.status = replace(s.status, failures=0, install_failures=0, upgrade_failures=0)
    s.snapshot_event("Normal", reason, message, cur)
    s.summarize()
    return None


# -- test (internal/reconcile/test.go) ---------------------------------------------------------


def test(s: Scratch) -> str | None:
    cur = s.latest
    if cur is None:
        return "no latest release: required for test"
    error: HelmError | None = None
    written: StoredRelease | None = None
    s.calls.append("test")
    try:
        written = s.helm.test(s.release)
    except HelmError as err:
        error = err
    after, changed = s.read_storage(written=written)
    ran = error is None or error.storage_changed or any(h.targets(cur, r) for r in changed)
    if written is not None and not h.targets(cur, written):
        error = HelmError("test", f"release mismatch: tested release {written.namespace}/"
                                  f"{written.name}.v{written.version} != current release "
                                  f"{h.full_name(cur)}", storage_changed=False)
    elif ran:
        # the hooks' last runs are recorded on the revision tested; none ran: nothing known
        tested = written or next((r for r in after if h.targets(cur, r)), None)
        if tested is not None:
            hooks = h.selected_test_hooks(tested.test_hooks, s.release.spec.test.filters)
            s.refresh(tested, test_hooks=hooks, hooks_known=True)
    cur = s.latest
    assert cur is not None
    if error is not None:
        message = (f"Helm test failed for release {full_name(cur)} with chart "
                   f"{chart_of(cur)}: {s.helm_says(error)}")
        s.status = replace(s.status, failures=s.status.failures + 1)
        s.mark(c.TEST_SUCCESS, c.FALSE, c.TEST_FAILED, message)
        s.snapshot_event("Warning", c.TEST_FAILED, message, cur)
        tested_now = h.has_been_tested(cur)
        remediation = active_remediation(s.release, s.status)
        if tested_now and remediation is not None and not remediation.ignore_test_failures(
                s.release.spec.test.ignore_failures):
            _count_failure(s, remediation.action)
        s.summarize()
        return None if tested_now else message
    count = len(cur.test_hooks or {})
    done = "no test hooks" if count == 0 else (
        f"{count} test {'hook' if count == 1 else 'hooks'} completed successfully")
    message = f"Helm test succeeded for release {full_name(cur)} with chart {chart_of(cur)}: {done}"
    s.mark(c.TEST_SUCCESS, c.TRUE, c.TEST_SUCCEEDED, message)
    s.snapshot_event("Normal", c.TEST_SUCCEEDED, message, cur)
    s.summarize()
    return None


def _count_failure(s: Scratch, action: str) -> None:
    if action == "install":
        s.status = replace(s.status, install_failures=s.status.install_failures + 1)
    else:
        s.status = replace(s.status, upgrade_failures=s.status.upgrade_failures + 1)


# -- remediation (internal/reconcile/rollback_remediation.go, uninstall_remediation.go) -------


def rollback(s: Scratch) -> str | None:
    cur = s.latest
    ignore = remediation_for(s.release, "upgrade").ignore_test_failures(
        s.release.spec.test.ignore_failures)
    prev = h.previous(s.status.history, ignore_tests=ignore)
    if cur is None or prev is None:
        return "missing target release for rollback: required to rollback"
    error: HelmError | None = None
    written: StoredRelease | None = None
    s.calls.append("rollback")
    try:
        written = s.helm.rollback(s.release, prev.version)
    except HelmError as err:
        error = err
    _, changed = s.read_storage(written=written)
    for stored in changed:
        if not s.refresh(stored, action="rollback"):
            # the new revision deploys exactly prev's chart: it carries prev's OCI digest
            s.prepend(h.snapshot(stored, action="rollback", oci_digest=prev.oci_digest,
                                 config_digest=prev.config_digest))
    token = s.values.digest if s.values else prev.config_digest
    if error is not None:
        message = (f"Helm rollback to previous release {full_name(prev)} with chart "
                   f"{chart_of(prev)} failed: {s.helm_says(error)}")
        s.status = replace(s.status, failures=s.status.failures + 1)
        s.mark(c.REMEDIATED, c.FALSE, c.ROLLBACK_FAILED, message)
        s.event("Warning", c.ROLLBACK_FAILED, message, revision=prev.chart_version, token=token,
                app_version=prev.app_version, oci_digest=prev.oci_digest)
        s.summarize()
        new = s.latest
        return message if new is None or new.digest == cur.digest else None
    message = (f"Helm rollback to previous release {full_name(prev)} with chart "
               f"{chart_of(prev)} succeeded")
    s.mark(c.REMEDIATED, c.TRUE, c.ROLLBACK_SUCCEEDED, message)
    s.event("Normal", c.ROLLBACK_SUCCEEDED, message, revision=prev.chart_version, token=token,
            app_version=prev.app_version, oci_digest=prev.oci_digest)
    s.summarize()
    return None


def uninstall_remediation(s: Scratch) -> str | None:
    """Remediated, not Released; helm-controller does not re-summarise Ready here, so Ready
    keeps saying why the release failed."""
    cur = s.latest
    if cur is None:
        return "no latest release: required to uninstall"
    error = _uninstall(s, s.release, cur, UNINSTALL_REMEDIATION)
    cur = s.latest
    assert cur is not None
    if error is not None:
        message = (f"Helm uninstall remediation for release {full_name(cur)} with chart "
                   f"{chart_of(cur)} failed: {s.helm_says(error)}")
        s.status = replace(s.status, failures=s.status.failures + 1)
        s.mark(c.REMEDIATED, c.FALSE, c.UNINSTALL_FAILED, message)
        s.snapshot_event("Warning", c.UNINSTALL_FAILED, message, cur)
        return None if error.storage_changed else message
    message = (f"Helm uninstall remediation for release {full_name(cur)} with chart "
               f"{chart_of(cur)} succeeded")
    s.mark(c.REMEDIATED, c.TRUE, c.UNINSTALL_SUCCEEDED, message)
    s.snapshot_event("Normal", c.UNINSTALL_SUCCEEDED, message, cur)
    return None


def _uninstall(s: Scratch, target: HelmRelease, cur: Snapshot, action: str) -> HelmError | None:
    """helm uninstall of ``cur``'s release, its snapshot updated from what storage then holds
    (``uninstalled`` with keepHistory; gone without it). The error says whether storage
    changed."""
    error: HelmError | None = None
    s.calls.append("uninstall")
    try:
        s.helm.uninstall(target)
    except HelmError as err:
        error = err
    after, _ = s.read_storage(target)
    mine = next((r for r in after if h.targets(cur, r)), None)
    if mine is not None:
        s.refresh(mine, action=action)
    else:
        s.set_history([replace(snap, status="uninstalled", action=action,
                               deleted=snap.deleted or c.format_time(s.now))
                       if snap == cur else snap for snap in s.status.history])
    changed = mine is None or mine.digest != cur.digest
    if error is None and not changed and cur.status != "uninstalled":
        return HelmError("uninstall", "uninstall completed with error: release not updated "
                                      "in Helm storage", storage_changed=False)
    if error is not None and changed and not error.storage_changed:
        return HelmError(error.action, error.message, storage_changed=True)
    return error


# -- unlock (internal/reconcile/unlock.go) -----------------------------------------------------


def unlock(s: Scratch) -> str | None:
    newest = s.stored[0] if s.stored else None
    if newest is None or not newest.pending:
        return None
    known = next((snap for snap in s.status.history if h.targets(snap, newest)), None)
    cur = h.snapshot(newest, action="", oci_digest=known.oci_digest if known else "")
    state = newest.status
    s.calls.append("unlock")
    try:
        written = s.helm.unlock(s.release, newest.version,
                                description=f"Release unlocked from stale '{state}' state")
    except HelmError as err:
        message = (f"Unlock of Helm release {full_name(cur)} with chart {chart_of(cur)} in "
                   f"{state} state failed: {s.helm_says(err)}")
        s.status = replace(s.status, failures=s.status.failures + 1)
        s.mark(c.RELEASED, c.FALSE, PENDING_RELEASE, message)
        s.snapshot_event("Warning", PENDING_RELEASE, message, cur)
        s.summarize()
        return message
    s.read_storage(written=written)
    s.refresh(written)
    message = f"Unlocked Helm release {full_name(cur)} with chart {chart_of(cur)} in {state} state"
    s.mark(c.RELEASED, c.FALSE, PENDING_RELEASE, message)
    s.snapshot_event("Normal", PENDING_RELEASE, message, cur)
    s.summarize()
    return None


# -- uninstall (internal/reconcile/uninstall.go): deletion, or a release that moved -----------


def uninstall(s: Scratch, target: HelmRelease, cur: Snapshot) -> str | None:
    """Uninstall the release ``cur`` records (``target`` names it); Released False either
    way. A release helm no longer has is not an error."""
    s.stored = list(s.storage.history(target.release_namespace, target.release_name))
    if not s.stored:
        s.mark(c.RELEASED, c.FALSE, c.UNINSTALL_SUCCEEDED,
               f"Release {full_name(cur)} was not found, assuming it is uninstalled")
        s.summarize()
        return None
    if (target.spec.uninstall.keep_history and s.stored[0].status == "uninstalled"
            and h.targets(cur, s.stored[0])):
        s.mark(c.RELEASED, c.FALSE, c.UNINSTALL_SUCCEEDED,
               f"Release {full_name(cur)} was already uninstalled")
        s.summarize()
        return None
    error = _uninstall(s, target, cur, "uninstall")
    cur = next((snap for snap in s.status.history if snap.version == cur.version), cur)
    if error is not None:
        message = (f"Helm uninstall failed for release {full_name(cur)} with chart "
                   f"{chart_of(cur)}: {s.helm_says(error)}")
        s.status = replace(s.status, failures=s.status.failures + 1)
        s.mark(c.RELEASED, c.FALSE, c.UNINSTALL_FAILED, message)
        s.snapshot_event("Warning", c.UNINSTALL_FAILED, message, cur)
        s.summarize()
        return message
    message = f"Helm uninstall succeeded for release {full_name(cur)} with chart {chart_of(cur)}"
    s.mark(c.RELEASED, c.FALSE, c.UNINSTALL_SUCCEEDED, message)
    s.snapshot_event("Normal", c.UNINSTALL_SUCCEEDED, message, cur)
    s.summarize()
    return None

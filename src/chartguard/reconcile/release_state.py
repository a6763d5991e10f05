"""Where a HelmRelease's release stands, and what to do next: helm-controller's two decisions.

:func:`determine_state` compares helm's newest stored revision with ``status.history`` and
the desired chart and values (internal/reconcile/state.go); :func:`next_action` picks the
action for that state from the remediation settings and failure counters
(atomic_release.go ``actionForState``). Both are pure; the loop in :mod:`.helmrelease` runs
what they decide.

chartguard's one difference: the desired chart is a verified OCI manifest, so a different
manifest digest under the same chart version (a re-pushed, re-signed tag) is out of sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from chartguard.api.helmrelease import ActionStrategy, HelmRelease, Remediation
from chartguard.api.post_renderers import common_metadata_digest, post_renderers_digest
from chartguard.api.status import HelmReleaseStatus
from chartguard.helm.release import StoredRelease
from chartguard.reconcile import release_history as h
from chartguard.reconcile.release_inputs import ReadyChart

# helm-controller's state reasons (state.go, internal/action/verify.go)
NO_RELEASE = "no release in storage for object"
UNINSTALLED_IN_STORAGE = "found uninstalled release in storage"
EXISTING_RELEASE = "found existing release in storage"
NOT_OBSERVED = "release not observed to be made for object"
CHART_CHANGED = "release chart changed"
CHART_DIGEST_CHANGED = "chart digest changed"  # chartguard: same version, other manifest
VALUES_CHANGED = "release config values changed"
POST_RENDERERS_CHANGED = "postrenderers digest has changed"
COMMON_METADATA_CHANGED = "common metadata digest has changed"
TEST_FAILED = "release has test in failed phase"

# Stalled reasons of atomic_release.go
RETRIES_EXCEEDED = "RetriesExceeded"
MISSING_ROLLBACK_TARGET = "MissingRollbackTarget"

INSTALL = "install"
UPGRADE = "upgrade"


class StateStatus(StrEnum):
    ABSENT = "Absent"
    UNMANAGED = "Unmanaged"
    OUT_OF_SYNC = "OutOfSync"
    LOCKED = "Locked"
    UNTESTED = "Untested"
    IN_SYNC = "InSync"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class ReleaseState:
    status: StateStatus
    reason: str = ""


class Action(StrEnum):
    """What the loop runs; the value is helm-controller's action name (``Running 'install'
    action ...``)."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    TEST = "test"
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"  # remediation of a failed release (deletion is uninstall_release)
    UNLOCK = "unlock"

    @property
    def kind(self) -> str:
        """helm-controller's ReconcilerType: each kind runs at most once per reconcile, and
        the loop stops after a ``remediate``."""
        return _KINDS[self]


_KINDS = {Action.INSTALL: "release", Action.UPGRADE: "release", Action.TEST: "test",
          Action.ROLLBACK: "remediate", Action.UNINSTALL: "remediate", Action.UNLOCK: "unlock"}


class ReleaseStalledError(Exception):
    """No action may run until the spec changes (or a reset/force request): Stalled."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ActiveRemediation:
    """``spec.install.remediation`` or ``spec.upgrade.remediation`` with helm-controller's
    defaults (InstallRemediation / UpgradeRemediation in api/v2)."""

    action: str  # install | upgrade
    spec: Remediation

    @property
    def retries(self) -> int:
        return self.spec.retries

    def failure_count(self, status: HelmReleaseStatus) -> int:
        return status.install_failures if self.action == INSTALL else status.upgrade_failures

    def retries_exhausted(self, status: HelmReleaseStatus) -> bool:
        """A negative ``retries`` never runs out."""
        return self.retries >= 0 and self.failure_count(status) > self.retries

    @property
    def remediate_last_failure(self) -> bool:
        """Unset: false for install; for upgrade, true when retries are configured."""
        if self.spec.remediate_last_failure is not None:
            return self.spec.remediate_last_failure
        return self.action == UPGRADE and self.retries > 0

    def ignore_test_failures(self, default: bool) -> bool:
        """Unset: ``spec.test.ignoreFailures``."""
        if self.spec.ignore_test_failures is None:
            return default
        return self.spec.ignore_test_failures

    @property
    def strategy(self) -> str:
        """Install remediation always uninstalls; upgrade remediation rolls back by default."""
        return "uninstall" if self.action == INSTALL else self.spec.strategy

    @property
    def uninstall_after_upgrade(self) -> bool:
        return self.action == UPGRADE and self.strategy == "uninstall"


def remediation_for(release: HelmRelease, action: str) -> ActiveRemediation:
    spec = release.spec.install.remediation if action == INSTALL else (
        release.spec.upgrade.remediation)
    return ActiveRemediation(action, spec)


def active_remediation(release: HelmRelease,
                       status: HelmReleaseStatus) -> ActiveRemediation | None:
    """The remediation of the last release action attempted (none before the first)."""
    if status.last_attempted_release_action in (INSTALL, UPGRADE):
        return remediation_for(release, status.last_attempted_release_action)
    return None


def active_retry(release: HelmRelease, status: HelmReleaseStatus) -> ActionStrategy | None:
    """helm-controller's GetActiveRetry: the ``strategy`` of the last release action attempted
    when it is RetryOnFailure (then no remediation runs: a failed release is upgraded again
    after ``retryInterval``), else None."""
    action = status.last_attempted_release_action
    if action == INSTALL:
        strategy = release.spec.install.strategy
    elif action == UPGRADE:
        strategy = release.spec.upgrade.strategy
    else:
        return None
    return strategy if strategy.retry else None


def ignore_test_failures(release: HelmRelease, status: HelmReleaseStatus) -> bool:
    remediation = active_remediation(release, status)
    default = release.spec.test.ignore_failures
    return remediation.ignore_test_failures(default) if remediation else default


def retries_exceeded_message(release: HelmRelease, status: HelmReleaseStatus) -> str:
    """``Failed to install after 3 attempt(s)``."""
    remediation = active_remediation(release, status)
    count = remediation.failure_count(status) if remediation else status.failures
    return f"Failed to {status.last_attempted_release_action} after {count} attempt(s)"


def determine_state(release: HelmRelease, stored: StoredRelease | None,
                    status: HelmReleaseStatus, chart: ReadyChart,
                    values_digest: str) -> ReleaseState:
    """The state of the release ``stored`` (helm's newest revision, None when helm has none)
    compared with ``status.history`` and the desired ``chart`` and values."""
    if stored is None:
        return ReleaseState(StateStatus.ABSENT, NO_RELEASE)
    if stored.pending:
        return ReleaseState(StateStatus.LOCKED, f"release with status '{stored.status}'")
    cur = h.latest(status.history)
    if cur is None:
        if stored.status == "uninstalled":
            return ReleaseState(StateStatus.ABSENT, UNINSTALLED_IN_STORAGE)
        return ReleaseState(StateStatus.UNMANAGED, EXISTING_RELEASE)
    # the newest revision must be the one this object made, byte for byte
    if not h.targets(cur, stored) or cur.digest != stored.digest:
        return ReleaseState(StateStatus.UNMANAGED, NOT_OBSERVED)
    if stored.status == "failed":
        return ReleaseState(StateStatus.FAILED)
    if stored.status == "uninstalled":
        return ReleaseState(StateStatus.ABSENT, UNINSTALLED_IN_STORAGE)
    if stored.status != "deployed":
        return ReleaseState(StateStatus.UNKNOWN,
                            f"unable to determine state for release with status "
                            f"'{stored.status}'")
    if stored.chart_name != chart.chart_name or stored.chart_version != chart.version:
        return ReleaseState(StateStatus.OUT_OF_SYNC, CHART_CHANGED)
    if cur.oci_digest != chart.oci_digest:
        return ReleaseState(StateStatus.OUT_OF_SYNC, CHART_DIGEST_CHANGED)
    if cur.config_digest != values_digest:
        return ReleaseState(StateStatus.OUT_OF_SYNC, VALUES_CHANGED)
    # only for a new generation, as helm-controller: the digests are recorded after each
    # successful install or upgrade, so this cannot loop within one reconcile
    if status.observed_generation != release.metadata.generation:
        if post_renderers_digest(release.spec) != status.observed_post_renderers_digest:
            return ReleaseState(StateStatus.OUT_OF_SYNC, POST_RENDERERS_CHANGED)
        if common_metadata_digest(release.spec) != status.observed_common_metadata_digest:
            return ReleaseState(StateStatus.OUT_OF_SYNC, COMMON_METADATA_CHANGED)
    test = release.spec.test
    if test.enable:
        if not h.has_been_tested(cur):
            return ReleaseState(StateStatus.UNTESTED)
        remediation = active_remediation(release, status)
        if (remediation is not None
                and not remediation.ignore_test_failures(test.ignore_failures)
                and h.has_test_in_phase(cur, h.PHASE_FAILED)):
            return ReleaseState(StateStatus.FAILED, TEST_FAILED)
    return ReleaseState(StateStatus.IN_SYNC)


def next_action(state: ReleaseState, release: HelmRelease, status: HelmReleaseStatus, *,
                force: bool = False, stored: Sequence[StoredRelease] = ()) -> Action | None:
    """The action for ``state``, or None when there is nothing to do. ``force`` is an
    unhandled ``reconcile.fluxcd.io/forceAt`` request; ``stored`` is helm's storage history
    (any order), where a rollback target must still be, unchanged.

    Raises :class:`ReleaseStalledError` when retries are exhausted or a rollback has no
    target, and ``ValueError`` for the Unknown state (the caller reports it and retries)."""
    match state.status:
        case StateStatus.IN_SYNC:
            return Action.UPGRADE if force else None
        case StateStatus.LOCKED:
            return Action.UNLOCK
        case StateStatus.ABSENT:
            if remediation_for(release, INSTALL).retries_exhausted(status) and not force:
                raise ReleaseStalledError(RETRIES_EXCEEDED,
                                          retries_exceeded_message(release, status))
            return Action.INSTALL
        case StateStatus.UNMANAGED:
            return Action.UPGRADE
        case StateStatus.OUT_OF_SYNC:
            if remediation_for(release, UPGRADE).retries_exhausted(status) and not force:
                raise ReleaseStalledError(RETRIES_EXCEEDED,
                                          retries_exceeded_message(release, status))
            return Action.UPGRADE
        case StateStatus.UNTESTED:
            return Action.TEST
        case StateStatus.FAILED:
            return _remediate(release, status, force=force, stored=stored)
    raise ValueError(f"unknown release status: {state.status}: {state.reason}")


def _remediate(release: HelmRelease, status: HelmReleaseStatus, *, force: bool,
               stored: Sequence[StoredRelease]) -> Action:
    if active_retry(release, status) is not None:
        # RetryOnFailure: as `flux reconcile --force` with no remediation retries
        return Action.UPGRADE
    remediation = active_remediation(release, status)
    # without a failure counted since the spec last changed, try the release again
    if remediation is None or remediation.failure_count(status) <= 0 or force:
        return Action.UPGRADE
    if remediation.retries_exhausted(status) and not remediation.remediate_last_failure:
        raise ReleaseStalledError(RETRIES_EXCEEDED, retries_exceeded_message(release, status))
    if remediation.strategy == "uninstall":
        return Action.UNINSTALL
    prev = h.previous(status.history, ignore_tests=remediation.ignore_test_failures(
        release.spec.test.ignore_failures))
    if prev is None:
        raise ReleaseStalledError(
            MISSING_ROLLBACK_TARGET, "Failed to perform remediation: missing target release "
                                     "for rollback: cannot remediate failed release")
    target = next((s for s in stored if h.targets(prev, s)), None)
    if target is None or target.digest != prev.digest:
        # the rollback target disappeared or changed behind our back: upgrade instead
        return Action.UPGRADE
    return Action.ROLLBACK

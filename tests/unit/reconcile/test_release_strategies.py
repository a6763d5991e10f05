"""``spec.install.strategy`` / ``spec.upgrade.strategy`` (RetryOnFailure) and
``spec.upgrade.chartNameChangeStrategy`` over the in-memory helm: the actions, conditions and
requeues helm-controller's AtomicRelease (atomic_release.go) gives them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from release_fakes import FakeHelm, chart, release, values
from test_helmrelease_release import CHART, cond, events, reconcile

from chartguard.api import conditions as c
from chartguard.api.status import HelmReleaseStatus
from chartguard.reconcile.outcome import RetryAfterIntervalError
from chartguard.reconcile.release_state import (
    Action,
    ReleaseState,
    StateStatus,
    active_retry,
    next_action,
)

RETRY: dict[str, Any] = {"name": "RetryOnFailure", "retryInterval": "30s"}


def retrying(**more: Any) -> dict[str, Any]:
    """install and upgrade both RetryOnFailure, every 30s."""
    return {"install": {"strategy": RETRY, **more.get("install", {})},
            "upgrade": {"strategy": RETRY, **more.get("upgrade", {})}}


def test_active_retry_follows_the_last_release_action_attempted() -> None:
    rel = release({"install": {"strategy": {"name": "RetryOnFailure"}}})
    assert active_retry(rel, HelmReleaseStatus()) is None
    installing = HelmReleaseStatus(last_attempted_release_action="install")
    retry = active_retry(rel, installing)
    assert retry is not None
    assert retry.interval == timedelta(minutes=5)  # Flux's GetRetryInterval default
    # the upgrade keeps the default strategy: RemediateOnFailure
    assert active_retry(rel, HelmReleaseStatus(last_attempted_release_action="upgrade")) is None
    named = release({"install": {"strategy": {"name": "RemediateOnFailure"}}})
    assert active_retry(named, installing) is None


def test_a_failed_release_under_retry_is_upgraded_never_remediated() -> None:
    """actionForState, Failed: with an active retry, an upgrade, whatever the failure counts
    and remediation settings (as `flux reconcile --force` with retries 0)."""
    rel = release({"install": {"strategy": RETRY, "remediation": {"retries": 3}}})
    status = HelmReleaseStatus(last_attempted_release_action="install", install_failures=2,
                               failures=2)
    assert next_action(ReleaseState(StateStatus.FAILED), rel, status) is Action.UPGRADE
    remediating = release({"install": {"remediation": {"retries": 3}}})
    assert next_action(ReleaseState(StateStatus.FAILED), remediating,
                       status) is Action.UNINSTALL


def test_a_failing_install_is_retried_after_the_interval_without_remediation() -> None:
    fake = FakeHelm()
    fake.fail("install", "timed out")
    rel = release(retrying(install={"remediation": {"retries": 2,
                                                    "remediateLastFailure": True}}))
    result = reconcile(fake, rel)

    failed = "Helm install failed for release apps/app with chart app@1.0.0: timed out"
    assert result.actions == ("install",)  # no uninstall remediation
    assert cond(result.status, c.READY) == (c.FALSE, c.INSTALL_FAILED, failed)
    assert cond(result.status, c.RECONCILING) == (
        c.TRUE, c.PROGRESSING_WITH_RETRY, "retrying after 30s")
    assert cond(result.status, c.STALLED) is None
    assert cond(result.status, c.REMEDIATED) is None
    assert isinstance(result.failure, RetryAfterIntervalError)
    assert not result.failure.stalled
    assert result.requeue_after == timedelta(seconds=30)
    assert result.status.observed_generation == 1  # Flux patches it (RequeueAfter, no error)
    assert (result.status.install_failures, result.status.failures) == (1, 1)
    assert fake.history("apps", "app")[0].status == "failed"  # left, not uninstalled

    # after the interval: the failed release is upgraded (the retry), again and again
    fake.fail("upgrade", "timed out")
    st = result.status
    for attempt in range(2, 5):
        again = reconcile(fake, rel, st)
        assert again.actions == ("upgrade",)
        assert isinstance(again.failure, RetryAfterIntervalError)
        assert cond(again.status, c.STALLED) is None
        assert cond(again.status, c.READY) == (
            c.FALSE, c.UPGRADE_FAILED,
            "Helm upgrade failed for release apps/app with chart app@1.0.0: timed out")
        assert again.status.failures == attempt
        st = again.status
    assert [r.status for r in fake.history("apps", "app")] == ["failed"] * 4
    assert "uninstall" not in fake.actions()
    assert "rollback" not in fake.actions()
    # history keeps the newest five, nothing rolled back to
    assert [s.version for s in st.history] == [4, 3, 2, 1]

    # fixed: the next retry succeeds, and the failure counts are cleared (ClearFailures)
    fake.heal("upgrade")
    fixed = reconcile(fake, rel, st)
    assert fixed.actions == ("upgrade",)
    assert fixed.failure is None
    assert cond(fixed.status, c.READY) == (
        c.TRUE, c.UPGRADE_SUCCEEDED,
        "Helm upgrade succeeded for release apps/app.v5 with chart app@1.0.0")
    assert cond(fixed.status, c.RECONCILING) is None
    assert (fixed.status.failures, fixed.status.install_failures,
            fixed.status.upgrade_failures) == (0, 0, 0)
    assert fixed.requeue_after == timedelta(minutes=10)
    assert [s.version for s in fixed.status.history] == [5, 4, 3, 2, 1]


def test_a_failure_that_left_storage_unchanged_is_retried_after_the_interval() -> None:
    """The action's error (nothing stored): helm-controller retries after the interval too,
    without marking Ready ReconcileError."""
    fake = FakeHelm()
    fake.fail("install", "Kubernetes cluster unreachable", storage_changed=False)
    result = reconcile(fake, release(retrying()))
    assert result.actions == ("install",)
    assert isinstance(result.failure, RetryAfterIntervalError)
    assert result.requeue_after == timedelta(seconds=30)
    assert cond(result.status, c.READY) == (
        c.FALSE, c.INSTALL_FAILED, "Helm install failed for release apps/app with chart "
                                   "app@1.0.0: Kubernetes cluster unreachable")
    again = reconcile(fake, release(retrying()), result.status)
    assert again.actions == ("install",)  # absent still: installed again


def test_a_failing_upgrade_under_retry_is_not_rolled_back() -> None:
    fake = FakeHelm()
    rel = release({"upgrade": {"strategy": {"name": "RetryOnFailure"},
                               "remediation": {"retries": 5}}})
    first = reconcile(fake, rel)
    fake.fail("upgrade", "timed out")
    result = reconcile(fake, rel, first.status, vals=values({"replicas": 2}))
    assert result.actions == ("upgrade",)
    assert cond(result.status, c.RECONCILING) == (
        c.TRUE, c.PROGRESSING_WITH_RETRY, "retrying after 5m0s")
    assert result.requeue_after == timedelta(minutes=5)
    assert [r.status for r in fake.history("apps", "app")] == ["failed", "deployed"]
    assert events(result) == [("Warning", c.UPGRADE_FAILED)]


def test_install_retry_then_upgrade_remediate_on_failure_stalls_as_flux() -> None:
    """Only install is RetryOnFailure: the retry is an upgrade, which then follows the
    upgrade's strategy (RemediateOnFailure, retries 0): Stalled, as helm-controller."""
    fake = FakeHelm()
    fake.fail("install")
    fake.fail("upgrade")
    rel = release({"install": {"strategy": {"name": "RetryOnFailure"}}})
    first = reconcile(fake, rel)
    assert isinstance(first.failure, RetryAfterIntervalError)
    second = reconcile(fake, rel, first.status)
    assert second.actions == ("upgrade",)
    assert cond(second.status, c.STALLED) == (
        c.TRUE, "RetriesExceeded", "Failed to upgrade after 1 attempt(s)")
    assert second.requeue_after is None


def test_remediate_on_failure_named_explicitly_is_todays_behaviour() -> None:
    fake = FakeHelm()
    fake.fail("install")
    rel = release({"install": {"strategy": {"name": "RemediateOnFailure"},
                               "remediation": {"retries": 1}}})
    result = reconcile(fake, rel)
    assert result.actions == ("install", "uninstall")
    assert not isinstance(result.failure, RetryAfterIntervalError)


# -- chartNameChangeStrategy ------------------------------------------------------------------


def test_a_chart_name_change_reinstalls_by_default() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    renamed = chart("1.0.0", name="other", oci="b")
    result = reconcile(fake, release(generation=2), first.status, ready=renamed)
    assert result.actions == ("uninstall",)
    assert result.requeue_after == timedelta(0)
    reinstalled = reconcile(fake, release(generation=2), result.status, ready=renamed)
    assert reinstalled.actions == ("install",)
    assert [(r.version, r.chart_name) for r in fake.history("apps", "app")] == [(1, "other")]


def test_a_chart_name_change_upgrades_in_place_with_in_place_update() -> None:
    fake = FakeHelm()
    rel = release({"upgrade": {"chartNameChangeStrategy": "InPlaceUpdate"}})
    first = reconcile(fake, rel, ready=CHART)
    renamed = chart("1.0.0", name="other", oci="b")
    result = reconcile(fake, release({"upgrade": {"chartNameChangeStrategy": "InPlaceUpdate"}},
                                     generation=2), first.status, ready=renamed)
    assert result.actions == ("upgrade",)
    assert cond(result.status, c.READY) == (
        c.TRUE, c.UPGRADE_SUCCEEDED,
        "Helm upgrade succeeded for release apps/app.v2 with chart other@1.0.0")
    assert [(r.version, r.status, r.chart_name) for r in fake.history("apps", "app")] == [
        (2, "deployed", "other"), (1, "superseded", "app")]

"""reconcile_release and uninstall_release over an in-memory helm: the statuses, Events and
helm calls helm-controller would make for each scenario."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from release_fakes import NOW, FakeHelm, Progress, chart, digest_of, release, values

from chartguard.api import conditions as c
from chartguard.api.helmrelease import HelmRelease
from chartguard.api.status import HelmReleaseStatus
from chartguard.helm.release import StoredRelease
from chartguard.helm.runner import ChartFile
from chartguard.reconcile.helmrelease import (
    ReleaseResult,
    reconcile_release,
    reset_failure_counts,
    uninstall_release,
)
from chartguard.reconcile.release_inputs import ComposedValues, ReadyChart

CHART = chart("1.0.0", oci="a")
VALUES = values({"replicas": 1})
TEN_MINUTES = timedelta(minutes=10)


def reconcile(fake: FakeHelm, rel: HelmRelease, status: HelmReleaseStatus | None = None, *,
              ready: ReadyChart = CHART, vals: ComposedValues = VALUES,
              force: bool = False, progress: Progress | None = None) -> ReleaseResult:
    before = len(fake.calls)
    result = reconcile_release(rel, status or HelmReleaseStatus(), fake, fake, chart=ready,
                               values=vals, now=NOW, on_progress=progress or Progress(),
                               force=force)
    ran = [a for a, _ in fake.calls[before:]]
    assert tuple(ran) == result.actions
    # helm-controller's rule: each kind of action at most once per reconcile
    kinds = Counter({"install": "release", "upgrade": "release", "rollback": "remediate",
                     "uninstall": "remediate"}.get(a, a) for a in ran)
    assert all(n == 1 for n in kinds.values()), ran
    return result


def cond(status: HelmReleaseStatus, type_: str) -> tuple[str, str, str] | None:
    found = c.get_condition(status.conditions, type_)
    if found is None:
        return None
    return (found["status"], found["reason"], found["message"])


def short(status: HelmReleaseStatus, type_: str) -> tuple[str, str] | None:
    """(status, reason) of a condition."""
    found = cond(status, type_)
    return found[:2] if found else None


def events(result: ReleaseResult) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in result.events]


# -- install -----------------------------------------------------------------------------------


def test_install_releases_the_verified_chart_and_writes_status_as_helm_controller() -> None:
    fake, progress = FakeHelm(), Progress()
    result = reconcile(fake, release(), progress=progress)

    message = "Helm install succeeded for release apps/app.v1 with chart app@1.0.0"
    st = result.status
    assert fake.actions() == ["install"]
    assert fake.values_seen == [{"replicas": 1}]
    assert cond(st, c.RELEASED) == (c.TRUE, c.INSTALL_SUCCEEDED, message)
    assert cond(st, c.READY) == (c.TRUE, c.INSTALL_SUCCEEDED, message)
    assert cond(st, c.RECONCILING) is None
    assert cond(st, c.STALLED) is None
    assert [x["type"] for x in st.conditions] == [c.READY, c.RELEASED]
    stored = fake.history("apps", "app")[0]
    (snap,) = st.history
    assert snap.to_status() == {
        "name": "app", "namespace": "apps", "version": 1, "status": "deployed",
        "chartName": "app", "chartVersion": "1.0.0", "appVersion": "v1",
        "configDigest": VALUES.digest, "digest": stored.digest,
        "firstDeployed": stored.first_deployed, "lastDeployed": stored.last_deployed,
        "ociDigest": CHART.oci_digest, "action": "install"}
    assert (st.last_attempted_revision, st.last_attempted_revision_digest,
            st.last_attempted_config_digest, st.last_attempted_generation,
            st.last_attempted_release_action) == (
        "1.0.0", CHART.oci_digest, VALUES.digest, 1, "install")
    assert (st.observed_generation, st.storage_namespace, st.failures) == (1, "apps", 0)
    assert result.requeue_after == TEN_MINUTES
    assert result.failure is None
    (event,) = result.events
    assert (event.type, event.reason, event.message) == ("Normal", c.INSTALL_SUCCEEDED, message)
    assert event.annotations == {
        "helm.toolkit.fluxcd.io/revision": "1.0.0",
        "helm.toolkit.fluxcd.io/token": VALUES.digest,
        "helm.toolkit.fluxcd.io/app-version": "v1",
        "helm.toolkit.fluxcd.io/oci-digest": CHART.oci_digest}
    # before helm ran, the status said what was about to happen
    (before,) = progress.seen
    running = "Running 'install' action with timeout of 5m0s"
    assert cond(before, c.RECONCILING) == (c.TRUE, c.PROGRESSING, running)
    assert cond(before, c.READY) == (c.UNKNOWN, c.PROGRESSING, running)
    assert (before.last_attempted_release_action, before.last_attempted_revision,
            before.last_attempted_config_digest, before.last_attempted_generation) == (
        "install", "1.0.0", VALUES.digest, 1)


def test_progress_names_the_action_timeout() -> None:
    progress = Progress()
    reconcile(FakeHelm(), release({"install": {"timeout": "2m30s"}}), progress=progress)
    assert cond(progress.seen[0], c.RECONCILING) == (
        c.TRUE, c.PROGRESSING, "Running 'install' action with timeout of 2m30s")


def test_an_unchanged_release_runs_no_helm_at_all() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    progress = Progress()
    again = reconcile(fake, release(), first.status, progress=progress)
    assert fake.actions() == ["install"]
    assert progress.seen == []
    assert again.status == first.status
    assert again.events == ()
    assert again.requeue_after == TEN_MINUTES


# -- upgrade -----------------------------------------------------------------------------------


def test_a_values_change_upgrades_to_revision_2() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    result = reconcile(fake, release(generation=2), first.status, vals=values({"replicas": 2}))
    message = "Helm upgrade succeeded for release apps/app.v2 with chart app@1.0.0"
    assert fake.actions() == ["install", "upgrade"]
    assert cond(result.status, c.READY) == (c.TRUE, c.UPGRADE_SUCCEEDED, message)
    assert [(s.version, s.status, s.action) for s in result.status.history] == [
        (2, "deployed", "upgrade"), (1, "superseded", "install")]
    assert result.status.history[1].digest == fake.history("apps", "app")[1].digest
    assert events(result) == [("Normal", c.UPGRADE_SUCCEEDED)]
    assert result.status.last_attempted_release_action == "upgrade"
    assert result.status.observed_generation == 2


def test_a_post_renderers_change_upgrades_once_and_records_the_digests() -> None:
    fake = FakeHelm()
    images = {"postRenderers": [{"kustomize": {"images": [{"name": "a", "newTag": "1"}]}}],
              "commonMetadata": {"labels": {"team": "a"}}}
    first = reconcile(fake, release(images))
    assert first.status.observed_post_renderers_digest.startswith("sha256:")
    assert first.status.observed_common_metadata_digest.startswith("sha256:")
    assert reconcile(fake, release(images, generation=2), first.status).actions == ()
    changed = {**images, "postRenderers": [
        {"kustomize": {"images": [{"name": "a", "newTag": "2"}]}}]}
    result = reconcile(fake, release(changed, generation=3), first.status)
    assert result.actions == ("upgrade",)  # once: the digest is recorded by the upgrade
    assert result.status.observed_post_renderers_digest not in (
        "", first.status.observed_post_renderers_digest)
    assert result.status.observed_common_metadata_digest == (
        first.status.observed_common_metadata_digest)
    assert reconcile(fake, release(changed, generation=4), result.status).actions == ()


def test_a_new_manifest_digest_under_the_same_version_upgrades() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    resigned = chart("1.0.0", oci="b")
    result = reconcile(fake, release(), first.status, ready=resigned)
    assert fake.actions() == ["install", "upgrade"]
    assert result.status.history[0].oci_digest == resigned.oci_digest
    assert result.status.last_attempted_revision_digest == resigned.oci_digest
    assert reconcile(fake, release(), result.status, ready=resigned).actions == ()


def test_force_upgrades_an_in_sync_release_once() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    forced = reconcile(fake, release(), first.status, force=True)
    assert forced.actions == ("upgrade",)
    assert (forced.failure, forced.requeue_after) == (None, TEN_MINUTES)  # handled, done
    assert cond(forced.status, c.READY) == (
        c.TRUE, c.UPGRADE_SUCCEEDED,
        "Helm upgrade succeeded for release apps/app.v2 with chart app@1.0.0")
    assert reconcile(fake, release(), forced.status).actions == ()


# -- install failures and remediation ------------------------------------------------------------


def test_install_failure_with_retries_0_stalls_leaving_the_failed_release() -> None:
    """Flux: install remediateLastFailure defaults to false, so retries 0 means no
    remediation: the failed revision stays for inspection, Stalled says why."""
    fake = FakeHelm()
    fake.fail("install", "template: app/templates/x.yaml:3: bad")
    result = reconcile(fake, release())
    failed = ("Helm install failed for release apps/app with chart app@1.0.0: "
              "template: app/templates/x.yaml:3: bad")
    assert fake.actions() == ["install"]
    assert cond(result.status, c.RELEASED) == (c.FALSE, c.INSTALL_FAILED, failed)
    assert cond(result.status, c.READY) == (c.FALSE, c.INSTALL_FAILED, failed)
    assert cond(result.status, c.STALLED) == (
        c.TRUE, "RetriesExceeded", "Failed to install after 1 attempt(s)")
    assert cond(result.status, c.RECONCILING) is None
    assert (result.status.failures, result.status.install_failures) == (1, 1)
    assert [(s.version, s.status, s.action) for s in result.status.history] == [
        (1, "failed", "install")]
    assert result.failure is not None
    assert result.failure.stalled
    assert result.requeue_after is None
    assert result.status.observed_generation == 1
    assert events(result) == [("Warning", c.INSTALL_FAILED)]
    # stalled: the same spec runs nothing again
    assert reconcile(fake, release(), result.status).actions == ()


def test_install_failure_with_remediate_last_failure_uninstalls_then_stalls() -> None:
    fake = FakeHelm()
    fake.fail("install")
    rel = release({"install": {"remediation": {"remediateLastFailure": True}}})
    result = reconcile(fake, rel)
    assert result.actions == ("install", "uninstall")
    assert fake.history("apps", "app") == []
    assert cond(result.status, c.REMEDIATED) == (
        c.TRUE, c.UNINSTALL_SUCCEEDED,
        "Helm uninstall remediation for release apps/app.v1 with chart app@1.0.0 succeeded")
    assert cond(result.status, c.STALLED) == (
        c.TRUE, "RetriesExceeded", "Failed to install after 1 attempt(s)")
    assert result.status.history[0].action == "uninstall-remediation"
    assert events(result) == [("Warning", c.INSTALL_FAILED), ("Normal", c.UNINSTALL_SUCCEEDED)]
    # absent with retries used up: no install until something changes
    again = reconcile(fake, rel, result.status)
    assert again.actions == ()
    assert again.failure is not None
    assert again.failure.stalled


def test_install_retries_uninstall_and_retry_until_exhausted_then_stall() -> None:
    fake = FakeHelm()
    fake.fail("install")
    rel = release({"install": {"remediation": {"retries": 2}}})
    st = HelmReleaseStatus()
    for attempt in (1, 2):
        result = reconcile(fake, rel, st)
        assert result.actions == ("install", "uninstall")
        assert result.status.install_failures == attempt
        assert result.failure is not None
        assert not result.failure.stalled  # come back soon: retries remain
        assert cond(result.status, c.RECONCILING) == (
            c.TRUE, c.PROGRESSING_WITH_RETRY,
            "Helm install failed for release apps/app with chart app@1.0.0: boom")
        assert result.status.observed_generation == -1  # not done with this generation
        st = result.status
    last = reconcile(fake, rel, st)
    assert last.actions == ("install",)  # third failure: retries exhausted, left as it is
    assert cond(last.status, c.STALLED) == (
        c.TRUE, "RetriesExceeded", "Failed to install after 3 attempt(s)")
    assert (last.status.install_failures, last.status.failures) == (3, 3)

    # resetAt gives the retries back; the chart fixed, the failed release is upgraded
    fake.heal("install")
    fake.heal("upgrade")
    fixed = reconcile(fake, rel, reset_failure_counts(last.status))
    assert fixed.actions == ("upgrade",)
    assert cond(fixed.status, c.READY) == (
        c.TRUE, c.UPGRADE_SUCCEEDED,
        "Helm upgrade succeeded for release apps/app.v2 with chart app@1.0.0")
    assert cond(fixed.status, c.STALLED) is None


def test_a_new_generation_resets_the_failure_counters() -> None:
    fake = FakeHelm()
    fake.fail("install")
    stalled = reconcile(fake, release())
    assert stalled.status.install_failures == 1
    fake.heal("install")
    result = reconcile(fake, release(generation=2), stalled.status)
    assert result.actions == ("upgrade",)  # the failed revision is upgraded, counters reset
    assert (result.status.failures, result.status.install_failures) == (0, 0)


def test_a_failure_that_left_storage_unchanged_is_retried_and_never_counted() -> None:
    fake = FakeHelm()
    fake.fail("install", "Kubernetes cluster unreachable", storage_changed=False)
    st = HelmReleaseStatus()
    for _ in range(3):
        result = reconcile(fake, release(), st)
        assert result.actions == ("install",)
        st = result.status
    assert (st.failures, st.install_failures) == (3, 0)
    assert cond(st, c.STALLED) is None
    assert st.history == ()
    assert result.failure is not None
    assert not result.failure.stalled
    assert result.requeue_after == TEN_MINUTES
    assert cond(st, c.READY) == (
        c.FALSE, c.INSTALL_FAILED, "Helm install failed for release apps/app with chart "
                                   "app@1.0.0: Kubernetes cluster unreachable")


def test_an_upgrade_failure_that_left_storage_unchanged_does_not_remediate() -> None:
    fake = FakeHelm()
    rel = release({"upgrade": {"remediation": {"retries": 3}}})
    first = reconcile(fake, rel)
    fake.fail("upgrade", "timed out", storage_changed=False)
    result = reconcile(fake, rel, first.status, vals=values({"replicas": 2}))
    assert result.actions == ("upgrade",)
    assert (result.status.upgrade_failures, result.status.failures) == (0, 1)
    assert cond(result.status, c.REMEDIATED) is None
    assert [s.version for s in result.status.history] == [1]


# -- upgrade failures and remediation ------------------------------------------------------------


def test_a_failing_upgrade_rolls_back_with_strategy_rollback() -> None:
    fake = FakeHelm()
    rel = release({"upgrade": {"remediation": {"retries": 1}}})
    first = reconcile(fake, rel)
    fake.fail("upgrade", "timed out waiting for the condition")
    new_values = values({"replicas": 2})
    result = reconcile(fake, rel, first.status, vals=new_values)

    rolled = ("Helm rollback to previous release apps/app.v1 with chart app@1.0.0 "
              "succeeded")
    assert result.actions == ("upgrade", "rollback")
    assert cond(result.status, c.REMEDIATED) == (c.TRUE, c.ROLLBACK_SUCCEEDED, rolled)
    assert cond(result.status, c.RELEASED) == (
        c.FALSE, c.UPGRADE_FAILED, "Helm upgrade failed for release apps/app with chart "
                                   "app@1.0.0: timed out waiting for the condition")
    # a remediation is a failure: Ready False, with the remediation's words
    assert cond(result.status, c.READY) == (c.FALSE, c.ROLLBACK_SUCCEEDED, rolled)
    # every revision the rollback rewrote is marked with it (helm-controller's observeRollback)
    assert [(s.version, s.status, s.action) for s in result.status.history] == [
        (3, "deployed", "rollback"), (2, "superseded", "rollback"),
        (1, "superseded", "rollback")]
    assert result.status.history[0].oci_digest == CHART.oci_digest
    assert result.status.upgrade_failures == 1
    assert result.failure is not None
    assert not result.failure.stalled
    assert events(result) == [("Warning", c.UPGRADE_FAILED), ("Normal", c.ROLLBACK_SUCCEEDED)]

    # still failing: the second attempt is the last (retries 1); it is remediated and stalls
    again = reconcile(fake, rel, result.status, vals=new_values)
    assert again.actions == ("upgrade", "rollback")
    assert cond(again.status, c.STALLED) == (
        c.TRUE, "RetriesExceeded", "Failed to upgrade after 2 attempt(s)")
    assert again.requeue_after is None
    assert fake.history("apps", "app")[0].status == "deployed"  # the rollback runs


def test_back_in_sync_after_a_rollback_is_a_successful_upgrade() -> None:
    """The values go back to what the rollback restored: in sync with no helm run, and
    Remediated gives way to Released (helm-controller's replaceCondition)."""
    fake = FakeHelm()
    rel = release({"upgrade": {"remediation": {"retries": 1}}})
    first = reconcile(fake, rel)
    fake.fail("upgrade")
    rolled = reconcile(fake, rel, first.status, vals=values({"replicas": 2}))
    result = reconcile(fake, release({"upgrade": {"remediation": {"retries": 1}}},
                                     generation=3), rolled.status)
    assert result.actions == ()
    message = "Helm upgrade succeeded for release apps/app.v3 with chart app@1.0.0"
    assert cond(result.status, c.REMEDIATED) is None
    assert cond(result.status, c.RELEASED) == (c.TRUE, c.UPGRADE_SUCCEEDED, message)
    assert cond(result.status, c.READY) == (c.TRUE, c.UPGRADE_SUCCEEDED, message)
    assert cond(result.status, c.RECONCILING) is None


def test_a_failing_upgrade_uninstalls_with_strategy_uninstall() -> None:
    fake = FakeHelm()
    rel = release({"upgrade": {"remediation": {"retries": 1, "strategy": "uninstall"}}})
    first = reconcile(fake, rel)
    fake.fail("upgrade", times=1)
    result = reconcile(fake, rel, first.status, vals=values({"replicas": 2}))
    assert result.actions == ("upgrade", "uninstall")
    assert cond(result.status, c.REMEDIATED) == (
        c.TRUE, c.UNINSTALL_SUCCEEDED,
        "Helm uninstall remediation for release apps/app.v2 with chart app@1.0.0 succeeded")
    assert fake.history("apps", "app") == []
    assert result.failure is not None
    assert not result.failure.stalled
    # the next reconcile installs afresh
    again = reconcile(fake, rel, result.status, vals=values({"replicas": 2}))
    assert again.actions == ("install",)
    assert cond(again.status, c.READY) == (
        c.TRUE, c.INSTALL_SUCCEEDED,
        "Helm install succeeded for release apps/app.v1 with chart app@1.0.0")
    assert cond(again.status, c.REMEDIATED) is None


def test_upgrade_failure_with_retries_0_stalls_without_rollback() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    fake.fail("upgrade")
    result = reconcile(fake, release(), first.status, vals=values({"replicas": 2}))
    assert result.actions == ("upgrade",)
    assert cond(result.status, c.STALLED) == (
        c.TRUE, "RetriesExceeded", "Failed to upgrade after 1 attempt(s)")


# -- tests -------------------------------------------------------------------------------------


def test_tests_run_after_install_and_decide_ready() -> None:
    fake = FakeHelm(hooks=("app-test",))
    result = reconcile(fake, release({"test": {"enable": True}}))
    message = ("Helm test succeeded for release apps/app.v1 with chart app@1.0.0: "
               "1 test hook completed successfully")
    assert result.actions == ("install", "test")
    assert cond(result.status, c.TEST_SUCCESS) == (c.TRUE, c.TEST_SUCCEEDED, message)
    assert cond(result.status, c.READY) == (c.TRUE, c.TEST_SUCCEEDED, message)
    assert result.status.history[0].to_status()["testHooks"] == {
        "app-test": {"lastStarted": "2025-03-01T12:00:00Z",
                     "lastCompleted": "2025-03-01T12:00:00Z", "phase": "Succeeded"}}
    assert events(result) == [("Normal", c.INSTALL_SUCCEEDED), ("Normal", c.TEST_SUCCEEDED)]
    assert reconcile(fake, release({"test": {"enable": True}}), result.status).actions == ()


def test_a_chart_without_test_hooks_is_tested_once() -> None:
    fake = FakeHelm()
    result = reconcile(fake, release({"test": {"enable": True}}))
    assert result.actions == ("install", "test")
    assert cond(result.status, c.READY) == (
        c.TRUE, c.TEST_SUCCEEDED, "Helm test succeeded for release apps/app.v1 with chart "
                                  "app@1.0.0: no test hooks")
    assert result.status.history[0].to_status()["testHooks"] == {}
    assert reconcile(fake, release({"test": {"enable": True}}), result.status).actions == ()


def test_a_failing_test_is_remediated() -> None:
    fake = FakeHelm(hooks=("app-test",), failing_hook="app-test")
    rel = release({"test": {"enable": True}, "install": {"remediation": {"retries": 1}}})
    result = reconcile(fake, rel)
    assert result.actions == ("install", "test", "uninstall")
    assert cond(result.status, c.TEST_SUCCESS) == (
        c.FALSE, c.TEST_FAILED, "Helm test failed for release apps/app.v1 with chart "
                                "app@1.0.0: 1 error occurred: test app-test failed")
    assert short(result.status, c.REMEDIATED) == (c.TRUE, c.UNINSTALL_SUCCEEDED)
    assert result.status.install_failures == 1
    assert result.failure is not None
    assert not result.failure.stalled


def test_a_failing_test_with_ignore_failures_is_not_remediated() -> None:
    fake = FakeHelm(hooks=("app-test",), failing_hook="app-test")
    rel = release({"test": {"enable": True, "ignoreFailures": True}})
    result = reconcile(fake, rel)
    assert result.actions == ("install", "test")
    assert short(result.status, c.TEST_SUCCESS) == (c.FALSE, c.TEST_FAILED)
    assert cond(result.status, c.READY) == (
        c.TRUE, c.INSTALL_SUCCEEDED,
        "Helm install succeeded for release apps/app.v1 with chart app@1.0.0")
    assert result.status.install_failures == 0
    assert result.failure is None
    assert reconcile(fake, rel, result.status).actions == ()


# -- locked releases ---------------------------------------------------------------------------


def pending(fake: FakeHelm, version: int, status: str) -> StoredRelease:
    return fake.put(StoredRelease(
        name="app", namespace="apps", version=version, status=status, chart_name="app",
        chart_version="1.0.0", app_version="v1", config_digest=digest_of({"replicas": 1}),
        digest="", first_deployed="t", last_deployed="t"))


def test_a_release_left_pending_install_is_unlocked_then_upgraded() -> None:
    """The operator died during helm install: its status never recorded the revision."""
    fake = FakeHelm()
    pending(fake, 1, "pending-install")
    result = reconcile(fake, release())
    assert result.actions == ("unlock", "upgrade")
    assert [r.status for r in fake.history("apps", "app")] == ["deployed", "superseded"]
    assert fake.history("apps", "app")[1].description == (
        "Release unlocked from stale 'pending-install' state")
    assert result.events[0].message == (
        "Unlocked Helm release apps/app.v1 with chart app@1.0.0 in pending-install state")
    assert events(result) == [("Normal", "PendingRelease"), ("Normal", c.UPGRADE_SUCCEEDED)]
    assert cond(result.status, c.READY) == (
        c.TRUE, c.UPGRADE_SUCCEEDED,
        "Helm upgrade succeeded for release apps/app.v2 with chart app@1.0.0")


def test_a_release_left_pending_upgrade_is_unlocked_then_upgraded() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    pending(fake, 2, "pending-upgrade")
    result = reconcile(fake, release(generation=2), first.status, vals=values({"replicas": 2}))
    assert result.actions == ("unlock", "upgrade")
    assert [(s.version, s.status) for s in result.status.history] == [(3, "deployed")]


def test_an_unlock_failure_is_retried() -> None:
    fake = FakeHelm()
    pending(fake, 1, "pending-install")
    fake.fail("unlock", "conflict")
    result = reconcile(fake, release())
    assert result.actions == ("unlock",)
    assert cond(result.status, c.RELEASED) == (
        c.FALSE, "PendingRelease", "Unlock of Helm release apps/app.v1 with chart app@1.0.0 "
                                   "in pending-install state failed: conflict")
    assert result.failure is not None
    assert not result.failure.stalled


# -- one action of a kind per reconcile --------------------------------------------------------


def test_each_kind_of_action_runs_at_most_once_per_reconcile() -> None:
    """A chart whose packaged version is not the one resolved stays out of sync after every
    upgrade: one upgrade per reconcile, then come back later (never a loop)."""
    fake = FakeHelm()
    first = reconcile(fake, release())
    mislabelled = replace(chart("1.0.1", oci="b"), version="1.0.2")
    result = reconcile(fake, release(), first.status, ready=mislabelled)
    assert result.actions == ("upgrade",)  # still out of sync, but no second upgrade now
    assert result.failure is not None
    assert not result.failure.stalled
    assert short(result.status, c.RECONCILING) == (c.TRUE, c.PROGRESSING_WITH_RETRY)


# -- where the release lives -------------------------------------------------------------------


def test_a_storage_namespace_other_than_the_release_namespace_is_refused() -> None:
    fake = FakeHelm()
    result = reconcile(fake, release({"storageNamespace": "flux-system",
                                      "targetNamespace": "apps"}))
    assert fake.calls == []
    assert result.failure is not None
    assert result.failure.stalled
    assert short(result.status, c.STALLED) == (c.TRUE, "InvalidSpec")
    assert "spec.storageNamespace 'flux-system'" in result.failure.message


def test_a_moved_release_is_uninstalled_at_its_old_place_first() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    moved = release({"targetNamespace": "prod"}, generation=2)
    result = reconcile(fake, moved, first.status)
    assert result.actions == ("uninstall",)
    assert fake.calls[-1] == ("uninstall", "app")
    assert fake.history("apps", "app") == []
    assert result.requeue_after == timedelta(0)
    assert (result.status.history, result.status.storage_namespace) == ((), "")
    installed = reconcile(fake, moved, result.status)
    assert installed.actions == ("install",)
    assert fake.history("prod", "prod-app")[0].status == "deployed"
    assert installed.status.storage_namespace == "prod"


def test_an_unknown_release_state_is_reported_and_retried() -> None:
    fake = FakeHelm()
    first = reconcile(fake, release())
    (rev,) = fake.history("apps", "app")
    fake.put(replace(rev, status="superseded"))
    status = replace(first.status, history=(replace(first.status.history[0],
                                                    digest=fake.history("apps", "app")[0].digest),))
    result = reconcile(fake, release(), status)
    assert result.actions == ()
    assert cond(result.status, c.READY) == (
        c.FALSE, "StateError", "Could not determine release state: unable to determine state "
                               "for release with status 'superseded'")
    assert result.failure is not None
    assert not result.failure.stalled


# -- deletion ----------------------------------------------------------------------------------


def test_deletion_uninstalls_the_release() -> None:
    fake = FakeHelm()
    installed = reconcile(fake, release())
    result = uninstall_release(release(), installed.status, fake, fake, now=NOW)
    assert result.actions == ("uninstall",)
    assert fake.history("apps", "app") == []
    assert cond(result.status, c.RELEASED) == (
        c.FALSE, c.UNINSTALL_SUCCEEDED,
        "Helm uninstall succeeded for release apps/app.v1 with chart app@1.0.0")
    assert (result.status.history, result.status.storage_namespace) == ((), "")
    assert events(result) == [("Normal", c.UNINSTALL_SUCCEEDED)]
    assert result.failure is None


def test_deletion_with_keep_history_leaves_the_uninstalled_record() -> None:
    fake = FakeHelm()
    rel = release({"uninstall": {"keepHistory": True}})
    installed = reconcile(fake, rel)
    result = uninstall_release(rel, installed.status, fake, fake, now=NOW)
    assert result.actions == ("uninstall",)
    assert [r.status for r in fake.history("apps", "app")] == ["uninstalled"]


def test_deleting_a_release_already_gone_runs_no_helm() -> None:
    fake = FakeHelm()
    installed = reconcile(fake, release())
    fake.records.clear()
    result = uninstall_release(release(), installed.status, fake, fake, now=NOW)
    assert result.actions == ()
    assert cond(result.status, c.RELEASED) == (
        c.FALSE, c.UNINSTALL_SUCCEEDED,
        "Release apps/app.v1 was not found, assuming it is uninstalled")
    assert result.failure is None


def test_deleting_a_release_never_installed_does_nothing() -> None:
    fake = FakeHelm()
    result = uninstall_release(release(), HelmReleaseStatus(), fake, fake, now=NOW)
    assert (result.actions, result.events, result.failure) == ((), (), None)


def test_deletion_uninstalls_a_release_the_status_never_recorded() -> None:
    """The operator was killed while helm installed: only the status written before helm ran
    reached the API server, and the HelmRelease is deleted before another reconcile."""
    fake, progress = FakeHelm(), Progress()
    reconcile(fake, release(), progress=progress)
    (before_helm,) = progress.seen
    assert before_helm.history == ()
    result = uninstall_release(release(), before_helm, fake, fake, now=NOW)
    assert result.actions == ("uninstall",)
    assert fake.history("apps", "app") == []
    assert cond(result.status, c.RELEASED) == (
        c.FALSE, c.UNINSTALL_SUCCEEDED,
        "Helm uninstall succeeded for release apps/app.v1 with chart app@1.0.0")
    assert (result.status.history, result.status.storage_namespace) == ((), "")


def test_deletion_uninstalls_a_release_an_interrupted_upgrade_took_over() -> None:
    """An upgrade of a release the status did not know (Unmanaged) writes an empty history
    before helm runs; killed then, only that reached the API server."""
    fake, progress = FakeHelm(), Progress()
    installed = reconcile(fake, release())
    taking_over = replace(installed.status, history=(), last_attempted_release_action="upgrade",
                          last_attempted_revision="2.0.0")
    result = uninstall_release(release(), taking_over, fake, fake, now=NOW)
    assert result.actions == ("uninstall",)
    assert fake.history("apps", "app") == []
    assert progress.seen == []


def test_deletion_leaves_what_no_release_action_was_attempted_on() -> None:
    fake, progress = FakeHelm(), Progress()
    reconcile(fake, release(), progress=progress)
    (before_helm,) = progress.seen
    never = replace(before_helm, last_attempted_release_action="")
    assert uninstall_release(release(), never, fake, fake, now=NOW).actions == ()
    assert [r.chart_version for r in fake.history("apps", "app")] == ["1.0.0"]


def test_a_failed_uninstall_on_deletion_is_retried() -> None:
    fake = FakeHelm()
    installed = reconcile(fake, release())
    fake.fail("uninstall", "forbidden", storage_changed=False)
    result = uninstall_release(release(), installed.status, fake, fake, now=NOW)
    assert cond(result.status, c.RELEASED) == (
        c.FALSE, c.UNINSTALL_FAILED,
        "Helm uninstall failed for release apps/app.v1 with chart app@1.0.0: forbidden")
    assert result.failure is not None
    assert not result.failure.stalled
    assert result.status.history  # kept until the uninstall succeeds


def test_a_value_a_secret_gave_never_reaches_an_uninstall_message() -> None:
    """A pre-delete hook quotes values in helm's error as a template does."""
    fake = FakeHelm()
    installed = reconcile(fake, release())
    fake.fail("uninstall", 'no matches for kind "hunter2-Zq9" in version "v1"',
              storage_changed=False)
    result = uninstall_release(release(), installed.status, fake, fake, now=NOW,
                               sensitive=frozenset({"hunter2-Zq9"}))
    shown = [e.message for e in result.events]
    found = cond(result.status, c.RELEASED)
    assert found is not None
    assert result.failure is not None
    shown += [found[2], result.failure.message]
    assert all('no matches for kind "[redacted]"' in text for text in shown), shown


@pytest.mark.parametrize("text", ["line1\nline2\x1b[31m", "\x00"])
def test_helm_messages_are_escaped(text: str) -> None:
    fake = FakeHelm()
    fake.fail("install", text, storage_changed=False)
    result = reconcile(fake, release())
    found = cond(result.status, c.READY)
    assert found is not None
    message = found[2]
    assert "\n" not in message
    assert "\x1b" not in message
    assert "\x00" not in message


@pytest.mark.parametrize("action", ["install", "test"])
def test_a_value_a_secret_gave_never_reaches_a_message(action: str) -> None:
    fake = FakeHelm(hooks=("app-test",))
    rel = release({"test": {"enable": True}})
    vals = replace(VALUES, sensitive=frozenset({"hunter2-Zq9"}))
    fake.fail(action, 'execution error: greeting "hunter2-Zq9" is not allowed',
              storage_changed=False)
    result = reconcile(fake, rel, vals=vals)
    shown = [found[2] for type_ in (c.READY, c.RELEASED, c.TEST_SUCCESS)
             if (found := cond(result.status, type_)) is not None]
    shown += [e.message for e in result.events]
    assert result.failure is not None
    shown.append(result.failure.message)
    assert any('greeting "[redacted]" is not allowed' in text for text in shown)
    assert not any("hunter2" in text for text in shown), shown


class ReparsingHelm(FakeHelm):
    """A helm that stores the values file as it parsed it, not byte-identical to ours."""

    def install(self, release: HelmRelease, chart: ChartFile, values: Mapping[str, Any], *,
                description: str = "") -> StoredRelease:
        return super().install(release, chart, {**values, "parsed": None})


def test_the_history_records_the_values_chartguard_gave_helm() -> None:
    fake = ReparsingHelm()
    first = reconcile(fake, release())
    assert fake.history("apps", "app")[0].config_digest != VALUES.digest
    assert first.status.history[0].config_digest == VALUES.digest
    assert reconcile(fake, release(), first.status).actions == ()


@pytest.mark.parametrize("storage_changed", [True, False])
def test_a_failed_rollback_says_so_on_remediated(storage_changed: bool) -> None:
    fake = FakeHelm()
    rel = release({"upgrade": {"remediation": {"retries": 1}}})
    first = reconcile(fake, rel)
    fake.fail("upgrade")
    fake.fail("rollback", "rollback hook failed", storage_changed=storage_changed)
    result = reconcile(fake, rel, first.status, vals=values({"replicas": 2}))
    assert result.actions == ("upgrade", "rollback")
    assert cond(result.status, c.REMEDIATED) == (
        c.FALSE, c.ROLLBACK_FAILED, "Helm rollback to previous release apps/app.v1 with chart "
                                    "app@1.0.0 failed: rollback hook failed")
    assert cond(result.status, c.READY) == cond(result.status, c.REMEDIATED)
    assert result.status.failures == 2  # the upgrade and the rollback
    assert result.status.upgrade_failures == 1  # a failed remediation is no release attempt
    assert result.failure is not None
    assert not result.failure.stalled
    # a rollback that wrote a revision is recorded; one that wrote nothing is not
    assert len(result.status.history) == (3 if storage_changed else 2)
    assert events(result)[-1] == ("Warning", c.ROLLBACK_FAILED)


def test_a_failed_uninstall_remediation_says_so_on_remediated() -> None:
    fake = FakeHelm()
    fake.fail("install")
    fake.fail("uninstall", "context deadline exceeded", storage_changed=False)
    rel = release({"install": {"remediation": {"retries": 1}}})
    result = reconcile(fake, rel)
    assert result.actions == ("install", "uninstall")
    assert cond(result.status, c.REMEDIATED) == (
        c.FALSE, c.UNINSTALL_FAILED, "Helm uninstall remediation for release apps/app.v1 with "
                                     "chart app@1.0.0 failed: context deadline exceeded")
    assert result.failure is not None
    assert not result.failure.stalled
    assert [r.status for r in fake.history("apps", "app")] == ["failed"]

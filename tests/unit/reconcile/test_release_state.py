"""determine_state and next_action, row by row against helm-controller's rules (state.go,
atomic_release.go actionForState, api/v2 remediation defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
from release_fakes import chart, release

from chartguard.api.post_renderers import common_metadata_digest, post_renderers_digest
from chartguard.api.status import HelmReleaseStatus, Snapshot
from chartguard.helm.release import StoredRelease
from chartguard.reconcile import release_history as h
from chartguard.reconcile.release_state import (
    CHART_CHANGED,
    CHART_DIGEST_CHANGED,
    COMMON_METADATA_CHANGED,
    EXISTING_RELEASE,
    MISSING_ROLLBACK_TARGET,
    NO_RELEASE,
    NOT_OBSERVED,
    POST_RENDERERS_CHANGED,
    RETRIES_EXCEEDED,
    TEST_FAILED,
    UNINSTALLED_IN_STORAGE,
    VALUES_CHANGED,
    Action,
    ReleaseStalledError,
    ReleaseState,
    StateStatus,
    determine_state,
    next_action,
)

CHART = chart("1.0.0", oci="a")
VALUES = "sha256:" + "c" * 64
T = "2025-03-01T12:00:00Z"


def stored(version: int = 1, status: str = "deployed", **kw: Any) -> StoredRelease:
    fields: dict[str, Any] = {
        "name": "app", "namespace": "apps", "version": version, "status": status,
        "chart_name": "app", "chart_version": "1.0.0", "app_version": "v1",
        "config_digest": VALUES, "digest": f"sha256:{version}{status}",
        "first_deployed": T, "last_deployed": T}
    fields.update(kw)
    return StoredRelease(**fields)


def snap(rel: StoredRelease, *, oci: str = CHART.oci_digest,
         hooks: Mapping[str, Mapping[str, str]] | None = None, **kw: Any) -> Snapshot:
    return replace(h.snapshot(rel, action="install", oci_digest=oci, test_hooks=hooks), **kw)


def status(*history: Snapshot, action: str = "install", **kw: Any) -> HelmReleaseStatus:
    return HelmReleaseStatus(history=history, last_attempted_release_action=action, **kw)


DEPLOYED = stored()
FAILED_HOOK = {"app-test": {"phase": "Failed"}}
PASSED_HOOK = {"app-test": {"phase": "Succeeded"}}
TESTS = {"test": {"enable": True}}


@dataclass(frozen=True)
class StateRow:
    rule: str
    stored: StoredRelease | None
    status: HelmReleaseStatus
    want: ReleaseState
    spec: Mapping[str, Any] | None = None
    values: str = VALUES


STATE_ROWS = [
    StateRow("nothing in helm's storage: Absent", None, status(),
             ReleaseState(StateStatus.ABSENT, NO_RELEASE)),
    StateRow("a pending-install revision is locked, whatever the history says",
             stored(status="pending-install"), status(snap(DEPLOYED)),
             ReleaseState(StateStatus.LOCKED, "release with status 'pending-install'")),
    StateRow("pending-upgrade: Locked", stored(2, "pending-upgrade"), status(),
             ReleaseState(StateStatus.LOCKED, "release with status 'pending-upgrade'")),
    StateRow("pending-rollback: Locked", stored(3, "pending-rollback"), status(),
             ReleaseState(StateStatus.LOCKED, "release with status 'pending-rollback'")),
    StateRow("no history, an uninstalled revision: Absent (install again)",
             stored(status="uninstalled"), status(),
             ReleaseState(StateStatus.ABSENT, UNINSTALLED_IN_STORAGE)),
    StateRow("no history, a release someone else made: Unmanaged (take it over by upgrade)",
             DEPLOYED, status(), ReleaseState(StateStatus.UNMANAGED, EXISTING_RELEASE)),
    StateRow("helm's newest revision is not the one recorded (upgraded outside): Unmanaged",
             stored(2), status(snap(DEPLOYED)),
             ReleaseState(StateStatus.UNMANAGED, NOT_OBSERVED)),
    StateRow("same version, other bytes (the record was edited): Unmanaged",
             replace(DEPLOYED, digest="sha256:edited"), status(snap(DEPLOYED)),
             ReleaseState(StateStatus.UNMANAGED, NOT_OBSERVED)),
    StateRow("a release of another name in the history: Unmanaged",
             DEPLOYED, status(snap(replace(DEPLOYED, name="other"))),
             ReleaseState(StateStatus.UNMANAGED, NOT_OBSERVED)),
    StateRow("the latest is the highest version, not the first entry",
             stored(2), status(snap(DEPLOYED), snap(stored(2))),
             ReleaseState(StateStatus.IN_SYNC)),
    StateRow("our revision failed: Failed", stored(status="failed"),
             status(snap(stored(status="failed"))), ReleaseState(StateStatus.FAILED)),
    StateRow("our revision was uninstalled (keepHistory): Absent",
             stored(status="uninstalled"), status(snap(stored(status="uninstalled"))),
             ReleaseState(StateStatus.ABSENT, UNINSTALLED_IN_STORAGE)),
    StateRow("a status helm never leaves on the newest revision: Unknown",
             stored(status="superseded"), status(snap(stored(status="superseded"))),
             ReleaseState(StateStatus.UNKNOWN,
                          "unable to determine state for release with status 'superseded'")),
    StateRow("another chart version is desired: OutOfSync",
             stored(chart_version="0.9.0"), status(snap(stored(chart_version="0.9.0"))),
             ReleaseState(StateStatus.OUT_OF_SYNC, CHART_CHANGED)),
    StateRow("another chart name is desired: OutOfSync",
             stored(chart_name="old"), status(snap(stored(chart_name="old"))),
             ReleaseState(StateStatus.OUT_OF_SYNC, CHART_CHANGED)),
    StateRow("chartguard: same version, another verified manifest digest: OutOfSync",
             DEPLOYED, status(snap(DEPLOYED, oci="sha256:" + "b" * 64)),
             ReleaseState(StateStatus.OUT_OF_SYNC, CHART_DIGEST_CHANGED)),
    StateRow("chartguard: no recorded manifest digest (released before verification): "
             "OutOfSync", DEPLOYED, status(snap(DEPLOYED, oci="")),
             ReleaseState(StateStatus.OUT_OF_SYNC, CHART_DIGEST_CHANGED)),
    StateRow("other values: OutOfSync", DEPLOYED, status(snap(DEPLOYED)),
             ReleaseState(StateStatus.OUT_OF_SYNC, VALUES_CHANGED), values="sha256:other"),
    StateRow("tests enabled, never run on this revision: Untested", DEPLOYED,
             status(snap(DEPLOYED)), ReleaseState(StateStatus.UNTESTED), spec=TESTS),
    StateRow("tests enabled, some hooks not run yet: Untested", DEPLOYED,
             status(snap(DEPLOYED, hooks={**PASSED_HOOK, "b": {}})),
             ReleaseState(StateStatus.UNTESTED), spec=TESTS),
    StateRow("tests enabled, chart has no test hooks (tested, none selected): InSync",
             DEPLOYED, status(snap(DEPLOYED, hooks={})), ReleaseState(StateStatus.IN_SYNC),
             spec=TESTS),
    StateRow("tests enabled, all passed: InSync", DEPLOYED,
             status(snap(DEPLOYED, hooks=PASSED_HOOK)), ReleaseState(StateStatus.IN_SYNC),
             spec=TESTS),
    StateRow("a failed test under the active (install) remediation: Failed", DEPLOYED,
             status(snap(DEPLOYED, hooks=FAILED_HOOK)),
             ReleaseState(StateStatus.FAILED, TEST_FAILED), spec=TESTS),
    StateRow("a failed test under the upgrade remediation: Failed", DEPLOYED,
             status(snap(DEPLOYED, hooks=FAILED_HOOK), action="upgrade"),
             ReleaseState(StateStatus.FAILED, TEST_FAILED), spec=TESTS),
    StateRow("a failed test with test.ignoreFailures: InSync", DEPLOYED,
             status(snap(DEPLOYED, hooks=FAILED_HOOK)), ReleaseState(StateStatus.IN_SYNC),
             spec={"test": {"enable": True, "ignoreFailures": True}}),
    StateRow("remediation.ignoreTestFailures overrides test.ignoreFailures=false", DEPLOYED,
             status(snap(DEPLOYED, hooks=FAILED_HOOK)), ReleaseState(StateStatus.IN_SYNC),
             spec={**TESTS, "install": {"remediation": {"ignoreTestFailures": True}}}),
    StateRow("remediation.ignoreTestFailures=false overrides test.ignoreFailures=true",
             DEPLOYED, status(snap(DEPLOYED, hooks=FAILED_HOOK)),
             ReleaseState(StateStatus.FAILED, TEST_FAILED),
             spec={"test": {"enable": True, "ignoreFailures": True},
                   "install": {"remediation": {"ignoreTestFailures": False}}}),
    StateRow("a failed test with no release action attempted (no active remediation): InSync",
             DEPLOYED, status(snap(DEPLOYED, hooks=FAILED_HOOK), action=""),
             ReleaseState(StateStatus.IN_SYNC), spec=TESTS),
    StateRow("tests disabled: test results do not matter", DEPLOYED,
             status(snap(DEPLOYED, hooks=FAILED_HOOK)), ReleaseState(StateStatus.IN_SYNC)),
    StateRow("everything matches: InSync", DEPLOYED, status(snap(DEPLOYED)),
             ReleaseState(StateStatus.IN_SYNC)),
]


@pytest.mark.parametrize("row", STATE_ROWS, ids=[r.rule for r in STATE_ROWS])
def test_determine_state_follows_helm_controller(row: StateRow) -> None:
    got = determine_state(release(row.spec), row.stored, row.status, CHART, row.values)
    assert got == row.want


POST_RENDERERS = {"postRenderers": [{"kustomize": {"images": [{"name": "a", "newTag": "2"}]}}]}
COMMON = {"commonMetadata": {"labels": {"team": "a"}}}


@pytest.mark.parametrize(("spec", "want"), [
    (POST_RENDERERS, POST_RENDERERS_CHANGED), (COMMON, COMMON_METADATA_CHANGED)])
def test_changed_post_renderers_or_common_metadata_upgrade_at_a_new_generation(
        spec: Mapping[str, Any], want: str) -> None:
    """helm-controller compares the observed digests only for a new generation; the digests
    of the last successful install or upgrade are in status."""
    recorded = status(snap(DEPLOYED), observed_generation=1)
    assert determine_state(release(spec, generation=1), DEPLOYED, recorded, CHART,
                           VALUES) == ReleaseState(StateStatus.IN_SYNC)
    got = determine_state(release(spec, generation=2), DEPLOYED, recorded, CHART, VALUES)
    assert got == ReleaseState(StateStatus.OUT_OF_SYNC, want)
    assert next_action(got, release(spec, generation=2), recorded) is Action.UPGRADE
    spec_now = release(spec, generation=2).spec
    applied = replace(recorded, observed_post_renderers_digest=post_renderers_digest(spec_now),
                      observed_common_metadata_digest=common_metadata_digest(spec_now))
    assert determine_state(release(spec, generation=2), DEPLOYED, applied, CHART,
                           VALUES) == ReleaseState(StateStatus.IN_SYNC)


# -- next_action -------------------------------------------------------------------------------

V1, V2 = stored(1, "superseded"), stored(2, "failed", chart_version="2.0.0")
UPGRADE_FAILED = status(snap(V2), snap(V1), action="upgrade", upgrade_failures=1, failures=1)


@dataclass(frozen=True)
class ActionRow:
    rule: str
    state: StateStatus
    status: HelmReleaseStatus
    want: Action | tuple[str, str] | None  # (stalled reason, message)
    spec: Mapping[str, Any] | None = None
    force: bool = False
    storage: tuple[StoredRelease, ...] = (V2, V1)


def upgrade_remediation(**kw: Any) -> dict[str, Any]:
    return {"upgrade": {"remediation": kw}}


def install_remediation(**kw: Any) -> dict[str, Any]:
    return {"install": {"remediation": kw}}


ACTION_ROWS = [
    ActionRow("in sync: nothing to do", StateStatus.IN_SYNC, status(), None),
    ActionRow("in sync with a force request: upgrade once", StateStatus.IN_SYNC, status(),
              Action.UPGRADE, force=True),
    ActionRow("locked in pending-*: unlock", StateStatus.LOCKED, status(), Action.UNLOCK),
    ActionRow("absent: install", StateStatus.ABSENT, status(), Action.INSTALL),
    ActionRow("absent, install retries (0) used up: stalled",
              StateStatus.ABSENT, status(install_failures=1, failures=1),
              (RETRIES_EXCEEDED, "Failed to install after 1 attempt(s)")),
    ActionRow("absent, retries 2 and 2 failures: install again", StateStatus.ABSENT,
              status(install_failures=2), Action.INSTALL, spec=install_remediation(retries=2)),
    ActionRow("absent, retries 2 and 3 failures: stalled", StateStatus.ABSENT,
              status(install_failures=3), (RETRIES_EXCEEDED,
                                           "Failed to install after 3 attempt(s)"),
              spec=install_remediation(retries=2)),
    ActionRow("absent, retries used up, force request: install", StateStatus.ABSENT,
              status(install_failures=1), Action.INSTALL, force=True),
    ActionRow("negative retries never run out", StateStatus.ABSENT,
              status(install_failures=50), Action.INSTALL, spec=install_remediation(retries=-1)),
    ActionRow("unmanaged: upgrade (takes it over)", StateStatus.UNMANAGED, status(),
              Action.UPGRADE),
    ActionRow("out of sync: upgrade", StateStatus.OUT_OF_SYNC, status(), Action.UPGRADE),
    ActionRow("out of sync, upgrade retries used up: stalled", StateStatus.OUT_OF_SYNC,
              status(action="upgrade", upgrade_failures=1),
              (RETRIES_EXCEEDED, "Failed to upgrade after 1 attempt(s)")),
    ActionRow("out of sync, install failures do not count against upgrades",
              StateStatus.OUT_OF_SYNC, status(install_failures=5), Action.UPGRADE),
    ActionRow("out of sync, retries used up, force: upgrade", StateStatus.OUT_OF_SYNC,
              status(action="upgrade", upgrade_failures=1), Action.UPGRADE, force=True),
    ActionRow("untested: test", StateStatus.UNTESTED, status(), Action.TEST),
    ActionRow("failed, no release action attempted yet: upgrade", StateStatus.FAILED,
              status(action=""), Action.UPGRADE),
    ActionRow("failed, no failure counted since the spec changed: upgrade", StateStatus.FAILED,
              status(action="upgrade"), Action.UPGRADE),
    ActionRow("failed with a force request: upgrade", StateStatus.FAILED, UPGRADE_FAILED,
              Action.UPGRADE, force=True),
    ActionRow("install failed, retries 0, remediateLastFailure unset (false for install): "
              "stalled, the failed release left as it is", StateStatus.FAILED,
              status(snap(V2), install_failures=1),
              (RETRIES_EXCEEDED, "Failed to install after 1 attempt(s)")),
    ActionRow("install failed, remediateLastFailure: uninstall", StateStatus.FAILED,
              status(snap(V2), install_failures=1), Action.UNINSTALL,
              spec=install_remediation(remediateLastFailure=True)),
    ActionRow("install failed with retries left: uninstall (install remediation always "
              "uninstalls)", StateStatus.FAILED, status(snap(V2), install_failures=1),
              Action.UNINSTALL, spec=install_remediation(retries=2)),
    ActionRow("upgrade failed, retries 0 (remediateLastFailure defaults false): stalled",
              StateStatus.FAILED, UPGRADE_FAILED,
              (RETRIES_EXCEEDED, "Failed to upgrade after 1 attempt(s)")),
    ActionRow("upgrade failed with retries left: roll back", StateStatus.FAILED,
              UPGRADE_FAILED, Action.ROLLBACK, spec=upgrade_remediation(retries=1)),
    ActionRow("upgrade retries used up, remediateLastFailure defaults true when retries > 0: "
              "roll back", StateStatus.FAILED, replace(UPGRADE_FAILED, upgrade_failures=2),
              Action.ROLLBACK, spec=upgrade_remediation(retries=1)),
    ActionRow("upgrade retries used up, remediateLastFailure false: stalled",
              StateStatus.FAILED, replace(UPGRADE_FAILED, upgrade_failures=2),
              (RETRIES_EXCEEDED, "Failed to upgrade after 2 attempt(s)"),
              spec=upgrade_remediation(retries=1, remediateLastFailure=False)),
    ActionRow("upgrade failed, strategy uninstall: uninstall", StateStatus.FAILED,
              UPGRADE_FAILED, Action.UNINSTALL,
              spec=upgrade_remediation(retries=1, strategy="uninstall")),
    ActionRow("upgrade failed, nothing deployed before it: stalled, no rollback target",
              StateStatus.FAILED, status(snap(V2), action="upgrade", upgrade_failures=1),
              (MISSING_ROLLBACK_TARGET, "Failed to perform remediation: missing target "
                                        "release for rollback: cannot remediate failed release"),
              spec=upgrade_remediation(retries=1)),
    ActionRow("the rollback target left helm's storage: upgrade instead", StateStatus.FAILED,
              UPGRADE_FAILED, Action.UPGRADE, spec=upgrade_remediation(retries=1),
              storage=(V2,)),
    ActionRow("the rollback target was changed in storage: upgrade instead",
              StateStatus.FAILED, UPGRADE_FAILED, Action.UPGRADE,
              spec=upgrade_remediation(retries=1),
              storage=(V2, replace(V1, digest="sha256:changed"))),
    ActionRow("a previous revision whose test failed is no rollback target",
              StateStatus.FAILED,
              status(snap(V2), snap(V1, hooks=FAILED_HOOK), action="upgrade",
                     upgrade_failures=1),
              (MISSING_ROLLBACK_TARGET, "Failed to perform remediation: missing target "
                                        "release for rollback: cannot remediate failed release"),
              spec={**TESTS, **upgrade_remediation(retries=1)}),
    ActionRow("... unless test failures are ignored", StateStatus.FAILED,
              status(snap(V2), snap(V1, hooks=FAILED_HOOK), action="upgrade",
                     upgrade_failures=1),
              Action.ROLLBACK, spec={**TESTS, **upgrade_remediation(
                  retries=1, ignoreTestFailures=True)}),
]


@pytest.mark.parametrize("row", ACTION_ROWS, ids=[r.rule for r in ACTION_ROWS])
def test_next_action_follows_helm_controller(row: ActionRow) -> None:
    rel = release(row.spec)
    state = ReleaseState(row.state)
    if isinstance(row.want, tuple):
        with pytest.raises(ReleaseStalledError) as caught:
            next_action(state, rel, row.status, force=row.force, stored=row.storage)
        assert (caught.value.reason, caught.value.message) == row.want
    else:
        assert next_action(state, rel, row.status, force=row.force,
                           stored=row.storage) == row.want


def test_unknown_state_has_no_action() -> None:
    with pytest.raises(ValueError, match="unknown release status"):
        next_action(ReleaseState(StateStatus.UNKNOWN, "?"), release(), status())


def test_action_kinds_group_what_may_run_once_per_reconcile() -> None:
    assert {a: a.kind for a in Action} == {
        Action.INSTALL: "release", Action.UPGRADE: "release", Action.TEST: "test",
        Action.ROLLBACK: "remediate", Action.UNINSTALL: "remediate", Action.UNLOCK: "unlock"}


# -- history rules (snapshot_types.go) -------------------------------------------------------


def test_truncate_keeps_history_down_to_the_previous_good_release() -> None:
    revs = [snap(stored(v, s)) for v, s in
            ((5, "failed"), (4, "failed"), (3, "superseded"), (2, "superseded"), (1, "superseded"))]
    assert [s.version for s in h.truncate(revs, ignore_tests=False)] == [5, 4, 3]
    # a previous release whose test failed does not count, unless tests are ignored
    revs[2] = replace(revs[2], test_hooks=FAILED_HOOK)
    assert [s.version for s in h.truncate(revs, ignore_tests=False)] == [5, 4, 3, 2]
    assert [s.version for s in h.truncate(revs, ignore_tests=True)] == [5, 4, 3]


def test_truncate_without_a_good_release_keeps_the_newest_five() -> None:
    revs = [snap(stored(v, "failed")) for v in range(1, 9)]
    assert [s.version for s in h.truncate(revs, ignore_tests=False)] == [8, 7, 6, 5, 4]


def test_test_filters_select_hooks_as_helm_controller() -> None:
    from chartguard.api.helmrelease import TestFilter
    from chartguard.helm.release import TestHook
    hooks = {"a": TestHook(phase="Succeeded"), "b": TestHook(phase="Failed"), "c": TestHook()}
    assert set(h.selected_test_hooks(hooks, ())) == {"a", "b", "c"}
    assert set(h.selected_test_hooks(hooks, (TestFilter("b", exclude=True),))) == {"a", "c"}
    assert set(h.selected_test_hooks(hooks, (TestFilter("a"),))) == {"a"}
    # an exclude wins over an include of the same name
    assert set(h.selected_test_hooks(hooks, (TestFilter("a"), TestFilter("a", exclude=True),
                                             TestFilter("c")))) == {"c"}

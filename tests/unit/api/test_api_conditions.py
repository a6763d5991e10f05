"""Conditions: Kubernetes set/remove semantics and Flux's Ready summary, as pure functions."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chartguard.api import conditions as c

T0 = datetime(2022, 11, 9, 13, 27, 38, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason or f"{type_}{status}",
            "message": message or f"{type_} is {status}", "observedGeneration": 1,
            "lastTransitionTime": "2022-11-09T13:00:00Z"}


def test_seed_source_verified_condition_comes_out_exactly() -> None:
    conds = c.set_condition([], c.SOURCE_VERIFIED, c.TRUE, c.SUCCEEDED,
                            c.verified_signature_message("15.18.0"), observed_generation=1,
                            now=T0)
    # the seed's `kubectl get helmcharts ... -ojsonpath='{...SourceVerified...}'` output
    assert conds == [{"lastTransitionTime": "2022-11-09T13:27:38Z",
                      "message": "verified signature of version 15.18.0",
                      "observedGeneration": 1, "reason": "Succeeded", "status": "True",
                      "type": "SourceVerified"}]


def test_seed_ready_messages_are_reachable() -> None:
    assert c.HELM_REPOSITORY_READY_MESSAGE == "Helm repository is ready"
    assert c.RELEASE_RECONCILIATION_SUCCEEDED_MESSAGE == "Release reconciliation succeeded"
    assert c.release_action_message("install", "default", "podinfo", 1, "podinfo", "6.5.3") == (
        "Helm install succeeded for release default/podinfo.v1 with chart podinfo@6.5.3")
    assert c.pulled_chart_message("podinfo", "5.2.1") == (
        "pulled 'podinfo' chart with version '5.2.1'")


def test_transition_time_moves_only_when_status_changes() -> None:
    first = c.set_condition([], c.READY, c.FALSE, c.FAILED, "a", observed_generation=1, now=T0)
    same_status = c.set_condition(first, c.READY, c.FALSE, c.PROGRESSING_WITH_RETRY, "b",
                                  observed_generation=2, now=T1)
    assert same_status[0]["lastTransitionTime"] == "2022-11-09T13:27:38Z"
    assert (same_status[0]["reason"], same_status[0]["message"]) == ("ProgressingWithRetry", "b")
    assert same_status[0]["observedGeneration"] == 2
    flipped = c.set_condition(same_status, c.READY, c.TRUE, c.SUCCEEDED, "ok",
                              observed_generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == "2022-11-09T13:32:38Z"


def test_observed_generation_is_per_condition() -> None:
    conds = c.set_condition([], c.ARTIFACT_IN_STORAGE, c.TRUE, c.SUCCEEDED, "stored",
                            observed_generation=3, now=T0)
    conds = c.set_condition(conds, c.SOURCE_VERIFIED, c.TRUE, c.SUCCEEDED, "v",
                            observed_generation=4, now=T0)
    assert [x["observedGeneration"] for x in conds] == [3, 4]


def test_set_and_remove_never_mutate_their_input() -> None:
    original = [cond(c.READY, c.TRUE), cond(c.FETCH_FAILED, c.TRUE)]
    snapshot = copy.deepcopy(original)
    c.set_condition(original, c.READY, c.FALSE, c.FAILED, "x", observed_generation=2, now=T1)
    c.remove_condition(original, c.FETCH_FAILED)
    c.summarize_ready(original, c.HELMCHART_READY, observed_generation=2, now=T1)
    assert original == snapshot


def test_conditions_are_kept_in_fluxs_order_ready_first_then_by_type() -> None:
    # fluxcd/pkg conditions.Set sorts with lexicographicLess, so `kubectl get -o yaml` of a
    # chartguard object lists conditions as Flux's controllers would
    conds = [cond(c.SOURCE_VERIFIED, c.TRUE), cond(c.ARTIFACT_IN_STORAGE, c.TRUE)]
    out = c.set_condition(conds, c.READY, c.FALSE, c.FAILED, "m", observed_generation=1, now=T0)
    out = c.set_condition(out, c.FETCH_FAILED, c.TRUE, c.AUTHENTICATION_FAILED, "401",
                          observed_generation=1, now=T0)
    assert [x["type"] for x in out] == [c.READY, c.ARTIFACT_IN_STORAGE, c.FETCH_FAILED,
                                        c.SOURCE_VERIFIED]


@pytest.mark.parametrize("type_", sorted(c.NEGATIVE_POLARITY))
@pytest.mark.parametrize("status", [c.FALSE, c.UNKNOWN])
def test_negative_polarity_conditions_exist_only_while_true(type_: str, status: str) -> None:
    present = c.set_condition([], type_, c.TRUE, c.FAILED, "boom", observed_generation=1, now=T0)
    assert c.is_status(present, type_, c.TRUE)
    cleared = c.set_condition(present, type_, status, c.SUCCEEDED, "", observed_generation=1,
                              now=T1)
    assert c.get_condition(cleared, type_) is None


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="True, False or Unknown"):
        c.set_condition([], c.READY, "true", c.SUCCEEDED, "", observed_generation=1, now=T0)
    with pytest.raises(ValueError, match="needs a reason"):
        c.set_condition([], c.READY, c.TRUE, "", "", observed_generation=1, now=T0)
    with pytest.raises(ValueError, match="timezone"):
        c.format_time(datetime(2022, 1, 1))


# Ready of a HelmChart, decided by hand for the cases that matter (source-controller behaviour)
SUMMARY_TABLE: list[tuple[str, list[dict[str, Any]], tuple[str, str] | None]] = [
    ("nothing-decides", [], None),
    ("stored-and-verified",
     [cond(c.ARTIFACT_IN_STORAGE, c.TRUE, c.CHART_PULL_SUCCEEDED, "pulled"),
      cond(c.SOURCE_VERIFIED, c.TRUE, c.SUCCEEDED)], (c.TRUE, c.CHART_PULL_SUCCEEDED)),
    ("fetch-failed-beats-stored",
     [cond(c.ARTIFACT_IN_STORAGE, c.TRUE), cond(c.FETCH_FAILED, c.TRUE, c.AUTHENTICATION_FAILED)],
     (c.FALSE, c.AUTHENTICATION_FAILED)),
    ("storage-failure-first-in-order",
     [cond(c.FETCH_FAILED, c.TRUE, "F"), cond(c.STORAGE_OPERATION_FAILED, c.TRUE, "S")],
     (c.FALSE, "S")),
    ("verification-false-overrides-stored",
     [cond(c.ARTIFACT_IN_STORAGE, c.TRUE), cond(c.SOURCE_VERIFIED, c.FALSE, c.VERIFICATION_ERROR)],
     (c.FALSE, c.VERIFICATION_ERROR)),
    ("verification-false-overrides-fetch-failure",
     [cond(c.FETCH_FAILED, c.TRUE, "F"), cond(c.SOURCE_VERIFIED, c.FALSE, c.VERIFICATION_ERROR)],
     (c.FALSE, c.VERIFICATION_ERROR)),
    ("reconciling-alone-is-not-ready",
     [cond(c.RECONCILING, c.TRUE, c.PROGRESSING)], (c.FALSE, c.PROGRESSING)),
    ("retrying-shows-the-failure-not-progress",
     [cond(c.RECONCILING, c.TRUE, c.PROGRESSING_WITH_RETRY), cond(c.BUILD_FAILED, c.TRUE, "B")],
     (c.FALSE, "B")),
    ("stalled", [cond(c.STALLED, c.TRUE, "InvalidChartReference"), cond(c.ARTIFACT_IN_STORAGE,
                                                                        c.TRUE)],
     (c.FALSE, "InvalidChartReference")),
    ("stored-false", [cond(c.ARTIFACT_IN_STORAGE, c.FALSE, "Missing")], (c.FALSE, "Missing")),
    ("unknown-only", [cond(c.SOURCE_VERIFIED, c.UNKNOWN, "Checking")], (c.UNKNOWN, "Checking")),
    ("true-beats-unknown",
     [cond(c.SOURCE_VERIFIED, c.UNKNOWN), cond(c.ARTIFACT_IN_STORAGE, c.TRUE, "Stored")],
     (c.TRUE, "Stored")),
    ("outdated-artifact",
     [cond(c.ARTIFACT_IN_STORAGE, c.TRUE), cond(c.ARTIFACT_OUTDATED, c.TRUE, "NewChart")],
     (c.FALSE, "NewChart")),
    # written by another writer: a False negative-polarity condition is good news, and Flux's
    # merge inverts its polarity (priority group 3)
    ("false-negative-condition-means-ready",
     [cond(c.FETCH_FAILED, c.FALSE, "Recovered"), cond(c.SOURCE_VERIFIED, c.UNKNOWN)],
     (c.TRUE, "Recovered")),
    ("ready-itself-is-ignored", [cond(c.READY, c.FALSE, "Old")], None),
    ("unrelated-types-are-ignored", [cond("Custom", c.FALSE, "X")], None),
]


@pytest.mark.parametrize(("conds", "expected"), [t[1:] for t in SUMMARY_TABLE],
                         ids=[t[0] for t in SUMMARY_TABLE])
def test_ready_summary_table(conds: list[dict[str, Any]],
                             expected: tuple[str, str] | None) -> None:
    summary = c.ready_summary(conds, c.HELMCHART_READY)
    assert (summary[:2] if summary else None) == expected


def _expected_ready(conds: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Flux's rule restated in words: a failing verification wins; then any failure condition
    that is present (negative polarity, in priority order); then a False positive condition;
    then True; then Unknown."""
    by_type = {x["type"]: x for x in conds}
    order = c.HELMCHART_READY.summarize
    if by_type.get(c.SOURCE_VERIFIED, {}).get("status") == c.FALSE:
        return (c.FALSE, by_type[c.SOURCE_VERIFIED]["reason"])
    failing = [t for t in order if t in c.NEGATIVE_POLARITY and t in by_type]
    if failing:
        return (c.FALSE, by_type[failing[0]]["reason"])
    for wanted, result in ((c.FALSE, c.FALSE), (c.TRUE, c.TRUE), (c.UNKNOWN, c.UNKNOWN)):
        hits = [t for t in order if by_type.get(t, {}).get("status") == wanted]
        if hits:
            return (result, by_type[hits[0]]["reason"])
    return None


NEGATIVE = (c.STORAGE_OPERATION_FAILED, c.FETCH_FAILED, c.BUILD_FAILED, c.ARTIFACT_OUTDATED,
            c.RECONCILING, c.STALLED)


def test_every_combination_that_decides_ready() -> None:
    checked = 0
    for present in itertools.product((False, True), repeat=len(NEGATIVE)):
        for stored in (None, c.TRUE, c.FALSE, c.UNKNOWN):
            for verified in (None, c.TRUE, c.FALSE, c.UNKNOWN):
                conds = [cond(t, c.TRUE) for t, on in zip(NEGATIVE, present, strict=True) if on]
                if stored:
                    conds.append(cond(c.ARTIFACT_IN_STORAGE, stored))
                if verified:
                    conds.append(cond(c.SOURCE_VERIFIED, verified))
                summary = c.ready_summary(conds, c.HELMCHART_READY)
                assert (summary[:2] if summary else None) == _expected_ready(conds), conds
                checked += 1
    assert checked == 2 ** len(NEGATIVE) * 16


def test_summarize_ready_writes_ready_with_times_and_generation() -> None:
    conds = [cond(c.ARTIFACT_IN_STORAGE, c.TRUE, c.CHART_PULL_SUCCEEDED,
                  c.pulled_chart_message("prometheus", "15.18.0"))]
    out = c.summarize_ready(conds, c.HELMCHART_READY, observed_generation=2, now=T0)
    ready = c.get_condition(out, c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["message"], ready["observedGeneration"],
            ready["lastTransitionTime"]) == (
        c.TRUE, c.CHART_PULL_SUCCEEDED, "pulled 'prometheus' chart with version '15.18.0'", 2,
        "2022-11-09T13:27:38Z")
    again = c.summarize_ready(out, c.HELMCHART_READY, observed_generation=3, now=T1)
    assert c.get_condition(again, c.READY)["lastTransitionTime"] == "2022-11-09T13:27:38Z"  # type: ignore[index]
    failed = c.summarize_ready(
        c.set_condition(again, c.SOURCE_VERIFIED, c.FALSE, c.VERIFICATION_ERROR,
                        "no signature for sha256:abc", observed_generation=3, now=T1),
        c.HELMCHART_READY, observed_generation=3, now=T1)
    ready = c.get_condition(failed, c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == (
        c.FALSE, c.VERIFICATION_ERROR, "2022-11-09T13:32:38Z")


def test_nothing_to_summarize_leaves_ready_alone() -> None:
    conds = [cond(c.READY, c.UNKNOWN, c.PROGRESSING)]
    assert c.summarize_ready(conds, c.HELMCHART_READY, observed_generation=1, now=T1) == conds


def rcond(type_: str, status: str, reason: str, generation: int = 1) -> dict[str, Any]:
    return {**cond(type_, status, reason), "observedGeneration": generation}


# Ready of a HelmRelease as helm-controller's summarize() derives it:
# (id, conditions, test.enable, test.ignoreFailures, expected (status, reason) or None)
RELEASE_TABLE: list[tuple[str, list[dict[str, Any]], bool, bool, tuple[str, str] | None]] = [
    ("nothing-to-summarize", [rcond(c.RECONCILING, c.TRUE, c.PROGRESSING)], False, False, None),
    ("installed", [rcond(c.RELEASED, c.TRUE, c.INSTALL_SUCCEEDED)], False, False,
     (c.TRUE, c.INSTALL_SUCCEEDED)),
    ("install-failed", [rcond(c.RELEASED, c.FALSE, c.INSTALL_FAILED)], False, False,
     (c.FALSE, c.INSTALL_FAILED)),
    ("remediated-is-a-failure-even-when-true",
     [rcond(c.RELEASED, c.TRUE, c.UPGRADE_SUCCEEDED), rcond(c.REMEDIATED, c.TRUE,
                                                          c.ROLLBACK_SUCCEEDED)],
     False, False, (c.FALSE, c.ROLLBACK_SUCCEEDED)),
    ("newer-release-beats-older-remediation",
     [rcond(c.REMEDIATED, c.TRUE, c.ROLLBACK_SUCCEEDED, 1),
      rcond(c.RELEASED, c.TRUE, c.UPGRADE_SUCCEEDED, 2)], False, False,
     (c.TRUE, c.UPGRADE_SUCCEEDED)),
    ("newer-remediation-beats-older-release",
     [rcond(c.RELEASED, c.FALSE, c.UPGRADE_FAILED, 1),
      rcond(c.REMEDIATED, c.TRUE, c.ROLLBACK_SUCCEEDED, 2)], False, False,
     (c.FALSE, c.ROLLBACK_SUCCEEDED)),
    ("older-success-does-not-hide-newer-test-failure",
     [rcond(c.RELEASED, c.TRUE, c.UPGRADE_SUCCEEDED, 1),
      rcond(c.TEST_SUCCESS, c.FALSE, c.TEST_FAILED, 2)], True, False, (c.FALSE, c.TEST_FAILED)),
    ("failed-tests-decide-when-enabled",
     [rcond(c.RELEASED, c.TRUE, c.INSTALL_SUCCEEDED), rcond(c.TEST_SUCCESS, c.FALSE,
                                                          c.TEST_FAILED)],
     True, False, (c.FALSE, c.TEST_FAILED)),
    ("failed-tests-ignored",
     [rcond(c.RELEASED, c.TRUE, c.INSTALL_SUCCEEDED), rcond(c.TEST_SUCCESS, c.FALSE,
                                                          c.TEST_FAILED)],
     True, True, (c.TRUE, c.INSTALL_SUCCEEDED)),
    ("stale-test-result-of-disabled-tests",
     [rcond(c.TEST_SUCCESS, c.FALSE, c.TEST_FAILED), rcond(c.RELEASED, c.TRUE,
                                                          c.UPGRADE_SUCCEEDED)],
     False, False, (c.TRUE, c.UPGRADE_SUCCEEDED)),
    ("stalled-and-reconciling-do-not-decide",
     [rcond(c.STALLED, c.TRUE, "RetriesExceeded"), rcond(c.RECONCILING, c.TRUE, c.PROGRESSING),
      rcond(c.RELEASED, c.TRUE, c.INSTALL_SUCCEEDED)], False, False,
     (c.TRUE, c.INSTALL_SUCCEEDED)),
]


@pytest.mark.parametrize(("conds", "enabled", "ignore", "expected"),
                         [t[1:] for t in RELEASE_TABLE], ids=[t[0] for t in RELEASE_TABLE])
def test_release_ready_summary_table(conds: list[dict[str, Any]], enabled: bool, ignore: bool,
                                     expected: tuple[str, str] | None) -> None:
    summary = c.release_ready_summary(conds, test_enabled=enabled, ignore_test_failures=ignore)
    assert (summary[:2] if summary else None) == expected


def test_summarize_release_ready_cleans_up_like_helm_controller() -> None:
    conds = [rcond(c.STALLED, c.TRUE, "RetriesExceeded"),
             rcond(c.TEST_SUCCESS, c.FALSE, c.TEST_FAILED),
             rcond(c.RELEASED, c.TRUE, c.UPGRADE_SUCCEEDED, 2)]
    out = c.summarize_release_ready(conds, test_enabled=False, ignore_test_failures=False,
                                    observed_generation=3, now=T0)
    # tests disabled: the stale TestSuccess goes; Ready True: Stalled goes
    assert [x["type"] for x in out] == [c.READY, c.RELEASED]
    ready = c.get_condition(out, c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        c.TRUE, c.UPGRADE_SUCCEEDED, 3)
    failing = c.summarize_release_ready(
        [rcond(c.STALLED, c.TRUE, "RetriesExceeded"), rcond(c.RELEASED, c.FALSE,
                                                           c.UPGRADE_FAILED)],
        test_enabled=False, ignore_test_failures=False, observed_generation=1, now=T0)
    assert c.is_status(failing, c.STALLED, c.TRUE)
    assert c.is_status(failing, c.READY, c.FALSE)


@pytest.mark.parametrize(("status", "generation", "ready"), [
    ({"observedGeneration": 2, "conditions": [cond(c.READY, c.TRUE)]}, 2, True),
    ({"observedGeneration": 1, "conditions": [cond(c.READY, c.TRUE)]}, 2, False),
    ({"observedGeneration": 2, "conditions": [cond(c.READY, c.FALSE)]}, 2, False),
    ({"observedGeneration": 2, "conditions": []}, 2, False),
    ({"observedGeneration": -1}, 1, False),
    (None, 1, False),
])
def test_is_ready_is_helm_controllers_dependency_check(
    status: dict[str, Any] | None, generation: int, ready: bool
) -> None:
    assert c.is_ready(status, generation) is ready


def test_dependency_and_failure_wording() -> None:
    assert c.dependency_not_ready_message("data", "db") == "dependency 'data/db' is not ready"
    assert c.DEPENDENCY_NOT_READY == "DependencyNotReady"
    assert (c.INVALID_CHART_REFERENCE, c.CHART_PULL_ERROR) == (
        "InvalidChartReference", "ChartPullError")

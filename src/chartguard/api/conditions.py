"""Status conditions as Flux writes them, as pure functions over plain lists of dicts.

- ``set_condition``/``remove_condition`` follow Kubernetes' ``meta.SetStatusCondition``:
  ``lastTransitionTime`` moves only when ``status`` changes; reason, message and
  ``observedGeneration`` (per condition) are updated. The list is kept in fluxcd/pkg
  ``conditions.Set`` order (Ready first, then by type) so ``kubectl get -o yaml`` reads as Flux's.
- Negative-polarity conditions (``FetchFailed``, ``BuildFailed``, ``StorageOperationFailed``,
  ``ArtifactOutdated``, ``Reconciling``, ``Stalled``) exist only while True: setting one to
  anything else removes it (Flux deletes them rather than writing False).
- Ready of a source is derived by ``summarize_ready`` like fluxcd/pkg ``conditions.SetSummary``
  (runtime/conditions/merge.go) plus source-controller's bipolarity rule (a False
  ``SourceVerified`` overrides Ready). Ready of a HelmRelease is derived by
  ``summarize_release_ready`` like helm-controller's ``summarize()`` (internal/reconcile), which
  is a different rule; reconcilers also mark Ready False directly (ArtifactFailed,
  DependencyNotReady, ...) as Flux does.

Every function returns a new list and never mutates its input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Condition types (fluxcd/pkg apis/meta; source-controller api/v1; helm-controller api/v2)
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
HEALTHY = "Healthy"
ARTIFACT_IN_STORAGE = "ArtifactInStorage"
ARTIFACT_OUTDATED = "ArtifactOutdated"
SOURCE_VERIFIED = "SourceVerified"
FETCH_FAILED = "FetchFailed"
BUILD_FAILED = "BuildFailed"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"
RELEASED = "Released"
TEST_SUCCESS = "TestSuccess"
REMEDIATED = "Remediated"
#: helm-controller's drift detection (api/v2 DriftedCondition)
DRIFTED = "Drifted"

#: conditions that exist only while True
NEGATIVE_POLARITY = frozenset({FETCH_FAILED, BUILD_FAILED, STORAGE_OPERATION_FAILED,
                               ARTIFACT_OUTDATED, RECONCILING, STALLED})

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# Reasons: fluxcd/pkg apis/meta
SUCCEEDED = "Succeeded"
FAILED = "Failed"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
DEPENDENCY_NOT_READY = "DependencyNotReady"
#: fluxcd/pkg meta.InvalidCELExpressionReason: a healthCheckExprs or readyExpr that is not
#: valid CEL; the release is Stalled until the spec changes
INVALID_CEL_EXPRESSION = "InvalidCELExpression"
SUSPENDED = "Suspended"
RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"
RECONCILIATION_FAILED = "ReconciliationFailed"
INVALID_URL = "URLInvalid"
# Reasons: source-controller
AUTHENTICATION_FAILED = "AuthenticationFailed"
VERIFICATION_ERROR = "VerificationError"
ARTIFACT_UP_TO_DATE = "ArtifactUpToDate"
CHART_PULL_SUCCEEDED = "ChartPullSucceeded"
CHART_PULL_FAILED = "ChartPullFailed"
CHART_PACKAGE_SUCCEEDED = "ChartPackageSucceeded"
INDEXATION_FAILED = "IndexationFailed"
DIR_CREATION_FAILED = "DirectoryCreationFailed"
STAT_OPERATION_FAILED = "StatOperationFailed"
READ_OPERATION_FAILED = "ReadOperationFailed"
ACQUIRE_LOCK_FAILED = "AcquireLockFailed"
INVALID_PATH = "InvalidPath"
ARCHIVE_OPERATION_FAILED = "ArchiveOperationFailed"
SYMLINK_UPDATE_FAILED = "SymlinkUpdateFailed"
CACHE_OPERATION_FAILED = "CacheOperationFailed"
# Reasons: helm-controller
INSTALL_SUCCEEDED = "InstallSucceeded"
INSTALL_FAILED = "InstallFailed"
UPGRADE_SUCCEEDED = "UpgradeSucceeded"
UPGRADE_FAILED = "UpgradeFailed"
TEST_SUCCEEDED = "TestSucceeded"
TEST_FAILED = "TestFailed"
ROLLBACK_SUCCEEDED = "RollbackSucceeded"
ROLLBACK_FAILED = "RollbackFailed"
UNINSTALL_SUCCEEDED = "UninstallSucceeded"
UNINSTALL_FAILED = "UninstallFailed"
ARTIFACT_FAILED = "ArtifactFailed"
INIT_FAILED = "InitFailed"
GET_LAST_RELEASE_FAILED = "GetLastReleaseFailed"
DRIFT_DETECTED = "DriftDetected"
NO_DRIFT_DETECTED = "NoDriftDetected"
DRIFT_CORRECTED = "DriftCorrected"  # Event reasons (correct_cluster_drift.go)
DRIFT_CORRECTION_FAILED = "DriftCorrectionFailed"
# Reasons: source-controller chart build errors (internal/helm/chart/errors.go), used on
# BuildFailed/FetchFailed/Stalled; the first three are persistent (Stalled), the others retried
INVALID_CHART_REFERENCE = "InvalidChartReference"
METADATA_PATCH_ERROR = "MetadataPatchError"
VALUES_FILES_ERROR = "ValuesFilesError"
CHART_PULL_ERROR = "ChartPullError"
DEPENDENCY_BUILD_ERROR = "DependencyBuildError"
CHART_PACKAGE_ERROR = "ChartPackageError"

# Message texts users see (the seed's words; Flux v0.36)
HELM_REPOSITORY_READY_MESSAGE = "Helm repository is ready"
RELEASE_RECONCILIATION_SUCCEEDED_MESSAGE = "Release reconciliation succeeded"
RECONCILIATION_IN_PROGRESS_MESSAGE = "reconciliation in progress"


def verified_signature_message(version: str, attestations: tuple[str, ...] = ()) -> str:
    """SourceVerified True message: ``verified signature of version 15.18.0`` (with
    ``verify.attestations``, a chartguard extension: ``... and attestations <types>``)."""
    met = f" and attestations {', '.join(attestations)}" if attestations else ""
    return f"verified signature of version {version}{met}"


def pulled_chart_message(chart: str, version: str) -> str:
    """HelmChart ArtifactInStorage/Ready message of source-controller."""
    return f"pulled '{chart}' chart with version '{version}'"


def release_action_message(action: str, namespace: str, name: str, revision: int,
                           chart: str, version: str) -> str:
    """helm-controller v2 wording, e.g. ``Helm install succeeded for release ns/app.v1 with
    chart app@1.2.3``; ``action`` is install, upgrade, test or rollback."""
    return (f"Helm {action} succeeded for release {namespace}/{name}.v{revision} "
            f"with chart {chart}@{version}")


def dependency_not_ready_message(namespace: str, name: str) -> str:
    """helm-controller's DependencyNotReady message: ``dependency 'ns/name' is not ready``."""
    return f"dependency '{namespace}/{name}' is not ready"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as ``metav1.Time`` serialises."""
    if moment.tzinfo is None:
        raise ValueError("condition times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == type_:
            return cond
    return None


def is_status(conditions: Sequence[Mapping[str, Any]], type_: str, status: str) -> bool:
    cond = get_condition(conditions, type_)
    return cond is not None and cond.get("status") == status


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    observed_generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """A new list with ``type_`` set (or removed, for a negative-polarity type not True)."""
    if status not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(f"condition status must be True, False or Unknown, got {status!r}")
    if not reason:
        raise ValueError(f"condition {type_} needs a reason")
    if type_ in NEGATIVE_POLARITY and status != TRUE:
        return remove_condition(conditions, type_)
    new = {
        "type": type_,
        "status": status,
        "observedGeneration": observed_generation,
        "lastTransitionTime": format_time(now),
        "reason": reason,
        "message": message,
    }
    out: list[dict[str, Any]] = []
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(dict(cond))
        elif cond.get("status") == status and cond.get("lastTransitionTime"):
            new["lastTransitionTime"] = cond["lastTransitionTime"]
    out.append(new)
    return _flux_order(out)


def remove_condition(
    conditions: Sequence[Mapping[str, Any]], type_: str
) -> list[dict[str, Any]]:
    return [dict(c) for c in conditions if c.get("type") != type_]


def _flux_order(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """fluxcd/pkg ``lexicographicLess``: Ready first, the rest by type (stable)."""
    return sorted(conditions, key=lambda c: (c.get("type") != READY, str(c.get("type", ""))))


def is_ready(status: Mapping[str, Any] | None, generation: int) -> bool:
    """helm-controller's dependency check: the object has conditions, its status observed
    ``generation`` (the object's ``metadata.generation``), and Ready is True."""
    if not isinstance(status, Mapping):
        return False
    conditions = status.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        return False
    return status.get("observedGeneration") == generation and is_status(conditions, READY, TRUE)


@dataclass(frozen=True)
class SummaryPolicy:
    """Which conditions decide Ready, in priority order, and which of them are negative."""

    summarize: tuple[str, ...]
    negative_polarity: tuple[str, ...]
    #: conditions whose False status overrides Ready (source-controller's BiPolarity types)
    bipolarity: tuple[str, ...] = ()


#: source-controller helmChartReadyCondition + WithBiPolarityConditionTypes(SourceVerified)
HELMCHART_READY = SummaryPolicy(
    summarize=(STORAGE_OPERATION_FAILED, FETCH_FAILED, BUILD_FAILED, ARTIFACT_OUTDATED,
               ARTIFACT_IN_STORAGE, SOURCE_VERIFIED, STALLED, RECONCILING),
    negative_polarity=(STORAGE_OPERATION_FAILED, FETCH_FAILED, BUILD_FAILED, ARTIFACT_OUTDATED,
                       STALLED, RECONCILING),
    bipolarity=(SOURCE_VERIFIED,),
)
#: source-controller helmRepositoryReadyCondition
HELMREPOSITORY_READY = SummaryPolicy(
    summarize=(STORAGE_OPERATION_FAILED, FETCH_FAILED, ARTIFACT_OUTDATED, ARTIFACT_IN_STORAGE,
               STALLED, RECONCILING),
    negative_polarity=(STORAGE_OPERATION_FAILED, FETCH_FAILED, ARTIFACT_OUTDATED, STALLED,
                       RECONCILING),
)


def ready_summary(
    conditions: Sequence[Mapping[str, Any]], policy: SummaryPolicy
) -> tuple[str, str, str] | None:
    """``(status, reason, message)`` of Ready, or None when no condition decides it.

    Groups (fluxcd/pkg merge priorities): True&negative, then False&positive, then
    True&positive, then False&negative, then Unknown; the highest group decides the status
    (abnormal groups make Ready False, Unknown makes it Unknown) and its first condition in
    ``policy.summarize`` order gives reason and message. Then a False bipolarity condition
    overrides the result.
    """
    in_scope = [c for c in conditions
                if c.get("type") in policy.summarize and c.get("type") != READY]
    result: tuple[str, str, str] | None = None
    if in_scope:
        best = min(_priority(c, policy) for c in in_scope)
        top = [c for c in in_scope if _priority(c, policy) == best]
        first = min(top, key=lambda c: policy.summarize.index(str(c.get("type"))))
        status = {0: FALSE, 1: FALSE, 2: TRUE, 3: TRUE, 4: UNKNOWN}[best]
        result = (status, str(first.get("reason", "")), str(first.get("message", "")))
    for type_ in policy.bipolarity:
        cond = get_condition(conditions, type_)
        if cond is not None and cond.get("status") == FALSE:
            return (FALSE, str(cond.get("reason", "")), str(cond.get("message", "")))
    return result


def _priority(cond: Mapping[str, Any], policy: SummaryPolicy) -> int:
    negative = cond.get("type") in policy.negative_polarity
    status = cond.get("status")
    if status == TRUE:
        return 0 if negative else 2
    if status == FALSE:
        return 3 if negative else 1
    return 4


def summarize_ready(
    conditions: Sequence[Mapping[str, Any]],
    policy: SummaryPolicy,
    *,
    observed_generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """A new list with Ready derived from the others (unchanged when nothing decides it)."""
    summary = ready_summary(conditions, policy)
    if summary is None:
        return [dict(c) for c in conditions]
    status, reason, message = summary
    # Ready needs a reason; a condition written without one must not make Ready unwritable
    return set_condition(conditions, READY, status, reason or status, message,
                         observed_generation=observed_generation, now=now)


def release_ready_summary(
    conditions: Sequence[Mapping[str, Any]], *, test_enabled: bool, ignore_test_failures: bool,
) -> tuple[str, str, str] | None:
    """``(status, reason, message)`` of a HelmRelease's Ready, as helm-controller's
    ``summarize()`` computes it, or None when no Remediated/TestSuccess/Released exists.

    The summary types are Remediated, TestSuccess (only when tests are enabled and their failures
    not ignored) and Released, in that priority; a condition observed at a newer generation wins
    over a higher-priority one from an older generation (Released at generation 2 beats
    Remediated at generation 1, not the reverse). Whatever Remediated says, Ready is False
    (a remediation means the release failed). Stalled and Reconciling do not take part.
    """
    order = [REMEDIATED, RELEASED]
    if test_enabled and not ignore_test_failures:
        order = [REMEDIATED, TEST_SUCCESS, RELEASED]
    # helm-controller sorts the stored list, which conditions.Set keeps in Flux order; start
    # from that order so the outcome does not depend on how the caller built the list
    conds = _flux_order([dict(c) for c in conditions
                         if test_enabled or c.get("type") != TEST_SUCCESS])

    def less(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        # helm-controller's comparator, verbatim (it is not a strict order, so the sort below
        # must be the same algorithm as Go's sort.SliceStable: insertion sort for <= 20 items)
        if a.get("type") not in order:
            return False
        if b.get("type") not in order:
            return True
        return (_generation(a) >= _generation(b)
                and order.index(str(a.get("type"))) < order.index(str(b.get("type"))))

    for i in range(1, len(conds)):
        j = i
        while j > 0 and less(conds[j], conds[j - 1]):
            conds[j], conds[j - 1] = conds[j - 1], conds[j]
            j -= 1
    if not conds or conds[0].get("type") not in order:
        # Flux would copy whatever condition happens to be first; chartguard derives Ready only
        # from a release outcome
        return None
    first = conds[0]
    status = FALSE if first.get("type") == REMEDIATED else str(first.get("status", UNKNOWN))
    return (status, str(first.get("reason", "")), str(first.get("message", "")))


def summarize_release_ready(
    conditions: Sequence[Mapping[str, Any]],
    *,
    test_enabled: bool,
    ignore_test_failures: bool,
    observed_generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """A new list with a HelmRelease's Ready derived as helm-controller does: TestSuccess is
    dropped when tests are disabled, Ready is set from ``release_ready_summary`` (at the object's
    ``observed_generation``), and Stalled is removed when Ready is True."""
    out = [dict(c) for c in conditions]
    if not test_enabled:
        out = remove_condition(out, TEST_SUCCESS)
    summary = release_ready_summary(out, test_enabled=test_enabled,
                                    ignore_test_failures=ignore_test_failures)
    if summary is None:
        return out
    status, reason, message = summary
    if status == TRUE:
        out = remove_condition(out, STALLED)
    return set_condition(out, READY, status, reason or status, message,
                         observed_generation=observed_generation, now=now)


def _generation(cond: Mapping[str, Any]) -> int:
    value = cond.get("observedGeneration", 0)
    return value if isinstance(value, int) else 0

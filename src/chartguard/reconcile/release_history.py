"""``status.history``: the release revisions a HelmRelease made, as helm-controller keeps them.

Pure functions over :class:`~chartguard.api.status.Snapshot` tuples (newest first), with
helm-controller's rules (api/v2/snapshot_types.go): which revision is the latest, which one a
rollback returns to, how far the history is cut back, and when a revision counts as tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from chartguard.api.helmrelease import TestFilter
from chartguard.api.status import Snapshot
from chartguard.helm.release import StoredRelease, TestHook

#: helm-controller keeps at most this many snapshots when none is a previous good release
DEFAULT_MAX_HISTORY = 5
PHASE_FAILED = "Failed"
PHASE_SUCCEEDED = "Succeeded"
_GOOD = ("deployed", "superseded")

History = tuple[Snapshot, ...]


def newest_first(history: Iterable[Snapshot]) -> History:
    return tuple(sorted(history, key=lambda s: s.version, reverse=True))


def latest(history: Sequence[Snapshot]) -> Snapshot | None:
    return max(history, key=lambda s: s.version) if history else None


def previous(history: Sequence[Snapshot], *, ignore_tests: bool) -> Snapshot | None:
    """The newest revision before the latest that was deployed or superseded (and, unless
    ``ignore_tests``, has no failed test): what a rollback returns to."""
    ordered = newest_first(history)
    for snap in ordered[1:]:
        if snap.status in _GOOD and (ignore_tests or not has_test_in_phase(snap, PHASE_FAILED)):
            return snap
    return None


def truncate(history: Sequence[Snapshot], *, ignore_tests: bool) -> History:
    """Everything older than the previous good revision dropped (so failures do not pile up);
    without one, the newest five kept."""
    ordered = newest_first(history)
    for i, snap in enumerate(ordered[1:], start=1):
        if snap.status in _GOOD and (ignore_tests or not has_test_in_phase(snap, PHASE_FAILED)):
            return ordered[:i + 1]
    return ordered[:DEFAULT_MAX_HISTORY]


def truncate_ignoring_previous(history: Sequence[Snapshot]) -> History:
    """helm-controller's TruncateIgnoringPreviousSnapshots, under RetryOnFailure (no rollback
    needs an older good revision): the newest five kept."""
    return newest_first(history)[:DEFAULT_MAX_HISTORY]


def has_been_tested(snap: Snapshot | None) -> bool:
    """Test results were observed: none selected, one failed (helm stops there), or all
    succeeded."""
    if snap is None or snap.test_hooks is None:
        return False
    hooks = snap.test_hooks
    if not hooks or any(h.get("phase") == PHASE_FAILED for h in hooks.values()):
        return True
    return all(h.get("phase") == PHASE_SUCCEEDED for h in hooks.values())


def has_test_in_phase(snap: Snapshot | None, phase: str) -> bool:
    return snap is not None and any(h.get("phase") == phase
                                    for h in (snap.test_hooks or {}).values())


def targets(snap: Snapshot | None, stored: StoredRelease) -> bool:
    return (snap is not None and snap.name == stored.name and snap.namespace == stored.namespace
            and snap.version == stored.version)


def snapshot(stored: StoredRelease, *, action: str, oci_digest: str,
             test_hooks: Mapping[str, Mapping[str, str]] | None = None,
             config_digest: str = "") -> Snapshot:
    """One history entry for a revision in helm's storage; ``oci_digest`` and ``action`` are
    what helm does not know (the verified manifest digest, what chartguard ran).
    ``config_digest``: the digest of the values chartguard gave helm for this revision, when
    it made it (helm-controller records the same: it hands helm the values in memory, where
    chartguard writes them to a file helm parses), else the stored one."""
    return Snapshot(
        name=stored.name, namespace=stored.namespace, version=stored.version,
        status=stored.status, chart_name=stored.chart_name, chart_version=stored.chart_version,
        config_digest=config_digest or stored.config_digest, digest=stored.digest,
        first_deployed=stored.first_deployed, last_deployed=stored.last_deployed,
        app_version=stored.app_version, oci_digest=oci_digest, deleted=stored.deleted,
        action=action, test_hooks=test_hooks)


def selected_test_hooks(hooks: Mapping[str, TestHook],
                        filters: Sequence[TestFilter]) -> dict[str, dict[str, str]]:
    """The test hooks ``spec.test.filters`` select (helm-controller's isTestHookSelected: an
    exclude wins; with any include, only included names), as status writes them."""
    includes = {f.name for f in filters if not f.exclude}
    excludes = {f.name for f in filters if f.exclude}
    out: dict[str, dict[str, str]] = {}
    for name, hook in hooks.items():
        if name in excludes or (includes and name not in includes):
            continue
        out[name] = {k: v for k, v in (("lastStarted", hook.last_started),
                                       ("lastCompleted", hook.last_completed),
                                       ("phase", hook.phase)) if v}
    return out


def full_name(snap: Snapshot) -> str:
    """``<namespace>/<name>.v<version>``, helm-controller's FullReleaseName."""
    return f"{snap.namespace}/{snap.name}.v{snap.version}"


def chart_of(snap: Snapshot) -> str:
    """``<chart>@<version>``, helm-controller's VersionedChartName."""
    return f"{snap.chart_name}@{snap.chart_version}"

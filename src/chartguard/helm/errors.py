"""What a failed helm run means for the reconciler.

One error type for every helm action; ``storage_changed`` says whether helm wrote (or changed) a
release revision before failing. helm-controller counts only those failures toward
remediation: a failure that left helm's storage as it was has nothing to remediate and is
simply retried.
"""

from __future__ import annotations


class HelmError(Exception):
    """A helm action failed; ``message`` is helm's stderr summarised and escaped (never a
    credential)."""

    def __init__(self, action: str, message: str, *, storage_changed: bool) -> None:
        super().__init__(message)
        self.action = action  # install | upgrade | test | rollback | uninstall | unlock
        self.message = message
        self.storage_changed = storage_changed

    def __str__(self) -> str:
        return self.message


class ChartDigestMismatchError(HelmError):
    """The chart file in the store is not the bytes that were verified: helm was not run, so
    its storage did not change."""

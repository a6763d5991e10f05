"""When a reconcile flux's commands wait for is over, and how it ended.

Flux's rules (``cmd/flux/reconcile.go``, ``readiness.go``, kstatus): an object is settled when
its status speaks for its current generation (``status.observedGeneration`` and the Ready
condition's ``observedGeneration`` equal ``metadata.generation``), nothing is in progress
(``Reconciling`` is not True) and Ready is known (True or False). A reconcile request is
handled when ``status.lastHandledReconcileAt`` equals the value the command set and the object
is settled. ``Stalled`` True ends the wait as a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chartguard.cli._tables import condition, status_of


@dataclass(frozen=True)
class Verdict:
    ready: bool
    message: str  # Ready's message


class WaitTimeoutError(Exception):
    """The object did not settle in time; ``last`` is what it said last (or None)."""

    def __init__(self, last: Mapping[str, Any] | None) -> None:
        super().__init__("timed out")
        self.last = last


class ObjectGoneError(Exception):
    """The object was deleted while the command waited for it."""


def _true(cond: Mapping[str, Any] | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def settled(body: Mapping[str, Any]) -> Verdict | None:
    """The outcome when ``body``'s status is final for its generation; None while it is not."""
    generation = (body.get("metadata") or {}).get("generation") or 0
    observed = status_of(body).get("observedGeneration")
    if not isinstance(observed, int) or observed < 1 or observed != generation:
        return None
    if _true(condition(body, "Reconciling")):
        return None
    ready = condition(body, "Ready")
    if ready is None or ready.get("status") not in ("True", "False"):
        return None
    if (ready.get("observedGeneration") or 0) not in (0, generation):
        return None
    message = str(ready.get("message", ""))
    stalled = condition(body, "Stalled")
    if stalled is not None and _true(stalled):
        return Verdict(False, message or str(stalled.get("message", "")))
    return Verdict(ready.get("status") == "True", message)


def handled(body: Mapping[str, Any], requested_at: str) -> Verdict | None:
    """The outcome of the reconcile requested at ``requested_at``; None until it is over."""
    if status_of(body).get("lastHandledReconcileAt") != requested_at:
        return None
    return settled(body)


def poll(fetch: Callable[[], Mapping[str, Any] | None],
         judge: Callable[[Mapping[str, Any]], Verdict | None], *, deadline: float,
         interval: float = 0.5) -> tuple[Verdict, Mapping[str, Any]]:
    """Read the object until ``judge`` gives a verdict (``time.monotonic()`` ``deadline``)."""
    last: Mapping[str, Any] | None = None
    while True:
        body = fetch()
        if body is None:
            raise ObjectGoneError
        last = body
        verdict = judge(body)
        if verdict is not None:
            return verdict, body
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(last)
        time.sleep(min(interval, left))

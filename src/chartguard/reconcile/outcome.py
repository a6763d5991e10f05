"""What a reconcile step decides when it cannot go on: the conditions it sets and the retry.

One classification per failure, where it is raised (STYLE: decide what a failure means where
it happens): ``Stalled`` (the spec must change; no retry until it does), ``Retry`` (try again
after a backoff; the spec may be fine). Each carries the condition to set and a message that
says what to fix, already escaped for logs, Events and status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chartguard.api import conditions as c
from chartguard.untrusted import escape

INVALID_SPEC = "InvalidSpec"

#: outside text quoted in a message: long enough for every signature's reason
MESSAGE_LIMIT = 2000


def safe(text: object) -> str:
    """Outside text (errors from registries, verifiers, Secrets' names) made safe to show."""
    return escape(text, MESSAGE_LIMIT)


@dataclass(eq=False)  # not frozen: the interpreter sets __traceback__ on exceptions
class StepFailedError(Exception):
    """A reconcile that stops: ``condition`` set to ``status`` with ``reason`` and message."""

    condition: str
    reason: str
    message: str
    #: True: the spec (or a referenced object) must change; False: retry with a backoff
    stalled: bool = False
    #: the condition status to write (negative-polarity failure conditions are True)
    status: str = "True"
    #: more conditions set with the same message: (type, status, reason)
    extra: tuple[tuple[str, str, str], ...] = ()
    #: the source asked (a registry's Retry-After) not to be asked again before this long:
    #: the next attempt is not sooner (nor later than the object's interval)
    retry_after: timedelta | None = None

    def __str__(self) -> str:
        return self.message


#: helm-controller's ``--requeue-dependency`` default: how soon a release that waits for a
#: dependency or for its chart looks again
DEPENDENCY_REQUEUE = timedelta(seconds=30)


@dataclass(eq=False)
class WaitingError(StepFailedError):
    """Not there yet (a dependency not Ready, a chart without a verified artifact): look again
    after ``requeue_after`` instead of backing off, as helm-controller's errWaitForDependency
    and errWaitForChart do."""

    requeue_after: timedelta = DEPENDENCY_REQUEUE


@dataclass(eq=False)
class RetryAfterIntervalError(StepFailedError):
    """``strategy: RetryOnFailure``: the failed action is tried again after the strategy's
    ``retryInterval`` (with the interval's jitter), not after a backoff: helm-controller's
    ErrRetryAfterInterval, which requeues at that interval without returning an error."""


def invalid_spec_conditions(conditions: Sequence[Mapping[str, Any]], error: object, *,
                            generation: int, now: datetime) -> tuple[str, list[dict[str, Any]]]:
    """A spec chartguard cannot use (the API server may not validate it): Stalled and Ready
    False, reason ``InvalidSpec``, the message naming every bad field; no retry until it
    changes. Returns the message and the new conditions."""
    message = f"invalid spec: {safe(error)}; fix the spec"
    conds = c.set_condition(conditions, c.STALLED, c.TRUE, INVALID_SPEC, message,
                            observed_generation=generation, now=now)
    conds = c.set_condition(conds, c.READY, c.FALSE, INVALID_SPEC, message,
                            observed_generation=generation, now=now)
    return message, conds

"""Registry hosts that asked chartguard to wait: nothing is sent to one before its Retry-After.

A 429 (or 503) with ``Retry-After`` answers one request, but a registry rate-limits its client,
not one chart: while it said "wait", the other charts of that host (through the same
HelmRepository or another one) would only earn more 429s and count against the limit. So the
wait is remembered per host and shared by every client of the process (the operator's
:class:`~chartguard.reconcile.shared.RegistryClients` gives them one :class:`HostHolds`), and
each request looks here first: the rest of a short wait that fits the operation's deadline is
slept, a longer one fails at once with :class:`~chartguard.oci.RateLimitedError`, no request
sent (see ``HostSession.request``).

A hold lasts at most :data:`MAX_HOLD`: a registry asking for a day (or 10^10 s) is asked again
after that rather than silenced for good; a hold only grows while it lasts (the longest wait
asked is kept). Holds are kept by host (``host[:port]``) only, a small set, expired ones dropped.
"""

from __future__ import annotations

import datetime
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: the longest a host is held (seconds), whatever Retry-After it sent
MAX_HOLD = 300.0


@dataclass(frozen=True)
class Hold:
    """A host held now: how long still, and what it asked for (for the message)."""

    host: str
    #: seconds from now until requests go to the host again
    left: float
    #: the wait the registry asked for (Retry-After, seconds; may be longer than the hold)
    asked: float
    #: the status that carried the Retry-After (429 or 503)
    status: int
    #: when the hold ends, RFC 3339 UTC (whole seconds, rounded up): the same for every
    #: request it refuses, so a condition quoting it does not change at each pass
    until: str


@dataclass(frozen=True)
class _Entry:
    end: float  # on the monotonic clock
    asked: float
    status: int
    until: str


class HostHolds:
    """Per registry host, when requests may go to it again; safe to share between threads.

    ``clock`` (monotonic) decides; ``wall_clock`` only writes :attr:`Hold.until`.
    """

    def __init__(self, *, max_hold: float = MAX_HOLD,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.max_hold = max_hold
        self._clock = clock
        self._wall_clock = wall_clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def hold(self, host: str, asked: float, *, status: int) -> None:
        """``host`` answered ``status`` asking to wait ``asked`` seconds: nothing goes to it
        before then (at most :attr:`max_hold` from now). A shorter hold never replaces a
        longer one."""
        seconds = min(asked, self.max_hold)
        if not seconds > 0:  # 0, or NaN from nowhere: nothing to hold
            return
        now = self._clock()
        end = now + seconds
        until = datetime.datetime.fromtimestamp(math.ceil(self._wall_clock() + seconds),
                                                datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            self._entries = {h: e for h, e in self._entries.items() if e.end > now}
            current = self._entries.get(host)
            if current is None or current.end < end:
                self._entries[host] = _Entry(end, asked, status, until)

    def get(self, host: str) -> Hold | None:
        """The hold on ``host`` now; None when requests may go to it."""
        with self._lock:
            entry = self._entries.get(host)
        if entry is None:
            return None
        left = entry.end - self._clock()
        if left <= 0:
            return None
        return Hold(host=host, left=left, asked=entry.asked, status=entry.status,
                    until=entry.until)

"""When a registry request is tried again, and how long chartguard waits before it does.

- Backoff with full jitter (attempt ``n`` waits a uniform random time in
  ``[0, min(cap, base * 2**n)]``): the HelmCharts of one registry that failed together (it
  restarted, a proxy hiccuped) do not all come back in the same instant.
- ``Retry-After`` (delta-seconds or an HTTP-date) on 429 and 503 replaces the backoff when it
  is sane (at most :data:`MAX_RETRY_AFTER`) and fits what is left of the operation's deadline.
  A wait that does not fit fails the operation at once, saying how long the registry asked
  for: sleeping into the deadline only to fail would hold a worker and still tell nothing.
"""

from __future__ import annotations

import datetime
import email.utils
import random
from collections.abc import Mapping

#: the first retry waits up to this long (seconds); each further one up to twice as long
BASE = 0.25
#: no single backoff waits longer than this (seconds)
CAP = 4.0
#: the longest Retry-After honoured within one operation (seconds); a registry asking for more
#: is reported at once, and the caller tries again later (the operator: its backoff)
MAX_RETRY_AFTER = 30.0
#: what a retried request needs at least, once the wait is over (seconds)
MIN_LEFT = 0.5
#: the statuses whose Retry-After is read (RFC 9110 §10.2.3: 503 and 3xx; RFC 6585: 429)
RETRY_AFTER_STATUSES = frozenset({429, 503})
_MAX_DIGITS = 10  # delta-seconds longer than this are nonsense (300 years)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the answer asks the client to wait (``now``: the wall clock, for an
    HTTP-date); None when there is no Retry-After, or it is malformed."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(int(value)) if len(value) <= _MAX_DIGITS else float("inf")
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" (RFC 5322's "UTC, local zone unknown"): HTTP is GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


class Backoff:
    """Full-jitter exponential backoff; ``rng`` for tests that want the draws repeatable."""

    def __init__(self, rng: random.Random | None = None, *, base: float = BASE,
                 cap: float = CAP) -> None:
        # not for secrets: spreading retries only needs an unpredictable-enough spread
        self._rng = rng or random.Random()  # noqa: S311
        self._base = base
        self._cap = cap

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt ``attempt`` (0 for the first)."""
        return min(self._cap, self._base * 2.0 ** min(attempt, 32))

    def delay(self, attempt: int) -> float:
        return self._rng.uniform(0.0, self.ceiling(attempt))

"""Verification results remembered by (digest, policy fingerprint).

A digest names its bytes forever, and a policy fingerprint names everything that decides a
verification; so a success under one policy stays a success for that digest, and the
operator need not pull signatures and verify again at every interval. Only successes are
remembered: a failure is retried, since a signature may be added to the registry later.
Bounded (least recently used entries go first) and safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from chartguard.verify.model import VerificationResult
from chartguard.verify.policy import VerificationPolicy


class VerifiedCache:
    """Successful verifications by (digest, policy fingerprint), at most ``max_entries``."""

    def __init__(self, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], VerificationResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str, policy: VerificationPolicy) -> VerificationResult | None:
        """The result of an earlier success for ``digest`` under this same policy, or None."""
        key = (digest, policy.fingerprint)
        with self._lock:
            result = self._entries.get(key)
            if result is not None:
                self._entries.move_to_end(key)
            return result

    def put(self, policy: VerificationPolicy, result: VerificationResult) -> None:
        """Remember a success (a ``VerificationResult`` is only ever made for one)."""
        key = (result.digest, policy.fingerprint)
        with self._lock:
            self._entries[key] = result
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

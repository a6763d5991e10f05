"""Objects shared by every reconcile, built once: registry clients and verifiers.

- :class:`RegistryClients`  one :class:`~chartguard.oci.RegistryClient` per HelmRepository
  settings (URL, credentials, TLS): connection pools and bearer tokens are reused across the
  charts of a repository and across intervals; a changed Secret makes a new key, so a new client.
  All of them share one :class:`~chartguard.oci.HostHolds`: a registry host that asked
  (Retry-After) to wait gets no request from any chart, whichever repository it comes through.
- :class:`Verifiers`  one :class:`~chartguard.verify.Verifier` per policy fingerprint (a keyless
  verifier loads its trust root once).

Both are bounded (least recently used entries go) and safe to share between threads. An evicted
client is not closed (another thread may be using it); it is released when garbage-collected.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from chartguard.oci import HostHolds, Limits, RegistryClient, RegistryCredentials, TLSConfig
from chartguard.verify import VerificationPolicy, Verifier

T = TypeVar("T")


class _LRU(Generic[T]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: T) -> T:
        """Store ``item`` unless another thread stored one first; return the stored one."""
        with self._lock:
            existing = self._items.get(key)
            if existing is not None:
                return existing
            self._items[key] = item
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return item

    def values(self) -> list[T]:
        with self._lock:
            return list(self._items.values())


class RegistryClients:
    """Registry clients by the connection key of their HelmRepository."""

    def __init__(self, *, timeout: float = 10.0, deadline: float = 60.0, retries: int = 2,
                 limits: Limits | None = None, max_clients: int = 512,
                 holds: HostHolds | None = None) -> None:
        self._timeout = timeout
        self._deadline = deadline
        self._retries = retries
        self._limits = limits or Limits()
        self._clients: _LRU[RegistryClient] = _LRU(max_clients)
        self.holds = holds if holds is not None else HostHolds()

    def client(self, key: str, *, plain_http: bool, credentials: RegistryCredentials | None,
               tls: TLSConfig | None) -> RegistryClient:
        found = self._clients.get(key)
        if found is not None:
            return found
        return self._clients.put(key, RegistryClient(
            plain_http=plain_http, tls=tls, credentials=credentials, limits=self._limits,
            timeout=self._timeout, deadline=self._deadline, retries=self._retries,
            holds=self.holds))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


class Verifiers:
    """Verifiers by policy fingerprint."""

    def __init__(self, max_verifiers: int = 256) -> None:
        self._verifiers: _LRU[Verifier] = _LRU(max_verifiers)

    def verifier(self, policy: VerificationPolicy) -> Verifier:
        found = self._verifiers.get(policy.fingerprint)
        if found is not None:
            return found
        return self._verifiers.put(policy.fingerprint, Verifier(policy))

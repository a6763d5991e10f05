"""The registry client's I/O seam: one HTTP exchange, no redirects followed, nothing retried.

:class:`RegistryClient` does everything above this line itself (retries, redirects, the
``WWW-Authenticate`` challenge and token exchange, pagination, size caps, digest checks), so
tests can drive all of it through a :class:`Transport` that answers from memory, the way
httpx's ``MockTransport`` is used::

    RegistryClient(transport=my_transport)

The default transport (requests underneath, in ``._requests_transport``) also enforces the
:class:`Deadline` on every socket read, so a server trickling bytes cannot outlast it.

Transports raise :class:`TransportError` subclasses for failed exchanges; the client turns them
into :mod:`chartguard.oci.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ConnectError",
    "Deadline",
    "ReadError",
    "Request",
    "Response",
    "TLSError",
    "Transport",
    "TransportError",
]


class Deadline:
    """The end of one registry operation, ``seconds`` from now on ``clock``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def cap(self, timeout: float) -> float:
        """``timeout`` shortened to what is left (never zero: zero means non-blocking)."""
        return max(0.001, min(timeout, self.remaining()))


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``registry``: sent to the registry's own origin (its CA and client
    certificate apply); otherwise to a host the registry sent us to (storage, token realm)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    registry: bool = True


class Response(Protocol):
    """An answer whose body has not been read yet (callers cap it while reading)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive header lookup."""
        ...

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        """The body, in chunks of at most ``chunk_size``; raises :class:`TransportError`."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Sends one request; must honour ``deadline`` for the exchange and the body's reads."""

    def send(self, request: Request, *, timeout: float, deadline: Deadline) -> Response:
        """The answer; ``timeout`` bounds connecting and each read, ``deadline`` the total."""
        ...

    def close(self) -> None: ...


class TransportError(Exception):
    """An exchange failed below HTTP; the message is a short reason safe to show."""


class ConnectError(TransportError):
    """No answer: refused, unresolvable, reset, or timed out (connecting or reading)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ReadError(TransportError):
    """The connection broke (or stalled) while the body was read."""


class TLSError(TransportError):
    """The TLS handshake failed; ``reason`` is OpenSSL's reason code (never a URL)."""

    def __init__(self, reason: str, *, client_certificate_refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.client_certificate_refused = client_certificate_refused

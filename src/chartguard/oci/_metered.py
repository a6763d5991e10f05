"""The registry's exchanges counted for ``/metrics``, around whichever transport is used.

Counted here, one layer above the transport, so every exchange is: registry requests, the
token service and the storage a registry redirects to, retries and redirect hops each once.
Labels are the outcome and the status class only (never a host, a path or a repository);
body bytes are counted as they are read, so a capped or abandoned read counts what it read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from chartguard import metrics
from chartguard.oci.transport import (
    Deadline,
    Request,
    Response,
    TLSError,
    Transport,
    TransportError,
)


class MeteredTransport:
    """A :class:`~chartguard.oci.transport.Transport` that records each exchange."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def send(self, request: Request, *, timeout: float, deadline: Deadline) -> Response:
        try:
            response = self.inner.send(request, timeout=timeout, deadline=deadline)
        except TLSError:
            metrics.registry_failure("tls_error")
            raise
        except TransportError:
            metrics.registry_failure("unreachable")
            raise
        return _MeteredResponse(response, metrics.registry_answer(response.status_code))

    def close(self) -> None:
        self.inner.close()


class _MeteredResponse:
    def __init__(self, response: Response, code: str) -> None:
        self._response = response
        self._code = code

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        for chunk in self._response.iter_bytes(chunk_size):
            metrics.registry_bytes(self._code, len(chunk))
            yield chunk

    def close(self) -> None:
        self._response.close()

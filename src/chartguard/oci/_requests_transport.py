"""The default :class:`~chartguard.oci.transport.Transport`: requests, with a deadline per read.

requests (urllib3) bounds each socket operation, never an exchange: a server sending one byte
every few seconds keeps a download alive forever. Here every socket urllib3 connects is given a
``recv_into`` that first shortens the socket timeout to what is left of the current
:class:`Deadline` (and fails once nothing is left), so headers and bodies alike end on time.
The deadline is per thread: one client serves concurrent reconciles.

Also, against requests' habits (DESIGN.md §5):

- ``REQUESTS_CA_BUNDLE`` makes requests ignore a session's ``verify``: ours is passed on every
  request;
- requests adds ~/.netrc credentials to any request without auth: the session has a no-op auth;
- redirects are never followed here (the client decides where credentials may go).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import requests.adapters
import requests.utils
import urllib3.connection
import urllib3.connectionpool

from chartguard import __version__
from chartguard.oci.transport import (
    ConnectError,
    Deadline,
    ReadError,
    Request,
    TLSError,
    TransportError,
)

_scope = threading.local()  # .deadline, .timeout of the exchange this thread is in


@contextmanager
def _deadline_scope(deadline: Deadline, timeout: float) -> Iterator[None]:
    previous = getattr(_scope, "deadline", None), getattr(_scope, "timeout", None)
    _scope.deadline, _scope.timeout = deadline, timeout
    try:
        yield
    finally:
        _scope.deadline, _scope.timeout = previous


def _before_read(sock: socket.socket) -> None:
    deadline: Deadline | None = getattr(_scope, "deadline", None)
    if deadline is None:
        return
    if deadline.expired():
        raise TimeoutError("the operation's deadline passed")
    sock.settimeout(deadline.cap(_scope.timeout))


class _DeadlineSocket(socket.socket):
    __slots__ = ()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        _before_read(self)
        return super().recv_into(buffer, nbytes, flags)


class _DeadlineSSLSocket(ssl.SSLSocket):
    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        _before_read(self)
        return super().recv_into(buffer, nbytes, flags)


def _arm(sock: object) -> None:
    # Same memory layout, one method more: the socket urllib3 made keeps working as before
    # outside a deadline scope. Other socket types (a TLS-in-TLS proxy tunnel) keep only the
    # per-read timeout.
    if type(sock) is socket.socket:
        sock.__class__ = _DeadlineSocket
    elif type(sock) is ssl.SSLSocket:
        sock.__class__ = _DeadlineSSLSocket


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _arm(self.sock)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _arm(self.sock)


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        # SOCKS proxies bring connection classes of their own: those keep per-read timeouts
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _NoNetrc(requests.auth.AuthBase):
    """Session auth that adds nothing: its presence stops requests reading ~/.netrc."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_CLIENT_CERT_REFUSED = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                  "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_HANDSHAKE_FAILURE",
                                  "TLSV1_ALERT_UNKNOWN_CA"})


def _ssl_reason(err: Exception) -> str:
    # OpenSSL's reason code (never the whole text: it may carry a URL with a query)
    text = str(err)
    for known in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", *_CLIENT_CERT_REFUSED,
                  "hostname mismatch", "self-signed certificate",
                  "unable to get local issuer certificate"):
        if known in text:
            return known
    return "handshake failed"


class _Response:
    """A streamed requests answer whose reads stay inside the exchange's deadline."""

    def __init__(self, response: requests.Response, deadline: Deadline, timeout: float) -> None:
        self._response = response
        self._deadline = deadline
        self._timeout = timeout

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        chunks = self._response.iter_content(chunk_size)
        while True:
            with _deadline_scope(self._deadline, self._timeout):
                try:
                    chunk = next(chunks, None)
                except (requests.RequestException, urllib3.exceptions.HTTPError,
                        OSError) as err:
                    raise ReadError(type(err).__name__) from None
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._response.close()


class RequestsTransport:
    """HTTP over one requests session (pools per host) with the registry's TLS settings.

    ``verify``/``cert`` apply to the registry's origin; ``foreign_verify`` to other hosts (no
    client certificate is ever sent there).
    """

    def __init__(self, *, verify: bool | str = True, foreign_verify: bool | str = True,
                 cert: tuple[str, str] | None = None) -> None:
        self._verify = verify
        self._foreign_verify = foreign_verify
        self._cert = cert
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"chartguard/{__version__}"
        self._session.auth = _NoNetrc()
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, _Adapter())

    def send(self, request: Request, *, timeout: float, deadline: Deadline) -> _Response:
        own = request.registry
        with _deadline_scope(deadline, timeout):
            try:
                response = self._session.request(
                    request.method, request.url, headers=dict(request.headers), stream=True,
                    verify=self._verify if own else self._foreign_verify,
                    cert=self._cert if own else None,
                    timeout=(deadline.cap(timeout), deadline.cap(timeout)),
                    allow_redirects=False)
            except requests.exceptions.SSLError as err:
                reason = _ssl_reason(err)
                raise TLSError(reason, client_certificate_refused=(
                    own and reason in _CLIENT_CERT_REFUSED)) from None
            except requests.Timeout:
                raise ConnectError("timed out", timed_out=True) from None
            except requests.ConnectionError as err:
                timed_out = "timed out" in str(err).lower() or "Timeout" in str(err)
                raise ConnectError("timed out" if timed_out else "connection failed",
                                   timed_out=timed_out) from None
            except requests.RequestException as err:
                raise TransportError(type(err).__name__) from None
        return _Response(response, deadline, timeout)

    def close(self) -> None:
        self._session.close()


def write_private(directory: Path, name: str, data: bytes) -> Path:
    """``data`` written to ``directory/name``, readable by this user only (TLS material that
    requests reads only from files)."""
    path = directory / name
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


def system_ca_bundle() -> bytes:
    """The CA bundle requests would use for a public host (the environment's, or certifi's)."""
    for name in (os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("CURL_CA_BUNDLE"),
                 requests.utils.DEFAULT_CA_BUNDLE_PATH):
        if not name:
            continue
        try:
            return Path(name).read_bytes()
        except OSError:
            continue
    return b""

"""A fault-injecting reverse proxy in front of a real test registry (test equipment).

The chaos tests put it between the operator and ``docker-registry`` and switch faults on and
off while the operator runs: what registries and the networks before them really do, one
fault at a time, each only for requests whose path holds a given fragment (a blob's digest, a
manifest's tag) and for a number of requests or until :meth:`FaultProxy.clear`:

=====================  ===============================================================
:meth:`burst`          N answers of a 5xx (503 by default), optionally with Retry-After
:meth:`rate_limit`     429 Too Many Requests with ``Retry-After`` (seconds or an HTTP-date)
:meth:`reset_body`     the headers and part of the body, then a TCP RST (SO_LINGER 0)
:meth:`trickle`        the headers, then the body one byte every ``interval`` seconds
:meth:`swap_bytes`     the body with two of its bytes swapped: same length, other sha256
:meth:`redirect_loop`  302 to itself, or back and forth between two paths
:meth:`refuse_auth`    401 with the registry's own challenge, even to good credentials
=====================  ===============================================================

Every request is recorded (:attr:`FaultProxy.requests`: method, path, the fault applied, when).
Thread-safe: the test scripts faults from its thread while the proxy serves the operator's
connections on its own. Plain HTTP upstream only (the proxy speaks plain HTTP too).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chartguard_testing.registry import Registry

__all__ = ["FaultProxy", "Seen"]

#: fault kinds, as :attr:`Seen.fault` names them
BURST, RATE_LIMIT, RESET, TRICKLE, SWAP, REDIRECT, REFUSE_AUTH = (
    "burst", "rate-limit", "reset", "trickle", "swap", "redirect", "refuse-auth")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                         "te", "trailer", "upgrade", "proxy-authenticate",
                         "proxy-authorization"})
_ERROR_CODES = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


@dataclass(frozen=True)
class Seen:
    """One request the proxy received; ``fault``: the kind applied to it, or None."""

    method: str
    path: str
    fault: str | None
    at: float  # time.monotonic() when it arrived


@dataclass
class _Fault:
    kind: str
    path: str  # a fragment of the request path ("" matches every request)
    remaining: int | None  # answers still to fault; None: until cleared
    status: int = 0
    retry_after: str | None = None
    after: int = 0  # RESET: body bytes sent before the reset
    interval: float = 1.0  # TRICKLE: seconds per byte
    via: str | None = None  # REDIRECT: the second path of a two-path loop
    origin: str = ""  # REDIRECT: the path the loop started from
    cleared: bool = False  # set by FaultProxy.clear: a trickle in progress ends

    def matches(self, path: str) -> bool:
        if self.kind == REDIRECT and self.via is not None and path == self.via:
            return True
        return self.path in path


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (keep-alive closed, a trickle abandoned) are not news


class FaultProxy:
    """A reverse proxy to ``registry`` on its own port (``host``) that injects faults."""

    def __init__(self, registry: Registry) -> None:
        if registry.tls is not None:
            raise ValueError("FaultProxy forwards to plain-HTTP registries only")
        self.registry = registry
        self._faults: list[_Fault] = []  # in force, first match wins
        self._added: list[_Fault] = []  # every fault since the last clear (used up or not)
        self._requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._challenge: str | None = None
        self.server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # -- scripting (from the test's thread) --------------------------------------------------

    def oci(self, path: str = "charts") -> str:
        """``oci://PROXY/path``: a HelmRepository URL through the proxy."""
        return f"oci://{self.host}/{path.strip('/')}"

    def burst(self, status: int = 503, *, path: str = "", times: int | None = None,
              retry_after: str | int | None = None) -> None:
        """Answer ``status`` (a 5xx) to ``times`` requests (None: until cleared)."""
        self._add(_Fault(BURST, path, times, status=status,
                         retry_after=None if retry_after is None else str(retry_after)))

    def rate_limit(self, retry_after: str | int, *, path: str = "",
                   times: int | None = None) -> None:
        """429 Too Many Requests with ``Retry-After: retry_after`` (seconds or HTTP-date)."""
        self._add(_Fault(RATE_LIMIT, path, times, status=429, retry_after=str(retry_after)))

    def reset_body(self, *, path: str, after: int = 100, times: int | None = None) -> None:
        """Send the headers (full Content-Length) and ``after`` body bytes, then reset."""
        self._add(_Fault(RESET, path, times, after=after))

    def trickle(self, *, path: str, interval: float = 1.0, times: int | None = None) -> None:
        """Send the headers at once, then the body one byte every ``interval`` seconds; a
        trickle in progress ends (the connection closes short) once the fault is cleared."""
        self._add(_Fault(TRICKLE, path, times, interval=interval))

    def swap_bytes(self, *, path: str, times: int | None = None) -> None:
        """Alter the body in flight: two different bytes swapped (same length)."""
        self._add(_Fault(SWAP, path, times))

    def redirect_loop(self, *, path: str, via: str | None = None,
                      times: int | None = None) -> None:
        """302 to the same path; with ``via`` (a path), to ``via``, which 302s back."""
        self._add(_Fault(REDIRECT, path, times, status=302, via=via))

    def refuse_auth(self, *, path: str = "", times: int | None = None) -> None:
        """401 with the registry's own ``WWW-Authenticate`` challenge, whatever credentials
        come: the credentials that worked until now are refused from here on."""
        self._challenge = self._challenge or self._upstream_challenge()
        self._add(_Fault(REFUSE_AUTH, path, times, status=401))

    def clear(self) -> None:
        """Every fault off: the registry's own answers again."""
        with self._lock:
            for fault in self._added:
                fault.cleared = True
            self._faults.clear()
            self._added.clear()

    def close(self) -> None:
        self._stop.set()  # trickles end
        self.clear()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # -- records ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._requests)

    def seen(self, fragment: str = "", fault: str | None = None) -> list[Seen]:
        """The requests whose path holds ``fragment`` (and that got ``fault``, when given)."""
        return [r for r in self.requests
                if fragment in r.path and (fault is None or r.fault == fault)]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- internals ---------------------------------------------------------------------------

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)
            self._added.append(fault)

    def _take(self, method: str, path: str) -> _Fault | None:
        """The fault for this request (its count taken), recorded with it."""
        with self._lock:
            chosen = next((f for f in self._faults if f.matches(path)), None)
            if chosen is not None and chosen.remaining is not None:
                chosen.remaining -= 1
                if chosen.remaining <= 0:
                    self._faults.remove(chosen)
            self._requests.append(Seen(method, path, chosen.kind if chosen else None,
                                       time.monotonic()))
            return chosen

    def _upstream_challenge(self) -> str:
        connection = http.client.HTTPConnection(self.registry.host, timeout=10)
        try:
            connection.request("GET", "/v2/")
            answer = connection.getresponse()
            answer.read()
            return answer.getheader("WWW-Authenticate") or 'Basic realm="registry"'
        finally:
            connection.close()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        _upstream: http.client.HTTPConnection | None = None

        def log_message(self, *_: Any) -> None:
            pass

        def finish(self) -> None:
            if self._upstream is not None:
                self._upstream.close()
            super().finish()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fault = proxy._take(self.command, self.path)
            if fault is not None and fault.kind in (BURST, RATE_LIMIT, REFUSE_AUTH):
                self._error(fault)
                return
            if fault is not None and fault.kind == REDIRECT:
                self._redirect(fault)
                return
            upstream = self._forward(body)
            if upstream is None:
                return
            status, headers, data = upstream
            if fault is not None and fault.kind == SWAP:
                data = _swapped(data)
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            length_header = next((v for k, v in headers if k.lower() == "content-length"),
                                 None)
            self.send_header("Content-Length", length_header if self.command == "HEAD"
                             and length_header else str(len(data)))
            if fault is not None and fault.kind in (RESET, TRICKLE):
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return
            if fault is not None and fault.kind == RESET:
                self._reset_after(data[:max(0, min(fault.after, len(data) - 1))])
            elif fault is not None and fault.kind == TRICKLE:
                self._trickle(data, fault)
            else:
                self.wfile.write(data)

        def _forward(self, body: bytes | None,
                     ) -> tuple[int, list[tuple[str, str]], bytes] | None:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            # one upstream connection per client connection (keep-alive on both sides)
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(proxy.registry.host, timeout=30)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                self.close_connection = True
                return None
            return response.status, response.getheaders(), data

        def _error(self, fault: _Fault) -> None:
            code = _ERROR_CODES.get(fault.status, "UNKNOWN")
            body = json.dumps({"errors": [{"code": code, "message": f"fault: {fault.kind}"}]})
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
            if fault.retry_after is not None:
                self.send_header("Retry-After", fault.retry_after)
            if fault.kind == REFUSE_AUTH and proxy._challenge:
                self.send_header("WWW-Authenticate", proxy._challenge)
            data = body.encode() if self.command != "HEAD" else b""
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(data)

        def _redirect(self, fault: _Fault) -> None:
            if fault.via is not None and self.path == fault.via:
                target = fault.origin or fault.path
            else:
                fault.origin = self.path
                target = fault.via or self.path
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _reset_after(self, part: bytes) -> None:
            self.wfile.write(part)
            self.wfile.flush()
            # SO_LINGER 0: closing sends RST, not FIN; the socket really closes when the
            # handler's files do (finish), and the server's shutdown of it then finds it gone
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()

        def _trickle(self, data: bytes, fault: _Fault) -> None:
            for n in range(len(data)):
                if proxy._stop.is_set() or fault.cleared:
                    return  # the connection closes short: the client sees a broken body
                self.wfile.write(data[n:n + 1])
                self.wfile.flush()
                if proxy._stop.wait(fault.interval):
                    return

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

    return Handler


def _swapped(data: bytes) -> bytes:
    """``data`` with two different bytes exchanged (the middle one and the next that
    differs); with all bytes equal, the middle one inverted. Same length either way."""
    if not data:
        return data
    out = bytearray(data)
    middle = len(out) // 2
    other = next((i for i in range(middle + 1, len(out)) if out[i] != out[middle]), None)
    if other is None:
        other = next((i for i in range(middle) if out[i] != out[middle]), None)
    if other is None:
        out[middle] ^= 0xFF
    else:
        out[middle], out[other] = out[other], out[middle]
    return bytes(out)

"""A hostile HTTP server on 127.0.0.1: scripted answers, sent whole or one byte at a time.

For what a real registry never does but an attacker's will: trickle its headers or its body
(one byte every ``interval`` seconds, to hold a client that only has per-read timeouts),
or answer with documents built to hurt a parser (a JSON array nested 100,000 deep). Runs in
this process (threads), on a free port; :meth:`FaultServer.close` stops every trickle at once.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Answer", "FaultServer"]


@dataclass(frozen=True)
class Answer:
    """What to send for one request. ``trickle``: "head" (from the status line on) or
    "body" (headers at once), one byte every ``interval`` seconds."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    trickle: str | None = None
    interval: float = 2.0

    def wire(self) -> tuple[bytes, bytes]:
        lines = [f"HTTP/1.1 {self.status} Fault", f"Content-Length: {len(self.body)}",
                 "Connection: close", *(f"{k}: {v}" for k, v in self.headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode(), self.body


Route = Callable[[str, str], Answer]  # (method, path with query) -> answer


class FaultServer:
    """Answers every request with ``route(method, path)``; ``requests`` records them."""

    def __init__(self, route: Route, tls: ssl.SSLContext | None = None) -> None:
        """With ``tls`` (a server context), every connection is TLS."""
        self.route = route
        self._tls = tls
        self.requests: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            conn = self._tls.wrap_socket(raw, server_side=True) if self._tls else raw
        except OSError:
            raw.close()
            return
        with conn:
            try:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                method, path = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
                self.requests.append((method, path))
                answer = self.route(method, path)
                head, body = answer.wire()
                if method == "HEAD":
                    body = b""
                if answer.trickle == "head":
                    self._trickle(conn, head + body, answer.interval)
                elif answer.trickle == "body":
                    conn.sendall(head)
                    self._trickle(conn, body, answer.interval)
                else:
                    conn.sendall(head + body)
            except OSError:
                return  # the client gave up: what a trickle is meant to make it do

    def _trickle(self, conn: socket.socket, data: bytes, interval: float) -> None:
        for n in range(len(data)):
            if self._stop.is_set():
                return
            conn.sendall(data[n:n + 1])
            self._stop.wait(interval)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._accept.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)

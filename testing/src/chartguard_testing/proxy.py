"""A reverse proxy in front of a test registry that counts requests and can play "down".

Test equipment: the operator tests and ``bench/bench_operator.py`` count what chartguard asks a
registry (an unchanged chart must cost one resolve request per interval) and cut the registry
off (connections closed without an answer) without stopping it.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chartguard_testing.registry import Registry


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (keep-alive connections closed) are not news


class CountingProxy:
    """A reverse proxy to ``registry`` on its own port that records every request and can
    play "registry down" (connections closed without an answer)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def finish(self) -> None:
                upstream = getattr(self, "_upstream", None)
                if upstream is not None:
                    upstream.close()
                super().finish()

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                if proxy.down:
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                # one upstream connection per client connection (keep-alive on both sides)
                upstream: http.client.HTTPConnection | None = getattr(self, "_upstream", None)
                if upstream is None:
                    upstream = http.client.HTTPConnection(proxy.registry.host, timeout=30)
                    self._upstream = upstream
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                except (OSError, http.client.HTTPException):
                    upstream.close()
                    del self._upstream
                    self.close_connection = True
                    return
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def oci(self, path: str = "charts") -> str:
        return f"oci://{self.host}/{path}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def seen(self, fragment: str) -> list[tuple[str, str]]:
        with self._lock:
            return [r for r in self.requests if fragment in r[1]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

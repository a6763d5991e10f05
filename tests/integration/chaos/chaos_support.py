"""What the chaos tests read back from the cluster."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from operator_support import Cluster

from chartguard_testing.chaos import release_records
from chartguard_testing.registry import Registry


def helm_records(cluster: Cluster) -> list[dict[str, Any]]:
    """Every release record (all revisions) helm's Secret storage holds in the namespace."""
    out = cluster.kubectl("get", "secrets", "-n", cluster.ns, "-l", "owner=helm",
                          "-o", "json").stdout
    return release_records(json.loads(out)["items"])


def store_problems(root: Path) -> list[str]:
    """What is wrong in an artifact store: any file that is not ``sha256/<hex>.tgz`` whose
    bytes hash to ``<hex>`` (a partial or temporary file, a stray one)."""
    problems = []
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            if path != root / "sha256":
                problems.append(f"directory {path.relative_to(root)}")
            continue
        rel = path.relative_to(root)
        name = path.name
        if rel.parent != Path("sha256") or not name.endswith(".tgz"):
            problems.append(f"stray file {rel}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != name[:-4]:
            problems.append(f"{rel}: its bytes are not its name")
    return problems


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed client's connection reset is the point, not news


class SlowBlobProxy:
    """A reverse proxy to ``registry`` whose blob downloads take ``delay`` seconds (half the
    body, a pause, the rest), so a kill can land in the middle of one; ``in_flight`` counts
    the blob downloads under way."""

    def __init__(self, registry: Registry, delay: float = 0.5) -> None:
        self.registry = registry
        self.delay = delay
        self.in_flight = 0
        self.blobs = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream = http.client.HTTPConnection(proxy.registry.host, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):
                    self.close_connection = True
                    return
                finally:
                    upstream.close()
                slow = self.command == "GET" and "/blobs/" in self.path and len(data) > 1
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if not slow:
                    self.wfile.write(data)
                    return
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.blobs += 1
                try:
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    time.sleep(proxy.delay)
                    self.wfile.write(data[len(data) // 2:])
                except OSError:
                    self.close_connection = True  # the client was killed mid-download
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def oci(self, path: str = "charts") -> str:
        return f"oci://{self.host}/{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SlowRelay:
    """A TCP relay to ``target`` (host:port) that holds each chunk a client sends for
    ``delay`` seconds: every API request of a helm run pointed at it takes that much longer,
    so the time helm's record is pending (from the record's write to its update) is long
    enough for a kill to land in it. TLS passes through untouched."""

    def __init__(self, target: str, delay: float = 0.1) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.delay = delay
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for src, dst, delay in ((client, server, self.delay), (server, client, 0.0)):
                threading.Thread(target=self._pump, args=(src, dst, delay), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, delay: float) -> None:
        src.settimeout(None)
        try:
            while not self._stop.is_set() and (data := src.recv(65536)):
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):  # the other pump's recv returns, and it closes its side
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            src.close()

    def kubeconfig(self, original: Path, out: Path) -> Path:
        """``original`` with every cluster's server pointed at this relay."""
        config = yaml.safe_load(original.read_text())
        for entry in config.get("clusters") or []:
            server = urllib.parse.urlsplit(entry["cluster"]["server"])
            entry["cluster"]["server"] = server._replace(netloc=self.address).geturl()
        out.write_text(yaml.safe_dump(config))
        return out

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)

"""A registry built to hurt the client, on a real socket: it trickles one byte every two
seconds (headers or body, plain or TLS, registry or token endpoint), or answers JSON nested
100,000 deep. Every operation ends within its deadline with a clear error, never a hang or a
traceback."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chartguard.oci import (
    OCI_MANIFEST,
    ChartReference,
    DeadlineExceededError,
    RegistryClient,
    RegistryCredentials,
    RegistryResponseError,
    TLSConfig,
    UnsupportedMediaTypeError,
    signature_tag,
)
from chartguard_testing.cosign_signer import generate_key_pair
from chartguard_testing.faults import Answer, FaultServer
from chartguard_testing.registry import make_tls

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_DIGEST = "sha256:" + hashlib.sha256(DEEP).hexdigest()
DEADLINE = 2.0  # seconds; the trickle alone would take minutes
SLACK = 2.0  # scheduling on a shared 2-core machine
MANIFEST = b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","layers":[]}'
TAGS = b'{"name":"charts/demo","tags":["1.0.0","1.1.0"]}'


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    servers: list[FaultServer] = []

    def start(route: Callable[[str, str], Answer],
              tls: ssl.SSLContext | None = None) -> FaultServer:
        servers.append(FaultServer(route, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _ref(server: FaultServer) -> ChartReference:
    return ChartReference.parse(f"oci://{server.host}/charts", "demo")


def _bearer(server: FaultServer, token: Answer) -> Callable[[str, str], Answer]:
    def route(_method: str, path: str) -> Answer:
        if path.startswith("/token"):
            return token
        return Answer(401, b"{}", {"WWW-Authenticate":
                                   f'Bearer realm="http://{server.host}/token",service="x"'})
    return route


# -- a total deadline, whatever the registry trickles ---------------------------------------

SCENARIOS: dict[str, tuple[Callable[[str, str], Answer], Callable[[RegistryClient,
                                                                    ChartReference], object]]] = {
    "resolve: tag list body": (
        lambda m, p: Answer(200, TAGS, trickle="body") if "/tags/" in p else Answer(404),
        lambda c, r: c.resolve(r, ">=1")),
    "resolve: HEAD headers": (
        lambda m, p: Answer(200, headers={"Docker-Content-Digest": DEEP_DIGEST},
                            trickle="head"),
        lambda c, r: c.resolve(r, "1.0.0")),
    "fetch_chart: manifest headers": (
        lambda m, p: Answer(200, MANIFEST, {"Content-Type": OCI_MANIFEST}, trickle="head"),
        lambda c, r: c.fetch_chart(r, DEEP_DIGEST)),
    "find_signatures: .sig manifest body": (
        lambda m, p: Answer(200, MANIFEST, {"Content-Type": OCI_MANIFEST}, trickle="body")
        if signature_tag(DEEP_DIGEST) in p else Answer(404),
        lambda c, r: c.find_signatures(r, DEEP_DIGEST)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_trickling_registry_fails_within_the_deadline(
        scenario: str, fault_server: Callable[..., FaultServer]) -> None:
    route, operation = SCENARIOS[scenario]
    server = fault_server(route)
    with RegistryClient(plain_http=True, deadline=DEADLINE, timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match=r"within 2 s \(the deadline"):
            operation(client, _ref(server))
        assert time.monotonic() - started < DEADLINE + SLACK


@pytest.mark.parametrize("trickle", ["head", "body"])
def test_trickling_token_endpoint_fails_within_the_deadline(
        trickle: str, fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda m, p: Answer())
    server.route = _bearer(server, Answer(200, b'{"token": "abc"}', trickle=trickle))
    with RegistryClient(plain_http=True, deadline=DEADLINE, timeout=10,
                        credentials=RegistryCredentials("u", "Passw0rd-x")) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="token"):
            client.resolve(_ref(server), "1.0.0")
        assert time.monotonic() - started < DEADLINE + SLACK


def test_trickling_tls_registry_fails_within_the_deadline(
        tmp_path: Path, fault_server: Callable[..., FaultServer]) -> None:
    tls = make_tls(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    server = fault_server(lambda m, p: Answer(200, MANIFEST, {"Content-Type": OCI_MANIFEST},
                                              trickle="body"), context)
    with RegistryClient(tls=TLSConfig(ca_pem=tls.ca_pem()), deadline=DEADLINE,
                        timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            client.fetch_chart(_ref(server), DEEP_DIGEST)
        assert time.monotonic() - started < DEADLINE + SLACK


def test_a_fast_registry_is_not_hurt_by_the_deadline_machinery(
        fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda m, p: Answer(200, TAGS))
    with RegistryClient(plain_http=True, deadline=DEADLINE) as client:
        for _ in range(3):  # connections are reused across operations and deadlines
            assert client.list_tags(_ref(server)) == ["1.0.0", "1.1.0"]


# -- JSON nested 100,000 deep -----------------------------------------------------------------


def test_deep_tag_list_is_a_clear_error(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda m, p: Answer(200, DEEP))
    with RegistryClient(plain_http=True) as client, pytest.raises(
            RegistryResponseError, match=r"not a JSON tag list .*nested deeper than 64"):
        client.resolve(_ref(server), ">=1")


def test_deep_manifest_is_a_clear_error(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda m, p: Answer(200, DEEP, {"Content-Type": OCI_MANIFEST}))
    with RegistryClient(plain_http=True) as client, pytest.raises(
            UnsupportedMediaTypeError, match=f"{DEEP_DIGEST} is nested deeper than 64"):
        client.fetch_chart(_ref(server), DEEP_DIGEST)


def test_deep_token_answer_is_a_clear_error(fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda m, p: Answer())
    server.route = _bearer(server, Answer(200, DEEP))
    with RegistryClient(plain_http=True) as client, pytest.raises(
            RegistryResponseError, match=r"token answer .*nested deeper than 64"):
        client.resolve(_ref(server), "1.0.0")


def test_verify_command_reports_deep_json_without_a_traceback(
        tmp_path: Path, fault_server: Callable[..., FaultServer]) -> None:
    server = fault_server(lambda m, p: Answer(200, DEEP))
    key = tmp_path / "cosign.pub"
    key.write_bytes(generate_key_pair().public_pem)
    done = subprocess.run(
        [sys.executable, "-m", "chartguard", "verify", f"oci://{server.host}/charts/demo",
         "--version", ">=1", "--key", str(key), "--plain-http"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "nested deeper than 64 levels" in done.stderr
    assert "Traceback" not in done.stderr

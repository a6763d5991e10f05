"""The HTTP Helm repository client through its transport seam: conditional index requests,
where credentials go (Helm's rule and ``passCredentials``), chart URLs, and what a chart must
be before anyone sees it. No server, no process."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chartguard.oci import (
    AuthenticationError,
    ChartContentError,
    CredentialsError,
    DigestMismatchError,
    HelmRepositoryClient,
    IndexEntry,
    Limits,
    RegistryCredentials,
    RegistryResponseError,
    SizeLimitExceededError,
    repository_auth,
)
from chartguard.oci.httprepo import chart_url, index_url, origin
from chartguard.oci.transport import ReadError, Request
from chartguard_testing.hostile import hostile_archive
from chartguard_testing.memory_registry import FakeClock, MockResponse, MockTransport, chart_archive

REPO = "https://charts.example.com/stable"
CREDS = RegistryCredentials("user", "pa55word")
BASIC = "Basic " + base64.b64encode(b"user:pa55word").decode()


def client(handler: Callable[[Request], MockResponse], **kw: Any,
           ) -> tuple[HelmRepositoryClient, MockTransport]:
    clock = FakeClock()
    transport = MockTransport(handler)
    return HelmRepositoryClient(REPO, credentials=CREDS, transport=transport, clock=clock,
                                sleep=clock.sleep, **kw), transport


def entry(url: str, data: bytes, *, digest: str | None = None, name: str = "demo",
          version: str = "1.0.0") -> IndexEntry:
    return IndexEntry(name=name, version=version, urls=(url,),
                      digest=("sha256:" + hashlib.sha256(data).hexdigest()
                              if digest is None else digest), created="")


@pytest.mark.parametrize(("base", "ref", "expected"), [
    ("https://h/charts", "demo-1.0.0.tgz", "https://h/charts/demo-1.0.0.tgz"),
    ("https://h/charts/", "demo-1.0.0.tgz", "https://h/charts/demo-1.0.0.tgz"),
    ("https://h/charts", "../other/demo.tgz", "https://h/other/demo.tgz"),
    ("https://h/charts?sig=1", "demo.tgz", "https://h/charts/demo.tgz?sig=1"),
    ("https://h/charts", "https://cdn.example.com/demo.tgz", "https://cdn.example.com/demo.tgz"),
    ("https://h", "demo.tgz", "https://h/demo.tgz"),
    # a scheme-relative reference to another host does not take the repository's query (a
    # token there stays with the repository)
    ("https://h/charts?token=s3cret", "//evil.example/c.tgz", "https://evil.example/c.tgz"),
])
def test_chart_urls_resolve_as_helm_resolves_them(base: str, ref: str, expected: str) -> None:
    assert chart_url(base, ref) == expected


def test_the_index_is_at_index_yaml_under_the_url() -> None:
    assert index_url("https://h/charts/") == "https://h/charts/index.yaml"
    assert index_url("https://h") == "https://h/index.yaml"
    assert origin("HTTPS://H:443/x") == origin("https://h/y") == "https://h"
    assert origin("https://h:8443/x") != origin("https://h/x")


def test_the_index_is_asked_for_conditionally_and_a_304_carries_no_bytes() -> None:
    body = b"apiVersion: v1\nentries: {}\n"

    def handler(request: Request) -> MockResponse:
        if request.headers.get("If-None-Match") == '"v1"':
            return MockResponse(304)
        return MockResponse(200, body, headers={"ETag": '"v1"', "Last-Modified": "yesterday"})

    repo, transport = client(handler)
    first = repo.fetch_index()
    assert (first.changed, first.data, first.etag, first.last_modified) == (
        True, body, '"v1"', "yesterday")
    assert first.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    again = repo.fetch_index(etag=first.etag, last_modified=first.last_modified)
    assert not again.changed
    assert again.data == b""
    sent = transport.requests[-1]
    assert sent.url == f"{REPO}/index.yaml"
    assert sent.headers["If-None-Match"] == '"v1"'
    assert sent.headers["If-Modified-Since"] == "yesterday"
    assert all(r.headers["Authorization"] == BASIC for r in transport.requests)


def test_a_refused_password_is_an_authentication_error_without_the_password() -> None:
    repo, _ = client(lambda _r: MockResponse(401))
    with pytest.raises(AuthenticationError) as err:
        repo.fetch_index()
    assert str(err.value) == f"failed to fetch {REPO}/index.yaml : 401 Unauthorized"
    assert "pa55word" not in str(err.value)


def test_an_index_over_the_cap_is_refused_while_read() -> None:
    repo, _ = client(lambda _r: MockResponse(200, b"x" * 2048), max_index_bytes=1024)
    with pytest.raises(SizeLimitExceededError):
        repo.fetch_index()


def test_server_errors_are_retried_then_reported() -> None:
    answers = iter([MockResponse(503), MockResponse(200, b"apiVersion: v1\n")])
    repo, transport = client(lambda _r: next(answers))
    assert repo.fetch_index().changed
    assert len(transport.requests) == 2


ARCHIVE = chart_archive("demo", "1.0.0")


@pytest.mark.parametrize(("url", "pass_credentials", "authorized"), [
    ("demo-1.0.0.tgz", False, True),  # relative: the repository's origin
    ("https://charts.example.com/stable/demo-1.0.0.tgz", False, True),
    ("https://cdn.example.com/demo-1.0.0.tgz", False, False),  # another host
    ("https://charts.example.com:8443/demo-1.0.0.tgz", False, False),  # another port
    ("http://charts.example.com/stable/demo-1.0.0.tgz", False, False),  # another scheme
    ("https://cdn.example.com/demo-1.0.0.tgz", True, True),  # spec.passCredentials
])
def test_credentials_go_to_the_repositorys_origin_or_with_pass_credentials(
        url: str, pass_credentials: bool, authorized: bool) -> None:
    repo, transport = client(lambda _r: MockResponse(200, ARCHIVE),
                             pass_credentials=pass_credentials)
    chart = repo.fetch_chart(entry(url, ARCHIVE))
    assert (chart.name, chart.version, chart.data) == ("demo", "1.0.0", ARCHIVE)
    (request,) = transport.requests
    assert ("Authorization" in request.headers) is authorized
    assert request.registry is authorized  # the client certificate goes with them


def test_a_redirect_off_the_origin_carries_no_credentials() -> None:
    def handler(request: Request) -> MockResponse:
        if request.url.startswith(REPO):
            return MockResponse(302, headers={"Location": "https://storage.example.com/x.tgz"})
        return MockResponse(200, ARCHIVE)

    repo, transport = client(handler, pass_credentials=True)
    repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE))
    first, second = transport.requests
    assert first.headers["Authorization"] == BASIC
    assert "Authorization" not in second.headers
    assert not second.registry


def test_bytes_that_do_not_match_the_index_digest_are_refused() -> None:
    repo, _ = client(lambda _r: MockResponse(200, ARCHIVE))
    with pytest.raises(DigestMismatchError, match="digest mismatch"):
        repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE, digest="sha256:" + "0" * 64))
    with pytest.raises(ChartContentError, match="not a sha256 digest"):
        repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE, digest="sha256:1234"))
    # no digest in the index (hand-written ones): the archive checks still apply
    assert repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE, digest="")).version == "1.0.0"


@pytest.mark.parametrize(("data", "message"), [
    (chart_archive("evil", "1.0.0"), "is chart evil 1.0.0, but the index names it demo 1.0.0"),
    (chart_archive("demo", "2.0.0"), "is chart demo 2.0.0, but the index names it demo 1.0.0"),
    (hostile_archive("symlink", "demo", "1.0.0"), "symbolic link"),
    (b"not a tarball", "not a gzipped tar archive"),
])
def test_the_archive_is_checked_as_an_oci_chart_layer_is(data: bytes, message: str) -> None:
    repo, _ = client(lambda _r: MockResponse(200, data))
    with pytest.raises(ChartContentError, match=message):
        repo.fetch_chart(entry("demo-1.0.0.tgz", data))


def test_a_chart_over_the_size_cap_is_refused() -> None:
    big = chart_archive("demo", "1.0.0", padding=bytes(range(256)) * 64)
    repo, _ = client(lambda _r: MockResponse(200, big),
                     limits=Limits(max_layer_bytes=len(big) - 1))
    with pytest.raises(SizeLimitExceededError):
        repo.fetch_chart(entry("demo-1.0.0.tgz", big))


def test_chart_urls_must_be_http() -> None:
    repo, transport = client(lambda _r: MockResponse(200, ARCHIVE))
    with pytest.raises(ChartContentError, match="not http"):
        repo.fetch_chart(entry("file:///etc/passwd", ARCHIVE))
    with pytest.raises(ChartContentError, match="has no downloadable URLs"):
        repo.fetch_chart(IndexEntry("demo", "1.0.0", (), "", ""))
    assert not transport.requests


def test_a_404_is_reported_with_the_url() -> None:
    repo, _ = client(lambda _r: MockResponse(404))
    with pytest.raises(RegistryResponseError, match=r"demo-1.0.0.tgz : 404 Not Found"):
        repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE))


PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"


def test_secrets_are_read_as_flux_reads_them() -> None:
    creds, tls, deprecated = repository_auth({"username": b"u", "password": b"p"},
                                             {"ca.crt": PEM})
    assert creds == RegistryCredentials("u", "p")
    assert tls is not None
    assert (tls.ca_pem, tls.cert_pem, deprecated) == (PEM, None, False)
    # the legacy key names, and TLS from secretRef (deprecated) when certSecretRef is absent
    _, tls, deprecated = repository_auth({"certFile": PEM, "keyFile": KEY, "caFile": PEM}, None)
    assert tls is not None
    assert (tls.cert_pem, tls.key_pem, deprecated) == (PEM, KEY, True)
    with pytest.raises(CredentialsError, match="both 'username' and 'password'"):
        repository_auth({"username": b"u"}, None)
    with pytest.raises(CredentialsError, match="neither a certificate pair"):
        repository_auth(None, {"other": b"x"})
    with pytest.raises(CredentialsError, match=r"tls\.crt but no tls\.key"):
        repository_auth(None, {"tls.crt": PEM})


class _Broken(MockResponse):
    """An answer whose connection breaks after the first chunk."""

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        yield ARCHIVE[:10]
        raise ReadError("connection reset")


def test_a_connection_broken_while_reading_is_tried_again() -> None:
    answers = iter([_Broken(200, ARCHIVE), MockResponse(200, ARCHIVE)])
    repo, transport = client(lambda _r: next(answers))
    assert repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE)).data == ARCHIVE
    assert len(transport.requests) == 2


@pytest.mark.parametrize("url", [
    "https://attacker.example\\@charts.example.com/stable/c.tgz",  # urllib3: attacker.example
    "https://charts.example.com\\.attacker.example/c.tgz",
    "https://charts.example.com/sta ble/c.tgz",
    "https://charts.example.com/c.tgz\r\nX-Injected: 1",
])
def test_a_chart_url_http_clients_read_in_different_ways_is_not_requested(url: str) -> None:
    """Python's urlsplit reads ``charts.example.com`` in the first URL, urllib3 (which
    connects) ``attacker.example``: credentials for the repository would reach the attacker.
    No request is made, with or without passCredentials."""
    for pass_credentials in (False, True):
        repo, transport = client(lambda _r: MockResponse(200, ARCHIVE),
                                 pass_credentials=pass_credentials)
        with pytest.raises(ChartContentError, match="read in different ways"):
            repo.fetch_chart(entry(url, ARCHIVE))
        assert not transport.requests


def test_a_redirect_to_an_ambiguous_url_is_not_followed() -> None:
    def handler(request: Request) -> MockResponse:
        return MockResponse(302, headers={
            "Location": "https://attacker.example\\@charts.example.com/stable/c.tgz"})

    repo, transport = client(handler)
    with pytest.raises(RegistryResponseError, match="read in different ways"):
        repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE))
    assert len(transport.requests) == 1  # the first, to the repository; nothing after


def test_the_provenance_is_fetched_beside_the_archive_as_helm_pull_verify_does() -> None:
    prov = b"-----BEGIN PGP SIGNED MESSAGE-----\n..."

    def handler(request: Request) -> MockResponse:
        if request.url.endswith(".tgz.prov"):
            return MockResponse(200, prov)
        return MockResponse(200, ARCHIVE)

    repo, transport = client(handler)
    got = repo.fetch_chart(entry("sub/demo-1.0.0.tgz", ARCHIVE), provenance=True)
    assert (got.provenance, got.file_name) == (prov, "demo-1.0.0.tgz")
    assert [r.url for r in transport.requests] == [
        f"{REPO}/sub/demo-1.0.0.tgz", f"{REPO}/sub/demo-1.0.0.tgz.prov"]
    # the same credential rule as the archive: the repository's origin gets them
    assert all(r.headers.get("Authorization") == BASIC for r in transport.requests)
    # not asked for: not requested
    repo, transport = client(handler)
    assert repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE)).provenance is None
    assert len(transport.requests) == 1


def test_a_missing_provenance_is_none_and_other_answers_are_errors() -> None:
    def handler_for(status: int) -> Callable[[Request], MockResponse]:
        def handler(request: Request) -> MockResponse:
            if request.url.endswith(".prov"):
                return MockResponse(status, b"nope")
            return MockResponse(200, ARCHIVE)
        return handler

    repo, _ = client(handler_for(404))
    assert repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE), provenance=True).provenance \
        is None
    repo, _ = client(handler_for(403))
    with pytest.raises(AuthenticationError):
        repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE), provenance=True)
    # an archive that answers 404 is still an error (only the .prov may be missing)
    repo, _ = client(lambda _r: MockResponse(404, b""))
    with pytest.raises(RegistryResponseError):
        repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE), provenance=True)


def test_a_provenance_over_its_cap_is_refused() -> None:
    def handler(request: Request) -> MockResponse:
        if request.url.endswith(".prov"):
            return MockResponse(200, b"x" * (1024 * 1024 + 1))
        return MockResponse(200, ARCHIVE)

    repo, _ = client(handler)
    with pytest.raises(SizeLimitExceededError):
        repo.fetch_chart(entry("demo-1.0.0.tgz", ARCHIVE), provenance=True)

"""The registry client's logic, driven through its transport seam: no registry, no process.

Every answer comes from ``chartguard_testing.memory_registry``; time is a FakeClock, so the
deadline tests take no real time.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from typing import Any

import pytest

from chartguard.oci import (
    AuthenticationError,
    BlobNotFoundError,
    ChartContentError,
    ChartReference,
    DeadlineExceededError,
    DigestMismatchError,
    Hint,
    Limits,
    RegistryClient,
    RegistryCredentials,
    RegistryResponseError,
    RegistryUnreachableError,
    SizeLimitExceededError,
    TLSVerificationError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
)
from chartguard.oci.transport import ConnectError, TLSError
from chartguard_testing.hostile import ENTRY_CASES, gzip_bomb, hostile_archive, tgz
from chartguard_testing.memory_registry import (
    FakeClock,
    MemoryRegistry,
    MockResponse,
    MockTransport,
    chart_archive,
)

REPO = "charts/demo"
DEEP = b"[" * 100_000 + b"]" * 100_000


def _ref(registry: MemoryRegistry) -> ChartReference:
    return ChartReference.parse(f"oci://{registry.host}/charts", "demo")


def _client(registry: MemoryRegistry, clock: FakeClock | None = None,
            **kw: Any) -> tuple[RegistryClient, MockTransport]:
    clock = clock or FakeClock()
    transport = MockTransport(registry.handle)
    return RegistryClient(transport=transport, clock=clock, sleep=clock.sleep, **kw), transport


# -- resolve and tag lists ------------------------------------------------------------------


def test_exact_version_costs_one_head() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.2.3")
    client, transport = _client(registry)
    resolved = client.resolve(_ref(registry), "1.2.3")
    assert (resolved.version, resolved.tag, resolved.digest) == ("1.2.3", "1.2.3", digest)
    assert [(r.method, r.url) for r in transport.requests] == [
        ("HEAD", f"https://{registry.host}/v2/{REPO}/manifests/1.2.3")]


def test_range_follows_every_page_and_picks_the_highest() -> None:
    registry = MemoryRegistry(page_size=2)
    digests = {v: registry.push_chart(REPO, v) for v in ("0.1.0", "1.0.0", "1.4.0", "2.0.0",
                                                          "1.10.0")}
    client, transport = _client(registry)
    resolved = client.resolve(_ref(registry), "^1")
    assert (resolved.version, resolved.digest) == ("1.10.0", digests["1.10.0"])
    assert len(transport.paths("GET")) == 3  # three pages of two tags


def test_tag_list_is_bounded_in_entries_across_pages() -> None:
    registry = MemoryRegistry(page_size=2)
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"):
        registry.push_chart(REPO, v)
    client, transport = _client(registry, limits=Limits(max_tags=3))
    with pytest.raises(SizeLimitExceededError, match="more than 3 tags"):
        client.resolve(_ref(registry), "*")
    assert len(transport.paths("GET")) == 2  # stopped at the page that went over


def test_tag_list_is_bounded_in_bytes_across_pages() -> None:
    registry = MemoryRegistry(page_size=2)
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"):
        registry.push_chart(REPO, v)
    client, _ = _client(registry, limits=Limits(max_tag_list_bytes=120))
    with pytest.raises(SizeLimitExceededError, match="more than 120 bytes over its pages"):
        client.list_tags(_ref(registry))


def test_tag_list_link_loop_and_foreign_link_are_refused() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    path = f"/v2/{REPO}/tags/list"
    registry.faults[("GET", path)] = lambda: MockResponse(
        200, b'{"tags": ["1.0.0"]}', headers={"Link": f'<{path}?n=1000>; rel="next"'})
    client, _ = _client(registry)
    with pytest.raises(RegistryResponseError, match="loops back"):
        client.list_tags(_ref(registry))
    registry.faults[("GET", path)] = lambda: MockResponse(
        200, b'{"tags": ["1.0.0"]}', headers={"Link": '<https://elsewhere.test/x>; rel="next"'})
    with pytest.raises(RegistryResponseError, match="another host"):
        client.list_tags(_ref(registry))


@pytest.mark.parametrize("body", [DEEP, b'{"tags": ' + DEEP + b"}", b"not json"])
def test_tag_list_that_is_not_json_or_too_deep_is_a_clear_error(body: bytes) -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    registry.faults[("GET", f"/v2/{REPO}/tags/list")] = lambda: MockResponse(200, body)
    client, _ = _client(registry)
    with pytest.raises(RegistryResponseError, match="not a JSON tag list"):
        client.resolve(_ref(registry), "*")


def test_missing_repository_is_version_not_found() -> None:
    registry = MemoryRegistry()
    client, _ = _client(registry)
    with pytest.raises(VersionNotFoundError, match="does not exist"):
        client.resolve(_ref(registry), ">=1")


# -- manifests and blobs --------------------------------------------------------------------


def test_fetch_chart_checks_every_digest() -> None:
    registry = MemoryRegistry()
    tgz = chart_archive("demo", "1.0.0")
    digest = registry.push_chart(REPO, "1.0.0", layer=tgz)
    client, _ = _client(registry)
    artifact = client.fetch_chart(_ref(registry), digest)
    assert (artifact.name, artifact.version, artifact.layer) == ("demo", "1.0.0", tgz)
    layer = json.loads(registry.manifests[(REPO, digest)][0])["layers"][0]["digest"]
    registry.blobs[layer] = tgz[:-1] + bytes([tgz[-1] ^ 1])  # altered in storage
    with pytest.raises(DigestMismatchError, match=f"blob {layer} .* altered or corrupted"):
        client.fetch_chart(_ref(registry), digest)


def test_manifest_whose_bytes_do_not_hash_to_its_digest_is_refused() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    other = registry.push_chart(REPO, "2.0.0")
    registry.manifests[(REPO, digest)] = registry.manifests[(REPO, other)]
    client, _ = _client(registry)
    with pytest.raises(DigestMismatchError, match="not the digest asked for"):
        client.fetch_chart(_ref(registry), digest)


def test_deeply_nested_manifest_is_a_clear_error_not_a_recursion_error() -> None:
    registry = MemoryRegistry()
    digest = registry.push_manifest(REPO, "1.0.0", None, raw=DEEP)
    client, _ = _client(registry)
    with pytest.raises(UnsupportedMediaTypeError, match="nested deeper than 64 levels"):
        client.fetch_chart(_ref(registry), digest)


def test_blob_over_the_cap_is_refused_from_its_length_or_while_streaming() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0", layer=b"x" * 5000)
    client, transport = _client(registry, limits=Limits(max_layer_bytes=4000))
    with pytest.raises(SizeLimitExceededError, match="over the limit of 4000 bytes"):
        client.fetch_chart(_ref(registry), digest)
    assert not any("/blobs/" in p for p in transport.paths())  # refused from the descriptor
    blob = registry.push_blob(b"y" * 5000)["digest"]
    registry.faults[("GET", f"/v2/{REPO}/blobs/{blob}")] = lambda: MockResponse(
        200, chunks=[b"y" * 1000] * 5)  # no Content-Length
    with pytest.raises(SizeLimitExceededError, match="more than 4000 bytes"):
        client.get_blob(REPO, blob, None, 4000, host=registry.host)
    assert transport.responses[-1].read_bytes <= 4000 + 1000


def test_missing_blob_is_blob_not_found() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    config = json.loads(registry.manifests[(REPO, digest)][0])["config"]["digest"]
    del registry.blobs[config]
    client, _ = _client(registry)
    with pytest.raises(BlobNotFoundError, match=config):
        client.fetch_chart(_ref(registry), digest)


def test_blob_redirected_to_storage_gets_no_credentials() -> None:
    registry = MemoryRegistry(auth="basic", storage_host="storage.test")
    digest = registry.push_chart(REPO, "1.0.0")
    client, transport = _client(registry, credentials=RegistryCredentials(
        registry.username, registry.password))
    client.fetch_chart(_ref(registry), digest)
    storage = [r for r in transport.requests if "storage.test" in r.url]
    assert len(storage) == 2  # config and chart layer
    assert all(not r.registry and "Authorization" not in r.headers for r in storage)


# -- auth -----------------------------------------------------------------------------------


def test_basic_challenge_is_answered_once_with_the_credentials() -> None:
    registry = MemoryRegistry(auth="basic")
    registry.push_chart(REPO, "1.0.0")
    client, transport = _client(registry, credentials=RegistryCredentials(
        registry.username, registry.password))
    client.resolve(_ref(registry), "1.0.0")
    assert ["Authorization" in r.headers for r in transport.requests] == [False, True]
    with pytest.raises(AuthenticationError, match="requires credentials") as caught:
        _client(registry)[0].resolve(_ref(registry), "1.0.0")
    assert caught.value.hints == (Hint.CREDENTIALS,)


def test_bearer_flow_sends_the_password_to_the_realm_and_the_token_to_the_registry() -> None:
    registry = MemoryRegistry(auth="bearer")
    digest = registry.push_chart(REPO, "1.0.0")
    client, transport = _client(registry, credentials=RegistryCredentials(
        registry.username, registry.password))
    assert client.resolve(_ref(registry), "1.0.0").digest == digest
    (token_request,) = registry.token_requests
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert "scope=repository%3Acharts%2Fdemo%3Apull" in token_request.url
    assert transport.requests[-1].headers["Authorization"].startswith("Bearer token-")
    wrong = RegistryClient(transport=MockTransport(registry.handle),
                           credentials=RegistryCredentials("user", "wrong-Passw0rd"))
    with pytest.raises(AuthenticationError, match="refused user 'user'") as caught:
        wrong.resolve(_ref(registry), "1.0.0")
    assert "wrong-Passw0rd" not in str(caught.value)


def test_deeply_nested_token_answer_is_a_clear_error() -> None:
    registry = MemoryRegistry(auth="bearer")
    registry.push_chart(REPO, "1.0.0")

    def handle(request: Any) -> MockResponse:
        if registry.token_host in request.url:
            return MockResponse(200, DEEP)
        return registry.handle(request)

    client = RegistryClient(transport=MockTransport(handle),
                            credentials=RegistryCredentials("user", registry.password))
    with pytest.raises(RegistryResponseError, match=r"token answer .* nested deeper"):
        client.resolve(_ref(registry), "1.0.0")


# -- retries and the deadline ---------------------------------------------------------------


def test_a_5xx_is_retried_with_short_jittered_sleeps_then_answered() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    answers = [MockResponse(503), MockResponse(502)]

    def flaky(request: Any) -> MockResponse:
        return answers.pop(0) if answers else registry.handle(request)

    clock = FakeClock()
    client = RegistryClient(transport=MockTransport(flaky), clock=clock, sleep=clock.sleep,
                            retries=2)
    assert client.resolve(_ref(registry), "1.0.0").digest == digest
    # full jitter under a doubling ceiling (tests/unit/oci/test_oci_retries.py has the rest)
    assert len(clock.slept) == 2
    assert 0 <= clock.slept[0] <= 0.25
    assert 0 <= clock.slept[1] <= 0.5


def test_a_trickling_body_fails_at_the_deadline() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0", layer=b"z" * 100)  # never read to its end
    layer = json.loads(registry.manifests[(REPO, digest)][0])["layers"][0]["digest"]
    clock = FakeClock()
    registry.faults[("GET", f"/v2/{REPO}/blobs/{layer}")] = lambda: MockResponse(
        200, chunks=[b"z"] * 100, clock=clock, per_chunk=2.0)  # one byte every 2 s
    client, _ = _client(registry, clock, deadline=30)
    started = clock.now
    with pytest.raises(DeadlineExceededError, match=r"did not finish within 30 s") as caught:
        client.fetch_chart(_ref(registry), digest)
    assert clock.now - started <= 30 + 2
    assert caught.value.hints == (Hint.DEADLINE,)
    assert caught.value.retryable


def test_retries_never_outlast_the_deadline() -> None:
    registry = MemoryRegistry()
    registry.push_chart(REPO, "1.0.0")
    clock = FakeClock()

    def slow_503() -> MockResponse:
        clock.now += 4
        return MockResponse(503)

    registry.faults[("HEAD", f"/v2/{REPO}/manifests/1.0.0")] = slow_503
    client, transport = _client(registry, clock, deadline=5, retries=10)
    with pytest.raises(RegistryUnreachableError):
        client.resolve(_ref(registry), "1.0.0")
    assert clock.now - 1000 <= 5 + 4
    assert len(transport.requests) <= 2


def test_nested_calls_share_one_deadline() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0")
    clock = FakeClock()
    original = registry.handle

    def slow(request: Any) -> MockResponse:
        clock.now += 4  # each exchange takes 4 s: three of them overrun a 10 s operation
        return original(request)

    client = RegistryClient(transport=MockTransport(slow), clock=clock, sleep=clock.sleep,
                            deadline=10)
    with pytest.raises(DeadlineExceededError):
        client.fetch_chart(_ref(registry), digest)
    # each call alone is within its own deadline
    assert client.get_manifest(REPO, digest, host=registry.host).digest == digest


def test_tls_material_and_a_transport_of_ones_own_do_not_mix() -> None:
    from chartguard.oci import TLSConfig

    with pytest.raises(ValueError, match="configure TLS in the transport"):
        RegistryClient(transport=MockTransport(MemoryRegistry().handle),
                       tls=TLSConfig(ca_pem=b"x"))


# -- hints: what the caller (CLI flag, spec field) may change ---------------------------------


def _failing(error: Exception) -> MockTransport:
    def handle(_request: Any) -> MockResponse:
        raise error
    return MockTransport(handle)


@pytest.mark.parametrize(("error", "kind", "hints"), [
    (TLSError("CERTIFICATE_VERIFY_FAILED"), TLSVerificationError,
     (Hint.CA_CERTIFICATE, Hint.USE_PLAIN_HTTP)),
    (TLSError("TLSV13_ALERT_CERTIFICATE_REQUIRED", client_certificate_refused=True),
     TLSVerificationError, (Hint.CLIENT_CERTIFICATE,)),
    (ConnectError("connection failed"), RegistryUnreachableError, ()),
])
def test_transport_failures_become_typed_errors_with_hints(
        error: Exception, kind: type[Exception], hints: tuple[Hint, ...]) -> None:
    clock = FakeClock()
    client = RegistryClient(transport=_failing(error), clock=clock, sleep=clock.sleep)
    with pytest.raises(kind) as caught:
        client.resolve(ChartReference.parse("oci://registry.test/charts", "demo"), "1.0.0")
    assert getattr(caught.value, "hints", None) == hints
    assert "--" not in str(caught.value)  # flags are the CLI's words, not the library's


def test_plain_http_to_a_tls_registry_hints_at_tls() -> None:
    def handle(request: Any) -> MockResponse:
        if request.url.endswith("/v2/"):
            return MockResponse(400, b"Client sent an HTTP request to an HTTPS server.\n")
        return MockResponse(400, b"")

    client = RegistryClient(plain_http=True, transport=MockTransport(handle))
    with pytest.raises(RegistryResponseError, match="serves HTTPS") as caught:
        client.resolve(ChartReference.parse("oci://registry.test/charts", "demo"), "1.0.0")
    assert caught.value.hints == (Hint.USE_TLS, Hint.CA_CERTIFICATE)


def test_a_chart_whose_archive_names_another_chart_than_its_config_is_refused() -> None:
    """helm installs what the archive's Chart.yaml says: a config that says otherwise (a
    hand-built artifact) would make the resolved chart another one at install time."""
    registry = MemoryRegistry()
    renamed = registry.push_chart(REPO, "1.0.0", layer=chart_archive("other", "1.0.0"))
    bumped = registry.push_chart(REPO, "2.0.0", layer=chart_archive("demo", "1.0.0"))
    client, _ = _client(registry)
    with pytest.raises(ChartContentError, match=r"names chart demo 1\.0\.0 but its archive's "
                                                r"Chart\.yaml names other 1\.0\.0"):
        client.fetch_chart(_ref(registry), renamed)
    with pytest.raises(ChartContentError, match=r"demo 2\.0\.0 but .* demo 1\.0\.0"):
        client.fetch_chart(_ref(registry), bumped)


def test_a_chart_layer_that_is_no_archive_or_a_bomb_is_a_clear_error() -> None:
    registry = MemoryRegistry()
    client, _ = _client(registry)
    junk = registry.push_chart(REPO, "1.0.0", layer=b"not gzip at all")
    with pytest.raises(ChartContentError, match="not a gzipped tar archive"):
        client.fetch_chart(_ref(registry), junk)
    # 40 MiB of zeros before the Chart.yaml: refused after reading 32 MiB, not unpacked whole
    bomb = io.BytesIO()
    with tarfile.open(fileobj=bomb, mode="w:gz") as archive:
        info = tarfile.TarInfo("demo/zeros")
        info.size = 40 * 1024 * 1024
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    assert len(bomb.getvalue()) < 1024 * 1024
    digest = registry.push_chart(REPO, "2.0.0", layer=bomb.getvalue())
    with pytest.raises(ChartContentError, match="unpacks past 33554432 bytes"):
        client.fetch_chart(_ref(registry), digest)
    empty = registry.push_chart(REPO, "3.0.0", layer=_tgz_without_chart_yaml())
    with pytest.raises(ChartContentError, match=r"has no <chart>/Chart\.yaml"):
        client.fetch_chart(_ref(registry), empty)


def _tgz_without_chart_yaml() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        info = tarfile.TarInfo("demo/values.yaml")
        data = b"a: 1\n"
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("case", [*ENTRY_CASES, "second-chart", "subchart-symlink",
                                  "subchart-bomb"])
def test_an_archive_with_an_entry_helm_package_never_writes_is_refused(case: str) -> None:
    """The hostile entry comes after a good Chart.yaml: the whole archive is looked at."""
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0", layer=hostile_archive(case, "demo", "1.0.0"))
    client, _ = _client(registry)
    words = {"dotdot": "a path with '..'", "absolute": "an absolute path",
             "symlink": "a symbolic link", "hardlink": "a hard link", "device": "a device file",
             "fifo": "a FIFO", "second-chart": "more than one top directory",
             "subchart-symlink": "(in demo/charts/sub.tgz) holds a symbolic link",
             "subchart-bomb": "unpacks past 33554432 bytes"}[case]
    with pytest.raises(ChartContentError, match=re.escape(words)):
        client.fetch_chart(_ref(registry), digest)


def test_a_gzip_bomb_after_the_chart_yaml_is_refused_unread() -> None:
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0", layer=gzip_bomb("demo", "1.0.0", 64 << 20))
    client, _ = _client(registry)
    with pytest.raises(ChartContentError, match="unpacks past 33554432 bytes"):
        client.fetch_chart(_ref(registry), digest)


def test_a_chart_named_otherwise_than_its_repository_is_refused() -> None:
    """A signed chart copied into another chart's repository would install as that chart."""
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0", name="other")
    client, _ = _client(registry)
    with pytest.raises(ChartContentError, match=r"is the chart 'other', not 'demo'"):
        client.fetch_chart(_ref(registry), digest)


def test_a_subchart_archive_that_is_no_archive_is_named() -> None:
    chart_yaml = b"apiVersion: v2\nname: demo\nversion: 1.0.0\n"
    entries = []
    for name, data in (("demo/Chart.yaml", chart_yaml), ("demo/charts/sub.tgz", b"junk")):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        entries.append((info, data))
    registry = MemoryRegistry()
    digest = registry.push_chart(REPO, "1.0.0", layer=tgz(entries))
    client, _ = _client(registry)
    with pytest.raises(ChartContentError, match=r"holds demo/charts/sub\.tgz, which is not a "
                                                r"gzipped tar archive"):
        client.fetch_chart(_ref(registry), digest)

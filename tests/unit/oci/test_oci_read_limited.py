"""Bodies are capped while streaming, when no (or a lying) Content-Length warns in advance."""

from __future__ import annotations

import pytest

from chartguard.oci import DigestMismatchError, Limits, SizeLimitExceededError
from chartguard.oci._transport import read_limited, status_error
from chartguard_testing.memory_registry import MockResponse


def _response(data: bytes, content_length: int | None = None) -> tuple[MockResponse,
                                                                         MockResponse]:
    headers = {} if content_length is None else {"Content-Length": str(content_length)}
    response = MockResponse(200, headers=headers, chunks=[data])
    return response, response  # the body counts what was read of it: read_bytes


def test_stream_without_length_is_cut_off_past_the_limit() -> None:
    response, body = _response(b"x" * (1024 * 1024))
    with pytest.raises(SizeLimitExceededError, match="more than 100000 bytes"):
        read_limited(response, 100_000, "blob sha256:x")
    assert body.read_bytes < 200_000  # stopped reading soon after the limit


def test_lying_content_length_does_not_lift_the_limit() -> None:
    response, _ = _response(b"x" * 300_000, content_length=10)
    with pytest.raises(SizeLimitExceededError):
        read_limited(response, 100_000, "blob sha256:x")


def test_more_than_the_descriptor_says_is_refused_while_streaming() -> None:
    response, body = _response(b"x" * 500_000)
    with pytest.raises(DigestMismatchError, match="descriptor says 1000"):
        read_limited(response, 10 * 1024 * 1024, "blob sha256:x", expected=1000)
    assert body.read_bytes < 200_000


def test_content_length_over_the_limit_is_refused_before_reading() -> None:
    response, body = _response(b"x" * 1000, content_length=11 * 1024 * 1024)
    with pytest.raises(SizeLimitExceededError, match="11534336 bytes, over the limit"):
        read_limited(response, 10 * 1024 * 1024, "blob sha256:x")
    assert body.read_bytes == 0


def test_body_within_limits_is_returned_whole() -> None:
    response, _ = _response(b"chart-bytes", content_length=11)
    assert read_limited(response, 100, "blob", expected=11) == b"chart-bytes"


@pytest.mark.parametrize("length", [str(10**30), "18446744073709551616", "nonsense", "-1"])
def test_huge_or_bogus_content_length_never_breaks_the_cap(length: str) -> None:
    response, body = _response(b"x" * 300_000)
    response.headers["Content-Length"] = length
    with pytest.raises(SizeLimitExceededError):
        read_limited(response, 100_000, "blob sha256:x")
    assert body.read_bytes < 200_000 if not length.isdigit() else body.read_bytes == 0


def test_registry_error_codes_in_messages_are_short_and_plain() -> None:
    body = b'{"errors": [{"code": "DENIED"}, {"code": "' + b"x" * 500 + b'"}, ' \
           b'{"code": "a b\\nc"}]}'
    response = MockResponse(418, body)
    message = str(status_error(response, "blob sha256:x"))
    assert "418 DENIED" in message
    assert "xxxx" not in message
    assert "\n" not in message


def test_default_caps_are_10_mib_per_chart_layer_and_4_mib_per_manifest() -> None:
    assert Limits().max_layer_bytes == 10 * 1024 * 1024
    assert Limits().max_manifest_bytes == 4 * 1024 * 1024

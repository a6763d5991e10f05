"""Outside text and documents: bounded JSON parsing and escaping for display."""

from __future__ import annotations

import json

import pytest

from chartguard.untrusted import (
    MAX_JSON_DEPTH,
    UntrustedInputError,
    escape,
    loads_json,
    without_credentials,
)


def test_hundred_thousand_deep_arrays_are_a_clear_error_not_a_recursion_error() -> None:
    doc = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(UntrustedInputError, match="manifest is nested deeper than 64 levels"):
        loads_json(doc, what="manifest")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    doc = json.dumps({"a": "[" * 1000 + '\\"{' * 50}).encode()
    assert loads_json(doc, what="x") == json.loads(doc)


def test_depth_at_the_limit_parses_and_one_more_is_refused() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_json(ok, what="x") is not None
    with pytest.raises(UntrustedInputError):
        loads_json("[" + ok + "]", what="x")


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xff\xfe{}", "not UTF-8 JSON"), (b"{", "not valid JSON"), (b"", "not valid JSON")])
def test_not_json_is_named(data: bytes, reason: str) -> None:
    with pytest.raises(UntrustedInputError, match=reason):
        loads_json(data, what="token response")


def test_escape_neutralises_newlines_terminal_escapes_and_bidi() -> None:
    hostile = "ok\nFORGED LINE\x1b[31mred\u202eevil\x9b"
    shown = escape(hostile)
    assert shown == "ok\\x0aFORGED LINE\\x1b[31mred\\u202eevil\\x9b"


def test_escape_caps_length() -> None:
    assert escape("a" * 1000, limit=10) == "a" * 10 + "…"
    assert escape(42) == "42"


@pytest.mark.parametrize(("url", "shown"), [
    ("oci://user:pass@host:5000/charts", "oci://[redacted]@host:5000/charts"),
    ("oci://token@host/charts", "oci://[redacted]@host/charts"),
    ("https://host/charts?token=abc#frag", "https://host/charts?[redacted]"),
    ("user:pass@host/charts", "[redacted]@host/charts"),
    ("oci://host/path/with@sign", "oci://host/path/with@sign"),  # not in the authority
    ("oci://ghcr.io/charts", "oci://ghcr.io/charts"),
])
def test_without_credentials(url: str, shown: str) -> None:
    assert without_credentials(url) == shown

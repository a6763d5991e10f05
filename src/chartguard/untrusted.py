"""Text and documents that came from outside: a registry, a token endpoint, a layout, a payload.

Two rules, one place:

- :func:`loads_json` parses a JSON document without letting its shape hurt us: nesting that
  would exhaust the interpreter's stack becomes :class:`UntrustedInputError` (never a
  ``RecursionError`` traceback), and so does anything that is not UTF-8 JSON.
- :func:`without_credentials` is a URL as a message may quote it back: a password written
  into it (``oci://user:password@host``, ``?token=``) replaced by ``[redacted]``.
- :func:`escape` makes a string safe to put in a log line, a condition message, an Event or a
  terminal: control characters (newlines, ESC, DEL, C1), bidi overrides and lone surrogates are
  written as ``\\xNN``/``\\uNNNN`` escapes and the length is capped, so a signed payload
  cannot forge extra lines or colour the operator's terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# Deeper than any manifest, index, token or signature payload we read; well below the
# interpreter's recursion limit, so the check itself can never overflow.
MAX_JSON_DEPTH = 64
# What a message quotes of outside text at the most.
MAX_ESCAPED = 200

# A string token written as an "unrolled loop" (runs of plain bytes between escapes): the same
# tokens as "(?:[^"\\]|\\.)*", scanned about twice as fast (signatures hold long base64 strings).
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# C0 controls, DEL, C1 controls, bidi embeddings/overrides/isolates, line/paragraph
# separators, BOM, and lone surrogates (from surrogateescape decoding).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
                     "\ud800-\udfff]")


class UntrustedInputError(ValueError):
    """A document from outside is not what we accept (not JSON, too deep, not UTF-8)."""


def _depth(data: bytes) -> int:
    deepest = depth = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def loads_json(data: bytes | str, *, what: str, max_depth: int = MAX_JSON_DEPTH,
               object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
               ) -> Any:
    """Parse ``data`` as JSON; ``what`` names the document in the error (already safe text)."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    if _depth(raw) > max_depth:
        raise UntrustedInputError(f"{what} is nested deeper than {max_depth} levels")
    try:
        # decode ourselves: json.loads would guess UTF-16/32 from a BOM
        return json.loads(raw.decode("utf-8"), object_pairs_hook=object_pairs_hook)
    except RecursionError as exc:  # belt and braces: the scan above should have caught it
        raise UntrustedInputError(f"{what} is nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise UntrustedInputError(f"{what} is not UTF-8 JSON") from exc
    except ValueError as exc:
        raise UntrustedInputError(f"{what} is not valid JSON ({escape(str(exc))})") from exc


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: object, limit: int = MAX_ESCAPED) -> str:
    """``text`` as one safe line: unsafe characters escaped, at most ``limit`` characters kept."""
    value = text if isinstance(text, str) else str(text)
    if len(value) > limit:
        value = value[:limit] + "…"
    return _UNSAFE.sub(_escape_char, value)


def without_credentials(url: str) -> str:
    """``url`` with what was written before an ``@`` in its authority (``user:password@``)
    and its query and fragment replaced by ``[redacted]``: what a message quoting a URL a
    user wrote (a refused one too) may show."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    for mark in "?#":
        if mark in rest:
            rest = rest.partition(mark)[0] + mark + "[redacted]"
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "[redacted]@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"

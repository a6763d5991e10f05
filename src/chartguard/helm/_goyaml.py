"""Helm values encoded byte for byte as helm-controller encodes them before hashing.

helm-controller's configDigest (fluxcd/pkg ``chartutil.DigestValues``) is NOT a hash of JSON:
it converts the values with sigs.k8s.io/yaml's ``JSONObjectToYAMLObject``, sorts every mapping
by key, and encodes the result with go-yaml v2's emitter (a port of libyaml). A release moved
from Flux keeps its ``status.history[].configDigest`` only if we produce the same bytes, so this
module ports exactly the parts of that encoder that JSON-shaped values reach:

- numbers are Go ``float64`` (that is what decoding JSON or YAML gives helm-controller); an
  integral one within int64/uint64 prints as an integer, any other with ``strconv.FormatFloat
  (f, 'g', -1, 64)`` (``1.5``, ``1e-05``, ``1.2345675e+06``);
- a string is written plain unless go-yaml would read it back as something else (``"yes"``,
  ``"1.0"``, ``"2024-01-15"``, ``"1:20"`` are double-quoted), a string with a newline as a
  literal block (``|-``), and the emitter then falls back to single or double quotes exactly
  as libyaml's scalar analysis decides, folding long quoted or plain lines at 80 columns;
- block mappings with two-space indentation, sequences inside mappings not indented, empty
  collections as ``{}`` / ``[]``, keys over 128 bytes or with line breaks as ``? key``.

Reference vectors made by the Go code itself are in tests/unit/helm/data/.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: the order a mapping's keys are written in (default: sorted by their text)
KeyOrder = Callable[[Mapping[Any, Any]], Iterable[Any]]

_INDENT = 2
_WIDTH = 80
_MAX_SIMPLE_KEY = 128
_BREAKS = "\r\n\x85\u2028\u2029"
_PLAIN, _SINGLE, _DOUBLE, _LITERAL = "plain", "single", "double", "literal"

# --- what a plain scalar would resolve to (go-yaml v2 resolve.go) -----------------------------

_RESOLVED = frozenset((
    "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
    "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
    "~", "null", "Null", "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF",
    "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
))
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9](_?[0-9])*([eE][-+]?[0-9]+)?")
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_DATE = r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
_CLOCK = r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,][0-9]+)?"
# go-yaml v2 tries these time.Parse layouts: RFC 3339 with short fields and "T" or "t",
# "2006-1-2 15:4:5.999999999" (one space in a layout matches any run of spaces), "2006-1-2"
_TIMESTAMPS = (
    re.compile(_DATE + "[Tt]" + _CLOCK + r"(?:Z|[+-]([0-9]{2}):([0-9]{2}))"),
    re.compile(_DATE + " +" + _CLOCK),
    re.compile(_DATE),
)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_timestamp(text: str) -> bool:
    for layout in _TIMESTAMPS:
        match = layout.fullmatch(text)
        if match is None:
            continue
        year, month, day, *clock = (int(g) if g else 0 for g in match.groups())
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        days = _DAYS[month - 1] - (month == 2 and not leap) if 1 <= month <= 12 else 0
        if not 1 <= day <= days:
            continue
        if clock and not (clock[0] < 24 and clock[1] < 60 and clock[2] < 60):
            continue
        if len(clock) == 5 and (clock[3] > 24 or clock[4] > 60):
            continue
        return True
    return False


def _is_go_integer(text: str) -> bool:
    """``strconv.ParseInt(text, 0, 64)`` or ``ParseUint(text, 0, 64)`` succeeds."""
    sign = text[:1] if text[:1] in ("+", "-") else ""
    body = text[len(sign):]
    if not body:
        return False
    base = 10
    if body[0] == "0":
        prefix = body[1:2].lower()
        if len(body) >= 3 and prefix in ("b", "o", "x"):
            base, body = {"b": 2, "o": 8, "x": 16}[prefix], body[2:]
        else:
            base, body = 8, body[1:]
    value = 0
    for ch in body.lower():
        digit = "0123456789abcdefghijklmnopqrstuvwxyz".find(ch)
        if digit < 0 or digit >= base:
            return False
        value = value * base + digit
    if sign == "-":
        return value <= 1 << 63
    if sign == "+":
        return value < 1 << 63
    return value < 1 << 64


def _finite(text: str) -> bool:
    return not math.isinf(float(text.replace("_", "")))


def _resolves_to_string(text: str) -> bool:
    """Whether go-yaml v2 reads ``text``, written plain, back as the same string."""
    if text == "":
        return False  # null
    first = text[0]
    if first not in "+-0123456789yYnNtTfFoO~.":
        return True
    if text in _RESOLVED:
        return False
    if first in "yYnNtTfFoO~":
        return True
    if first == ".":
        return not (_DOT_FLOAT.fullmatch(text) and _finite(text))
    if _is_timestamp(text):
        return False
    plain = text.replace("_", "")
    if _is_go_integer(plain):
        return False
    return not (_YAML_FLOAT.fullmatch(plain) and _finite(plain))


def _requested_style(text: str) -> str:
    """go-yaml's ``stringv``: the style it asks the emitter for."""
    if "\n" in text:
        return _LITERAL
    plain_ok = _resolves_to_string(text) and not (
        text[:1] in "+-0123456789" and ":" in text and _BASE60_FLOAT.fullmatch(text))
    return _PLAIN if plain_ok else _DOUBLE


# --- numbers -----------------------------------------------------------------------------------

def _go_float(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 64)`` as go-yaml writes it."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)  # the shortest digits that round-trip, as Go's shortest formatting
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go's %g with the shortest precision switches at 1e-4 and 1e6
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _number(value: int | float) -> str:
    try:
        number = float(value)  # helm-controller holds every number as a float64
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    if number.is_integer() and -(2 ** 63) <= number < 2 ** 64:
        return str(int(number))
    return _go_float(number)


# --- the emitter (go-yaml v2 emitterc.go, the block styles only) --------------------------------

def _printable(ch: str) -> bool:
    code = ord(ch)
    return (code == 0x0A or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF
            or (0xE000 <= code <= 0xFFFD and code != 0xFEFF))


@dataclass(frozen=True)
class _Analysis:
    multiline: bool
    block_plain: bool
    single_quoted: bool
    block: bool


def _analyze(text: str) -> _Analysis:
    if not text:
        return _Analysis(multiline=False, block_plain=True, single_quoted=True, block=False)
    indicators = text.startswith(("---", "..."))
    line_breaks = special = False
    leading = trailing = trailing_space = break_space = space_break = False
    previous_space = previous_break = False
    preceded_by_blank = True
    last = len(text) - 1
    for i, ch in enumerate(text):
        followed_by_blank = i == last or text[i + 1] in " \t"
        if i == 0:
            if ch in "#,[]{}&*!|>'\"%@`" or (ch in "?:-" and followed_by_blank):
                indicators = True
        elif (ch == ":" and followed_by_blank) or (ch == "#" and preceded_by_blank):
            indicators = True
        if not _printable(ch):
            special = True
        if ch == " ":
            leading = leading or i == 0
            trailing = trailing or i == last
            trailing_space = trailing_space or i == last
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif ch in _BREAKS:
            line_breaks = True
            leading = leading or i == 0
            trailing = trailing or i == last
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_blank = ch in " \t\x00" or ch in _BREAKS
    no_plain = leading or trailing or break_space or space_break or special or line_breaks
    return _Analysis(
        multiline=line_breaks,
        block_plain=not (no_plain or indicators),
        single_quoted=not (break_space or space_break or special),
        block=not (trailing_space or space_break or special),
    )


_ESCAPES = {"\x00": "0", "\x07": "a", "\x08": "b", "\t": "t", "\n": "n", "\x0b": "v",
            "\x0c": "f", "\r": "r", "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N",
            "\xa0": "_", "\u2028": "L", "\u2029": "P"}


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return "\\" + _ESCAPES[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


class _Emitter:
    def __init__(self, order: KeyOrder | None = None) -> None:
        self.order: KeyOrder = order or _sorted_keys
        self.out: list[str] = []
        self.column = 0
        self.indent = -1
        self.indents: list[int] = []
        self.whitespace = True
        self.indention = True

    # primitives
    def put(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0

    def write_break(self, ch: str) -> None:
        if ch == "\n":
            self.put_break()
        else:
            self.out.append(ch)
            self.column = 0

    def increase_indent(self, *, flow: bool, indentless: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = _INDENT if flow else 0
        elif not indentless:
            self.indent += _INDENT

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if (not self.indention or self.column > indent
                or (self.column == indent and not self.whitespace)):
            self.put_break()
        if self.column < indent:
            self.put(" " * (indent - self.column))
        self.whitespace = self.indention = True

    def indicator(self, text: str, *, need_space: bool, is_whitespace: bool = False,
                  is_indention: bool = False) -> None:
        if need_space and not self.whitespace:
            self.put(" ")
        self.put(text)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention

    # nodes
    def node(self, value: Any, *, mapping: bool = False) -> None:
        if isinstance(value, Mapping):
            self.mapping(value)
        elif isinstance(value, list | tuple):
            self.sequence(value, mapping=mapping)
        else:
            text, style = _scalar(value)
            self.scalar(text, style, simple_key=False)

    def empty(self, start: str, end: str) -> None:
        self.indicator(start, need_space=True, is_whitespace=True)
        self.increase_indent(flow=True, indentless=False)
        self.indent = self.indents.pop()
        self.indicator(end, need_space=False)

    def mapping(self, value: Mapping[Any, Any]) -> None:
        if not value:
            self.empty("{", "}")
            return
        self.increase_indent(flow=False, indentless=False)
        for key in self.order(value):
            text = _key(key)
            self.write_indent()
            if not _analyze(text).multiline and len(text.encode("utf-8")) <= _MAX_SIMPLE_KEY:
                self.scalar(text, _requested_style(text), simple_key=True)
                self.indicator(":", need_space=False)
            else:
                self.indicator("?", need_space=True, is_indention=True)
                self.scalar(text, _requested_style(text), simple_key=False)
                self.write_indent()
                self.indicator(":", need_space=True, is_indention=True)
            self.node(value[key], mapping=True)
        self.indent = self.indents.pop()

    def sequence(self, value: list[Any] | tuple[Any, ...], *, mapping: bool) -> None:
        if not value:
            self.empty("[", "]")
            return
        self.increase_indent(flow=False, indentless=mapping and not self.indention)
        for item in value:
            self.write_indent()
            self.indicator("-", need_space=True, is_indention=True)
            self.node(item)
        self.indent = self.indents.pop()

    def scalar(self, text: str, style: str, *, simple_key: bool) -> None:
        analysis = _analyze(text)
        if simple_key and analysis.multiline:
            style = _DOUBLE
        if style == _PLAIN and (not analysis.block_plain or (not text and simple_key)):
            style = _SINGLE
        if style == _SINGLE and not analysis.single_quoted:
            style = _DOUBLE
        if style == _LITERAL and (not analysis.block or simple_key):
            style = _DOUBLE
        self.increase_indent(flow=True, indentless=False)
        if style == _PLAIN:
            self.plain(text, breaks_allowed=not simple_key)
        elif style == _SINGLE:
            self.single_quoted(text, breaks_allowed=not simple_key)
        elif style == _DOUBLE:
            self.double_quoted(text, breaks_allowed=not simple_key)
        else:
            self.literal(text)
        self.indent = self.indents.pop()

    def fold(self, *, spaces: bool, breaks_allowed: bool) -> bool:
        """Whether a space may become a line break here (libyaml folds past 80 columns)."""
        return breaks_allowed and not spaces and self.column > _WIDTH

    def plain(self, text: str, *, breaks_allowed: bool) -> None:
        if not self.whitespace:
            self.put(" ")
        spaces = breaks = False
        for i, ch in enumerate(text):
            if ch == " ":
                if (self.fold(spaces=spaces, breaks_allowed=breaks_allowed)
                        and text[i + 1:i + 2] != " "):
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            elif ch in _BREAKS:
                if not breaks and ch == "\n":
                    self.put_break()
                self.write_break(ch)
                self.indention = breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(ch)
                self.indention = spaces = breaks = False
        self.whitespace = self.indention = False

    def single_quoted(self, text: str, *, breaks_allowed: bool) -> None:
        self.indicator("'", need_space=True)
        spaces = breaks = False
        last = len(text) - 1
        for i, ch in enumerate(text):
            if ch == " ":
                if (self.fold(spaces=spaces, breaks_allowed=breaks_allowed) and 0 < i < last
                        and text[i + 1] != " "):
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            elif ch in _BREAKS:
                if not breaks and ch == "\n":
                    self.put_break()
                self.write_break(ch)
                self.indention = breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put("''" if ch == "'" else ch)
                self.indention = spaces = breaks = False
        self.indicator("'", need_space=False)
        self.whitespace = self.indention = False

    def double_quoted(self, text: str, *, breaks_allowed: bool) -> None:
        self.indicator('"', need_space=True)
        spaces = False
        last = len(text) - 1
        for i, ch in enumerate(text):
            if not _printable(ch) or ch in _BREAKS or ch in '"\\':
                self.put(_escape(ch))
                spaces = False
            elif ch == " ":
                if self.fold(spaces=spaces, breaks_allowed=breaks_allowed) and 0 < i < last:
                    self.write_indent()
                    if text[i + 1] == " ":
                        self.put("\\")
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put(ch)
                spaces = False
        self.indicator('"', need_space=False)
        self.whitespace = self.indention = False

    def literal(self, text: str) -> None:
        self.indicator("|", need_space=True)
        if text[:1] == " " or (text and text[0] in _BREAKS):
            self.indicator(str(_INDENT), need_space=False)
        if not text or text[-1] not in _BREAKS:
            self.indicator("-", need_space=False)
        elif len(text) == 1 or text[-2] in _BREAKS:
            self.indicator("+", need_space=False)
        self.put_break()
        self.indention = self.whitespace = True
        breaks = True
        for ch in text:
            if ch in _BREAKS:
                self.write_break(ch)
                self.indention = breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(ch)
                self.indention = breaks = False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    # Go's JSON decoder turns an unpaired surrogate escape into U+FFFD
    return _SURROGATE.sub("\ufffd", value)


def _sorted_keys(mapping: Mapping[Any, Any]) -> list[Any]:
    return sorted(mapping, key=_key)


def _key(key: object) -> str:
    """A mapping key as the string helm-controller has (YAML keys become JSON object keys)."""
    if isinstance(key, str):
        return _text(key)
    return _scalar(key)[0]


def _scalar(value: object) -> tuple[str, str]:
    if value is None:
        return "null", _PLAIN
    if isinstance(value, bool):
        return ("true" if value else "false"), _PLAIN
    if isinstance(value, int | float):
        return _number(value), _PLAIN
    text = _text(value if isinstance(value, str) else str(value))
    return text, _requested_style(text)


def encode_values(values: Mapping[str, Any]) -> bytes:
    """The bytes helm-controller hashes for ``values``: empty for no values at all."""
    if not values:
        return b""
    emitter = _Emitter()
    emitter.mapping(values)
    emitter.write_indent()  # document end
    return "".join(emitter.out).encode("utf-8")


def encode_document(document: Mapping[str, Any], order: KeyOrder) -> str:
    """``document`` as go-yaml v2's emitter writes it, mappings in ``order`` (sigs.k8s.io/yaml's
    ``Marshal``, i.e. ``flux … --export`` and ``kubectl -o yaml``, with go-yaml's key order)."""
    emitter = _Emitter(order)
    emitter.mapping(document)
    emitter.write_indent()
    return "".join(emitter.out)

"""Helm's ``--set`` parser (``helm.sh/helm/pkg/strvals``), as helm-controller runs it for a
``valuesFrom`` entry with ``targetPath``: ``ParseInto("<targetPath>=<value>", values)``.

A port of Helm's parser, step for step, because users' values depend on its quirks: dots and
``[n]`` in the path, ``\\`` escaping the next character, ``{a,b}`` lists, ``,`` starting another
assignment, typed scalars (``true``, ``null``, ``42``; ``"..."``-quoted values stay strings via
``ParseIntoString``), at most 30 nested names and index 65536. Like Go's maps and slices, the
dicts and lists it walks into are changed in place: a list it extends is a new list.

Errors say what went wrong; ``in_value`` tells whether it arose while reading the value (which
may be a Secret's: the caller then must not show the message's quoted text).
"""

from __future__ import annotations

import re
from typing import Any

MAX_INDEX = 65536
MAX_NESTED_NAME_LEVEL = 30
_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = 2**63


class StrvalsError(ValueError):
    """The ``--set`` expression cannot be applied."""

    def __init__(self, message: str, *, in_value: bool) -> None:
        super().__init__(message)
        self.in_value = in_value


class _EndOfInputError(Exception):
    """The input ended (Go's io.EOF: the normal end of parsing)."""


class _NotListError(Exception):
    """The value does not start with ``{`` (Go's ErrNotList)."""


def parse_into(expression: str, dest: dict[str, Any], *, value_start: int,
               as_string: bool = False) -> None:
    """Apply ``path=value`` to ``dest``; ``value_start`` is where the value begins (after '=')."""
    _Parser(expression, dest, as_string, value_start).parse()


def typed_value(text: str, as_string: bool = False) -> Any:
    """Helm's ``typedVal``: true/false/null (any case), ``0``, 64-bit integers not starting
    with 0; everything else stays a string."""
    if as_string:
        return text
    folded = text.casefold()
    if folded == "true":
        return True
    if folded == "false":
        return False
    if folded == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and _INT.fullmatch(text):
        number = int(text)
        if -_INT64 <= number < _INT64:
            return number
    return text


class _Parser:
    def __init__(self, text: str, data: dict[str, Any], as_string: bool,
                 value_start: int) -> None:
        self.text = text
        self.pos = 0
        self.data = data
        self.as_string = as_string
        self.value_start = value_start

    # -- reading -----------------------------------------------------------------------------

    def _read(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def _unread(self) -> None:
        self.pos -= 1

    def _until(self, stop: str) -> tuple[str, str | None]:
        """Characters up to one of ``stop`` (consumed, returned second; None at the end);
        ``\\`` takes the next character literally."""
        out: list[str] = []
        while True:
            ch = self._read()
            if ch is None:
                return "".join(out), None
            if ch in stop:
                return "".join(out), ch
            if ch == "\\":
                nxt = self._read()
                if nxt is None:
                    return "".join(out), None
                out.append(nxt)
            else:
                out.append(ch)

    def _error(self, message: str) -> StrvalsError:
        return StrvalsError(message, in_value=self.pos > self.value_start)

    # -- grammar -----------------------------------------------------------------------------

    def parse(self) -> None:
        while True:
            try:
                self._key(self.data, 0)
            except _EndOfInputError:
                return

    def _key(self, data: dict[str, Any], level: int) -> None:
        key, last = self._until("=[,.")
        if last is None:
            if not key:
                raise _EndOfInputError
            raise self._error(f"key {key!r} has no value")
        if last == "[":
            index = self._index()
            current = data.get(key, [])
            if key in data and not isinstance(current, list):
                raise self._error(f"{key!r} is a {_kind(current)}, not a list")
            new, eof = self._list_item(current, index, level)
            _set(data, key, new)
            if eof:
                raise _EndOfInputError
            return
        if last == "=":
            try:
                _set(data, key, self._value_list())
            except _EndOfInputError:
                _set(data, key, "")
                raise
            except _NotListError:
                _set(data, key, typed_value(self._value(), self.as_string))
            return
        if last == ",":
            _set(data, key, "")
            raise self._error(f"key {key!r} has no value (cannot end with ,)")
        # last == "."
        level += 1
        if level > MAX_NESTED_NAME_LEVEL:
            raise self._error("value name nested level is greater than maximum supported "
                              f"nested level of {MAX_NESTED_NAME_LEVEL}")
        inner = data.get(key, {})
        if key in data and not isinstance(inner, dict):
            raise self._error(f"{key!r} is a {_kind(inner)}, not a map")
        try:
            self._key(inner, level)
        except _EndOfInputError:
            if inner:
                _set(data, key, inner)
            raise
        if not inner:
            raise self._error(f"key map {key!r} has no value")
        _set(data, key, inner)

    def _index(self) -> int:
        text, last = self._until("]")
        if last is None:
            raise _EndOfInputError  # Go wraps io.EOF here, and the parse then ends without an error
        if not _INT.fullmatch(text):
            raise self._error(f"error parsing index: {text!r} is not a number")
        return int(text)

    def _list_item(self, items: list[Any], index: int, level: int) -> tuple[list[Any], bool]:
        """The list with the item at ``index`` set; True second when the input ended early
        (Go returns io.EOF with the list as it was)."""
        if index < 0:
            raise self._error(f"negative {index} index not allowed")
        rest, last = self._until("[.=")
        if rest:
            raise self._error(f"unexpected data at end of array index: {rest!r}")
        if last is None:
            return items, True
        if last == "=":
            try:
                value: Any = self._value_list()
            except _EndOfInputError:
                value = ""
            except _NotListError:
                value = typed_value(self._value(), self.as_string)
            return self._set_index(items, index, value), False
        if last == "[":
            try:
                next_index = self._index()
            except _EndOfInputError:
                return items, True
            nested: list[Any] = []
            if len(items) > index and items[index] is not None:
                if not isinstance(items[index], list):
                    raise self._error(f"item {index} is a {_kind(items[index])}, not a list")
                nested = items[index]
            new, eof = self._list_item(nested, next_index, level)
            if eof:
                return items, True
            return self._set_index(items, index, new), False
        # last == "."
        inner: dict[str, Any] = {}
        if len(items) > index:
            if not isinstance(items[index], dict):
                items[index] = {}  # Go: "indices out of order", start an empty map
            inner = items[index]
        try:
            self._key(inner, level)
        except _EndOfInputError:
            return items, True
        return self._set_index(items, index, inner), False

    def _set_index(self, items: list[Any], index: int, value: Any) -> list[Any]:
        if index > MAX_INDEX:
            raise self._error(f"index of {index} is greater than maximum supported index of "
                              f"{MAX_INDEX}")
        if len(items) <= index:
            items = [*items, *([None] * (index + 1 - len(items)))]
        items[index] = value
        return items

    def _value(self) -> str:
        return self._until(",")[0]

    def _value_list(self) -> list[Any]:
        ch = self._read()
        if ch is None:
            raise _EndOfInputError
        if ch != "{":
            self._unread()
            raise _NotListError
        items: list[Any] = []
        while True:
            text, last = self._until(",}")
            if last is None:
                raise self._error("list must terminate with '}'")
            items.append(typed_value(text, self.as_string))
            if last == "}":
                if (after := self._read()) is not None and after != ",":
                    self._unread()
                return items


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    if key:
        data[key] = value


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__ if not isinstance(value, str) else "string"

"""Label and field selectors, as the query parameters ``labelSelector``/``fieldSelector``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from chartguard_testing.apiserver.resources import ApiError, Obj

Predicate = Callable[[Obj], bool]

_SET_EXPR = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_KEY = re.compile(r"[A-Za-z0-9][\w./-]*")
_VALUE = re.compile(r"(?:[A-Za-z0-9][\w.-]*)?")


def _bad(term: str, selector: str = "label") -> ApiError:
    return ApiError(400, "BadRequest", f"unable to parse {selector} selector requirement: "
                    f"{term!r}")


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set expressions hold commas)."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _label_term(term: str) -> Predicate:
    m = _SET_EXPR.match(term)
    if m:
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if not _KEY.fullmatch(key) or not all(_VALUE.fullmatch(v) for v in values):
            raise _bad(term)
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (s.strip() for s in term.split(op, 1))
            if not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
                raise _bad(term)
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        if not _KEY.fullmatch(key):
            raise _bad(term)
        return lambda labels: key not in labels
    if _KEY.fullmatch(term):
        return lambda labels: term in labels
    raise _bad(term)


def label_selector(selector: str | None) -> Predicate:
    """A predicate over objects: =, ==, !=, in, notin, exists, !exists."""
    if not selector:
        return lambda _obj: True
    terms = [_label_term(t) for t in _split(selector)]

    def match(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(t(labels) for t in terms)
    return match


def _field(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def field_selector(selector: str | None) -> Predicate:
    """``metadata.name=x`` and other dotted paths compared as strings (=, ==, !=)."""
    if not selector:
        return lambda _obj: True
    terms: list[Predicate] = []
    for term in _split(selector):
        negate = "!=" in term
        if "=" not in term:
            raise _bad(term, "field")
        path, value = (s.strip() for s in re.split(r"!=|==|=", term, maxsplit=1))

        def check(obj: Obj, path: str = path, value: str = value, negate: bool = negate,
                  ) -> bool:
            return (_field(obj, path) == value) != negate
        terms.append(check)
    return lambda obj: all(t(obj) for t in terms)

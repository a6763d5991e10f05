"""Kubernetes label selectors (``app=x,tier!=db,env in (a,b),!legacy``) as kopf label filters.

kopf filters on labels with a mapping of label -> value, ``kopf.PRESENT``/``kopf.ABSENT`` or a
callable; every Kubernetes selector requirement maps onto one of these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import kopf

_SET = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*$")


class SelectorError(ValueError):
    """The selector is not a Kubernetes label selector."""


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _not(value: str) -> Callable[[Any], bool]:
    return lambda v, **_: v != value


def _among(values: frozenset[str], inside: bool) -> Callable[[Any], bool]:
    return lambda v, **_: (v in values) == inside


def label_filter(selector: str) -> dict[str, Any]:
    """kopf's ``labels=`` filter for ``selector`` (empty: no filter)."""
    out: dict[str, Any] = {}
    for part in _split(selector):
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            if m.group(2) == "in":
                out[m.group(1)] = _among(values, True)
            else:
                out[m.group(1)] = _among(values, False)
        elif m := _EQ.match(part):
            out[m.group(1)] = _not(m.group(3)) if m.group(2) == "!=" else m.group(3)
        elif m := _EXISTS.match(part):
            out[m.group(2)] = kopf.ABSENT if m.group(1) else kopf.PRESENT
        else:
            raise SelectorError(f"{part.strip()!r} is not a label selector requirement "
                                "(key=value, key!=value, key in (a,b), key notin (a,b), key, "
                                "!key)")
    return out

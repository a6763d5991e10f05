"""Helm's release records as data: what helm's storage holds for one revision of a release.

Pure: no I/O. (Skeleton: the decoders land with the ``helm`` branch.)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


@dataclass(frozen=True)
class TestHook:
    """The last run of one Helm test hook."""

    last_started: str = ""
    last_completed: str = ""
    phase: str = ""  # Succeeded | Failed | Running | Unknown


@dataclass(frozen=True)
class StoredRelease:
    """One revision of a release as helm's storage (the Secret driver) holds it."""

    name: str
    namespace: str
    version: int
    #: deployed | failed | pending-install | pending-upgrade | pending-rollback | superseded |
    #: uninstalled | uninstalling | unknown
    status: str
    chart_name: str
    chart_version: str
    app_version: str
    #: ``values_digest`` of the values the revision was released with
    config_digest: str
    #: ``sha256:<hex>`` of the decoded release record: identifies this exact revision
    digest: str
    first_deployed: str
    last_deployed: str
    deleted: str = ""
    description: str = ""
    test_hooks: Mapping[str, TestHook] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pending(self) -> bool:
        return self.status in PENDING


class ReleaseStorage(Protocol):
    def history(self, namespace: str, name: str) -> list[StoredRelease]:
        """Every stored revision of release ``name`` in ``namespace``, newest first; [] when
        there is none."""
        ...


def values_digest(values: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of ``values`` as Go's ``encoding/json`` writes them: keys sorted,
    compact, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, every number a float64 (so ``1``
    and ``1.0`` are one value, as they are once helm has read them back).

    The one rule naming a set of values: the values a reconcile composes and the config helm's
    storage holds are compared through it (``lastAttemptedConfigDigest``, history
    ``configDigest``). ``ValueError`` for what JSON cannot hold (NaN, infinities, other types).
    """
    return "sha256:" + hashlib.sha256(go_json(values).encode("utf-8")).hexdigest()


_GO_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\b": "\\b", "\f": "\\f", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> str:
    """``value`` encoded as Go's ``json.Marshal`` of ``map[string]interface{}`` does.

    Iterative (an explicit stack), so no document is too deep to encode.
    """
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            out.append(item.text)
        elif isinstance(item, Mapping):
            keys = sorted(item)
            if any(not isinstance(k, str) for k in keys):
                raise ValueError("values: map keys must be strings")
            stack.append(_Text("}"))
            for i, key in reversed(list(enumerate(keys))):
                stack.append(item[key])
                stack.append(_Text(("," if i else "") + _go_string(key) + ":"))
            out.append("{")
        elif isinstance(item, list | tuple):
            stack.append(_Text("]"))
            for i in reversed(range(len(item))):
                stack.append(item[i])
                if i:
                    stack.append(_Text(","))
            out.append("[")
        else:
            out.append(_go_scalar(item))
    return "".join(out)


@dataclass(frozen=True)
class _Text:
    text: str


def _go_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int | float):
        return _go_float(value)
    raise ValueError(f"values: a {type(value).__name__} is not a JSON value")


def _go_string(text: str) -> str:
    chars = []
    for ch in text:
        if ch in _GO_ESCAPES:
            chars.append(_GO_ESCAPES[ch])
        elif ch < " ":
            chars.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":
            chars.append("\ufffd")  # Go writes invalid UTF-8 as U+FFFD
        else:
            chars.append(ch)
    return '"' + "".join(chars) + '"'


def _go_float(number: float) -> str:
    """Go's float64 encoding: shortest digits, plain unless below 1e-6 or from 1e21 on."""
    try:
        value = float(number)
    except OverflowError:
        raise ValueError(f"values: the number {number} is too large for JSON") from None
    if not math.isfinite(value):
        raise ValueError(f"values: {value} is not a JSON number")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)  # shortest digits, exponent of at least two digits, as Go's 'e'
        mantissa, _, exponent = text.partition("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        sign, digits = exponent[0], exponent[1:].lstrip("0")
        if sign == "-" and len(digits) < 2:
            return f"{mantissa}e-{digits}"  # Go trims e-07 to e-7
        return f"{mantissa}e{sign}{digits.rjust(2, '0')}"
    return format(Decimal(repr(value)).normalize(), "f")

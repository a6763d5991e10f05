"""Reading one custom-resource document field by field, collecting every error with its path.

The API server's schema validation cannot be relied on (the test emulator and some clusters do
none), so the models re-check what the CRD declares: types, required fields, enums, patterns,
lengths, and unknown fields (as ``kubectl apply --validate=strict`` would report them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from chartguard.api.durations import check_flux_duration
from chartguard.api.errors import FieldError

T = TypeVar("T")

#: a JSON value frozen for use inside immutable models (dicts -> MappingProxyType, lists -> tuple)
Frozen = Any

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def freeze(value: Any) -> Frozen:
    """A read-only deep copy of a JSON value."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Frozen) -> Any:
    """A plain, mutable JSON copy of a frozen value (for YAML/JSON output or helm values)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def dns_subdomain_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 subdomain (object names), or None."""
    if len(name) > 253:
        return f"must be at most 253 characters, {name!r} has {len(name)}"
    if not _DNS_SUBDOMAIN.match(name):
        return (f"{name!r} is not a DNS-1123 subdomain: use lower case letters, digits, '-' and "
                "'.', starting and ending with a letter or digit")
    return None


def dns_label_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 label (namespaces), or None."""
    if len(name) > 63:
        return f"must be at most 63 characters, {name!r} has {len(name)}"
    if not _DNS_LABEL.match(name):
        return (f"{name!r} is not a DNS-1123 label: use lower case letters, digits and '-', "
                "starting and ending with a letter or digit")
    return None


class Fields:
    """One JSON object at ``path``; getters record problems in the shared ``errors`` list."""

    def __init__(self, data: Mapping[str, Any], path: str, errors: list[FieldError]) -> None:
        self.data = data
        self.path = path
        self.errors = errors

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.errors.append(FieldError(self.at(key) if key else self.path, message))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def reject_unknown(self, known: Iterable[str], kind: str) -> None:
        allowed = set(known)
        for key in self.data:
            if key not in allowed:
                self.error(key, f"unknown field: {kind} has no such field (check the spelling)")

    def reject_present(self, keys: Iterable[str], why: str) -> None:
        for key in keys:
            if key in self.data:
                self.error(key, why)

    def _get(self, key: str, expected: type[T] | tuple[type, ...], what: str) -> T | None:
        value = self.data.get(key)
        if value is None:
            return None
        # bool is an int in Python; JSON keeps them apart, and so does the API server
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            self.error(key, f"must be {what}, got {type(value).__name__} {value!r}")
            return None
        return value  # type: ignore[return-value]

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        default: str | None = None,
        enum: Sequence[str] = (),
        pattern: re.Pattern[str] | None = None,
        pattern_hint: str = "",
        min_length: int = 0,
        max_length: int | None = None,
        quote: Callable[[str], str] = repr,
    ) -> str | None:
        """``quote``: how a message shows the value (a URL without its credentials)."""
        value = self._get(key, str, "a string")
        if value is None:
            if required and key not in self.data:
                self.error(key, "required field is missing")
            elif required:
                self.error(key, "required field must be a non-null string")
            return default
        if enum and value not in enum:
            self.error(key, f"unsupported value {quote(value)}: must be one of {', '.join(enum)}")
            return default
        if len(value) < min_length:
            self.error(key, "must not be empty" if min_length == 1
                       else f"must be at least {min_length} characters")
            return default
        if max_length is not None and len(value) > max_length:
            self.error(key, f"must be at most {max_length} characters, got {len(value)}: "
                            f"{quote(value)}")
            return default
        if pattern is not None and not pattern.match(value):
            hint = f" ({pattern_hint})" if pattern_hint else ""
            self.error(key, f"{quote(value)} does not match {pattern.pattern}{hint}")
            return default
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else value

    def optional_boolean(self, key: str) -> bool | None:
        return self._get(key, bool, "true or false")

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self._get(key, int, "an integer")
        return default if value is None else value

    def duration(
        self, key: str, *, required: bool = False, allow_hours: bool = True
    ) -> timedelta | None:
        if required and key not in self.data:
            self.error(key, "required field is missing: write a Go duration, e.g. 10m or 1h")
            return None
        text = self.string(key, required=required)
        if text is None:
            return None
        try:
            return check_flux_duration(text, allow_hours=allow_hours)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def strings(self, key: str) -> tuple[str, ...]:
        items = self._get(key, list, "a list of strings")
        if items is None:
            return ()
        out: list[str] = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                out.append(item)
            else:
                self.error(f"{key}[{i}]", f"must be a string, got {item!r}")
        return tuple(out)

    def string_map(self, key: str) -> Mapping[str, str]:
        value = self._get(key, Mapping, "a map of strings")
        if value is None:
            return MappingProxyType({})
        for k, v in value.items():
            if not isinstance(v, str):
                self.error(f"{key}.{k}", f"must be a string, got {v!r}")
        return MappingProxyType({str(k): v for k, v in value.items() if isinstance(v, str)})

    def section(self, key: str, *, required: bool = False) -> Fields | None:
        value = self._get(key, Mapping, "an object")
        if value is None:
            if required:
                self.error(key, "required field is missing")
            return None
        return Fields(value, self.at(key), self.errors)

    def sections(self, key: str) -> list[Fields]:
        items = self._get(key, list, "a list of objects")
        if items is None:
            return []
        out: list[Fields] = []
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                out.append(Fields(item, f"{self.at(key)}[{i}]", self.errors))
            else:
                self.error(f"{key}[{i}]", f"must be an object, got {item!r}")
        return out

    def each(self, key: str, parse: Callable[[Fields], T | None]) -> tuple[T, ...]:
        results = (parse(item) for item in self.sections(key))
        return tuple(r for r in results if r is not None)

    def raw(self, key: str) -> Frozen:
        return freeze(self.data.get(key))

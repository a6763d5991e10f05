"""A values document (the YAML at a ConfigMap's or Secret's key) read as Helm and Flux read it,
within bounds.

Flux reads values with ``sigs.k8s.io/yaml`` (go-yaml v2, then JSON), and so does helm for
``-f``; PyYAML's YAML 1.1 defaults differ in ways users would see, so plain scalars resolve as
go-yaml v2 resolves them: ``y``/``n`` are booleans, ``1:30`` and ``2024-01-01`` stay strings (no
sexagesimal numbers, no timestamps), ``1e3`` is a number. Only the first document counts.

A document from a ConfigMap or Secret is outside input: it is refused above
``MAX_VALUES_BYTES``, nested deeper than ``MAX_VALUES_DEPTH`` or expanding (through aliases,
"billion laughs") to more than ``MAX_VALUES_NODES`` values, all checked on the event stream
before anything is built. The result is plain JSON data (dict, list, str, int, float, bool,
None), each alias expanded into its own copy, as Go's decoder gives.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml

MAX_VALUES_BYTES = 4 * 1024 * 1024
MAX_VALUES_DEPTH = 100
MAX_VALUES_NODES = 1_000_000

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ValuesDocumentError(ValueError):
    """The document cannot be used as values. ``str()`` never quotes the document; ``detail``
    may (the YAML parser's words), so it is shown only for documents that are not secret."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class _Loader(_Base):  # type: ignore[misc]
    """Safe loading, with go-yaml v2's resolution of plain scalars."""

    yaml_implicit_resolvers: ClassVar[dict[str | None, list[tuple[str, re.Pattern[str]]]]] = {}
    bool_values: ClassVar[dict[str, bool]] = {
        **yaml.constructor.SafeConstructor.bool_values, "y": True, "n": False}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
        """Keys become strings as they are read (Python would merge ``1`` and ``true``)."""
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _key(self.construct_object(key_node, deep=True))
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _resolver(tag: str, pattern: str, first: str) -> None:
    _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(pattern), list(first))


_resolver("bool", r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE"
                  r"|on|On|ON|off|Off|OFF)$", "yYnNtTfFoO")
_resolver("null", r"^(?:~|null|Null|NULL|)$", "~nN")
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])
_resolver("int", r"^[-+]?(?:0b[0-1_]+|0[0-7_]+|0x[0-9a-fA-F_]+|0|[1-9][0-9_]*)$",
          "-+0123456789")
_resolver("float", r"^(?:[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
                   r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789.")
_resolver("merge", r"^(?:<<)$", "<")


def load_values(data: bytes | str) -> dict[str, Any]:
    """The map of values in ``data`` (an empty document is no values)."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_VALUES_BYTES:
        raise ValuesDocumentError(f"the document has {size} bytes, more than the "
                                  f"{MAX_VALUES_BYTES // (1024 * 1024)} MiB a values document "
                                  "may have")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            message = f"the document is not UTF-8 text (byte {err.start})"
            raise ValuesDocumentError(message) from None
    else:
        text = data
    try:
        _check_shape(text)
        # _Loader is a SafeLoader with go-yaml's scalar rules
        document = next(iter(yaml.load_all(text, Loader=_Loader)), None)
    except yaml.YAMLError as err:
        raise _syntax_error(err) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValuesDocumentError(f"the document is a {_type_name(document)}, not a map of "
                                  "values (key: value lines)")
    plain = _plain(document)
    assert isinstance(plain, dict)
    return plain


def _check_shape(text: str) -> None:
    """Depth and expanded size from the event stream (no node is built): aliases count as the
    size of what they name; an alias inside the collection it names is refused."""
    open_: list[list[Any]] = []  # [anchor, expanded size so far]
    sizes: dict[str, int] = {}
    total = 0

    def add(n: int) -> None:
        nonlocal total
        if open_:
            open_[-1][1] += n
            count = open_[-1][1]
        else:
            total += n
            count = total
        if count > MAX_VALUES_NODES:
            raise ValuesDocumentError(f"the document expands to more than {MAX_VALUES_NODES} "
                                      "values (aliases included)")

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            open_.append([event.anchor, 1])
            if len(open_) > MAX_VALUES_DEPTH:
                raise ValuesDocumentError(f"the document is nested deeper than "
                                          f"{MAX_VALUES_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, n = open_.pop()
            if anchor is not None:
                sizes[anchor] = n
            add(n)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            add(1)
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_):
                raise ValuesDocumentError("the document has an alias inside the collection it "
                                          "names (a recursive structure)")
            # an undefined alias fails when loading
            add(sizes.get(event.anchor or "", 1))


def _syntax_error(err: yaml.YAMLError) -> ValuesDocumentError:
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or getattr(err, "reason", None) or ""
    return ValuesDocumentError(f"the document is not valid YAML{where}", str(problem))


def _plain(value: Any) -> Any:
    """A fresh copy as JSON data: every alias its own copy, map keys strings (go-yaml gives
    integers and booleans as their text), nothing JSON cannot hold. Depth is bounded by
    :func:`_check_shape`."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValuesDocumentError("the document has .inf or .nan, which JSON cannot hold "
                                      "(values must be JSON values)")
        return value
    raise ValuesDocumentError(f"the document has a value of YAML type {_type_name(value)}, "
                              "which Helm values cannot hold")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    raise ValuesDocumentError(f"the document has a map key of YAML type {_type_name(key)}; "
                              "keys must be strings")


def _type_name(value: Any) -> str:
    names = {dict: "map", list: "list", str: "string", bool: "boolean", int: "integer",
             float: "number", bytes: "!!binary", set: "!!set", tuple: "!!omap/!!pairs entry"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__

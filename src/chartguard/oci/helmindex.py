"""A Helm repository's ``index.yaml``, read within bounds, and the chart version it resolves to.

The index comes from outside (an HTTP server), so before anything is built from it:

- it is refused above :data:`MAX_INDEX_BYTES` (source-controller's ``MaxIndexSize``, 50 MiB);
- it is built in one pass over the YAML event stream (libyaml's parser when present; a JSON
  index parses as YAML too), with the safe loader's scalar resolution (timestamps kept as
  text, any tag but the plain ones refused) and only the fields that are read: nesting deeper
  than :data:`MAX_INDEX_DEPTH`, or aliases expanding ("billion laughs") to more than
  :data:`MAX_INDEX_NODES` values, is refused as soon as it is seen. Measured on an 8.7 MB
  index of 20,000 chart versions: +25 MiB peak RSS, where ``yaml.load`` with libyaml's safe
  loader takes +283 MiB and six times as long.

Then as source-controller's ``IndexFromBytes``: ``apiVersion`` is required, and a chart version
that is not valid (no name, no version, a name with a path separator, ``urls`` not a list of
strings) is dropped, not fatal. Entries are kept per chart name, newest first.

Version selection is source-controller's ``getChartVersion``: a version string equal to an
entry's is taken as is; otherwise the highest version (strict semver, a leading ``v``
allowed) that the Masterminds constraint allows (``*`` or empty: the latest stable), ties
going to the entry created last.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from chartguard.api.constraints import Version
from chartguard.oci.errors import OCIError, SizeLimitExceededError, VersionNotFoundError
from chartguard.oci.limits import MiB
from chartguard.oci.versions import parse_constraint
from chartguard.untrusted import escape

#: the largest index read (source-controller's ``helm.MaxIndexSize``)
MAX_INDEX_BYTES = 50 * MiB
#: nesting of the index document (an index is five levels deep)
MAX_INDEX_DEPTH = 64
#: values the document expands to, aliases counted at their expanded size
MAX_INDEX_NODES = 5_000_000
_HEX64 = re.compile(r"[0-9a-f]{64}")

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InvalidIndexError(OCIError):
    """The index is not a Helm repository index chartguard reads (not YAML, no apiVersion,
    too deep, expanding too far)."""


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1 plain-scalar resolution as the safe loader does it, timestamps kept as text
    (``created`` is only compared)."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {  # type: ignore[misc]
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()}


_RESOLVER = _Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
_COLLECTION_TAGS = frozenset({f"{_TAG}map", f"{_TAG}seq"})
#: the fields of a chart version chartguard reads (the rest is not built)
_ENTRY_FIELDS = frozenset({"name", "version", "urls", "digest", "created"})
_SKIPPED = object()


@dataclass(frozen=True)
class IndexEntry:
    """One chart version of the index."""

    name: str
    version: str
    urls: tuple[str, ...]
    #: ``sha256:<hex>`` of the .tgz when the index gives one (``helm repo index`` does)
    digest: str
    created: str


@dataclass(frozen=True)
class HelmIndex:
    """The index's valid chart versions by chart name, newest first."""

    entries: Mapping[str, tuple[IndexEntry, ...]]
    #: chart versions dropped as invalid (for the log)
    dropped: int = 0

    @property
    def versions(self) -> int:
        return sum(len(v) for v in self.entries.values())


def _wanted(path: tuple[object, ...]) -> bool:
    """Whether the node at ``path`` (keys and indexes from the root) is built: the top-level
    ``apiVersion`` and ``entries``, and of each chart version only :data:`_ENTRY_FIELDS`."""
    depth = len(path)
    if depth == 1:
        return path[0] in ("apiVersion", "entries")
    if depth == 4:
        return path[3] in _ENTRY_FIELDS
    return path[0] == "entries"


class _Frame:
    __slots__ = ("anchor", "filtered", "key", "path", "size", "value")

    def __init__(self, value: dict[Any, Any] | list[Any] | None, anchor: str | None,
                 path: tuple[object, ...], filtered: bool) -> None:
        self.value = value  # None: not built (outside what is read)
        self.anchor = anchor
        self.path = path
        self.filtered = filtered  # children are built only where _wanted says
        self.key: object = _SKIPPED  # a mapping's key waiting for its value
        self.size = 1  # values under it, aliases expanded


def _scalar(event: yaml.ScalarEvent, where: str) -> object:
    """The value of a scalar, resolved and constructed as the safe loader does it."""
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value,  # type: ignore[no-untyped-call]
                                event.implicit)
    if tag not in _SCALAR_TAGS:
        raise InvalidIndexError(f"{where} is not valid YAML for an index: the tag "
                                f"{escape(tag, 60)!r} is not read")
    if tag == f"{_TAG}str":
        return event.value
    node = yaml.ScalarNode(tag, event.value)
    try:
        return {f"{_TAG}int": _CONSTRUCTOR.construct_yaml_int,
                f"{_TAG}float": _CONSTRUCTOR.construct_yaml_float,
                f"{_TAG}bool": _CONSTRUCTOR.construct_yaml_bool,
                f"{_TAG}null": _CONSTRUCTOR.construct_yaml_null}[tag](node)
    except (ValueError, yaml.YAMLError):
        raise InvalidIndexError(f"{where} is not valid YAML for an index: "
                                f"{escape(event.value, 60)!r} is not a {tag[len(_TAG):]}") from None


class _Builder:
    """Plain values from a YAML event stream, one pass, bounded (see load_index_document)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.anchors: dict[str, tuple[object, int]] = {}  # value (or _SKIPPED), its size
        self.stack: list[_Frame] = []
        self.expanded = 0
        self.root: object = None

    def next_path(self) -> tuple[tuple[object, ...], bool, bool]:
        """Where the next value goes: its path, whether it is built, whether it is a key."""
        if not self.stack:
            return (), True, False
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            path: tuple[object, ...] = (*parent.path, len(parent.value))
        elif parent.key is _SKIPPED and not isinstance(parent.value, list):
            return parent.path, parent.value is not None, True
        else:
            path = (*parent.path, parent.key)
        if parent.value is None:
            return path, False, False
        return path, not parent.filtered or _wanted(path), False

    def add(self, value: object, size: int, counted: int) -> None:
        """Put ``value`` (``size`` values once expanded; ``counted`` of them new to the
        total) where the stream is."""
        self.expanded += counted
        if self.expanded > MAX_INDEX_NODES:
            raise InvalidIndexError(
                f"{self.where} expands to more than {MAX_INDEX_NODES:,} values (YAML "
                "aliases?): refused before it was built")
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        parent.size += size
        if isinstance(parent.value, list):
            if value is not _SKIPPED:
                parent.value.append(value)
        elif parent.key is _SKIPPED:  # this value is a key
            if parent.value is not None and (value is _SKIPPED or isinstance(value,
                                                                              (dict, list))):
                raise InvalidIndexError(f"{self.where} has a mapping key that is not a "
                                        "scalar: not a Helm repository index")
            parent.key = value if isinstance(value, str) else str(value)
        else:
            if parent.value is not None and value is not _SKIPPED:
                parent.value[parent.key] = value
            parent.key = _SKIPPED

    def event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            _, build, _ = self.next_path()
            value = _scalar(event, self.where) if build or event.anchor else _SKIPPED
            if event.anchor:
                self.anchors[event.anchor] = (value, 1)
            self.add(value if build else _SKIPPED, 1, 1)
        elif isinstance(event, yaml.AliasEvent):
            found = self.anchors.get(event.anchor or "")
            if found is None:
                raise InvalidIndexError(f"{self.where} uses an undefined alias "
                                        f"{escape(event.anchor, 60)!r}")
            _, build, _ = self.next_path()
            self.add(found[0] if build else _SKIPPED, found[1], found[1])
        elif isinstance(event, yaml.CollectionStartEvent):
            if event.tag not in (None, "!") and event.tag not in _COLLECTION_TAGS:
                raise InvalidIndexError(f"{self.where} is not valid YAML for an index: the "
                                        f"tag {escape(event.tag, 60)!r} is not read")
            parent_filtered = self.stack[-1].filtered if self.stack else True
            path, wanted, _ = self.next_path()
            build = wanted or bool(event.anchor)
            empty: dict[Any, Any] | list[Any] = (
                {} if isinstance(event, yaml.MappingStartEvent) else [])
            self.stack.append(_Frame(empty if build else None, event.anchor, path,
                                     wanted and parent_filtered))
            self.expanded += 1
            if len(self.stack) > MAX_INDEX_DEPTH:
                raise InvalidIndexError(f"{self.where} is nested deeper than {MAX_INDEX_DEPTH} "
                                        "levels: not a Helm repository index")
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = self.stack.pop()
            value = frame.value if frame.value is not None else _SKIPPED
            if frame.anchor:
                self.anchors[frame.anchor] = (value, frame.size)
            _, build, _ = self.next_path()
            self.add(value if build else _SKIPPED, frame.size, 0)


def load_index_document(data: bytes, where: str) -> object:
    """The first document of ``data``, built from the event stream in one pass, and only
    what an index is read for (:func:`_wanted`): nesting past :data:`MAX_INDEX_DEPTH`, or
    aliases expanding past :data:`MAX_INDEX_NODES` values, is refused as soon as it is seen,
    and memory stays near what is kept (the safe loader would build a node for every value
    first)."""
    builder = _Builder(where)
    try:
        for event in yaml.parse(data, Loader=_Base):
            if isinstance(event, yaml.DocumentEndEvent):
                break  # the first document, as sigs.k8s.io/yaml reads it
            builder.event(event)
    except yaml.YAMLError as err:
        raise InvalidIndexError(f"{where} is not valid YAML: {_yaml_problem(err)}") from None
    return builder.root


def _yaml_problem(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None) or type(err).__name__
    mark = getattr(err, "problem_mark", None)
    where = f" (line {mark.line + 1})" if mark is not None else ""
    return escape(f"{problem}{where}", 200)


def parse_index(data: bytes, where: str = "the Helm repository index") -> HelmIndex:
    """The index in ``data``; :class:`InvalidIndexError` saying what is wrong."""
    if len(data) > MAX_INDEX_BYTES:
        raise SizeLimitExceededError(
            f"{where} is {len(data)} bytes, over the limit of {MAX_INDEX_BYTES} bytes")
    if not data.strip():
        raise InvalidIndexError(f"{where} is empty: not a Helm repository index")
    doc = load_index_document(data, where)
    if not isinstance(doc, dict):
        raise InvalidIndexError(f"{where} is not a YAML mapping: not a Helm repository index")
    api_version = doc.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        raise InvalidIndexError(f"{where} has no apiVersion: not a Helm repository index")
    raw_entries = doc.get("entries") or {}
    if not isinstance(raw_entries, dict):
        raise InvalidIndexError(f"{where}: entries is not a mapping of chart names")
    entries: dict[str, tuple[IndexEntry, ...]] = {}
    dropped = 0
    for name, versions in raw_entries.items():
        if not isinstance(name, str) or not isinstance(versions, list):
            dropped += 1
            continue
        kept = []
        for item in versions:
            entry = _entry(item)
            if entry is None:
                dropped += 1
            else:
                kept.append(entry)
        entries[name] = tuple(_newest_first(kept))
    return HelmIndex(entries=entries, dropped=dropped)


def _entry(item: object) -> IndexEntry | None:
    """A chart version as helm's ``ChartVersion.Validate`` keeps it, or None."""
    if not isinstance(item, dict):
        return None
    name, version, urls = item.get("name"), item.get("version"), item.get("urls") or []
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (
            ".", ".."):
        return None
    if not isinstance(version, str) or not version:
        return None
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        return None
    digest = item.get("digest")
    digest = digest.lower() if isinstance(digest, str) else ""
    digest = digest.removeprefix("sha256:")
    created = item.get("created")
    return IndexEntry(name=name, version=version, urls=tuple(urls),
                      digest=f"sha256:{digest}" if digest else "",
                      created=created if isinstance(created, str) else "")


def _newest_first(entries: list[IndexEntry]) -> list[IndexEntry]:
    def key(entry: IndexEntry) -> tuple[int, Any, str]:
        version = Version.parse_strict(entry.version)
        return (0, None, "") if version is None else (1, _Order(version), entry.created)

    return sorted(entries, key=key, reverse=True)


class _Order:
    """A :class:`Version` ordered by semver precedence (build metadata ignored)."""

    __slots__ = ("version",)

    def __init__(self, version: Version) -> None:
        self.version = version

    def __lt__(self, other: _Order) -> bool:
        return self.version.compare(other.version) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Order) and self.version.compare(other.version) == 0

    __hash__ = None  # type: ignore[assignment]


def digest_is_valid(digest: str) -> bool:
    """An entry's digest is ``sha256:`` and 64 lowercase hex digits."""
    return digest.startswith("sha256:") and bool(_HEX64.fullmatch(digest[7:]))


def select_entry(index: HelmIndex, chart: str, version: str, where: str) -> IndexEntry:
    """The chart version ``version`` (exact, or a constraint) resolves to in ``index``."""
    versions = index.entries.get(chart)
    if versions is None:
        raise VersionNotFoundError(f"no chart name found: {where} has no chart "
                                   f"{escape(chart)!r}: check spec.chart")
    if not versions:
        raise VersionNotFoundError(f"no chart version found for {escape(chart)!r} in {where}")
    wanted = version or ""
    if wanted:
        for entry in versions:
            if entry.version == wanted:
                return entry
    constraint = parse_constraint(wanted if wanted and wanted != "*" else "*")
    best: tuple[Version, IndexEntry] | None = None
    for entry in versions:
        parsed = Version.parse_strict(entry.version)
        if parsed is None or not constraint.allows(parsed):
            continue
        if best is None:
            best = (parsed, entry)
            continue
        order = parsed.compare(best[0])
        if order > 0 or (order == 0 and entry.created > best[1].created):
            best = (parsed, entry)
    if best is None:
        raise VersionNotFoundError(
            f"no {escape(chart)!r} chart with version matching {escape(wanted or '*')!r} "
            f"found in {where}")
    return best[1]

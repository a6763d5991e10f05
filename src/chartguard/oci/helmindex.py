"""A Helm repository's ``index.yaml``, read within bounds, and the chart version it resolves to.

The index comes from outside (an HTTP server), so before anything is built from it:

- it is refused above :data:`MAX_INDEX_BYTES` (source-controller's ``MaxIndexSize``, 50 MiB);
- the YAML event stream is checked first: nesting deeper than :data:`MAX_INDEX_DEPTH`, or a
  document whose aliases expand ("billion laughs") to more than :data:`MAX_INDEX_NODES`
  values, is refused before a Python object is made;
- it is loaded with the safe loader (libyaml's when present; JSON indexes parse as YAML too),
  timestamps kept as text.

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


class _Loader(_Base):  # type: ignore[misc]
    """The safe loader, with timestamps left as text (``created`` is only compared)."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


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


def check_index_shape(data: bytes, where: str) -> None:
    """Refuse a document nested too deep or expanding (through aliases) too far, from its
    event stream, before anything is built."""
    sizes: dict[str, int] = {}  # expanded size of each anchored node
    stack: list[list[Any]] = []  # [anchor, expanded size so far] of each open collection
    expanded = 0
    try:
        for event in yaml.parse(data, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append([event.anchor, 1])
                expanded += 1
                if len(stack) > MAX_INDEX_DEPTH:
                    raise InvalidIndexError(f"{where} is nested deeper than {MAX_INDEX_DEPTH} "
                                            "levels: not a Helm repository index")
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, size = stack.pop()
                if anchor:
                    sizes[anchor] = size
                if stack:
                    stack[-1][1] += size
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                if isinstance(event, yaml.ScalarEvent):
                    size = 1
                    if event.anchor:
                        sizes[event.anchor] = 1
                else:
                    size = sizes.get(event.anchor or "", 1)
                expanded += size
                if stack:
                    stack[-1][1] += size
            if expanded > MAX_INDEX_NODES:
                raise InvalidIndexError(
                    f"{where} expands to more than {MAX_INDEX_NODES:,} values (YAML "
                    "aliases?): refused before it was built")
    except yaml.YAMLError as err:
        raise InvalidIndexError(f"{where} is not valid YAML: {_yaml_problem(err)}") from None


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
    check_index_shape(data, where)
    try:
        doc = yaml.load(data, Loader=_Loader)  # noqa: S506 - a safe loader (_Loader)
    except yaml.YAMLError as err:
        raise InvalidIndexError(f"{where} is not valid YAML: {_yaml_problem(err)}") from None
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

"""``chartguard events [-n NS|-A] [--for Kind[/NAME]] [--types Warning]``: as ``flux events``.

The core/v1 Events of HelmRepositories, HelmCharts and HelmReleases, oldest first, in flux's
table (``LAST SEEN TYPE REASON OBJECT MESSAGE``, ``NAMESPACE`` first when they span
namespaces). ``--for HelmRelease/NAME`` also shows the events of what the release is made of,
as flux does: its HelmChart and the chart's HelmRepository.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chartguard.cli import _tables
from chartguard.cli._kinds import HELM_CHART, HELM_RELEASE, HELM_REPOSITORY, KINDS, kind_named
from chartguard.cli._outcome import EXIT_OK, UsageError
from chartguard.cli._progress import Progress
from chartguard.cli._scope import Body, Scope, add_scope_flags, run_command

if TYPE_CHECKING:
    from chartguard.cli._kube import Kube

EVENT_TYPES = ("Normal", "Warning")
#: (kind, name, namespace) an event must be about; a name of None means any of that kind
Ref = tuple[str, str | None, str | None]


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    p: argparse.ArgumentParser = sub.add_parser(
        "events", help="recent events of HelmRepositories, HelmCharts and HelmReleases",
        description="Show the Kubernetes events of HelmRepository, HelmChart and HelmRelease "
                    "objects, as `flux events` does.")
    p.add_argument("--for", dest="for_", metavar="KIND[/NAME]",
                   help="only the events of this object (or kind), e.g. HelmRelease/podinfo")
    p.add_argument("--types", action="append", default=[], metavar="TYPE",
                   help="only events of these types: Normal, Warning (repeatable, "
                        "comma-separated)")
    add_scope_flags(p, all_namespaces=True)
    p.set_defaults(handler=main, parser=p)


def main(args: argparse.Namespace) -> int:
    def prepare(_scope: Scope) -> Body:
        types = event_types(args.types)
        target = parse_for(args.for_) if args.for_ else None
        return lambda scope, kube, progress: events(scope, kube, progress, target, types)

    return run_command(args, prepare)


def event_types(values: list[str]) -> tuple[str, ...]:
    out = []
    for value in (part for item in values for part in item.split(",") if part):
        canonical = next((t for t in EVENT_TYPES if t.lower() == value.lower()), None)
        if canonical is None:
            raise UsageError(f"type '{value}' not supported. Supported types are Normal, "
                             "Warning")
        out.append(canonical)
    return tuple(out)


def parse_for(text: str) -> tuple[str, str | None]:
    """``--for Kind[/NAME]``: the kind's canonical name and the object's name (or None)."""
    kind_text, _, name = text.partition("/")
    kind = kind_named(kind_text)
    if not kind_text or kind is None:
        kinds = ", ".join(k.name for k in KINDS)
        raise UsageError(f"--for {text}: '{kind_text}' is not a kind chartguard serves; use "
                         f"{kinds}, optionally with /NAME")
    return kind.name, name or None


def references(kind: str, name: str, namespace: str,
               body: Mapping[str, Any] | None) -> list[Ref]:
    """The objects whose events ``--for kind/name`` also shows (flux's ``getObjectRef``)."""
    spec = _tables.spec_of(body) if body is not None else {}
    if kind == HELM_RELEASE.name:
        source = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
        source_ns = str(source.get("namespace") or namespace)
        refs: list[Ref] = [(HELM_CHART.name, f"{namespace}-{name}", source_ns)]
        if source.get("name"):
            refs.insert(0, (str(source.get("kind", HELM_REPOSITORY.name)),
                            str(source["name"]), source_ns))
        return refs
    if kind == HELM_CHART.name:
        source = spec.get("sourceRef") or {}
        if source.get("name"):
            return [(str(source.get("kind", HELM_REPOSITORY.name)), str(source["name"]),
                     namespace)]
    return []


def select(items: list[dict[str, Any]], wanted: list[Ref],
           types: tuple[str, ...]) -> list[dict[str, Any]]:
    """The events of our kinds that match one of ``wanted`` (all when empty) and ``types``."""
    kinds = {k.name for k in KINDS}
    out = []
    for event in items:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") not in kinds:
            continue
        if types and event.get("type") not in types:
            continue
        if wanted and not any(
                involved.get("kind") == kind and (name is None or involved.get("name") == name)
                and (ns is None or (event.get("metadata") or {}).get("namespace") == ns)
                for kind, name, ns in wanted):
            continue
        out.append(event)
    # oldest first; events without a time first, as Go's zero time sorts
    return sorted(out, key=lambda e: _tables.event_time(e) or datetime.min.replace(tzinfo=UTC))


def events(scope: Scope, kube: Kube, progress: Progress, target: tuple[str, str | None] | None,
           types: tuple[str, ...]) -> int:
    namespace = scope.list_namespace
    wanted: list[Ref] = []
    extra: list[Ref] = []
    if target is not None:
        kind, name = target
        wanted.append((kind, name, namespace))
        if name is not None:
            kind_of = kind_named(kind)
            assert kind_of is not None
            body = kube.get(kind_of, scope.namespace, name)
            if body is None:
                return progress.failure(f"{kind} {scope.namespace}/{name} not found")
            extra = references(kind, name, scope.namespace, body)
    items = kube.events(namespace)
    for ref_ns in sorted({ns for _, _, ns in extra if ns is not None and ns != namespace}):
        if namespace is not None:  # with -A every namespace is in already
            items += kube.events(ref_ns)
    chosen = select(items, wanted + extra, types)
    show_namespace = namespace is None or any(ns != namespace for _, _, ns in extra)
    if not chosen:
        where = "." if namespace is None else f" in {namespace} namespace."
        progress.failure(f"No events found{where}")
        return EXIT_OK  # as flux: nothing to show is not an error
    now = datetime.now(UTC)
    rows = [_tables.event_row(e, now, show_namespace) for e in chosen]
    sys.stdout.write(_tables.render(_tables.headers(show_namespace, _tables.EVENT_HEADERS),
                                    rows))
    return EXIT_OK

"""``chartguard get sources helm|chart``, ``chartguard get helmreleases``: flux's tables.

``NAME REVISION SUSPENDED READY MESSAGE`` (``NAMESPACE`` first with ``-A``), the cells flux's
``get`` computes (:mod:`._tables`), or the objects themselves with ``-o yaml|json`` (as
``kubectl get -o`` prints them, managed fields left out). As with flux, finding nothing is a
failure (exit 1) saying where it looked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chartguard.cli import _tables
from chartguard.cli._export import to_yaml
from chartguard.cli._kinds import HELM_CHART, HELM_RELEASE, HELM_REPOSITORY, Kind
from chartguard.cli._outcome import EXIT_OK
from chartguard.cli._progress import Progress
from chartguard.cli._scope import Body, Scope, add_scope_flags, run_command

if TYPE_CHECKING:
    from chartguard.cli._kube import Kube

Row = Callable[[Mapping[str, Any], bool], list[str]]
_ROWS: dict[str, Row] = {HELM_REPOSITORY.name: _tables.repository_row,
                         HELM_CHART.name: _tables.chart_row,
                         HELM_RELEASE.name: _tables.release_row}


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    get = sub.add_parser("get", help="print HelmRepository, HelmChart and HelmRelease statuses "
                                     "as `flux get` does",
                         description="Print the status of Flux objects as `flux get` does.")
    kinds = get.add_subparsers(dest="get_kind", required=True, metavar="KIND")
    sources = kinds.add_parser("sources", aliases=["source"], help="HelmRepository and "
                                                                   "HelmChart statuses")
    source_kinds = sources.add_subparsers(dest="source_kind", required=True, metavar="KIND")
    _leaf(source_kinds, "helm", [], HELM_REPOSITORY, "HelmRepository statuses")
    _leaf(source_kinds, "chart", [], HELM_CHART, "HelmChart statuses")
    _leaf(kinds, "helmreleases", ["hr", "helmrelease"], HELM_RELEASE, "HelmRelease statuses")


def _leaf(sub: Any, name: str, aliases: list[str], kind: Kind, what: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(name, aliases=aliases, help=what,
                                                description=f"Print {what}.")
    p.add_argument("name", nargs="?", metavar="NAME", help="only this object")
    p.add_argument("-o", "--output", choices=("yaml", "json"),
                   help="print the objects instead of the table")
    p.add_argument("--no-header", action="store_true", help="skip the table's header")
    add_scope_flags(p, all_namespaces=True)
    p.set_defaults(handler=main, parser=p, kind=kind)


def main(args: argparse.Namespace) -> int:
    def prepare(_scope: Scope) -> Body:
        return lambda scope, kube, progress: get(scope, kube, progress, args.kind, args.name,
                                                 output=args.output, header=not args.no_header)

    return run_command(args, prepare)


def get(scope: Scope, kube: Kube, progress: Progress, kind: Kind, name: str | None, *,
        output: str | None = None, header: bool = True) -> int:
    items = kube.list_objects(kind, scope.list_namespace)
    if name:
        items = [i for i in items if (i.get("metadata") or {}).get("name") == name]
    items.sort(key=lambda i: ((i.get("metadata") or {}).get("namespace", ""),
                              (i.get("metadata") or {}).get("name", "")))
    where = "any" if scope.all_namespaces else f'"{scope.namespace}"'
    if not items:
        if name:
            return progress.failure(f"{kind.name} object '{name}' not found in {where} "
                                    "namespace")
        return progress.failure(f"no {kind.name} objects found in {where} namespace")
    if output:
        sys.stdout.write(objects_text(items, output, single=bool(name) and len(items) == 1))
        return EXIT_OK
    rows = [_ROWS[kind.name](item, scope.all_namespaces) for item in items]
    sys.stdout.write(_tables.render(_tables.headers(scope.all_namespaces) if header else None,
                                    rows))
    return EXIT_OK


def objects_text(items: list[dict[str, Any]], output: str, *, single: bool) -> str:
    """The objects as ``kubectl get -o yaml|json`` prints them (a ``List`` unless ``single``)."""
    clean = [_without_managed_fields(i) for i in items]
    doc: dict[str, Any] = clean[0] if single else {
        "apiVersion": "v1", "items": clean, "kind": "List", "metadata": {"resourceVersion": ""}}
    if output == "json":
        return json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
    return to_yaml(doc)


def _without_managed_fields(item: dict[str, Any]) -> dict[str, Any]:
    meta = item.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return item
    return {**item, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}

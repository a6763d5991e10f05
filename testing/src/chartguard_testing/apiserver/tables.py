"""Table responses (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``).

``kubectl get`` asks for a Table and prints its columns: a custom resource shows its CRD's
``additionalPrinterColumns`` (evaluated with a small JSONPath subset), built-in kinds show
the few columns kubectl users expect, everything else Name and Age.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from chartguard_testing.apiserver.resources import Obj, ResourceType

_NAME_COLUMN: Obj = {"name": "Name", "type": "string", "format": "name", "priority": 0,
                     "description": "Name must be unique within a namespace."}
_AGE_COLUMN: Obj = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                    "description": "CreationTimestamp of the object."}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(stamp: Any) -> str:
    try:
        then = dt.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((dt.datetime.now(dt.UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---- a JSONPath subset: .a.b, [n], [*], [?(@.k=="v")] --------------------------------

_TOKEN = re.compile(r"\.([\w-]+)|\[(\d+|\*)\]|\[\?\(@\.([\w.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def _equals(item: Any, key: str, value: str) -> bool:
    found = jsonpath(item, "." + key)
    return bool(found) and str(found[0]) == value


def jsonpath(obj: Any, path: str) -> list[Any]:
    path = path.strip().removeprefix("{").removesuffix("}").removeprefix("$")
    current = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            return []
        pos = m.end()
        nxt: list[Any] = []
        for value in current:
            if m.group(1) is not None and isinstance(value, dict) and m.group(1) in value:
                nxt.append(value[m.group(1)])
            elif m.group(2) is not None and isinstance(value, list):
                if m.group(2) == "*":
                    nxt.extend(value)
                elif int(m.group(2)) < len(value):
                    nxt.append(value[int(m.group(2))])
            elif m.group(3) is not None and isinstance(value, list):
                nxt.extend(item for item in value if _equals(item, m.group(3), m.group(4)))
        current = nxt
    return current


def _cell(obj: Obj, column: Obj) -> Any:
    found = jsonpath(obj, column.get("jsonPath", ""))
    if not found:
        return None
    value = found[0]
    if column.get("type") == "date":
        return _age(value)
    if isinstance(value, dict | list):
        return str(value)
    return value


# ---- built-in kinds ------------------------------------------------------------------

Column = tuple[str, Callable[[Obj], Any]]


def _st(obj: Obj) -> Obj:
    status: Obj = obj.get("status") or {}
    return status


def _ports(obj: Obj) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


_BUILTIN: dict[str, list[Column]] = {
    "Deployment": [
        ("Ready", lambda o: f"{_st(o).get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}"),
        ("Up-to-date", lambda o: _st(o).get("updatedReplicas", 0)),
        ("Available", lambda o: _st(o).get("availableReplicas", 0))],
    "Service": [
        ("Type", lambda o: o["spec"].get("type")),
        ("Cluster-IP", lambda o: o["spec"].get("clusterIP")),
        ("External-IP", lambda o: "<none>"),
        ("Port(s)", _ports)],
    "Secret": [("Type", lambda o: o.get("type")),
               ("Data", lambda o: len(o.get("data") or {}))],
    "ConfigMap": [("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))],
    "Namespace": [("Status", lambda o: _st(o).get("phase"))],
    "Pod": [("Status", lambda o: _st(o).get("phase"))],
}


def _columns(rt: ResourceType, version: str) -> tuple[list[Obj], Callable[[Obj], list[Any]]]:
    if rt.crd_name:
        custom = rt.printer_columns.get(version) or [_AGE_COLUMN]
        defs = [_NAME_COLUMN] + [
            {"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
             "description": c.get("description", ""), "priority": c.get("priority", 0)}
            for c in custom]
        return defs, lambda o: [o["metadata"]["name"]] + [_cell(o, c) for c in custom]
    builtin = _BUILTIN.get(rt.kind, []) if rt.group in ("", "apps") else []
    defs = [_NAME_COLUMN] + [{"name": n, "type": "string", "format": "", "description": "",
                              "priority": 0} for n, _ in builtin]
    defs.append({"name": "Age", "type": "string", "format": "", "description": "",
                 "priority": 0})
    return defs, lambda o: ([o["metadata"]["name"]] + [f(o) for _, f in builtin]
                            + [_age(o["metadata"].get("creationTimestamp"))])


def table(rt: ResourceType, version: str, objects: list[Obj], resource_version: str,
          include_object: str | None) -> Obj:
    """A meta.k8s.io/v1 Table of ``objects`` (already in the requested version)."""
    defs, cells = _columns(rt, version)
    rows = []
    for obj in objects:
        row: Obj = {"cells": cells(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": defs, "rows": rows}

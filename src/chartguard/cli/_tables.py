"""The tables ``flux get`` and ``flux events`` print, byte for byte.

flux renders them with olekukonko/tablewriter (``pkg/printers/table_printer.go``): headers upper
case, every cell padded to its column's display width and followed by a tab, the header's last
cell by a space instead. Rows are what flux's ``summariseItem`` functions compute
(``cmd/flux/get_source_helm.go``, ``get_source_chart.go``, ``get_helmrelease.go``,
``events.go``), including its shortening of long hex digests and kubectl's "last seen" ages.
Cells are escaped first: every one of them comes from the cluster.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from chartguard.cli._outcome import line

NAME_HEADERS = ("Name", "Revision", "Suspended", "Ready", "Message")
EVENT_HEADERS = ("Last seen", "Type", "Reason", "Object", "Message")
NAMESPACE_HEADER = "Namespace"
NOT_RECONCILED = "waiting to be reconciled"
#: what flux prints for an oci HelmRepository (static in Flux, no status of its own)
OCI_REPOSITORY_READY = "Helm repository is Ready"

_HEX = re.compile(r"\b[a-f0-9]{40,128}\b", re.ASCII)


def render(headers: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """The table as flux prints it (``headers`` None: ``--no-header``)."""
    cells = [[line(c) for c in row] for row in rows]
    head = [h.upper() for h in headers] if headers is not None else None
    columns = max([len(r) for r in cells] + [len(head or ())])
    widths = [0] * columns
    for row in ([head] if head is not None else []) + cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    out: list[str] = []
    if head is not None:
        last = len(head) - 1
        out.append("".join(_pad(h, widths[i]) + ("\t" if i < last else " ")
                           for i, h in enumerate(head)) + "\n")
    for row in cells:
        out.append("".join(_pad(c, widths[i]) + "\t" for i, c in enumerate(row)) + "\n")
    return "".join(out)


def display_width(text: str) -> int:
    """Terminal columns of ``text`` (wide East Asian characters count two, marks none)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def truncate_hex(text: str) -> str:
    """flux's ``TruncateHex``: each 40 to 128 hex digit run shortened to its first 8."""
    return _HEX.sub(lambda m: m.group(0)[:8], text)


def human_duration(delta: timedelta) -> str:
    """kubectl's ``duration.HumanDuration`` (apimachinery): ``45s``, ``3m20s``, ``5h``, ``2d3h``."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


# --- rows of `get` ------------------------------------------------------------------------------

def _conditions(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = body.get("status")
    conds = status.get("conditions") if isinstance(status, Mapping) else None
    return [c for c in conds or [] if isinstance(c, Mapping)] if isinstance(conds, list) else []


def condition(body: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in _conditions(body) if c.get("type") == type_), None)


def ready_and_message(body: Mapping[str, Any]) -> tuple[str, str]:
    """flux's ``statusAndMessage``: Ready's status and message, else False and "waiting"."""
    ready = condition(body, "Ready")
    if ready is None:
        return "False", NOT_RECONCILED
    return str(ready.get("status", "")), str(ready.get("message", ""))


def spec_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def status_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    status = body.get("status")
    return status if isinstance(status, Mapping) else {}


def suspended(body: Mapping[str, Any]) -> str:
    return "True" if spec_of(body).get("suspend") is True else "False"


def artifact_revision(body: Mapping[str, Any]) -> str:
    artifact = status_of(body).get("artifact")
    return str(artifact.get("revision") or "") if isinstance(artifact, Mapping) else ""


def release_revision(body: Mapping[str, Any]) -> str:
    """flux's ``getHelmReleaseRevision``: the newest history entry's chart version, else the
    last attempted revision."""
    history = status_of(body).get("history")
    if isinstance(history, list) and history and isinstance(history[0], Mapping):
        return str(history[0].get("chartVersion") or "")
    return str(status_of(body).get("lastAttemptedRevision") or "")


def name_columns(body: Mapping[str, Any], all_namespaces: bool) -> list[str]:
    meta = body.get("metadata") or {}
    name = str(meta.get("name", ""))
    return [str(meta.get("namespace", "")), name] if all_namespaces else [name]


def repository_row(body: Mapping[str, Any], all_namespaces: bool) -> list[str]:
    if condition(body, "Ready") is None and spec_of(body).get("type") == "oci":
        status, message = "True", OCI_REPOSITORY_READY
    else:
        status, message = ready_and_message(body)
    return [*name_columns(body, all_namespaces), truncate_hex(artifact_revision(body)),
            suspended(body), status, truncate_hex(message)]


def chart_row(body: Mapping[str, Any], all_namespaces: bool) -> list[str]:
    status, message = ready_and_message(body)
    # as flux: the revision holds a version, so it is not shortened
    return [*name_columns(body, all_namespaces), artifact_revision(body), suspended(body),
            status, truncate_hex(message)]


def release_row(body: Mapping[str, Any], all_namespaces: bool) -> list[str]:
    status, message = ready_and_message(body)
    return [*name_columns(body, all_namespaces), release_revision(body), suspended(body),
            status, message]


def headers(all_namespaces: bool, base: Sequence[str] = NAME_HEADERS) -> list[str]:
    return [NAMESPACE_HEADER, *base] if all_namespaces else list(base)


# --- rows of `events` ---------------------------------------------------------------------------

def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When the event last happened (kubectl's ``eventTime``): series, last, then event time."""
    series = event.get("series")
    if isinstance(series, Mapping):
        return _time(series.get("lastObservedTime"))
    return _time(event.get("lastTimestamp")) or _time(event.get("eventTime"))


def last_seen(event: Mapping[str, Any], now: datetime) -> str:
    """flux's ``getLastSeen``: ``45s``, or ``10s (x3 over 2m)`` for a repeated event."""

    def since(value: object) -> str:
        at = _time(value)
        return "<unknown>" if at is None else human_duration(now - at)

    first = since(event.get("eventTime"))
    if _time(event.get("eventTime")) is None:
        first = since(event.get("firstTimestamp"))
    series = event.get("series")
    if isinstance(series, Mapping):
        return f"{since(series.get('lastObservedTime'))} (x{series.get('count', 0)} over {first})"
    count = event.get("count")
    if isinstance(count, int) and count > 1:
        return f"{since(event.get('lastTimestamp'))} (x{count} over {first})"
    return first


def event_row(event: Mapping[str, Any], now: datetime, show_namespace: bool) -> list[str]:
    involved = event.get("involvedObject") or {}
    row = [str((event.get("metadata") or {}).get("namespace", ""))] if show_namespace else []
    return [*row, last_seen(event, now), str(event.get("type", "")),
            str(event.get("reason", "")),
            f"{involved.get('kind', '')}/{involved.get('name', '')}",
            str(event.get("message", ""))]

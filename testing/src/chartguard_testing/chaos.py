"""The chaos table: one row per fault or hostile case, and the two checks every row makes.

Every fault and hostile-input test (``@pytest.mark.chaos``) ends with a row saying what the
operator did, how many unverified charts helm installed (0 in every row) and what data was
lost ("none" in every row). The numbers are measured, never written down: unverified installs
are counted from helm's own release history (every revision of every release in the test's
namespace) against the charts that were signed; data lost is what the test found missing of
the last verified artifact and the running release after the fault.

``make chaos`` runs the marked tests and prints the table (tests/conftest.py collects the rows,
from xdist workers too, through ``user_properties``).

A chart is recognised by its fingerprint: its name, version, default values and the bytes of
every template and other file, which helm stores in each release record and the archive holds.
A chart that was not signed differs from each signed one in at least one of them (a hostile
chart identical in all of these would install nothing unverified).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "NONE",
    "ChaosRow",
    "archive_fingerprint",
    "format_table",
    "record_fingerprint",
    "release_records",
    "unverified_installs",
]

#: what a row says when nothing was lost
NONE = "none"


@dataclass(frozen=True)
class ChaosRow:
    """One row of the chaos table."""

    group: str  # "registry", "kube", "chart", "signature", "spec", "crash", "secrets"
    case: str  # the fault or hostile input, in a few words
    did: str  # what the operator did (the condition reason and message gist, the recovery)
    unverified_installs: int
    data_lost: str  # NONE, or what was lost

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ChaosRow:
        return cls(**json.loads(text))


# what helm's loader keeps apart from chart.files (and the fingerprint takes on its own)
_SPECIAL = ("Chart.yaml", "values.yaml", "values.schema.json", "Chart.lock",
            "requirements.yaml", "requirements.lock")


def _canonical(value: Any) -> Any:
    """Values as Go's JSON gives them back: an integral float is an integer."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _fingerprint(name: str, version: str, values: Any,
                 files: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    h.update(f"{name}\0{version}\0".encode())
    h.update(json.dumps(_canonical(values or {}), sort_keys=True).encode() + b"\0")
    for path, data in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def archive_fingerprint(archive: bytes) -> str:
    """The fingerprint of a chart archive (``.tgz``): Chart.yaml's name and version, the
    default values, and the top chart's templates and files, as helm's release record holds
    them (subcharts under ``charts/`` are left out, as the record keeps them apart)."""
    import yaml  # the test extras have PyYAML; the product does not need this module

    files: list[tuple[str, bytes]] = []
    meta: dict[str, Any] = {}
    values: Any = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            rest = member.name.partition("/")[2]
            extracted = tar.extractfile(member)
            assert extracted is not None
            if rest == "Chart.yaml":
                meta = yaml.safe_load(extracted.read()) or {}
            elif rest == "values.yaml":
                values = yaml.safe_load(extracted.read()) or {}
            elif rest not in _SPECIAL and not rest.startswith("charts/"):
                files.append((rest, extracted.read()))
    return _fingerprint(str(meta.get("name", "")), str(meta.get("version", "")), values, files)


def record_fingerprint(record: Mapping[str, Any]) -> str:
    """The fingerprint of the chart one helm release record (decoded JSON) installed."""
    chart = record.get("chart") or {}
    meta = chart.get("metadata") or {}
    files = [(f["name"], base64.b64decode(f.get("data") or ""))
             for f in [*(chart.get("templates") or []), *(chart.get("files") or [])]]
    return _fingerprint(str(meta.get("name", "")), str(meta.get("version", "")),
                        chart.get("values"), files)


def release_records(secrets: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """helm's release records (decoded JSON) from the Secrets of its storage driver (the items
    of a Secret list; others are skipped)."""
    records = []
    for secret in secrets:
        if secret.get("type") != "helm.sh/release.v1":
            continue
        helm_text = base64.b64decode(secret["data"]["release"])
        raw = base64.b64decode(helm_text)
        if raw[:3] == b"\x1f\x8b\x08":
            raw = gzip.decompress(raw)
        records.append(json.loads(raw))
    return records


def unverified_installs(records: Iterable[Mapping[str, Any]],
                        signed_archives: Iterable[bytes]) -> list[str]:
    """The revisions (``name@version rev N``) whose chart is none of ``signed_archives``: what
    helm installed that was not verified. Empty is the only acceptable answer."""
    signed = {archive_fingerprint(a) for a in signed_archives}
    bad = []
    for record in records:
        if record_fingerprint(record) not in signed:
            meta = (record.get("chart") or {}).get("metadata") or {}
            bad.append(f"{record.get('name')} ({meta.get('name')}@{meta.get('version')}) "
                       f"rev {record.get('version')}")
    return bad


def format_table(rows: Iterable[ChaosRow]) -> str:
    """The table ``make chaos`` prints."""
    rows = sorted(rows, key=lambda r: (r.group, r.case))
    head = ("group", "fault or hostile case", "what the operator did", "unverified installs",
            "data lost")
    cells = [head] + [(r.group, r.case, r.did, str(r.unverified_installs), r.data_lost)
                      for r in rows]
    limits = (9, 40, 70, 19, 30)
    widths = [min(max(len(c[i]) for c in cells), limits[i]) for i in range(5)]

    def lines(c: tuple[str, ...]) -> list[str]:
        # long cells wrap onto continuation lines: nothing of a row is cut
        wrapped = [textwrap.wrap(c[i], widths[i]) or [""] for i in range(5)]
        height = max(len(w) for w in wrapped)
        return [" | ".join((wrapped[i][n] if n < len(wrapped[i]) else "").ljust(widths[i])
                           for i in range(5)).rstrip() for n in range(height)]

    def line(c: tuple[str, ...]) -> str:
        return "\n".join(lines(c))

    out = [line(head), "-+-".join("-" * w for w in widths)]
    out += [line(c) for c in cells[1:]]
    bad = sum(1 for r in rows if r.unverified_installs or r.data_lost != NONE)
    out.append(f"{len(rows)} rows; unverified installs in all rows: "
               f"{sum(r.unverified_installs for r in rows)}; rows with data lost: {bad}")
    return "\n".join(out)

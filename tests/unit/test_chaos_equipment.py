"""The chaos table's measure of unverified installs tells a signed chart from any other."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile

from chartguard_testing.chaos import (
    NONE,
    ChaosRow,
    archive_fingerprint,
    format_table,
    release_records,
    unverified_installs,
)


def _archive(name: str, version: str, templates: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        files = {"Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode(),
                 **{f"templates/{k}": v for k, v in templates.items()}}
        for path, data in files.items():
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _secret(release: str, rev: int, name: str, version: str,
            templates: dict[str, bytes]) -> dict[str, object]:
    record = {"name": release, "version": rev,
              "chart": {"metadata": {"name": name, "version": version},
                        "templates": [{"name": f"templates/{k}",
                                       "data": base64.b64encode(v).decode()}
                                      for k, v in templates.items()]}}
    helm = base64.b64encode(gzip.compress(json.dumps(record).encode()))
    return {"type": "helm.sh/release.v1",
            "data": {"release": base64.b64encode(helm).decode()}}


def test_a_record_of_a_signed_chart_is_verified_and_any_change_is_not() -> None:
    templates = {"cm.yaml": b"kind: ConfigMap\n"}
    signed = [_archive("app", "1.0.0", templates)]
    secrets = [
        _secret("r", 1, "app", "1.0.0", templates),
        _secret("r", 2, "app", "1.0.0", {"cm.yaml": b"kind: Secret\n"}),  # other bytes
        _secret("r", 3, "app", "1.0.1", templates),  # other version
        _secret("r", 4, "app", "1.0.0", {**templates, "extra.yaml": b"x"}),  # one more file
        {"type": "Opaque", "data": {}},  # not helm's
    ]
    records = release_records(secrets)
    assert len(records) == 4
    assert unverified_installs(records, signed) == [
        "r (app@1.0.0) rev 2", "r (app@1.0.1) rev 3", "r (app@1.0.0) rev 4"]
    assert unverified_installs(records[:1], signed) == []
    assert archive_fingerprint(signed[0]) != archive_fingerprint(
        _archive("app", "1.0.0", {"cm.yaml": b"kind: Secret\n"}))


def test_the_table_counts_what_rows_report() -> None:
    rows = [ChaosRow("registry", "503 burst", "retried", 0, NONE),
            ChaosRow("chart", "gzip bomb", "Stalled", 1, "artifact")]
    table = format_table(rows)
    assert table.splitlines()[2].startswith("chart")
    assert "unverified installs in all rows: 1; rows with data lost: 1" in table
    assert ChaosRow.from_json(rows[1].to_json()) == rows[1]


def test_a_long_row_wraps_instead_of_being_cut() -> None:
    did = " ".join(f"step{n}" for n in range(40))
    table = format_table([ChaosRow("crash", "SIGKILL " * 10, did, 0, NONE)])
    assert all(f"step{n}" in table for n in range(40))
    assert max(len(line) for line in table.splitlines()) < 200

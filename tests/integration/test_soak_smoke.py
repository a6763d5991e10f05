"""`make soak` must keep working: bench/soak.py at a tiny scale, its summary read as a user
would (the figures themselves are timings and load: not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_soak_runs_and_its_exit_code_is_its_verdict() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--charts", "4", "--releases", "3",
         "--intervals", "2", "--interval", "2", "--loop-charts", "2", "--loop-intervals", "1"],
        capture_output=True, text=True, timeout=180, check=False)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    # the per-interval table: the warm-up and both measured intervals
    table = [line.split() for line in out.splitlines()
             if re.match(r"^\s+(w|\d+)\s+\d+\.\d\s", line)]
    assert [cells[0] for cells in table] == ["w", "1", "2"], out
    # 3 releases and 4 HelmCharts (one standalone), all Ready, then measured
    assert "SOAK: 3 HelmReleases + 4 HelmCharts (3 made by the releases, 1 standalone;" in out
    assert "3 helm installs" in out
    assert "measured: 2 intervals after the warm-up" in out
    verdicts = {m[1]: m[2] for m in re.finditer(
        r"^  (RSS|fds|threads) \(interval (?:end|floor)\)\s+interval 1 .*: (OK|GROWTH)$", out,
        re.MULTILINE)}
    assert set(verdicts) == {"RSS", "fds", "threads"}, out
    # unchanged releases run no helm: a property of the operator, not a timing
    assert re.search(r"helm processes per unchanged release per interval: 0\.00 \(0 in 2 "
                     r"intervals; helm upgrades in the whole run: 0\): OK", out), out
    assert "at the end: 3/3 HelmReleases Ready, 4/4 HelmCharts Ready, 4/4 SourceVerified: OK" \
        in out
    assert re.search(r"registry requests per interval: mean [\d.]+ .* per HelmChart", out)
    assert re.search(r"CPU per interval: mean [\d.]+ s \(operator", out)
    # the loop beside it, measured on 2 charts and scaled to 4
    assert "SIDE BY SIDE, per HelmChart per interval (loop measured on 2 charts x 1 rounds = " \
        "2 pulls, 0 failed, and SCALED to 4 charts)" in out
    assert re.search(r"helm pull \+ chartguard verify\s+[\d.]+\s+[\d.]+\s+[\d.]+", out), out
    # the exit code is the verdict: 1 exactly when a row says GROWTH, never 2 (not Ready)
    grew = "GROWTH" in verdicts.values()
    assert ("RESULT: OK" in out) == (not grew), out
    assert proc.returncode == (1 if grew else 0), out

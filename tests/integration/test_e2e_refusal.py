"""`make e2e` where it cannot run: no container engine answers (as on our machines, where
``docker --version`` answers and ``docker info`` fails). It must say what is missing and exit
non-zero before building or testing anything, never claiming a pass. The engine is a fake
``docker`` first on PATH; the real make, Makefile and scripts/e2e.py run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chartguard_testing import tools

REPO = Path(tools.REPO_ROOT)
SCRIPT = REPO / "scripts" / "e2e.py"


def fake(bin_dir: Path, name: str, info_code: int) -> None:
    """A ``name`` that answers --version and whose ``info`` exits ``info_code``."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n"
                    'if [ "$1" = "--version" ]; then echo "Docker version 28.2.2"; exit 0; fi\n'
                    'if [ "$1" = "info" ]; then\n'
                    f'  [ {info_code} = 0 ] && echo "Server Version: 28.2.2" && exit 0\n'
                    '  echo "Cannot connect to the Docker daemon at '
                    'unix:///var/run/docker.sock. Is the docker daemon running?" >&2\n'
                    f"  exit {info_code}\nfi\nexit 0\n")
    path.chmod(0o755)


def test_make_e2e_without_a_running_engine_says_so_and_fails_before_building(
        tmp_path: Path) -> None:
    fake(tmp_path / "bin", "docker", 1)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
           "CONTAINER_ENGINE": "docker"}
    # -o: the venv counts as installed (no pip run from a test)
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "e2e"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode != 0
    assert ("make e2e: no container engine runs: `docker info` failed (Cannot connect to the "
            "Docker daemon") in proc.stderr
    assert "make e2e: nothing was run or tested" in proc.stderr
    # stopped at the check: no tool built, no image, no cluster, no test run, no pass
    assert "build_go_tools" not in proc.stdout
    assert "e2e.py run" not in proc.stdout
    assert "passed" not in (proc.stdout + proc.stderr).lower()


@pytest.mark.parametrize(("engine", "info_code", "expected"), [
    ("docker", 1, ["no container engine runs: `docker info` failed",
                   "kind is missing and go is not installed"]),
    ("chartguard-no-such-engine", 0, ["no container engine: `chartguard-no-such-engine` is not "
                                      "on PATH"]),
])
def test_the_check_names_everything_missing(tmp_path: Path, engine: str, info_code: int,
                                            expected: list[str]) -> None:
    fake(tmp_path / "bin", "docker", info_code)
    (tmp_path / "tools").mkdir()
    env = {**os.environ, "PATH": str(tmp_path / "bin"), "CONTAINER_ENGINE": engine,
           "CHARTGUARD_TOOLS_DIR": str(tmp_path / "tools")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "check"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    for line in expected:
        assert f"make e2e: {line}" in proc.stderr
    assert proc.stderr.rstrip().endswith("make e2e: nothing was run or tested")
    assert proc.stdout == ""


def test_the_check_passes_where_an_engine_runs_and_kind_is_there(tmp_path: Path) -> None:
    """The refusal is about the machine, not unconditional."""
    fake(tmp_path / "bin", "docker", 0)
    fake(tmp_path / "tools", "kind", 0)
    env = {**os.environ, "PATH": str(tmp_path / "bin"), "CONTAINER_ENGINE": "docker",
           "CHARTGUARD_TOOLS_DIR": str(tmp_path / "tools")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "check"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == "make e2e: docker runs; kind is here or buildable\n"

"""``chartguard pull`` as a command: usage errors and failures printed in one place, hints
that name pull's own flags, and a chart whose layer was altered in the registry refused."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from chartguard.cli import main
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry


def _pull(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["pull", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_usage_errors_print_the_usage_line_then_what_to_change(
        out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "oci://127.0.0.1:1/charts/demo"
    for argv, says in [
            (["--cert-file", "/x"], "--cert-file and --key-file go together"),
            (["--ca-file", str(out_dir / "none.crt")], "none.crt: cannot be read"),
            (["--version", "1.0.0 ||| 2"], "not a semver version or constraint"),
            (["--bogus"], "unrecognized arguments: --bogus")]:
        code, out, err = _pull(capsys, url, "-d", str(out_dir), *argv)
        assert code == 2, err
        lines = err.splitlines()
        assert lines[0].startswith("usage: chartguard pull ")
        assert lines[-1] == f"chartguard pull: error: {says}" or says in lines[-1]
        assert out == ""


def test_tls_failure_names_pulls_own_flags(tls_registry: Registry, helm_env: HelmEnv,
                                           out_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    chart = helm_env.make_chart(tls_registry, "demo", "1.0.0")
    code, out, err = _pull(capsys, f"{chart.url}/demo", "--version", "1.0.0", "-d",
                           str(out_dir))
    assert code == 1
    assert out == ""
    assert err.startswith("chartguard pull: ")
    assert "pass --ca-file F if its CA is private; pass --plain-http" in err
    assert err.count("\n") == 1


def test_chart_layer_altered_in_the_registry_is_not_written(
        registry: Registry, helm_env: HelmEnv, out_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    layer = "sha256:" + hashlib.sha256(chart.package.read_bytes()).hexdigest()
    stored = registry.blob_path(layer)
    data = bytearray(stored.read_bytes())
    data[10] ^= 0x01
    stored.write_bytes(bytes(data))
    code, out, err = _pull(capsys, f"{chart.url}/demo", "--version", "1.0.0", "-d",
                           str(out_dir), "--plain-http")
    assert code == 1
    assert out == ""
    assert f"the chart layer {layer} does not match its digest" in err
    assert list(out_dir.iterdir()) == []


def test_real_process_exit_code_for_a_usage_error(out_dir: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "chartguard", "pull", "oci://x/c/demo",
                          "--version", ">>1", "-d", str(out_dir)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    assert "usage: chartguard pull" in run.stderr

"""What `pip install chartguard` ships: the product only, never its test equipment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _source_copy(tmp_path: Path) -> str:
    """The product's sources in a private directory: setuptools builds in-tree."""
    src = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src" / "chartguard", src / "src" / "chartguard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # the test equipment sits beside the product in the repo: the copy keeps that shape
    shutil.copytree(REPO / "testing" / "src" / "chartguard_testing",
                    src / "src" / "chartguard_testing",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return str(src)


def test_wheel_holds_the_product_and_not_the_test_equipment(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), _source_copy(tmp_path)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("chartguard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "chartguard/cli/__init__.py" in names
    assert not [n for n in names if n.startswith("chartguard_testing")]


def test_fresh_install_cannot_import_the_test_equipment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    # install the product alone (its dependencies come from this interpreter's site-packages)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                    "-q", "--target", str(tmp_path / "site"), _source_copy(tmp_path)], check=True,
                   timeout=300)
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    python = str(venv / "bin" / "python")
    ok = subprocess.run([python, "-c", "import chartguard.untrusted"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([python, "-c", "import chartguard_testing"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert "No module named 'chartguard_testing'" in missing.stderr


def test_cli_help_loads_neither_aiohttp_nor_the_emulator() -> None:
    probe = ("import sys, contextlib, io\n"
             "from chartguard.cli import main\n"
             "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
             "    main(['--help'])\n"
             "loaded = sorted(m for m in sys.modules if m.split('.')[0] in\n"
             "                ('aiohttp', 'chartguard_testing'))\n"
             "print(','.join(loaded))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""

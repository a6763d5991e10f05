"""What `pip install chartguard` and the image ship: the product only, never its test
equipment; the image's wheel runs with the locked dependencies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def _site_packages(python: str) -> str:
    out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def test_the_images_wheel_runs_with_the_locked_dependencies(tmp_path: Path) -> None:
    """What the Dockerfile does, without a container engine: the wheel built from the product's
    sources, installed alone (--no-deps) into a fresh venv beside the locked dependencies;
    its console script starts and knows the flags the deploy chart passes."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), _source_copy(tmp_path)], check=True, timeout=300)
    (wheel,) = wheels.glob("chartguard-*.whl")
    # every requirement of the wheel is met by a pin of requirements.lock
    pins = {canonicalize_name(n): v for n, _, v in (
        line.partition("==") for line in (REPO / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#"))}
    archive = zipfile.ZipFile(wheel)
    (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = archive.read(meta).decode()
    requires = [Requirement(line.split(":", 1)[1].strip()) for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if r.marker is None or r.marker.evaluate({"extra": ""})]
    assert {canonicalize_name(r.name) for r in runtime} >= {"kopf", "sigstore", "kubernetes"}
    for req in runtime:
        assert req.specifier.contains(pins[canonicalize_name(req.name)]), req

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, timeout=300)
    # the dependencies: this venv's, installed from the same lock (`make install` uses it as
    # constraints); a path in a .pth file, so none of its editable installs come along
    Path(_site_packages(python), "locked_dependencies.pth").write_text(
        _site_packages(sys.executable) + "\n")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=120,
                              check=False)

    where = run(python, "-c", "import chartguard; print(chartguard.__file__)")
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the wheel's copy
    top = run(str(venv / "bin" / "chartguard"), "--help")
    assert top.returncode == 0, top.stderr
    assert "run" in top.stdout
    sub = run(str(venv / "bin" / "chartguard"), "run", "--help")
    assert sub.returncode == 0, sub.stderr
    for flag in ("--helm-home", "--health-port", "--peering", "--release-service-account"):
        assert flag in sub.stdout, flag
    missing = run(python, "-c", "import chartguard_testing")
    assert "No module named 'chartguard_testing'" in missing.stderr

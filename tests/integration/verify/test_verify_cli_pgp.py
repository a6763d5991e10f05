"""``chartguard verify --pgp-keyring``: Helm provenance of a chart in a registry (``helm push``
of a ``helm package --sign`` archive) or of a local archive with its ``.prov``, with real gpg
keys (a GNUPGHOME per test) and the real ``gpgv``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chartguard.cli import main
from chartguard_testing.charts import HelmEnv
from chartguard_testing.pgp_signer import PGPKey, package_signed
from chartguard_testing.registry import Registry
from chartguard_testing.tools import find_tool


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def key(pgp_keys: Callable[..., PGPKey]) -> PGPKey:
    return pgp_keys()


@pytest.fixture
def keyrings(tmp_path: Path, key: PGPKey) -> tuple[Path, Path]:
    binary, armored = tmp_path / "pubring.gpg", tmp_path / "signer.asc"
    binary.write_bytes(key.public)
    armored.write_bytes(key.armored)
    return binary, armored


@pytest.fixture
def archive(helm_env: HelmEnv, key: PGPKey, tmp_path: Path) -> Path:
    return package_signed(helm_env, helm_env.create("podinfo", "1.2.3"), key, tmp_path / "out")


def test_a_pushed_chart_with_its_provenance_verifies_with_either_keyring(
        capsys: pytest.CaptureFixture[str], registry: Registry, helm_env: HelmEnv,
        archive: Path, key: PGPKey, keyrings: tuple[Path, Path]) -> None:
    digest = helm_env.push(archive, registry)
    for ring in keyrings:
        code, out, err = _run(capsys, f"{registry.oci('charts')}/podinfo", "--version", "1.2.3",
                              "--plain-http", "--pgp-keyring", str(ring), "--output", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["verified"] is True
        assert doc["format"] == "pgp"
        assert doc["digest"] == digest
        assert doc["key"] == key.fingerprint
        assert doc["chart"]["file"] == "podinfo-1.2.3.tgz"
    code, out, _ = _run(capsys, f"{registry.oci('charts')}/podinfo", "--version", "1.2.3",
                        "--plain-http", "--pgp-keyring", str(keyrings[1]))
    assert code == 0
    assert f"signed by {key.uid} (key {key.fingerprint})" in out


def test_a_chart_pushed_without_provenance_or_signed_by_another_key_is_not_verified(
        capsys: pytest.CaptureFixture[str], registry: Registry, helm_env: HelmEnv,
        archive: Path, tmp_path: Path, pgp_keys: Callable[..., PGPKey]) -> None:
    helm_env.push(archive, registry)
    other = pgp_keys(name="Someone Else")
    ring = tmp_path / "other.asc"
    ring.write_bytes(other.armored)
    code, _, err = _run(capsys, f"{registry.oci('charts')}/podinfo", "--version", "1.2.3",
                        "--plain-http", "--pgp-keyring", str(ring))
    assert code == 1
    assert "not verified: the provenance is signed by key" in err
    assert "which is not in the keyring" in err
    plain = helm_env.package(helm_env.create("plain", "1.0.0"))
    helm_env.push(plain, registry)
    code, _, err = _run(capsys, f"{registry.oci('charts')}/plain", "--version", "1.0.0",
                        "--plain-http", "--pgp-keyring", str(ring))
    assert code == 1
    assert "no provenance (.prov) for plain-1.0.0.tgz" in err
    assert "has no provenance layer" in err


def test_a_local_archive_and_its_prov_file(
        capsys: pytest.CaptureFixture[str], archive: Path, key: PGPKey,
        keyrings: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = _run(capsys, str(archive), "--pgp-keyring", str(keyrings[0]))
    assert code == 0, err
    assert "verified Helm provenance of podinfo-1.2.3.tgz" in out
    # a flipped byte of the archive (copied with its .prov): in the gzip header's mtime, so
    # the archive still reads and only the signed sha256 can tell; then in the data
    copy = tmp_path / "tampered" / archive.name
    copy.parent.mkdir()
    shutil.copy(str(archive) + ".prov", str(copy) + ".prov")
    for at, words in ((4, "but the signed provenance says sha256:"),
                      (-30, "is not a gzipped tar archive")):
        data = bytearray(archive.read_bytes())
        data[at] ^= 0x01
        copy.write_bytes(bytes(data))
        code, _, err = _run(capsys, str(copy), "--pgp-keyring", str(keyrings[0]))
        assert (code, words in err) == (1, True), err
    # renamed: the signed provenance names another file
    renamed = tmp_path / "renamed" / "podinfo-1.2.4.tgz"
    renamed.parent.mkdir()
    shutil.copy(archive, renamed)
    shutil.copy(str(archive) + ".prov", str(renamed) + ".prov")
    code, _, err = _run(capsys, str(renamed), "--pgp-keyring", str(keyrings[0]))
    assert code == 1
    assert "names the file(s) podinfo-1.2.3.tgz, not podinfo-1.2.4.tgz" in err
    # no .prov beside it
    alone = tmp_path / "alone" / archive.name
    alone.parent.mkdir()
    shutil.copy(archive, alone)
    code, _, err = _run(capsys, str(alone), "--pgp-keyring", str(keyrings[0]))
    assert code == 1
    assert "no provenance (.prov) for podinfo-1.2.3.tgz" in err


@pytest.mark.parametrize(("argv", "words"), [
    (["--key", "{tmp}/cosign.pub"], "--key are for cosign signatures"),
    (["--certificate-identity-regexp", "x"], "--certificate-identity-regexp are for cosign"),
    (["--version", "1.2.3"], "--version do not apply to a local chart archive"),
], ids=["key", "identity", "version-with-a-file"])
def test_usage_errors(capsys: pytest.CaptureFixture[str], archive: Path,
                      keyrings: tuple[Path, Path], tmp_path: Path, argv: list[str],
                      words: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _run(capsys, str(archive), "--pgp-keyring", str(keyrings[0]), *argv)
    assert code == 2
    assert words in err


def test_a_keyring_that_cannot_be_used_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], archive: Path, key: PGPKey,
        tmp_path: Path) -> None:
    code, _, err = _run(capsys, str(archive), "--pgp-keyring", str(tmp_path / "none.gpg"))
    assert (code, "none.gpg: cannot be read" in err) == (2, True)
    code, _, err = _run(capsys, str(archive), "--pgp-keyring", str(key.secring))
    assert (code, "holds an OpenPGP private key" in err) == (2, True)


def test_as_a_process_with_its_exit_code(archive: Path, keyrings: tuple[Path, Path]) -> None:
    done = subprocess.run([sys.executable, "-m", "chartguard", "verify", str(archive),
                           "--pgp-keyring", str(keyrings[1]), "--output", "json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chart"]["name"] == "podinfo"


def test_an_oci_layout_oras_copied_with_the_provenance_layer(
        capsys: pytest.CaptureFixture[str], registry: Registry, helm_env: HelmEnv,
        archive: Path, key: PGPKey, keyrings: tuple[Path, Path], tmp_path: Path) -> None:
    digest = helm_env.push(archive, registry)
    layout = tmp_path / "layout"
    subprocess.run([find_tool("oras"), "copy", "--from-plain-http",
                    f"{registry.host}/charts/podinfo:1.2.3", "--to-oci-layout",
                    f"{layout}:1.2.3"], check=True, capture_output=True, timeout=120)
    code, out, err = _run(capsys, "--local-image", f"{layout}:1.2.3", "--pgp-keyring",
                          str(keyrings[0]), "--output", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["digest"], doc["key"]) == (digest, key.fingerprint)


def test_a_tag_moved_to_an_older_signed_chart_is_refused(
        capsys: pytest.CaptureFixture[str], registry: Registry, helm_env: HelmEnv,
        archive: Path, key: PGPKey, keyrings: tuple[Path, Path], tmp_path: Path) -> None:
    """Anyone who may push (not sign) points tag 2.0.0 at the signed 1.2.3 manifest: its
    provenance is valid, for podinfo-1.2.3.tgz. Asked for 2.0.0, the chart is refused (as
    ``helm pull --verify`` does), and so is the same move under ``chartguard pull``."""
    old = helm_env.push(archive, registry)
    newer = package_signed(helm_env, helm_env.create("podinfo", "2.0.0"), key, tmp_path / "new")
    helm_env.push(newer, registry)
    repo = f"{registry.host}/charts/podinfo"
    subprocess.run([find_tool("crane"), "tag", "--insecure", f"{repo}@{old}", "2.0.0"],
                   check=True, capture_output=True, timeout=60)
    code, _, err = _run(capsys, f"{registry.oci('charts')}/podinfo", "--version", "2.0.0",
                        "--plain-http", "--pgp-keyring", str(keyrings[0]))
    assert code == 1, err
    assert "is version '1.2.3' of podinfo, not '2.0.0'" in err
    assert "verified" not in err.replace("not verified", "")
    (tmp_path / "pulled").mkdir()
    code = main(["pull", f"{registry.oci('charts')}/podinfo", "--version", "2.0.0",
                 "--plain-http", "-d", str(tmp_path / "pulled")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "is version '1.2.3' of podinfo, not '2.0.0'" in err
    assert list((tmp_path / "pulled").iterdir()) == []

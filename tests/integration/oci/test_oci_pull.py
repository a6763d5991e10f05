"""Pulling charts that real helm pushed: every version form resolves as ``helm pull`` does,
and the bytes written are the bytes ``helm pull`` writes."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from oci_helpers import PaginatingProxy, push_chart, reference

from chartguard.cli import main
from chartguard.oci import (
    ChartReference,
    RegistryClient,
    RegistryResponseError,
    VersionNotFoundError,
)
from chartguard_testing import procs
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry, run_registry

VERSIONS = ["0.9.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.10.0+build.5", "2.0.0-rc.1",
            "2.0.0", "2.1.0"]


@dataclass(frozen=True)
class _Shelf:
    """One registry with every version of VERSIONS pushed by helm, shared by a module."""

    registry: Registry
    helm: HelmEnv
    ref: ChartReference
    digests: dict[str, str]  # version -> the manifest digest helm printed when pushing


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Shelf]:
    root = tmp_path_factory.mktemp("shelf")
    with run_registry(workdir=root) as registry:
        helm = HelmEnv(root / "helm")
        digests = {v: push_chart(helm, registry, "demo", v).digest for v in VERSIONS}
        yield _Shelf(registry, helm, ChartReference.parse(registry.oci("charts"), "demo"),
                     digests)


def _helm_pull(helm: HelmEnv, registry: Registry, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    helm.run("pull", f"{registry.oci('charts')}/demo", "--version", version, "-d", str(dest),
             "--plain-http")
    (written,) = dest.iterdir()
    return written


@pytest.mark.parametrize(("constraint", "expected"), [
    ("1.2.3", "1.2.3"),  # exact
    ("*", "2.1.0"),
    (">=1.2.0 <2.0.0", "1.10.0+build.5"),
    (">=1.2, <2", "1.10.0+build.5"),
    ("^1.2", "1.10.0+build.5"),
    ("~1.2.3", "1.2.9"),
    ("1.2.x", "1.2.9"),
    ("<1 || >=2.1", "2.1.0"),
    (">=2.0.0-0 <2.0.0-z", "2.0.0-rc.1"),  # prerelease only when the constraint names one
    (">=1.3.0-0 <2.0.0", "2.0.0-rc.1"),  # ...anywhere in its "and" group (Masterminds 3.4)
    ("<1 || >=1.3 <2.0.0", "1.10.0+build.5"),  # a group naming none admits none
    ("1.10.0+build.5", "1.10.0+build.5"),  # '+' is '_' in the tag
])
def test_cli_pull_writes_what_helm_pull_writes(
        constraint: str, expected: str, shelf: _Shelf, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    registry = shelf.registry
    helm_file = _helm_pull(shelf.helm, registry, constraint, tmp_path / "helm-pulled")
    ours = tmp_path / "ours"
    ours.mkdir()
    code = main(["pull", str(shelf.ref), "--version", constraint, "-d", str(ours),
                 "--plain-http"])
    out = capsys.readouterr()
    assert code == 0, out.err
    (written,) = ours.iterdir()
    assert written.name == helm_file.name == f"demo-{expected}.tgz"
    assert written.read_bytes() == helm_file.read_bytes()
    tag = expected.replace("+", "_")
    lines = out.out.splitlines()
    assert lines[0] == f"Pulled: {registry.host}/charts/demo:{tag}"
    assert lines[1] == f"Digest: {shelf.digests[expected]}"


def test_library_pull_returns_the_pushed_bytes_and_digest(
        registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.2.3")
    client = make_client(registry)
    resolved = client.resolve(reference(chart), "1.2.3")
    assert (resolved.version, resolved.tag, resolved.digest) == ("1.2.3", "1.2.3", chart.digest)
    artifact = client.fetch_chart(reference(chart), resolved.digest)
    assert artifact.layer == chart.package.read_bytes()
    assert (artifact.name, artifact.version, artifact.digest) == ("demo", "1.2.3", chart.digest)
    assert b'"name":"demo"' in artifact.config


def test_exact_version_is_one_head_and_no_tag_listing(
        registry: Registry, helm_env: HelmEnv, make_client: Callable[..., RegistryClient],
        paginating_proxy: Callable[[int], PaginatingProxy]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.2.3")
    proxy = paginating_proxy(100)
    client = make_client(registry)
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    assert client.resolve(ref, "1.2.3").digest == chart.digest
    assert proxy.seen == [("HEAD", "/v2/charts/demo/manifests/1.2.3")]


def test_tag_list_pages_are_followed_through_link_headers(
        registry: Registry, helm_env: HelmEnv, make_client: Callable[..., RegistryClient],
        paginating_proxy: Callable[[int], PaginatingProxy]) -> None:
    pushed = {v: push_chart(helm_env, registry, "demo", v)
              for v in ("0.1.0", "0.2.0", "0.3.0", "1.0.0", "0.4.0")}
    proxy = paginating_proxy(2)
    client = make_client(registry, tags_page_size=2)
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    assert sorted(client.list_tags(ref)) == sorted(pushed)
    assert len(proxy.tag_requests) == 3  # 2 + 2 + 1 tags
    # the highest version sits on the last page (tags are served in lexical order)
    resolved = client.resolve(ref, "*")
    assert (resolved.tag, resolved.digest) == ("1.0.0", pushed["1.0.0"].digest)


def test_missing_version_and_missing_chart_are_version_not_found(
        registry: Registry, helm_env: HelmEnv,
        make_client: Callable[..., RegistryClient]) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    client = make_client(registry)
    with pytest.raises(VersionNotFoundError, match=r"has no version 9\.9\.9"):
        client.resolve(reference(chart), "9.9.9")
    with pytest.raises(VersionNotFoundError, match=r"'>=2\.0\.0'"):
        client.resolve(reference(chart), ">=2.0.0")
    with pytest.raises(VersionNotFoundError, match="does not exist"):
        client.resolve(ChartReference.parse(chart.url, "nothere"), "*")


def test_cli_exit_codes_and_one_line_errors(
        registry: Registry, helm_env: HelmEnv, out_dir: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    url = f"{chart.url}/demo"
    assert main(["pull", url, "--version", "2.0.0", "-d", str(out_dir), "--plain-http"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "2.0.0" in err
    assert "push that version" in err
    # usage errors, the user's own (bad URL, constraint, directory) included: 2
    assert main(["pull", "https://x.io/c/demo", "-d", str(out_dir)]) == 2
    assert "oci://" in capsys.readouterr().err
    assert main(["pull", url, "--version", ">>1", "-d", str(out_dir), "--plain-http"]) == 2
    assert "not a semver version or constraint" in capsys.readouterr().err
    assert main(["pull", url, "-d", str(out_dir / "nope"), "--plain-http"]) == 2
    assert "not a directory" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["pull", url, "--password-stdin", "--plain-http"]) == 2
    assert main(["pull", url, "--plain-http", "--ca-file", "/x"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nothing piped in
    assert main(["pull", url, "--username", "u", "--password-stdin", "--plain-http"]) == 2
    assert "read no password" in capsys.readouterr().err
    assert main(["pull"]) == 2  # argparse's own errors go through the same place
    assert "chartguard pull: error: the following arguments are required" in \
        capsys.readouterr().err
    assert list(out_dir.iterdir()) == []


def test_pagination_link_to_another_host_is_refused(
        registry: Registry, helm_env: HelmEnv, make_client: Callable[..., RegistryClient],
        paginating_proxy: Callable[[int], PaginatingProxy]) -> None:
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        helm_env.make_chart(registry, "demo", version)
    proxy = paginating_proxy(1)
    proxy.link_base = f"http://127.0.0.1:{procs.free_port()}"  # credentials must not go there
    ref = ChartReference.parse(f"oci://{proxy.host}/charts", "demo")
    with pytest.raises(RegistryResponseError, match="pointed chartguard at another host"):
        make_client(registry).resolve(ref, "*")

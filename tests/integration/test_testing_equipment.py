"""The test equipment itself: a real registry that real helm pushes to and pulls from."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from chartguard_testing import cosign_signer as cs
from chartguard_testing.bulk_charts import push_signed_charts
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry, run_registry


def test_helm_push_then_pull_round_trips_bytes(registry: Registry, helm_env: HelmEnv,
                                                tmp_path: Path) -> None:
    chart = helm_env.make_chart(registry, "demo", "1.2.3")
    pulled = helm_env.pull(registry, "demo", "1.2.3", tmp_path / "out")
    assert pulled.read_bytes() == chart.package.read_bytes()
    manifest = requests.get(
        f"{registry.url}/v2/charts/demo/manifests/{chart.digest}", timeout=5,
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert "sha256:" + hashlib.sha256(manifest.content).hexdigest() == chart.digest


def test_bulk_charts_with_a_layer_per_chart_name_each_chart_as_helm_push_would(
        registry: Registry, helm_env: HelmEnv, tmp_path: Path) -> None:
    # helm installs the Chart.yaml name; a config naming the chart otherwise makes a release
    # look moved to another chart on every reconcile
    push_signed_charts(registry, helm_env, cs.generate_key_pair(), 2, layer_per_chart=True,
                       path="bulk")
    pulled = [helm_env.pull(registry, f"c{i:04d}", "1.0.0", tmp_path / str(i), path="bulk")
              for i in range(2)]
    assert [p.name for p in pulled] == ["c0000-1.0.0.tgz", "c0001-1.0.0.tgz"]
    for i, package in enumerate(pulled):
        shown = helm_env.run("show", "chart", str(package)).stdout
        assert f"name: c{i:04d}\n" in shown
        rendered = helm_env.run("template", "r", str(package)).stdout
        assert f"helm.sh/chart: c{i:04d}-1.0.0" in rendered
    assert pulled[0].read_bytes() != pulled[1].read_bytes()


def test_auth_registry_refuses_anonymous_and_accepts_login(auth_registry: Registry,
                                                           helm_env: HelmEnv) -> None:
    anon = requests.get(f"{auth_registry.url}/v2/", timeout=5)
    assert anon.status_code == 401
    chart = helm_env.make_chart(auth_registry)  # logs in with the htpasswd user
    assert chart.digest.startswith("sha256:")


def test_tls_registry_needs_its_ca(tls_registry: Registry, helm_env: HelmEnv) -> None:
    assert tls_registry.tls is not None
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_registry.url}/v2/", timeout=5, verify=True)
    ok = requests.get(f"{tls_registry.url}/v2/", timeout=5, verify=str(tls_registry.tls.ca_cert))
    assert ok.status_code == 200
    assert helm_env.make_chart(tls_registry).digest.startswith("sha256:")


def test_registry_is_stopped_and_its_storage_removed(tmp_path: Path) -> None:
    with run_registry(workdir=tmp_path) as reg:
        proc, root = reg.proc, reg.root
        assert root.exists()
    assert proc.poll() is not None
    assert not root.exists()


def test_the_helm_repository_server_serves_what_real_helm_reads(helm_env: HelmEnv,
                                                                 tmp_path: Path) -> None:
    import socket

    from chartguard_testing.helmrepo_server import build_repository, run_helm_repository

    root = tmp_path / "repo"
    build_repository(helm_env, root, [("demo", "0.1.0")])
    with run_helm_repository(root, workdir=tmp_path / "srv", auth=("u", "p")) as repo:
        assert repo.tls is not None
        refused = helm_env.run("repo", "add", "plain", repo.url, "--ca-file",
                               str(repo.tls.ca_cert), check=False)
        assert refused.returncode != 0
        assert "401" in refused.stderr
        helm_env.run("repo", "add", "demo", repo.url, "--username", "u", "--password", "p",
                     "--ca-file", str(repo.tls.ca_cert))
        (tmp_path / "out").mkdir()
        helm_env.run("pull", "demo/demo", "--version", "0.1.0", "-d", str(tmp_path / "out"))
        pulled = (tmp_path / "out" / "demo-0.1.0.tgz").read_bytes()
        assert pulled == (root / "demo-0.1.0.tgz").read_bytes()
        assert [h.status for h in repo.requests("demo-0.1.0.tgz")] == [200]
        port = repo.server.server_address[1]
    with socket.socket() as probe:  # stopped: the port answers no more
        assert probe.connect_ex(("127.0.0.1", port)) != 0

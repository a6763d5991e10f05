"""The test equipment itself: a real registry that real helm pushes to and pulls from."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

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

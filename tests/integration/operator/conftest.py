"""Fixtures of the operator tests: the emulator with Flux's CRDs, a registry behind a counting
proxy, charts by real helm, a local Sigstore, and ``chartguard run`` as a process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_support import Charts, Cluster, Operator

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.charts import HelmEnv
from chartguard_testing.proxy import CountingProxy
from chartguard_testing.registry import Registry
from chartguard_testing.sigstore_local import LocalSigstore

CRDS = Path(tools.REPO_ROOT) / "crds"


@pytest.fixture(scope="session")
def sigstore() -> LocalSigstore:
    return LocalSigstore.create()


@pytest.fixture
def kubectl(kube_api: KubeAPI, tmp_path: Path) -> Kubectl:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    kubectl("apply", "-f", str(CRDS))
    for crd in ("helmrepositories", "helmcharts"):
        kubectl("wait", "--for=condition=Established",
                f"crd/{crd}.source.toolkit.fluxcd.io", "--timeout=10s")
    kubectl("create", "namespace", "flux-system")
    return kubectl


@pytest.fixture
def cluster(kubectl: Kubectl) -> Cluster:
    return Cluster(kubectl)


@pytest.fixture
def proxy(registry: Registry) -> Iterator[CountingProxy]:
    proxy = CountingProxy(registry)
    yield proxy
    proxy.close()


@pytest.fixture
def charts(registry: Registry, helm_env: HelmEnv, sigstore: LocalSigstore) -> Charts:
    return Charts(registry, helm_env, sigstore)


@pytest.fixture
def operator(kube_api: KubeAPI, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(kube_api, tmp_path / "op")
    op.workdir.mkdir()
    yield op
    if op.proc is not None and op.proc.poll() is None:
        op.stop()
    log = op.output() if op.log.exists() else ""
    assert "Traceback" not in log, log[-8000:]

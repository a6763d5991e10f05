"""Fixtures of the CLI tests: the emulator with Flux's CRDs and a ``flux-system`` namespace,
real kubectl, charts pushed by real helm and signed, ``chartguard run`` as a process (the
operator tests' equipment, ``tests/integration/operator/operator_support.py``), and the
``chartguard`` command itself run as users run it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from cli_support import Chartguard
from operator_support import Charts, Cluster, Operator, OperatorTarget

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
def kube(kube_api: KubeAPI, tmp_path: Path) -> OperatorTarget:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    kubectl("apply", "-f", str(CRDS))
    for crd in ("helmrepositories.source", "helmcharts.source", "helmreleases.helm"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}.toolkit.fluxcd.io",
                "--timeout=10s")
    kubectl("create", "namespace", "flux-system")
    return OperatorTarget("emulator", kube_api, "flux-system")


@pytest.fixture
def cluster(kube: OperatorTarget, tmp_path: Path) -> Cluster:
    return Cluster(Kubectl(tools.kubectl(), kube, tmp_path), kube.namespace)


@pytest.fixture
def proxy(registry: Registry) -> Iterator[CountingProxy]:
    proxy = CountingProxy(registry)
    yield proxy
    proxy.close()


@pytest.fixture
def charts(registry: Registry, helm_env: HelmEnv, sigstore: LocalSigstore) -> Charts:
    return Charts(registry, helm_env, sigstore)


@pytest.fixture
def operator(kube: OperatorTarget, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(kube, tmp_path / "op")
    op.workdir.mkdir()
    yield op
    if op.proc is not None and op.proc.poll() is None:
        op.stop()
    log = op.output() if op.log.exists() else ""
    assert "Traceback" not in log, log[-8000:]


@pytest.fixture
def chartguard(kube: OperatorTarget, tmp_path: Path) -> Chartguard:
    return Chartguard(kube, tmp_path)

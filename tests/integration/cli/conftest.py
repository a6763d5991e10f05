"""Fixtures of the CLI tests: the emulator with Flux's CRDs and a ``flux-system`` namespace,
real kubectl, charts pushed by real helm and signed, ``chartguard run`` as a process (the
operator tests' equipment, ``tests/integration/operator/operator_support.py``), and the
``chartguard`` command itself run as users run it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from cli_support import Chartguard
from operator_fixtures import charts, operator, proxy, sigstore  # noqa: F401 (fixtures)
from operator_support import Cluster, OperatorTarget

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl

CRDS = Path(tools.REPO_ROOT) / "crds"



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
def chartguard(kube: OperatorTarget, tmp_path: Path) -> Chartguard:
    return Chartguard(kube, tmp_path)

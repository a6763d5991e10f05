"""Fixtures of the chaos tests (faults and hostile input, ``make chaos``): the operator tests'
equipment (``tests/integration/operator/operator_support.py``) on the API emulator with Flux's
CRDs and a ``flux-system`` namespace, unless a test asks for the real control plane with
``@pytest.mark.parametrize("kube", ["real"], indirect=True)`` (xdist group ``controlplane``).

``chaos_support.helm_records(cluster)`` reads every release record helm's storage holds in the
test's namespace: what :func:`chartguard_testing.chaos.unverified_installs` checks.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from operator_fixtures import charts, operator, proxy, sigstore  # noqa: F401 (fixtures)
from operator_support import Cluster, OperatorTarget, release_finalizers

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.controlplane import ControlPlane, namespaced

CRDS = Path(tools.REPO_ROOT) / "crds"


@pytest.fixture(params=["emulator"])
def kube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OperatorTarget]:
    """The emulator by default; ``"real"`` (indirect parametrisation) for the control plane."""
    if request.param == "emulator":
        api: KubeAPI = request.getfixturevalue("kube_api")
        kubectl = Kubectl(tools.kubectl(), api, tmp_path)
        kubectl("apply", "-f", str(CRDS))
        for crd in ("helmrepositories.source", "helmcharts.source", "helmreleases.helm"):
            kubectl("wait", "--for=condition=Established",
                    f"crd/{crd}.toolkit.fluxcd.io", "--timeout=10s")
        kubectl("create", "namespace", "flux-system")
        yield OperatorTarget("emulator", api, "flux-system")
        return
    plane: ControlPlane = request.getfixturevalue("controlplane")
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    target = namespaced(plane, f"{stem}-{uuid.uuid4().hex[:6]}", tmp_path / "real-kube")
    yield OperatorTarget("real", target, target.namespace)
    release_finalizers(plane, target.namespace)
    plane.request("DELETE", f"/api/v1/namespaces/{target.namespace}")


@pytest.fixture
def kubectl(kube: OperatorTarget, tmp_path: Path) -> Kubectl:
    return Kubectl(tools.kubectl(), kube, tmp_path)


@pytest.fixture
def cluster(kubectl: Kubectl, kube: OperatorTarget) -> Cluster:
    return Cluster(kubectl, kube.namespace)

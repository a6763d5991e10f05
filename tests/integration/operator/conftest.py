"""Fixtures of the operator tests: Flux's CRDs on a Kubernetes API, a registry behind a
counting proxy, charts by real helm, a local Sigstore, and ``chartguard run`` as a process.

The API is the ``kube`` fixture, parametrised over both targets: the emulator
(``chartguard_testing.apiserver``, a namespace ``flux-system`` as in the blog) and the real
control plane of ``make controlplane`` (a namespace of the test's own; one control plane per
pytest process, so the real runs share the xdist group ``controlplane``). A test that runs on
one target only says so with ``@pytest.mark.parametrize("kube", [...], indirect=True)``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_fixtures import charts, operator, proxy, sigstore  # noqa: F401 (fixtures)
from operator_support import Cluster, OperatorTarget, release_finalizers

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.controlplane import ControlPlane, namespaced

CRDS = Path(tools.REPO_ROOT) / "crds"
REAL = pytest.param("real", marks=pytest.mark.xdist_group("controlplane"))



@pytest.fixture(params=["emulator", REAL])
def kube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OperatorTarget]:
    """The API the operator and kubectl talk to, with the namespace the test works in."""
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
    plane: ControlPlane = request.getfixturevalue("controlplane")  # CRDs installed
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



"""Fixtures of the chaos tests (faults and hostile input, ``make chaos``): the operator tests'
equipment (``tests/integration/operator/operator_support.py``) on the API emulator with Flux's
CRDs and a ``flux-system`` namespace, unless a test asks for the real control plane with
``@pytest.mark.parametrize("kube", ["real"], indirect=True)`` (xdist group ``controlplane``).

``chaos_support.helm_records(cluster)`` reads every release record helm's storage holds in the
test's namespace: what :func:`chartguard_testing.chaos.unverified_installs` checks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from operator_fixtures import charts, kube_target, operator, proxy, sigstore  # noqa: F401
from operator_support import Cluster, OperatorTarget

from chartguard_testing import tools
from chartguard_testing.apiserver.kubectl import Kubectl


@pytest.fixture(params=["emulator"])
def kube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OperatorTarget]:
    """The emulator by default; ``"real"`` (indirect parametrisation) for the control plane."""
    yield from kube_target(request, tmp_path)


@pytest.fixture
def kubectl(kube: OperatorTarget, tmp_path: Path) -> Kubectl:
    return Kubectl(tools.kubectl(), kube, tmp_path)


@pytest.fixture
def cluster(kubectl: Kubectl, kube: OperatorTarget) -> Cluster:
    return Cluster(kubectl, kube.namespace)

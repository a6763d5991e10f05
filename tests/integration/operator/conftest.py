"""Fixtures of the operator tests: Flux's CRDs on a Kubernetes API, a registry behind a
counting proxy, charts by real helm, a local Sigstore, and ``chartguard run`` as a process.

The API is the ``kube`` fixture, parametrised over both targets: the emulator
(``chartguard_testing.apiserver``, a namespace ``flux-system`` as in the blog) and the real
control plane of ``make controlplane`` (a namespace of the test's own; one control plane per
pytest process, so the real runs share the xdist group ``controlplane``). A test that runs on
one target only says so with ``@pytest.mark.parametrize("kube", [...], indirect=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_fixtures import (  # noqa: F401 (fixtures)
    charts,
    kube_target,
    operator,
    proxy,
    sigstore,
)
from operator_support import Cluster, OperatorTarget

from chartguard_testing import tools
from chartguard_testing.apiserver.kubectl import Kubectl

REAL = pytest.param("real", marks=pytest.mark.xdist_group("controlplane"))


@pytest.fixture(params=["emulator", REAL])
def kube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OperatorTarget]:
    """The API the operator and kubectl talk to, with the namespace the test works in."""
    yield from kube_target(request, tmp_path)


@pytest.fixture
def kubectl(kube: OperatorTarget, tmp_path: Path) -> Kubectl:
    return Kubectl(tools.kubectl(), kube, tmp_path)


@pytest.fixture
def cluster(kubectl: Kubectl, kube: OperatorTarget) -> Cluster:
    return Cluster(kubectl, kube.namespace)



"""`make e2e`: the flows of the emulator-backed tests, against a real cluster.

`make e2e` (scripts/e2e.py) creates a kind cluster, installs the operator with the deploy
chart, runs a registry in it and sets ``CHARTGUARD_E2E_KUBECONFIG``, ``CHARTGUARD_E2E_REGISTRY``
(the registry as this machine reaches it, 127.0.0.1 through ``kubectl port-forward``),
``CHARTGUARD_E2E_REGISTRY_IN_CLUSTER`` (as the operator reaches it) and
``CHARTGUARD_E2E_OPERATOR_NAMESPACE``. Everything a test creates lives in a namespace of its
own, deleted afterwards. Without them these tests fail with a line saying so: they never skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_support import InCluster

from chartguard_testing import tools
from chartguard_testing.apiserver.kubectl import Kubectl


@dataclass(frozen=True)
class Cluster:
    """Just what ``Kubectl`` needs of an API: a kubeconfig and an environment."""

    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    path = os.environ.get("CHARTGUARD_E2E_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if not path or not Path(path).is_file():
        pytest.fail("make e2e needs a real cluster: set CHARTGUARD_E2E_KUBECONFIG (or "
                    "KUBECONFIG) to its kubeconfig, e.g. after `kind create cluster`")
    return Cluster(Path(path))


@pytest.fixture
def kubectl(cluster: Cluster, tmp_path: Path) -> Kubectl:
    return Kubectl(tools.kubectl(), cluster, tmp_path)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"chartguard-e2e-{secrets.token_hex(4)}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def in_cluster(cluster: Cluster) -> InCluster:
    names = ("CHARTGUARD_E2E_REGISTRY", "CHARTGUARD_E2E_REGISTRY_IN_CLUSTER",
             "CHARTGUARD_E2E_OPERATOR_NAMESPACE")
    values = [os.environ.get(name, "") for name in names]
    if not all(values):
        pytest.fail(f"the operator and registry of `make e2e` are not set up ({', '.join(names)}"
                    " unset): run `make e2e`, which creates a kind cluster with both")
    return InCluster(*values)

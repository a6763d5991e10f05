"""`make e2e`: the flows of the emulator-backed tests, against a real cluster.

Needs ``CHARTGUARD_E2E_KUBECONFIG`` (or ``KUBECONFIG``) pointing at a disposable cluster, e.g.
``kind create cluster && make e2e``. Everything a test creates lives in a namespace of its
own, deleted afterwards; the CRDs are applied server-side (idempotent) and left installed.
Without a cluster these tests fail with a line saying so: they never skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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

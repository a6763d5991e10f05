"""The helm runner against the API emulator: real helm 4, real kubectl, charts helm made."""

from __future__ import annotations

from pathlib import Path

import pytest
from helm_support import Kube, KubectlReleaseStorage

from chartguard.helm.runner import Helm
from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI


@pytest.fixture
def kube(kube_api: KubeAPI) -> Kube:
    """kubectl on this test's emulator, with the HelmReleases' namespace created."""
    kube = Kube(kube_api)
    kube("create", "namespace", "flux-system")
    return kube


@pytest.fixture
def storage(kube: Kube) -> KubectlReleaseStorage:
    return KubectlReleaseStorage(kube)


@pytest.fixture
def helm(tmp_path: Path, kube_api: KubeAPI, storage: KubectlReleaseStorage) -> Helm:
    """The runner with its own home and this test's kubeconfig."""
    return Helm(binary=tools.helm(), home=tmp_path / "runner", storage=storage,
                env=kube_api.env)

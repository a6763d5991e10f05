"""Helpers for the emulator's own tests: real kubectl (two versions) against ``kube_api``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.charts import HelmEnv

# the kubectl every machine has, and the newest one from `make tools`
KUBECTLS = {"kubectl-system": "/usr/bin/kubectl", "kubectl-1.35": str(tools.TOOLS_DIR / "kubectl")}


@pytest.fixture(params=sorted(KUBECTLS))
def kubectl(request: pytest.FixtureRequest, kube_api: KubeAPI, tmp_path: Path) -> Kubectl:
    binary = KUBECTLS[request.param]
    assert Path(binary).is_file(), f"{binary} missing: run `make tools`"
    return Kubectl(binary, kube_api, tmp_path)


# helm 4's default --wait watches kstatus, "legacy" is helm 3's ReplicaSet readiness check
# inside helm 4; helm 3.17 (`make tools` as .tools/helm3) takes a bare --wait
HELMS = {"helm4-watcher": ("helm", "--wait=watcher"), "helm4-legacy": ("helm", "--wait=legacy"),
         "helm3.17": ("helm3", "--wait")}


@pytest.fixture(params=sorted(HELMS))
def helm(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[HelmEnv, str]:
    """One real helm with a private home, and the ``--wait`` flag it takes."""
    tool, wait = HELMS[request.param]
    return HelmEnv(tmp_path / "helm", tools.find_tool(tool)), wait


@pytest.fixture(autouse=True)
def _emulator_log_is_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """A client that retries (kopf, helm) could hide a 500 the emulator answered: every
    test using ``kube_api`` also checks the emulator logged no traceback."""
    api: KubeAPI | None = (request.getfixturevalue("kube_api")
                           if "kube_api" in request.fixturenames else None)
    yield
    if api is not None:
        log = api.log.read_text()
        assert "Traceback" not in log, f"the emulator failed on a request:\n{log}"

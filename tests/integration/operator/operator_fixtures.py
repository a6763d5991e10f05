"""The fixtures the operator and CLI tests share (both conftests import them): a local
Sigstore, the registry behind a counting proxy, signed charts, and ``chartguard run`` as a
process whose log must hold no traceback."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_support import Charts, Operator, OperatorTarget, release_finalizers

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.charts import HelmEnv
from chartguard_testing.controlplane import ControlPlane, namespaced
from chartguard_testing.proxy import CountingProxy
from chartguard_testing.registry import Registry
from chartguard_testing.sigstore_local import LocalSigstore


@pytest.fixture(scope="session")
def sigstore() -> LocalSigstore:
    return LocalSigstore.create()


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


CRDS = Path(tools.REPO_ROOT) / "crds"


def kube_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OperatorTarget]:
    """The body of the ``kube`` fixtures: ``request.param`` "emulator" (Flux's CRDs and a
    ``flux-system`` namespace, as in the blog) or "real" (a namespace of the test's own on the
    session's control plane, its finalizers released and deleted after)."""
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

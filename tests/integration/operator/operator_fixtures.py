"""The fixtures the operator and CLI tests share (both conftests import them): a local
Sigstore, the registry behind a counting proxy, signed charts, and ``chartguard run`` as a
process whose log must hold no traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_support import Charts, Operator, OperatorTarget

from chartguard_testing.charts import HelmEnv
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

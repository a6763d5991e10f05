"""Fixtures of the verify tests: a local Sigstore and a chart pushed by real helm."""

from __future__ import annotations

from pathlib import Path

import pytest
from verify_support import Signing

from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry
from chartguard_testing.sigstore_local import LocalSigstore


@pytest.fixture(scope="session")
def sigstore() -> LocalSigstore:
    """One local Fulcio/CT/Rekor per worker: its trusted root is written per test."""
    return LocalSigstore.create()


@pytest.fixture
def signing(registry: Registry, helm_env: HelmEnv, sigstore: LocalSigstore,
            tmp_path: Path) -> Signing:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    return Signing(registry, helm_env, sigstore, tmp_path, chart)


"""Fixtures of the API tests: chartguard's CRDs."""

from __future__ import annotations

from typing import Any

import pytest
from crdschema import load_crds


@pytest.fixture(scope="session")
def crds() -> dict[str, dict[str, Any]]:
    return load_crds()

"""What the e2e tests share beyond their fixtures (a module of its own: test modules cannot
import from a conftest reliably)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InCluster:
    """What `make e2e` set up inside the cluster: the registry (from here and from the
    operator) and the namespace the operator runs in."""

    registry: str
    registry_in_cluster: str
    operator_namespace: str

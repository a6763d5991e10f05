"""What the chaos tests read back from the cluster."""

from __future__ import annotations

import json
from typing import Any

from operator_support import Cluster

from chartguard_testing.chaos import release_records


def helm_records(cluster: Cluster) -> list[dict[str, Any]]:
    """Every release record (all revisions) helm's Secret storage holds in the namespace."""
    out = cluster.kubectl("get", "secrets", "-n", cluster.ns, "-l", "owner=helm",
                          "-o", "json").stdout
    return release_records(json.loads(out)["items"])

"""Running the helm binary. (Skeleton: the runner lands with the ``helm`` branch.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChartFile:
    """A chart archive in the artifact store and the digest it was verified as."""

    path: Path
    digest: str  # sha256:<hex> of the .tgz (the HelmChart's status.artifact.digest)

"""Helm's release records as data: what helm's storage holds for one revision of a release.

Pure: no I/O. (Skeleton: the decoders land with the ``helm`` branch.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


@dataclass(frozen=True)
class TestHook:
    """The last run of one Helm test hook."""

    last_started: str = ""
    last_completed: str = ""
    phase: str = ""  # Succeeded | Failed | Running | Unknown


@dataclass(frozen=True)
class StoredRelease:
    """One revision of a release as helm's storage (the Secret driver) holds it."""

    name: str
    namespace: str
    version: int
    #: deployed | failed | pending-install | pending-upgrade | pending-rollback | superseded |
    #: uninstalled | uninstalling | unknown
    status: str
    chart_name: str
    chart_version: str
    app_version: str
    #: ``values_digest`` of the values the revision was released with
    config_digest: str
    #: ``sha256:<hex>`` of the decoded release record: identifies this exact revision
    digest: str
    first_deployed: str
    last_deployed: str
    deleted: str = ""
    description: str = ""
    test_hooks: Mapping[str, TestHook] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pending(self) -> bool:
        return self.status in PENDING


class ReleaseStorage(Protocol):
    def history(self, namespace: str, name: str) -> list[StoredRelease]:
        """Every stored revision of release ``name`` in ``namespace``, newest first; [] when
        there is none."""
        ...

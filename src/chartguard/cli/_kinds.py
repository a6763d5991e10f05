"""The three Flux kinds the flux-like commands address, with the names each command uses.

The API versions are the storage versions chartguard serves (``crds/``): every object is read
and written as ``source.toolkit.fluxcd.io/v1`` or ``helm.toolkit.fluxcd.io/v2``, whatever
version it was applied as.
"""

from __future__ import annotations

from dataclasses import dataclass

from chartguard.api.meta import HELM_GROUP, HELM_VERSIONS, SOURCE_GROUP, SOURCE_VERSIONS


@dataclass(frozen=True)
class Kind:
    name: str  # HelmRelease
    group: str
    version: str
    plural: str  # helmreleases
    human: str  # flux's word for it in suspend/resume lines: "source helm", "helmrelease"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


HELM_REPOSITORY = Kind("HelmRepository", SOURCE_GROUP, SOURCE_VERSIONS[0], "helmrepositories",
                       "source helm")
HELM_CHART = Kind("HelmChart", SOURCE_GROUP, SOURCE_VERSIONS[0], "helmcharts", "source chart")
HELM_RELEASE = Kind("HelmRelease", HELM_GROUP, HELM_VERSIONS[0], "helmreleases", "helmrelease")
KINDS = (HELM_REPOSITORY, HELM_CHART, HELM_RELEASE)


def kind_named(name: str) -> Kind | None:
    """The kind called ``name`` (any case, as flux's ``--for`` and ``--source`` accept)."""
    return next((k for k in KINDS if k.name.lower() == name.lower()), None)

"""What a HelmRelease reconcile works from, once gathered: the chart and the values.

Plain data; built by :mod:`.release_chart` and :mod:`.values`, used by :mod:`.helmrelease`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chartguard.helm.runner import ChartFile


@dataclass(frozen=True)
class ComposedValues:
    """``valuesFrom`` in order, then ``spec.values``: what helm gets, and its digest."""

    values: Mapping[str, Any]
    digest: str  # chartguard.helm.release.values_digest(values)
    secrets: frozenset[tuple[str, str]] = frozenset()  # (namespace, name) read
    configmaps: frozenset[tuple[str, str]] = frozenset()
    #: the text of the values Secrets gave: kept out of helm's messages (secret_values)
    sensitive: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ReadyChart:
    """A HelmChart's artifact that this process verified (or whose chart has no ``verify``),
    present in the store under its digest."""

    file: ChartFile
    chart_name: str
    version: str
    revision: str  # "<version>@sha256:<manifest digest>"
    oci_digest: str  # "sha256:<manifest digest>" (status.history[].ociDigest)
    namespace: str  # the HelmChart's
    name: str

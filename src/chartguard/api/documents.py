"""Parse any document of the three kinds by its ``kind`` (for the CLI and for loading files)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chartguard.api.errors import InvalidSpecError
from chartguard.api.helmchart import HelmChart
from chartguard.api.helmrelease import HelmRelease
from chartguard.api.helmrepository import HelmRepository

Resource = HelmRepository | HelmChart | HelmRelease
KINDS: dict[str, type[HelmRepository] | type[HelmChart] | type[HelmRelease]] = {
    "HelmRepository": HelmRepository,
    "HelmChart": HelmChart,
    "HelmRelease": HelmRelease,
}


def parse_resource(body: Mapping[str, Any], *, default_namespace: str = "default") -> Resource:
    """The model for ``body``'s kind; ``InvalidSpecError`` for other kinds or invalid specs."""
    kind = body.get("kind") if isinstance(body, Mapping) else None
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidSpecError(
            "kind", f"unsupported value {kind!r}: chartguard serves {', '.join(KINDS)}")
    return model.from_object(body, default_namespace=default_namespace)

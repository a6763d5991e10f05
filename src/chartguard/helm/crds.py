"""A chart's ``crds/`` applied with Flux's CRD policies where the helm CLI has none.

helm's CLI creates a chart's CRDs on install (never replacing one that exists) and never
touches them on upgrade. helm-controller applies them itself (``internal/action/crds.go``)
before it installs or upgrades: ``Create`` creates the missing ones only, ``CreateReplace``
creates or replaces (server-side apply, conflicts forced; client-side create and replace
when the action applies client-side: ``serverSideApply``), then it waits until they are
established. chartguard does the same for ``install.crds: CreateReplace`` and
``upgrade.crds: Create|CreateReplace``: the CRDs are those ``helm template --include-crds``
prints from the verified chart copy with the release's values (so subcharts a condition or tag
disables contribute none, as helm's ProcessDependencies has it), the documents of ``crds/``
files only; objects there that are not CRDs are left out, as Flux leaves them out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import yaml

from chartguard.untrusted import escape

#: a chart's CRDs as helm template prints them: more is no chart helm would install
MAX_CRD_OUTPUT = 32 * 1024 * 1024
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


class CRDError(Exception):
    """The chart's CRDs could not be read or applied; the message says why."""


class CRDApplier(Protocol):
    """Applies CRDs in the cluster helm acts on (the operator's Kubernetes client)."""

    def apply(self, crds: Sequence[Mapping[str, Any]], *, replace: bool, as_user: str,
              server_side: bool = True) -> int:
        """Create the CRDs that do not exist, and with ``replace`` also apply the others
        (server-side, conflicts forced; with ``server_side`` False, created and replaced
        client-side, as the release's own apply method), acting as ``as_user`` ("" the caller's
        own); then wait until each one written is established. The number written;
        ``CRDError`` on failure."""
        ...


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader without aliases: a few hundred bytes of nested aliases expand into
    gigabytes when the CRD is serialised for the API (helm never needs them in a CRD)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("a YAML alias (not accepted in a chart's CRDs: a few of them "
                                 "can expand a small file into gigabytes)")
        return super().compose_node(parent, index)


def chart_crds(rendered: str) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of the ``crds/`` files in ``helm template
    --include-crds`` output, in order. A document that is not valid YAML is ``CRDError``."""
    if len(rendered) > MAX_CRD_OUTPUT:
        raise CRDError(f"helm template printed more than {MAX_CRD_OUTPUT // (1024 * 1024)} MiB")
    out: list[dict[str, Any]] = []
    source = ""
    for chunk in _SEPARATOR.split(rendered):
        found = _SOURCE.search(chunk)
        if found:
            source = found.group(1).strip()
        if "/crds/" not in f"/{source}":
            continue
        try:
            docs = list(yaml.load_all(chunk, Loader=_NoAliasLoader))  # a SafeLoader
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = " (a YAML alias: not accepted in CRDs)" if "alias" in str(err) else ""
            raise CRDError(f"{escape(source)} is not valid YAML{where}{problem}") from None
        for doc in docs:
            if (isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
                    and str(doc.get("apiVersion", "")).startswith("apiextensions.k8s.io/")
                    and isinstance((doc.get("metadata") or {}).get("name"), str)):
                out.append(doc)
    return out

"""HelmChart (source.toolkit.fluxcd.io): one chart, a version range, and how to verify it.

Defaults as Flux: ``version`` ``*``, ``reconcileStrategy`` ChartVersion, ``verify.provider``
cosign. ``spec.version`` is checked as a semver constraint when the source is a HelmRepository
(Flux ignores it for GitRepository and Bucket sources). ``spec.verify`` needs a HelmRepository
source (Flux's CEL rule on the spec); that the repository is of type oci is the reconciler's check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chartguard.api._fields import Fields, Frozen, dns_subdomain_problem
from chartguard.api.constraints import check_version_constraint
from chartguard.api.durations import format_duration
from chartguard.api.meta import (
    SOURCE_GROUP,
    SOURCE_VERSIONS,
    ObjectMeta,
    finish,
    start_document,
)
from chartguard.api.verification import Verification, parse_verification

KIND = "HelmChart"
SOURCE_KINDS = ("HelmRepository", "GitRepository", "Bucket")
RECONCILE_STRATEGIES = ("ChartVersion", "Revision")
_FIELDS = ("chart", "version", "sourceRef", "interval", "reconcileStrategy", "valuesFiles",
           "valuesFile", "ignoreMissingValuesFiles", "suspend", "accessFrom", "verify")


@dataclass(frozen=True)
class SourceReference:
    """``spec.sourceRef``: a source in the HelmChart's own namespace."""

    kind: str
    name: str
    api_version: str = ""


@dataclass(frozen=True)
class HelmChartSpec:
    chart: str
    source_ref: SourceReference
    interval: timedelta
    version: str = "*"
    reconcile_strategy: str = "ChartVersion"
    values_files: tuple[str, ...] = ()
    values_file: str = ""
    ignore_missing_values_files: bool = False
    suspend: bool = False
    access_from: Frozen = None
    verify: Verification | None = None

    @property
    def merged_values_files(self) -> tuple[str, ...]:
        """Values files in merge order: the deprecated ``valuesFile`` first, then ``valuesFiles``
        (source-controller's ``GetValuesFiles``)."""
        return ((self.values_file,) if self.values_file else ()) + self.values_files

    def to_spec(self) -> dict[str, Any]:
        """The spec as written in a manifest (defaults spelled out, as the API server stores it)."""
        ref: dict[str, Any] = {"kind": self.source_ref.kind, "name": self.source_ref.name}
        if self.source_ref.api_version:
            ref["apiVersion"] = self.source_ref.api_version
        out: dict[str, Any] = {
            "chart": self.chart,
            "version": self.version,
            "sourceRef": ref,
            "interval": format_duration(self.interval),
            "reconcileStrategy": self.reconcile_strategy,
        }
        if self.values_files:
            out["valuesFiles"] = list(self.values_files)
        if self.values_file:
            out["valuesFile"] = self.values_file
        if self.ignore_missing_values_files:
            out["ignoreMissingValuesFiles"] = True
        if self.suspend:
            out["suspend"] = True
        if self.verify is not None:
            out["verify"] = self.verify.to_spec()
        return out


@dataclass(frozen=True)
class HelmChart:
    metadata: ObjectMeta
    api_version: str
    spec: HelmChartSpec

    @property
    def subject(self) -> str:
        return f"{KIND} {self.metadata.namespace}/{self.metadata.name}"

    @classmethod
    def from_object(
        cls, body: Mapping[str, Any], *, default_namespace: str = "default"
    ) -> HelmChart:
        """Parse and validate; raises ``InvalidSpecError`` listing every problem."""
        meta, api_version, spec = start_document(
            body, KIND, SOURCE_GROUP, SOURCE_VERSIONS, default_namespace
        )
        parsed = finish(spec, f"{KIND} {meta.namespace}/{meta.name}", _spec(spec))
        return cls(metadata=meta, api_version=api_version, spec=parsed)

    def to_object(self) -> dict[str, Any]:
        """A manifest of this HelmChart (storage version), e.g. to create the implied chart."""
        metadata: dict[str, Any] = {"name": self.metadata.name,
                                    "namespace": self.metadata.namespace}
        if self.metadata.labels:
            metadata["labels"] = dict(self.metadata.labels)
        if self.metadata.annotations:
            metadata["annotations"] = dict(self.metadata.annotations)
        return {
            "apiVersion": f"{SOURCE_GROUP}/{SOURCE_VERSIONS[0]}",
            "kind": KIND,
            "metadata": metadata,
            "spec": self.spec.to_spec(),
        }


def check_chart_version(parent: Fields, source_kind: str | None) -> str:
    """``version`` (default ``*``), checked as a constraint for HelmRepository sources."""
    version = parent.string("version", default="*") or "*"
    if source_kind == "HelmRepository":
        try:
            check_version_constraint(version)
        except ValueError as exc:
            parent.error("version", str(exc))
    return version


def check_verify_source(parent: Fields, verify: Verification | None,
                        source_kind: str | None) -> None:
    """Flux's CEL rule: ``verify`` needs a HelmRepository source (signatures live in OCI
    registries; GitRepository and Bucket charts have none)."""
    if verify is not None and source_kind is not None and source_kind != "HelmRepository":
        parent.error("verify", f"only supported when sourceRef.kind is 'HelmRepository', not "
                               f"{source_kind!r}: serve the chart from an OCI HelmRepository or "
                               "remove verify")


def _spec(spec: Fields) -> HelmChartSpec | None:
    spec.reject_unknown(_FIELDS, KIND)
    chart = spec.string("chart", required=True, min_length=1)
    source_ref = _source_ref(spec)
    interval = spec.duration("interval", required=True)
    result = HelmChartSpec(
        chart=chart or "",
        source_ref=source_ref or SourceReference("", ""),
        interval=interval or timedelta(0),
        version=check_chart_version(spec, source_ref.kind if source_ref else None),
        reconcile_strategy=spec.string("reconcileStrategy", default="ChartVersion",
                                       enum=RECONCILE_STRATEGIES) or "ChartVersion",
        values_files=spec.strings("valuesFiles"),
        values_file=spec.string("valuesFile") or "",
        ignore_missing_values_files=spec.boolean("ignoreMissingValuesFiles"),
        suspend=spec.boolean("suspend"),
        access_from=spec.raw("accessFrom"),
        verify=parse_verification(spec),
    )
    check_verify_source(spec, result.verify, source_ref.kind if source_ref else None)
    return None if spec.errors else result


def _source_ref(spec: Fields) -> SourceReference | None:
    ref = spec.section("sourceRef", required=True)
    if ref is None:
        return None
    ref.reject_unknown(("apiVersion", "kind", "name"), "a HelmChart sourceRef")
    kind = ref.string("kind", required=True, enum=SOURCE_KINDS)
    name = ref.string("name", required=True, min_length=1)
    if name and (problem := dns_subdomain_problem(name)):
        ref.error("name", problem)
    if kind is None or name is None:
        return None
    return SourceReference(kind=kind, name=name, api_version=ref.string("apiVersion") or "")

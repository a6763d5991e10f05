"""The HelmChart a HelmRelease's ``spec.chart`` implies, built exactly as helm-controller does.

Name ``<release namespace>-<release name>``, namespace of the source (``sourceRef.namespace``,
else the release's), labels/annotations from ``spec.chart.metadata``, interval from
``spec.chart.spec.interval`` else the release's. ``verify`` is copied whole, including the
chartguard extensions (``matchOIDCIdentity``, ``trustedRootSecretRef``) that Flux's template
lacks. Two labels name the owning release, because a cross-namespace owner reference is not
allowed and the chart must still be found and garbage-collected.

One addition of chartguard's: the release's sharding label (``sharding.fluxcd.io/key``) is
copied onto the chart when the template sets none. helm-controller copies only
``spec.chart.metadata.labels`` (Flux's sharding guide asks users to repeat the key there);
without the copy, a chartguard started with ``--selector sharding.fluxcd.io/key=chartguard``
would never see the chart its own release implies, while a Flux source-controller started with
``--watch-label-selector='!sharding.fluxcd.io/key'`` would reconcile it instead, and the
release would wait for an artifact chartguard never verified.
"""

from __future__ import annotations

from types import MappingProxyType

from chartguard.api.helmchart import HelmChart, HelmChartSpec, SourceReference
from chartguard.api.helmrelease import HelmRelease
from chartguard.api.meta import SOURCE_GROUP, SOURCE_VERSIONS, ObjectMeta

OWNER_NAME_LABEL = "helm.toolkit.fluxcd.io/name"
OWNER_NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"
#: Flux's sharding key: the controller instance an object belongs to
SHARDING_LABEL = "sharding.fluxcd.io/key"


def implied_helmchart(release: HelmRelease) -> HelmChart:
    """The HelmChart to create or update for ``release``; ``ValueError`` if it uses chartRef."""
    template = release.spec.chart
    if template is None:
        raise ValueError(f"{release.subject} uses spec.chartRef: it implies no HelmChart")
    spec = template.spec
    shard = release.metadata.labels.get(SHARDING_LABEL)
    labels = {
        **({SHARDING_LABEL: shard} if shard is not None else {}),
        **template.labels,  # a key the template sets itself wins, as helm-controller has it
        OWNER_NAME_LABEL: release.metadata.name,
        OWNER_NAMESPACE_LABEL: release.metadata.namespace,
    }
    meta = ObjectMeta(
        name=release.helmchart_name,
        namespace=release.helmchart_namespace,
        labels=MappingProxyType(labels),
        annotations=template.annotations,
    )
    values_files = spec.values_files
    return HelmChart(
        metadata=meta,
        api_version=f"{SOURCE_GROUP}/{SOURCE_VERSIONS[0]}",
        spec=HelmChartSpec(
            chart=spec.chart,
            version=spec.version,
            # kind and name only, as helm-controller's buildHelmChartFromTemplate copies it
            source_ref=SourceReference(kind=spec.source_ref.kind, name=spec.source_ref.name),
            interval=spec.interval or release.spec.interval,
            reconcile_strategy=spec.reconcile_strategy,
            values_files=values_files,
            values_file=spec.values_file,
            ignore_missing_values_files=spec.ignore_missing_values_files,
            verify=spec.verify,
        ),
    )

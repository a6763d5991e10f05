"""The chart a HelmRelease installs: the HelmChart its ``spec.chart`` implies (built and kept
in sync as helm-controller's ``HelmChartTemplate`` does), and whether that chart, or the one
``spec.chartRef`` names, has an artifact this process may hand to helm.

``chart_readiness`` asks what helm-controller's ``isSourceReady`` asks (generation reconciled,
not Stalled, an artifact), with its words (``SourceNotReady``, ``HelmChart 'ns/name' is not
ready: ...``), and then what chartguard adds so that no unverified byte reaches helm: the
chart's Ready and SourceVerified must not be failing, and when the chart has ``spec.verify``
its artifact's manifest digest must be the one THIS process verified; the ``.tgz`` must be in
the local store under the artifact's digest. Every "not yet" is retried on a short interval
(:class:`~chartguard.reconcile.outcome.WaitingError`); the chart's own status changes also
re-reconcile the release.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chartguard.api import HelmChart, HelmRelease, InvalidSpecError, implied_helmchart
from chartguard.api import conditions as c
from chartguard.api.status import HelmChartStatus
from chartguard.api.verification import PGP
from chartguard.digest import is_digest
from chartguard.helm.runner import ChartFile
from chartguard.reconcile.outcome import StepFailedError, WaitingError, safe
from chartguard.reconcile.release_inputs import ReadyChart
from chartguard.store import ArtifactStore, StoreError

#: helm-controller's Ready reason while the chart is not ready
SOURCE_NOT_READY = "SourceNotReady"

#: the spec fields of a HelmChart that a HelmRelease's chart template sets; others (suspend,
#: accessFrom) are left to whoever set them, as server-side apply leaves them
_TEMPLATE_FIELDS = ("chart", "version", "interval", "reconcile_strategy", "values_files",
                    "values_file", "ignore_missing_values_files", "verify")


def desired_helmchart_body(release: HelmRelease) -> dict[str, Any]:
    """The HelmChart ``release.spec.chart`` implies, as an API body to apply
    (``HelmChart.from_object`` of it gives back :func:`chartguard.api.implied_helmchart`)."""
    return implied_helmchart(release).to_object()


def helmchart_needs_update(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when ``current`` lacks a label or annotation of ``desired`` (or has another value)
    or differs in a field the template sets; defaults and spellings (``10m`` vs ``10m0s``)
    compare equal. A ``current`` that does not parse needs the update."""
    try:
        have = HelmChart.from_object(current)
        want = HelmChart.from_object(desired)
    except InvalidSpecError:
        return True
    if (have.metadata.namespace, have.metadata.name) != (want.metadata.namespace,
                                                         want.metadata.name):
        return True
    for wanted, present in ((want.metadata.labels, have.metadata.labels),
                            (want.metadata.annotations, have.metadata.annotations)):
        if any(present.get(k) != v for k, v in wanted.items()):
            return True
    if (have.spec.source_ref.kind, have.spec.source_ref.name) != (
            want.spec.source_ref.kind, want.spec.source_ref.name):
        return True
    return any(getattr(have.spec, f) != getattr(want.spec, f) for f in _TEMPLATE_FIELDS)


def release_chart_key(release: HelmRelease) -> tuple[str, str] | None:
    """(namespace, name) of the HelmChart ``release`` installs from; None for a chartRef to
    another kind."""
    if release.spec.chart is not None:
        return release.helmchart_namespace, release.helmchart_name
    ref = release.spec.chart_ref
    if ref is not None and ref.kind == "HelmChart":
        return ref.namespace or release.metadata.namespace, ref.name
    return None


def chart_readiness(release: HelmRelease, chart_body: Mapping[str, Any] | None,
                    store: ArtifactStore, verified_digest: str | None) -> ReadyChart:
    """The chart to install, or ``StepFailedError`` (Ready False) saying what is awaited.

    ``verified_digest`` is the manifest digest this process verified for the chart under its
    current ``spec.verify`` (None: nothing verified); it is not consulted for a chart without
    ``spec.verify``.
    """
    key = release_chart_key(release)
    if key is None:  # the caller refuses other chartRef kinds first
        raise ValueError(f"{release.subject} does not install from a HelmChart")
    namespace, name = key
    subject = f"HelmChart '{namespace}/{name}'"
    if chart_body is None:
        raise StepFailedError(c.READY, c.ARTIFACT_FAILED,
                              f"could not get Source object: {subject} not found",
                              status=c.FALSE)
    metadata = chart_body.get("metadata")
    generation = metadata.get("generation") if isinstance(metadata, Mapping) else None
    status = HelmChartStatus.from_status(chart_body.get("status"))
    conds = status.conditions

    def not_ready(why: str, reason: str = SOURCE_NOT_READY) -> WaitingError:
        return WaitingError(c.READY, reason, f"{subject} is not ready: {why}", status=c.FALSE)

    if generation != status.observed_generation:
        why = "latest generation of object has not been reconciled"
        if c.is_status(conds, c.READY, c.FALSE):
            why = _message(conds, c.READY) or why
        raise not_ready(why)
    if c.is_status(conds, c.STALLED, c.TRUE):
        raise not_ready(_message(conds, c.STALLED) or "it is stalled")
    if c.is_status(conds, c.SOURCE_VERIFIED, c.FALSE):
        raise not_ready(_message(conds, c.SOURCE_VERIFIED) or "its signature was not verified",
                        c.VERIFICATION_ERROR)
    if not c.is_status(conds, c.READY, c.TRUE):
        ready = c.get_condition(conds, c.READY)
        raise not_ready(_message(conds, c.READY) or (
            f"Ready is {safe(ready.get('status'))}" if ready else "it has no Ready condition"))
    artifact = status.artifact
    if artifact is None:
        raise not_ready("does not have an artifact")
    if not is_digest(artifact.digest):
        raise not_ready(f"its artifact digest {safe(artifact.digest)} is not a sha256 digest")
    version, _, oci_digest = artifact.revision.rpartition("@")
    if not version:
        version, oci_digest = artifact.revision, ""
    spec = chart_body.get("spec")
    # the release's own template asking for verification counts too: a HelmChart whose
    # verify was taken away (by hand, before the template is applied again) is not trusted
    template = release.spec.chart.spec if release.spec.chart is not None else None
    verify = spec.get("verify") if isinstance(spec, Mapping) else None
    if verify is not None or (template is not None and template.verify is not None):
        # provider pgp on an HTTP repository's chart (revision: the version): what was
        # verified is the archive itself, whose sha256 the signed provenance names
        pgp = (isinstance(verify, Mapping) and verify.get("provider") == PGP) or (
            verify is None and template is not None and template.verify is not None
            and template.verify.provider == PGP)
        bound = artifact.digest if pgp and not oci_digest else oci_digest
        _check_verified(subject, artifact.revision, bound, verified_digest)
    try:
        stored = store.has(artifact.digest)
    except StoreError as err:
        raise WaitingError(c.READY, c.ARTIFACT_FAILED, f"Source not ready: {safe(err)}",
                           status=c.FALSE) from None
    if not stored:
        raise WaitingError(c.READY, c.ARTIFACT_FAILED,
                           f"Source not ready: artifact {artifact.digest} of {subject} not in "
                           "the local store yet", status=c.FALSE)
    return ReadyChart(
        file=ChartFile(store.path(artifact.digest), artifact.digest),
        chart_name=safe(status.observed_chart_name) or _spec_chart(spec) or name,
        version=safe(version),
        revision=safe(artifact.revision),
        oci_digest=oci_digest if is_digest(oci_digest) else "",
        namespace=namespace,
        name=name,
    )


def _check_verified(subject: str, revision: str, oci_digest: str,
                    verified_digest: str | None) -> None:
    """Fail closed: the artifact must be the manifest this process verified."""
    if not is_digest(oci_digest):
        raise WaitingError(
            c.READY, c.VERIFICATION_ERROR,
            f"{subject} is not ready: its artifact revision {safe(revision)} names no manifest "
            "digest, so it cannot be matched to a verified signature", status=c.FALSE)
    if verified_digest is None:
        raise WaitingError(
            c.READY, SOURCE_NOT_READY,
            f"{subject} is not ready: its artifact {oci_digest} has not been verified by this "
            "chartguard process yet", status=c.FALSE)
    if verified_digest != oci_digest:
        raise WaitingError(
            c.READY, c.VERIFICATION_ERROR,
            f"{subject} is not ready: its artifact {oci_digest} is not the manifest this "
            f"chartguard process verified ({safe(verified_digest)}); it is not installed until "
            "the chart is verified again", status=c.FALSE)


def _message(conditions: tuple[Mapping[str, Any], ...], type_: str) -> str:
    cond = c.get_condition(conditions, type_)
    return safe(cond.get("message", "")) if cond else ""


def _spec_chart(spec: object) -> str:
    chart = spec.get("chart") if isinstance(spec, Mapping) else None
    return safe(chart) if isinstance(chart, str) else ""

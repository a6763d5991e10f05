"""Everything a HelmRelease reconcile does before helm runs, as helm-controller orders it:

    refuse     spec fields chartguard cannot honour (``REFUSED_FIELDS``): Stalled, naming them;
               CEL expressions (healthCheckExprs, dependsOn[].readyExpr) that do not compile:
               Stalled, InvalidCELExpression (:func:`check_expressions`)
    chart      spec.chart: create or update the implied HelmChart, delete the one the release
               used before (moved to another name or namespace, or now a chartRef); chartRef
               kind HelmChart: nothing to write (helm-controller's reconcileChartTemplate runs
               before the dependency check, so the chart is fetched and verified meanwhile)
    dependsOn  each dependency HelmRelease exists and is Ready at its current generation, or,
               when its entry has a readyExpr, that expression is true
    readiness  the chart has an artifact this process verified, in the store
    values     valuesFrom in order, then spec.values, and their digest

Each step raises :class:`~chartguard.reconcile.outcome.StepFailedError` with Ready False and
helm-controller's reason and words; ``stalled`` only where the spec must change, waiting
(``WaitingError``, a fixed requeue) for dependencies and charts, a backoff otherwise. Plain
functions over the seams: no I/O of their own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chartguard import cel
from chartguard.api import HelmRelease
from chartguard.api import conditions as c
from chartguard.api.implied import OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL
from chartguard.api.status import HelmReleaseStatus
from chartguard.helm.args import unsupported as helm_cannot_honour
from chartguard.helm.health import HealthChecks
from chartguard.reconcile.drift_rules import IgnoreRuleError, compile_rules
from chartguard.reconcile.outcome import INVALID_SPEC, StepFailedError, WaitingError, safe
from chartguard.reconcile.release_chart import (
    chart_readiness,
    desired_helmchart_body,
    helmchart_needs_update,
    release_chart_key,
)
from chartguard.reconcile.release_inputs import ComposedValues, ReadyChart
from chartguard.reconcile.seams import (
    ChartWriteError,
    ChartWriter,
    ConfigMapReader,
    ObjectReader,
    SecretReader,
)
from chartguard.reconcile.values import compose_values
from chartguard.reconcile.verification import check_attestation_policy
from chartguard.store import ArtifactStore

UNSUPPORTED_FIELD = "UnsupportedField"
UNSUPPORTED_SOURCE_KIND = "UnsupportedSourceKind"
#: helm-controller's words before a configuration error that stalls the release
TERMINAL_ERROR_MESSAGE = "Reconciliation failed terminally due to configuration error"
#: the variables of a dependsOn readyExpr (helm-controller's evalReadyExpr)
READY_EXPR_VARIABLES = ("self", "dep")

#: Spec fields a HelmRelease may carry (Flux's API has them) that chartguard refuses, each with
#: why; a release using one is Stalled with a message naming it. ``serviceAccountName`` is
#: honoured (helm impersonates it, as Flux does; drift detection acts as it too).
#: ``persistentClient`` is honoured as it stands (every helm action is its own process, so it
#: changes nothing), and ``driftDetection.ignore`` with mode ``disabled`` has no effect, as in
#: Flux. ``driftDetection`` works (:mod:`.release_drift`), in a remote cluster too.
REFUSED_FIELDS: tuple[tuple[str, str], ...] = (
    ("spec.chartRef (kind OCIRepository or ExternalArtifact)",
     "OCIRepository and ExternalArtifact sources are not served by chartguard, which installs "
     "only charts it verified through a HelmChart; use spec.chart or chartRef kind HelmChart"),
    ("spec.storageNamespace (other than the release namespace)",
     "the helm CLI keeps a release's records in the namespace it installs into"),
    # refused when the ConfigMap names the provider (chartguard.reconcile.kubeconfig)
    ("spec.kubeConfig.configMapRef (provider aws, azure or gcp)",
     "a workload-identity kubeconfig of a cloud provider needs that cloud's identity service "
     "(EKS, AKS, GKE) to turn the ServiceAccount token into cluster credentials, which "
     "chartguard does not call; use provider generic or a kubeconfig Secret"),
)
_WHY = dict(REFUSED_FIELDS)
_CHART_REF_OCI, _STORAGE, CLOUD_WORKLOAD_IDENTITY = (
    field for field, _ in REFUSED_FIELDS)


@dataclass(frozen=True)
class PrepareEnv:
    """The reads and writes preparing a release uses (built once, shared by all releases)."""

    charts: ObjectReader  # HelmCharts
    chart_writer: ChartWriter
    releases: ObjectReader  # HelmReleases, for dependsOn
    secrets: SecretReader
    configmaps: ConfigMapReader
    store: ArtifactStore
    #: (namespace, name) of a HelmChart -> the manifest digest this process verified for it
    #: under its current spec.verify, or None (nothing verified, or the last check failed)
    verified: Callable[[str, str], str | None]


@dataclass(frozen=True)
class ReleaseRefs:
    """The objects a release reads (from its spec alone), so the operator re-reconciles it
    when one changes, also while it fails (a missing Secret that appears, a dependency that
    becomes Ready). All (namespace, name)."""

    secrets: frozenset[tuple[str, str]] = frozenset()
    configmaps: frozenset[tuple[str, str]] = frozenset()
    charts: frozenset[tuple[str, str]] = frozenset()
    dependencies: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class ChartSync:
    """What the chart step did: ``helm_chart`` is the new ``status.helmChart``."""

    helm_chart: str  # "<namespace>/<name>" of the HelmChart spec.chart implies; "" for chartRef
    body: Mapping[str, Any] | None  # the HelmChart as stored (spec.chart) or read (chartRef)
    actions: tuple[str, ...] = ()  # "created ns/name", "updated ns/name", "deleted ns/name"


@dataclass(frozen=True)
class Prepared:
    chart: ReadyChart
    values: ComposedValues
    #: "<namespace>/<name>" for status.helmChart ("" with chartRef, as helm-controller leaves it)
    helm_chart: str
    secrets: frozenset[tuple[str, str]]
    configmaps: frozenset[tuple[str, str]]
    charts: frozenset[tuple[str, str]]
    dependencies: frozenset[tuple[str, str]]
    actions: tuple[str, ...] = ()


def prepare_release(release: HelmRelease, status: HelmReleaseStatus, env: PrepareEnv, *,
                    chart_sync: ChartSync | None = None) -> Prepared:
    """The chart and values to release, or ``StepFailedError`` from the first step that cannot
    go on. ``chart_sync``: the result of :func:`sync_release_chart` when the caller ran it
    first (to record ``status.helmChart`` even if a later step fails)."""
    refuse_unsupported(release)
    check_expressions(release)
    sync = chart_sync if chart_sync is not None else sync_release_chart(release, status, env)
    check_dependencies(release, env.releases)
    key = release_chart_key(release)
    assert key is not None  # refuse_unsupported let only HelmChart sources through
    chart = chart_readiness(release, sync.body, env.store, env.verified(*key))
    values = compose_values(release, env.secrets, env.configmaps)
    refs = release_refs(release)
    return Prepared(chart=chart, values=values, helm_chart=sync.helm_chart,
                    secrets=refs.secrets, configmaps=refs.configmaps, charts=refs.charts,
                    dependencies=refs.dependencies, actions=sync.actions)


def refuse_unsupported(release: HelmRelease) -> None:
    """Stalled (Ready False) naming every field of ``REFUSED_FIELDS`` the spec uses, and every
    field the helm CLI cannot honour (:func:`chartguard.helm.args.unsupported`)."""
    spec = release.spec
    ref = spec.chart_ref
    if ref is not None and ref.kind != "HelmChart":
        raise StepFailedError(c.READY, UNSUPPORTED_SOURCE_KIND,
                              f"spec.chartRef: {_WHY[_CHART_REF_OCI]}", stalled=True,
                              status=c.FALSE)
    used = []
    if spec.storage_namespace and spec.storage_namespace != release.release_namespace:
        used.append(_STORAGE)
    problems = [f"{field.split(' ')[0]} is not supported: {_WHY[field]}" for field in used]
    named = {field.split(" ")[0] for field in used}
    for found in helm_cannot_honour(release):
        path, _, why = found.partition(": ")
        if path not in named:
            problems.append(f"{path} is not supported: {why}")
    if not problems and spec.drift_detection_mode != "disabled":
        try:
            compile_rules(spec.drift_detection_ignore)
        except IgnoreRuleError as err:
            raise StepFailedError(c.READY, INVALID_SPEC, str(err), stalled=True,
                                  status=c.FALSE) from None
    if problems:
        raise StepFailedError(c.READY, UNSUPPORTED_FIELD,
                              f"{'; '.join(problems)}; remove it (see README, 'Not supported "
                              "yet')",
                              stalled=True, status=c.FALSE)


def check_expressions(release: HelmRelease) -> None:
    """Compile every CEL expression of the spec; Stalled ``InvalidCELExpression`` (Ready False,
    helm-controller's terminal-error words) naming the first that does not compile. Flux
    compiles healthCheckExprs before anything else and a readyExpr when it first evaluates it;
    both are compiled here, before anything is written for the release."""
    try:
        HealthChecks(release.spec.health_check_exprs)
        _check_attestation_policies(release)
        for dep in release.spec.depends_on:
            if dep.ready_expr:
                try:
                    cel.check(dep.ready_expr, variables=READY_EXPR_VARIABLES, boolean=True)
                except cel.CompileError as err:
                    raise cel.CompileError(f"failed to evaluate dependency {dep.name}: "
                                           f"{err}") from None
    except cel.CompileError as err:
        raise StepFailedError(c.READY, c.INVALID_CEL_EXPRESSION,
                              f"{TERMINAL_ERROR_MESSAGE}: {err}", stalled=True,
                              status=c.FALSE) from None
    except cel.EvaluationError as err:  # the sandbox could not answer: tried again later
        raise StepFailedError(c.READY, c.INVALID_CEL_EXPRESSION,
                              f"CEL expressions could not be compiled: {err}",
                              status=c.FALSE) from None


def _check_attestation_policies(release: HelmRelease) -> None:
    """``spec.chart.spec.verify.attestations[].policy`` (a chartguard extension): compiled
    here too, so the release says which field to fix before its HelmChart is written."""
    chart = release.spec.chart
    verify = chart.spec.verify if chart is not None else None
    for attestation in verify.attestations if verify is not None else ():
        if attestation.policy:
            try:
                check_attestation_policy(attestation.policy)
            except cel.CompileError as err:
                raise cel.CompileError(f"{attestation.field_path}.policy: {err}") from None


def sync_release_chart(release: HelmRelease, status: HelmReleaseStatus,
                       env: PrepareEnv) -> ChartSync:
    """helm-controller's ``HelmChartTemplate``: the chart ``status.helmChart`` names is deleted
    when the release now implies another one or uses chartRef, and the implied chart is
    applied when absent or out of date. A chart that is not labelled as this release's is
    never deleted. On ``StepFailedError`` keep ``status.helmChart`` as it was (both writes are
    idempotent, the next reconcile repeats them)."""
    actions: list[str] = []
    desired = (f"{release.helmchart_namespace}/{release.helmchart_name}"
               if release.spec.chart is not None else "")
    if status.helm_chart and status.helm_chart != desired:
        old = _split(status.helm_chart)
        if old is not None and _delete_owned(release, old, env):
            actions.append(f"deleted {status.helm_chart}")
    if release.spec.chart is None:
        key = release_chart_key(release)
        return ChartSync("", env.charts.get(*key) if key else None, tuple(actions))
    namespace, name = release.helmchart_namespace, release.helmchart_name
    body = desired_helmchart_body(release)
    current = env.charts.get(namespace, name)
    if current is not None and not helmchart_needs_update(current, body):
        return ChartSync(desired, current, tuple(actions))
    try:
        stored = env.chart_writer.apply(body)
    except ChartWriteError as err:
        raise StepFailedError(c.READY, c.ARTIFACT_FAILED,
                              f"failed to apply HelmChart '{desired}': {safe(err)}",
                              status=c.FALSE) from None
    actions.append(f"{'created' if current is None else 'updated'} {desired}")
    return ChartSync(desired, stored, tuple(actions))


def check_dependencies(release: HelmRelease, releases: ObjectReader) -> None:
    """helm-controller's ``checkDependencies``: every dependency exists, has reconciled its
    current generation and is Ready; else ``DependencyNotReady``, looked at again after
    ``WaitingError.requeue_after``. An entry with a ``readyExpr`` is ready when that
    expression, over ``self`` (this HelmRelease as stored) and ``dep`` (the dependency), is
    true, and the built-in check is skipped (Flux without its AdditiveCELDependencyCheck
    gate); an expression that cannot be evaluated (a missing field, not a bool) waits too."""
    self_body: Mapping[str, Any] | None = None
    for (namespace, name), entry in zip(_dependencies(release), release.spec.depends_on,
                                        strict=True):
        body = releases.get(namespace, name)
        if body is None:
            raise WaitingError(
                c.READY, c.DEPENDENCY_NOT_READY,
                f"unable to get '{namespace}/{name}' dependency: "
                f'helmreleases.helm.toolkit.fluxcd.io "{name}" not found', status=c.FALSE)
        if entry.ready_expr:
            if self_body is None:
                self_body = releases.get(release.metadata.namespace,
                                         release.metadata.name) or {}
            _check_ready_expr(entry.ready_expr, self_body, body, namespace, name)
            continue
        metadata = body.get("metadata")
        generation = metadata.get("generation") if isinstance(metadata, Mapping) else None
        dep_status = HelmReleaseStatus.from_status(body.get("status"))
        if (generation != dep_status.observed_generation
                or not c.is_status(dep_status.conditions, c.READY, c.TRUE)):
            message = c.dependency_not_ready_message(namespace, name)
            cycle = dependency_cycle(release, releases)
            if cycle:
                # Flux just waits; the cycle is named so that the wait is not a mystery
                message += (f": dependsOn makes a cycle ({' -> '.join(cycle)}), in which no "
                            "release can ever be ready; remove one of its dependsOn entries")
            raise WaitingError(c.READY, c.DEPENDENCY_NOT_READY, message, status=c.FALSE)


def _check_ready_expr(expression: str, self_body: Mapping[str, Any], dep: Mapping[str, Any],
                      namespace: str, name: str) -> None:
    try:
        ready = cel.evaluate_boolean(expression, {"self": self_body, "dep": dep},
                                     variables=READY_EXPR_VARIABLES)
    except cel.CompileError as err:
        raise StepFailedError(c.READY, c.INVALID_CEL_EXPRESSION,
                              f"{TERMINAL_ERROR_MESSAGE}: failed to evaluate dependency "
                              f"{safe(name)}: {err}", stalled=True, status=c.FALSE) from None
    except cel.EvaluationError as err:
        raise WaitingError(c.READY, c.DEPENDENCY_NOT_READY,
                           f"dependency '{namespace}/{name}': {err}", status=c.FALSE) from None
    if not ready:
        raise WaitingError(c.READY, c.DEPENDENCY_NOT_READY,
                           f"dependency '{namespace}/{name}' is not ready according to "
                           f"readyExpr eval ('{cel.quote(expression)}')", status=c.FALSE)


#: HelmReleases a dependency cycle search reads at most (from the caches: no API request)
MAX_CYCLE_SEARCH = 1000


def dependency_cycle(release: HelmRelease, releases: ObjectReader) -> list[str]:
    """``["ns/a", "ns/b", "ns/a"]`` when ``release``'s dependencies lead back to it (the
    shortest way), else ``[]``. A breadth-first walk over at most ``MAX_CYCLE_SEARCH``
    releases, so a hostile web of dependsOn costs bounded time."""
    me = (release.metadata.namespace, release.metadata.name)
    parent: dict[tuple[str, str], tuple[str, str]] = {}
    queue = deque((dep, me) for dep in _dependencies(release))
    seen: set[tuple[str, str]] = set()
    while queue and len(seen) < MAX_CYCLE_SEARCH:
        node, via = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        parent[node] = via
        if node == me:
            path = [me]
            step = parent[me]
            while step != me and len(path) <= len(seen):
                path.append(step)
                step = parent[step]
            path.append(me)
            return [f"{safe(ns)}/{safe(name)}" for ns, name in reversed(path)]
        queue.extend((dep, node) for dep in _raw_dependencies(releases.get(*node), node[0]))
    return []


def _raw_dependencies(body: Mapping[str, Any] | None, namespace: str) -> list[tuple[str, str]]:
    """The dependsOn entries of a HelmRelease body as stored (not parsed: it may be invalid)."""
    spec = body.get("spec") if body is not None else None
    entries = spec.get("dependsOn") if isinstance(spec, Mapping) else None
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            ns = entry.get("namespace")
            out.append((ns if isinstance(ns, str) and ns else namespace, entry["name"]))
    return out


def release_refs(release: HelmRelease) -> ReleaseRefs:
    """Every object ``release``'s spec makes it read."""
    namespace = release.metadata.namespace
    key = release_chart_key(release)
    kubeconfig = release.spec.kube_config
    return ReleaseRefs(
        secrets=frozenset([*((namespace, r.name) for r in release.spec.values_from
                             if r.kind == "Secret"),
                           *([(namespace, kubeconfig.secret_name)]
                             if kubeconfig and kubeconfig.secret_name else [])]),
        configmaps=frozenset([*((namespace, r.name) for r in release.spec.values_from
                                if r.kind == "ConfigMap"),
                              *([(namespace, kubeconfig.configmap_name)]
                                if kubeconfig and kubeconfig.configmap_name else [])]),
        charts=frozenset({key} if key else ()),
        dependencies=frozenset(_dependencies(release)),
    )


def release_chart_to_delete(release: HelmRelease,
                            status: HelmReleaseStatus) -> tuple[str, str] | None:
    """The HelmChart to delete once ``release`` is uninstalled: the one ``status.helmChart``
    names, else the one its spec.chart implies (applied, but the status not yet written).
    None while the release is suspended (helm-controller then neither uninstalls nor deletes
    the chart) or when it owns none."""
    if release.spec.suspend:
        return None
    if status.helm_chart:
        return _split(status.helm_chart)
    if release.spec.chart is not None:
        return release.helmchart_namespace, release.helmchart_name
    return None


def _dependencies(release: HelmRelease) -> list[tuple[str, str]]:
    return [(d.namespace or release.metadata.namespace, d.name)
            for d in release.spec.depends_on]


def _split(ref: str) -> tuple[str, str] | None:
    namespace, _, name = ref.partition("/")
    return (namespace, name) if namespace and name else None


def _delete_owned(release: HelmRelease, key: tuple[str, str], env: PrepareEnv) -> bool:
    """Delete the chart at ``key`` if it exists and is labelled as this release's."""
    body = env.charts.get(*key)
    if body is None:
        return False
    metadata = body.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    labels = labels if isinstance(labels, Mapping) else {}
    if (labels.get(OWNER_NAME_LABEL) != release.metadata.name
            or labels.get(OWNER_NAMESPACE_LABEL) != release.metadata.namespace):
        return False
    try:
        env.chart_writer.delete(*key)
    except ChartWriteError as err:
        raise StepFailedError(c.READY, c.ARTIFACT_FAILED,
                              f"failed to delete HelmChart '{key[0]}/{key[1]}': {safe(err)}",
                              status=c.FALSE) from None
    return True

"""HelmRelease (helm.toolkit.fluxcd.io): a chart installed with values into a namespace.

Defaults as Flux's helm-controller applies them (``GetTimeout`` 5m0s, ``GetMaxHistory`` 5,
``UsePersistentClient`` true, ``GetReleaseName`` ``[targetNamespace-]name`` shortened to 53
characters with a SHA-256 suffix, upgrade remediation strategy ``rollback``, uninstall deletion
propagation ``background``, chart interval = release interval).

Fields of the newest Flux that chartguard does not implement are listed in
``NOT_SUPPORTED_YET`` and rejected with a message saying so, never silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from chartguard.api._fields import (
    Fields,
    Frozen,
    dns_label_problem,
    dns_subdomain_problem,
    freeze,
    thaw,
)
from chartguard.api.helmchart import (
    RECONCILE_STRATEGIES,
    check_chart_version,
    check_verify_source,
)
from chartguard.api.helmchart import SOURCE_KINDS as CHART_SOURCE_KINDS
from chartguard.api.meta import HELM_GROUP, HELM_VERSIONS, ObjectMeta, finish, start_document
from chartguard.api.verification import Verification, parse_verification

KIND = "HelmRelease"
CHART_REF_KINDS = ("OCIRepository", "HelmChart", "ExternalArtifact")
CRDS_POLICIES = ("Skip", "Create", "CreateReplace")
DEFAULT_TIMEOUT = timedelta(minutes=5)
DEFAULT_MAX_HISTORY = 5
MAX_RELEASE_NAME = 53
#: ``spec.install.strategy.name`` / ``spec.upgrade.strategy.name``
REMEDIATE_ON_FAILURE = "RemediateOnFailure"
RETRY_ON_FAILURE = "RetryOnFailure"
ACTION_STRATEGIES = (REMEDIATE_ON_FAILURE, RETRY_ON_FAILURE)
#: Flux's ``GetRetryInterval`` default
DEFAULT_RETRY_INTERVAL = timedelta(minutes=5)
#: ``spec.upgrade.serverSideApply`` / ``spec.rollback.serverSideApply``; auto: as the release's
#: previous apply method
SERVER_SIDE_APPLY_MODES = ("enabled", "disabled", "auto")
#: ``spec.upgrade.chartNameChangeStrategy``
REINSTALL = "Reinstall"
IN_PLACE_UPDATE = "InPlaceUpdate"
CHART_NAME_CHANGE_STRATEGIES = (IN_PLACE_UPDATE, REINSTALL)
#: ``spec.waitStrategy.name``: helm 4's kstatus waiter (Flux's default) or helm 3's waiting logic
WAIT_STRATEGIES = ("poller", "legacy")
#: spec.postRenderStrategy: how hooks reach the post-renderers (helm 4.2's strategies)
POST_RENDER_STRATEGIES = ("nohooks", "combined", "separate")

#: Spec fields of Flux's current HelmRelease CRD that chartguard accepts in its schema (so the
#: API server keeps them) but does not implement; a document using one is rejected. None left:
#: the mechanism (``Fields.reject_present`` with ``_WHY``) stays for the next new Flux field.
NOT_SUPPORTED_YET: tuple[str, ...] = ()
_WHY = "not supported by chartguard yet; remove it (see README, 'Not supported yet')"

_SPEC_FIELDS = (
    "chart", "chartRef", "interval", "kubeConfig", "suspend", "releaseName", "targetNamespace",
    "storageNamespace", "dependsOn", "timeout", "maxHistory", "serviceAccountName",
    "persistentClient", "driftDetection", "install", "upgrade", "test", "rollback", "uninstall",
    "valuesFrom", "values", "postRenderers", "commonMetadata", "healthCheckExprs", "waitStrategy",
    "postRenderStrategy",
)
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class CrossNamespaceSourceReference:
    """``chart.spec.sourceRef`` or ``chartRef``; ``namespace`` empty means the release's."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""


@dataclass(frozen=True)
class HelmChartTemplateSpec:
    chart: str
    source_ref: CrossNamespaceSourceReference
    version: str = "*"
    interval: timedelta | None = None
    reconcile_strategy: str = "ChartVersion"
    values_files: tuple[str, ...] = ()
    values_file: str = ""
    ignore_missing_values_files: bool = False
    verify: Verification | None = None


@dataclass(frozen=True)
class HelmChartTemplate:
    spec: HelmChartTemplateSpec
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class Remediation:
    retries: int = 0
    ignore_test_failures: bool | None = None
    remediate_last_failure: bool | None = None
    #: upgrade only; install remediation always uninstalls
    strategy: str = "rollback"


@dataclass(frozen=True)
class ActionStrategy:
    """``spec.install.strategy`` / ``spec.upgrade.strategy``: RemediateOnFailure (the
    remediation settings act on a failure) or RetryOnFailure (no remediation: the failed
    action is tried again, as an upgrade, after ``retry_interval``)."""

    name: str = REMEDIATE_ON_FAILURE
    #: set only with RetryOnFailure; None: Flux's default, 5m
    retry_interval: timedelta | None = None

    @property
    def retry(self) -> bool:
        return self.name == RETRY_ON_FAILURE

    @property
    def interval(self) -> timedelta:
        """Flux's ``GetRetryInterval``: how long after a failure the action is tried again."""
        return self.retry_interval if self.retry_interval is not None else (
            DEFAULT_RETRY_INTERVAL)


@dataclass(frozen=True)
class Install:
    timeout: timedelta | None = None
    remediation: Remediation = Remediation(strategy="uninstall")
    strategy: ActionStrategy = ActionStrategy()
    #: None: Flux's default, server-side apply
    server_side_apply: bool | None = None
    create_namespace: bool = False
    crds: str = "Create"
    skip_crds: bool = False
    replace: bool = False
    disable_wait: bool = False
    disable_wait_for_jobs: bool = False
    disable_hooks: bool = False
    disable_openapi_validation: bool = False
    disable_schema_validation: bool = False
    disable_take_ownership: bool = False


@dataclass(frozen=True)
class Upgrade:
    timeout: timedelta | None = None
    remediation: Remediation = Remediation()
    strategy: ActionStrategy = ActionStrategy()
    #: enabled | disabled | auto (as the release's previous apply method)
    server_side_apply: str = "auto"
    #: Reinstall (uninstall, then install) | InPlaceUpdate (upgrade) when the chart's name changes
    chart_name_change_strategy: str = REINSTALL
    crds: str = "Skip"
    force: bool = False
    preserve_values: bool = False
    cleanup_on_fail: bool = False
    disable_wait: bool = False
    disable_wait_for_jobs: bool = False
    disable_hooks: bool = False
    disable_openapi_validation: bool = False
    disable_schema_validation: bool = False
    disable_take_ownership: bool = False


@dataclass(frozen=True)
class TestFilter:
    name: str
    exclude: bool = False


@dataclass(frozen=True)
class Test:
    enable: bool = False
    timeout: timedelta | None = None
    ignore_failures: bool = False
    filters: tuple[TestFilter, ...] = ()


@dataclass(frozen=True)
class Rollback:
    timeout: timedelta | None = None
    disable_wait: bool = False
    disable_wait_for_jobs: bool = False
    disable_hooks: bool = False
    recreate: bool = False
    force: bool = False
    cleanup_on_fail: bool = False
    #: enabled | disabled | auto (as the apply method of the revision rolled back to)
    server_side_apply: str = "auto"


@dataclass(frozen=True)
class Uninstall:
    timeout: timedelta | None = None
    disable_hooks: bool = False
    keep_history: bool = False
    disable_wait: bool = False
    deletion_propagation: str = "background"


@dataclass(frozen=True)
class ValuesReference:
    kind: str
    name: str
    values_key: str = "values.yaml"
    target_path: str = ""
    optional: bool = False
    #: with ``target_path``: the value is set verbatim (``helm --set-literal``), not parsed
    literal: bool = False


@dataclass(frozen=True)
class DependencyReference:
    name: str
    namespace: str = ""
    #: a CEL expression over ``self`` (this release) and ``dep`` (the dependency) that, when
    #: set, replaces the built-in readiness check (Flux without AdditiveCELDependencyCheck)
    ready_expr: str = ""


@dataclass(frozen=True)
class HealthCheckExpressions:
    """One ``spec.healthCheckExprs`` entry (fluxcd/pkg ``kustomize.CustomHealthCheck``): CEL
    expressions over an object's top-level fields, for objects of ``api_version``'s group and
    ``kind`` (every kind of the group when empty)."""

    api_version: str
    kind: str
    current: str
    in_progress: str = ""
    failed: str = ""


@dataclass(frozen=True)
class KubeConfigReference:
    """``spec.kubeConfig``: a Secret holding a kubeconfig (``secret_name``, ``key``), or a
    ConfigMap of workload-identity settings (``configmap_name``); exactly one."""

    secret_name: str = ""
    key: str = ""
    configmap_name: str = ""


@dataclass(frozen=True)
class CommonMetadata:
    """``spec.commonMetadata``: labels and annotations set on every rendered object."""

    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class HelmReleaseSpec:
    interval: timedelta
    chart: HelmChartTemplate | None = None
    chart_ref: CrossNamespaceSourceReference | None = None
    release_name: str = ""
    target_namespace: str = ""
    storage_namespace: str = ""
    suspend: bool = False
    timeout: timedelta = DEFAULT_TIMEOUT
    max_history: int = DEFAULT_MAX_HISTORY
    service_account_name: str = ""
    persistent_client: bool = True
    kube_config: KubeConfigReference | None = None
    depends_on: tuple[DependencyReference, ...] = ()
    drift_detection_mode: str = "disabled"
    drift_detection_ignore: Frozen = ()
    install: Install = Install()
    upgrade: Upgrade = Upgrade()
    test: Test = Test()
    rollback: Rollback = Rollback()
    uninstall: Uninstall = Uninstall()
    values_from: tuple[ValuesReference, ...] = ()
    #: ``spec.values`` frozen; ``chartguard.api.thaw`` gives a plain dict for helm
    values: Frozen = field(default_factory=lambda: MappingProxyType({}))
    post_renderers: Frozen = ()
    #: ``spec.waitStrategy.name``; "" when unset (helm-controller's default, ``poller``)
    wait_strategy: str = ""
    health_check_exprs: tuple[HealthCheckExpressions, ...] = ()

    @property
    def waits_with_poller(self) -> bool:
        """The kstatus waiter (``poller``, the default): the one health checks plug into."""
        return self.wait_strategy in ("", "poller")
    common_metadata: CommonMetadata | None = None
    post_render_strategy: str = "combined"


@dataclass(frozen=True)
class HelmRelease:
    metadata: ObjectMeta
    api_version: str
    spec: HelmReleaseSpec

    @property
    def subject(self) -> str:
        return f"{KIND} {self.metadata.namespace}/{self.metadata.name}"

    @property
    def release_name(self) -> str:
        """``spec.releaseName`` or Flux's ``[targetNamespace-]name``, at most 53 characters."""
        if self.spec.release_name:
            return self.spec.release_name
        name = self.metadata.name
        if self.spec.target_namespace:
            name = f"{self.spec.target_namespace}-{name}"
        return shorten_release_name(name)

    @property
    def release_namespace(self) -> str:
        return self.spec.target_namespace or self.metadata.namespace

    @property
    def storage_namespace(self) -> str:
        return self.spec.storage_namespace or self.metadata.namespace

    @property
    def helmchart_name(self) -> str:
        """Name of the HelmChart this release's ``spec.chart`` implies: ``<namespace>-<name>``."""
        return f"{self.metadata.namespace}-{self.metadata.name}"

    @property
    def helmchart_namespace(self) -> str:
        """Namespace of that HelmChart: the source's, else the release's."""
        if self.spec.chart is not None and self.spec.chart.spec.source_ref.namespace:
            return self.spec.chart.spec.source_ref.namespace
        return self.metadata.namespace

    @classmethod
    def from_object(
        cls, body: Mapping[str, Any], *, default_namespace: str = "default"
    ) -> HelmRelease:
        """Parse and validate; raises ``InvalidSpecError`` listing every problem."""
        meta, api_version, spec = start_document(
            body, KIND, HELM_GROUP, HELM_VERSIONS, default_namespace
        )
        parsed = _spec(spec)
        if spec.has("chart") and meta.name:
            implied = f"{meta.namespace}-{meta.name}"
            if problem := dns_subdomain_problem(implied):
                spec.error("chart", f"the HelmChart this release implies is named {implied!r} "
                                    f"(<namespace>-<name>), which {problem}; shorten the name")
        release = finish(spec, f"{KIND} {meta.namespace}/{meta.name}", parsed)
        return cls(metadata=meta, api_version=api_version, spec=release)


def shorten_release_name(name: str) -> str:
    """Flux's ``ShortenName``: names over 53 characters become ``name[:40]-sha256[:12]``."""
    if len(name) <= MAX_RELEASE_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"{name[:MAX_RELEASE_NAME - 13]}-{digest[:12]}"


def _spec(spec: Fields) -> HelmReleaseSpec | None:
    spec.reject_unknown(_SPEC_FIELDS, KIND)
    # the CEL rule of Flux's CRD, checked here because the API server may not
    if spec.has("chart") == spec.has("chartRef"):
        spec.error("", "either chart or chartRef must be set (exactly one of them)")
    interval = spec.duration("interval", required=True)
    target_namespace = _namespace(spec, "targetNamespace")
    install = spec.section("install")
    upgrade = spec.section("upgrade")
    rollback = spec.section("rollback")
    drift = spec.section("driftDetection")
    if drift is not None:
        drift.reject_unknown(("mode", "ignore"), "driftDetection")
    result = HelmReleaseSpec(
        interval=interval or timedelta(0),
        chart=_chart_template(spec),
        chart_ref=_chart_ref(spec),
        release_name=spec.string("releaseName", min_length=1, max_length=MAX_RELEASE_NAME) or "",
        target_namespace=target_namespace,
        storage_namespace=_namespace(spec, "storageNamespace"),
        suspend=spec.boolean("suspend"),
        timeout=spec.duration("timeout") or DEFAULT_TIMEOUT,
        max_history=_max_history(spec),
        service_account_name=spec.string("serviceAccountName", min_length=1,
                                         max_length=253) or "",
        persistent_client=spec.boolean("persistentClient", default=True),
        kube_config=_kube_config(spec),
        depends_on=spec.each("dependsOn", _dependency),
        drift_detection_mode=(drift.string("mode", default="disabled",
                                           enum=("enabled", "warn", "disabled"))
                              if drift else None) or "disabled",
        drift_detection_ignore=_drift_ignore(drift) if drift else (),
        install=_install(install) if install else Install(),
        upgrade=_upgrade(upgrade) if upgrade else Upgrade(),
        test=_test(spec),
        rollback=_rollback(rollback) if rollback else Rollback(),
        uninstall=_uninstall(spec),
        values_from=spec.each("valuesFrom", _values_reference),
        values=_values(spec),
        post_renderers=_post_renderers(spec),
        wait_strategy=_wait_strategy(spec),
        health_check_exprs=spec.each("healthCheckExprs", _health_check),
        common_metadata=_common_metadata(spec),
        post_render_strategy=spec.string("postRenderStrategy", default="combined",
                                         enum=POST_RENDER_STRATEGIES) or "combined",
    )
    return None if spec.errors else result


def _wait_strategy(spec: Fields) -> str:
    section = spec.section("waitStrategy")
    if section is None:
        return ""
    section.reject_unknown(("name",), "spec.waitStrategy")
    return section.string("name", required=True, enum=WAIT_STRATEGIES) or ""


def _health_check(item: Fields) -> HealthCheckExpressions | None:
    """Shape only: the expressions are compiled at reconcile, as Flux does (an invalid one
    stalls the release with InvalidCELExpression)."""
    item.reject_unknown(("apiVersion", "kind", "current", "inProgress", "failed"),
                        "a healthCheckExprs entry")
    api_version = item.string("apiVersion", required=True, min_length=1)
    current = item.string("current", required=True, min_length=1)
    if api_version is None or current is None:
        return None
    return HealthCheckExpressions(
        api_version=api_version, kind=item.string("kind") or "", current=current,
        in_progress=item.string("inProgress") or "", failed=item.string("failed") or "")


#: Flux v2beta1's kustomize fields (still served: chartguard serves v2beta1 with v2's schema)
_V2BETA1_PATCHES = ("patchesStrategicMerge", "patchesJson6902")
_SELECTOR = ("annotationSelector", "group", "kind", "labelSelector", "name", "namespace",
             "version")


def _target(parent: Fields) -> None:
    target = parent.section("target")
    if target is not None:
        target.reject_unknown(_SELECTOR, "a target selector")
        for key in _SELECTOR:
            target.string(key)


def _drift_ignore(drift: Fields) -> Frozen:
    for rule in drift.sections("ignore"):
        rule.reject_unknown(("paths", "target"), "a driftDetection ignore rule")
        if not rule.has("paths"):
            rule.error("paths", "required field is missing")
        rule.strings("paths")
        _target(rule)
    return drift.raw("ignore") or ()


def _post_renderers(spec: Fields) -> Frozen:
    """Checked for shape; v2beta1's ``patchesStrategicMerge`` and ``patchesJson6902`` become
    ``patches`` entries in kustomize's order (strategic merge, patches, JSON6902: no other
    transformer of the entry runs between them). Applying them is the helm runner's business."""
    converted: list[dict[str, Any]] = []
    for item in spec.sections("postRenderers"):
        item.reject_unknown(("kustomize",), "a postRenderers entry")
        kustomize = item.section("kustomize")
        if kustomize is None:
            converted.append({})
            continue
        kustomize.reject_unknown(("patches", "images", *_V2BETA1_PATCHES),
                                 "a kustomize post-renderer")
        patches: list[dict[str, Any]] = [
            {"patch": json.dumps(thaw(merge))} for merge in _objects(kustomize,
                                                                     "patchesStrategicMerge")]
        for patch in kustomize.sections("patches"):
            patch.reject_unknown(("patch", "target"), "a kustomize patch")
            patch.string("patch", required=True)
            _target(patch)
            patches.append(thaw(freeze(patch.data)))
        for patch in kustomize.sections("patchesJson6902"):
            patch.reject_unknown(("patch", "target"), "a patchesJson6902 entry")
            patch.section("target", required=True)
            _target(patch)
            operations = _objects(patch, "patch")
            patches.append({"target": thaw(freeze(patch.data.get("target"))),
                            "patch": json.dumps([thaw(op) for op in operations])})
        for image in kustomize.sections("images"):
            image.reject_unknown(("name", "newName", "newTag", "digest"), "a kustomize image")
            image.string("name", required=True)
            for key in ("newName", "newTag", "digest"):
                image.string(key)
        entry: dict[str, Any] = {}
        if patches:
            entry["patches"] = patches
        if kustomize.has("images"):
            entry["images"] = thaw(kustomize.raw("images"))
        converted.append({"kustomize": entry})
    return freeze(converted) if converted else ()


def _objects(parent: Fields, key: str) -> list[Frozen]:
    items = parent.data.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        parent.error(key, "must be a list of objects")
        return []
    return [freeze(i) for i in items]


def _common_metadata(spec: Fields) -> CommonMetadata | None:
    section = spec.section("commonMetadata")
    if section is None:
        return None
    section.reject_unknown(("labels", "annotations"), "spec.commonMetadata")
    return CommonMetadata(labels=section.string_map("labels"),
                          annotations=section.string_map("annotations"))


def _namespace(spec: Fields, key: str) -> str:
    value = spec.string(key, min_length=1, max_length=63) or ""
    if value and (problem := dns_label_problem(value)):
        spec.error(key, problem)
    return value


def _max_history(spec: Fields) -> int:
    value = spec.integer("maxHistory", DEFAULT_MAX_HISTORY)
    if value is not None and value < 0:
        spec.error("maxHistory", "must be 0 (unlimited) or more")
    return DEFAULT_MAX_HISTORY if value is None else value


def _chart_template(spec: Fields) -> HelmChartTemplate | None:
    chart = spec.section("chart")
    if chart is None:
        return None
    chart.reject_unknown(("metadata", "spec"), "spec.chart")
    labels: Mapping[str, str] = _EMPTY
    annotations: Mapping[str, str] = _EMPTY
    if (md := chart.section("metadata")) is not None:
        md.reject_unknown(("labels", "annotations"), "spec.chart.metadata")
        labels, annotations = md.string_map("labels"), md.string_map("annotations")
    tmpl = chart.section("spec", required=True)
    if tmpl is None:
        return None
    tmpl.reject_unknown(
        ("chart", "version", "sourceRef", "interval", "reconcileStrategy", "valuesFiles",
         "valuesFile", "ignoreMissingValuesFiles", "verify"), "spec.chart.spec")
    name = tmpl.string("chart", required=True, min_length=1, max_length=2048)
    source_ref = _reference(tmpl, "sourceRef", CHART_SOURCE_KINDS, required=True)
    parsed = HelmChartTemplateSpec(
        chart=name or "",
        source_ref=source_ref or CrossNamespaceSourceReference("", ""),
        version=check_chart_version(tmpl, source_ref.kind if source_ref else None),
        interval=tmpl.duration("interval"),
        reconcile_strategy=tmpl.string("reconcileStrategy", default="ChartVersion",
                                       enum=RECONCILE_STRATEGIES) or "ChartVersion",
        values_files=tmpl.strings("valuesFiles"),
        values_file=tmpl.string("valuesFile") or "",
        ignore_missing_values_files=tmpl.boolean("ignoreMissingValuesFiles"),
        verify=parse_verification(tmpl),
    )
    # the implied HelmChart would be refused by the API server (Flux's CEL rule on HelmChart)
    check_verify_source(tmpl, parsed.verify, source_ref.kind if source_ref else None)
    return HelmChartTemplate(spec=parsed, labels=labels, annotations=annotations)


def _chart_ref(spec: Fields) -> CrossNamespaceSourceReference | None:
    return _reference(spec, "chartRef", CHART_REF_KINDS, required=False)


def _reference(
    parent: Fields, key: str, kinds: tuple[str, ...], *, required: bool
) -> CrossNamespaceSourceReference | None:
    ref = parent.section(key, required=required)
    if ref is None:
        return None
    ref.reject_unknown(("apiVersion", "kind", "name", "namespace"), f"a {key}")
    # Flux's CRD does not mark sourceRef.kind required, but nothing can be fetched without it
    kind = ref.string("kind", required=True, enum=kinds)
    name = ref.string("name", required=True, min_length=1, max_length=253)
    if name and (problem := dns_subdomain_problem(name)):
        ref.error("name", problem)
    namespace = ref.string("namespace", min_length=1, max_length=63) or ""
    if namespace and (problem := dns_label_problem(namespace)):
        ref.error("namespace", problem)
    if kind is None or name is None:
        return None
    return CrossNamespaceSourceReference(kind=kind, name=name, namespace=namespace,
                                         api_version=ref.string("apiVersion") or "")


def _kube_config(spec: Fields) -> KubeConfigReference | None:
    section = spec.section("kubeConfig")
    if section is None:
        return None
    section.reject_unknown(("secretRef", "configMapRef"), "spec.kubeConfig")
    if section.has("secretRef") == section.has("configMapRef"):  # Flux's CEL rules
        section.error("", "exactly one of spec.kubeConfig.configMapRef or "
                          "spec.kubeConfig.secretRef must be specified")
    configmap = section.section("configMapRef")
    if configmap is not None:
        configmap.reject_unknown(("name",), "spec.kubeConfig.configMapRef")
        name = configmap.string("name", required=True, min_length=1)
        return KubeConfigReference(configmap_name=name) if name else None
    ref = section.section("secretRef")
    if ref is None:
        return None
    ref.reject_unknown(("name", "key"), "spec.kubeConfig.secretRef")
    name = ref.string("name", required=True, min_length=1)
    return KubeConfigReference(name, ref.string("key") or "") if name else None


def _dependency(item: Fields) -> DependencyReference | None:
    item.reject_unknown(("name", "namespace", "readyExpr"), "a dependsOn entry")
    name = item.string("name", required=True, min_length=1)
    namespace = item.string("namespace") or ""
    ready_expr = item.string("readyExpr") or ""
    return DependencyReference(name, namespace, ready_expr) if name else None


def _remediation(section: Fields | None, *, upgrade: bool) -> Remediation:
    if section is None:
        return Remediation() if upgrade else Remediation(strategy="uninstall")
    known = ["retries", "ignoreTestFailures", "remediateLastFailure"]
    section.reject_unknown([*known, "strategy"] if upgrade else known, "remediation")
    strategy = "uninstall"
    if upgrade:
        strategy = section.string("strategy", default="rollback",
                                  enum=("rollback", "uninstall")) or "rollback"
    return Remediation(
        retries=section.integer("retries", 0) or 0,
        ignore_test_failures=section.optional_boolean("ignoreTestFailures"),
        remediate_last_failure=section.optional_boolean("remediateLastFailure"),
        strategy=strategy,
    )


def _strategy(section: Fields | None, *, upgrade: bool) -> ActionStrategy:
    """Flux's InstallStrategy / UpgradeStrategy, with its CEL rule on ``retryInterval``."""
    if section is None:
        return ActionStrategy()
    section.reject_unknown(("name", "retryInterval"),
                           "spec.upgrade.strategy" if upgrade else "spec.install.strategy")
    name = section.string("name", required=True, enum=ACTION_STRATEGIES)
    interval = section.duration("retryInterval")
    if section.has("retryInterval") and name == REMEDIATE_ON_FAILURE:
        # the words of Flux's CEL rules (InstallStrategy, UpgradeStrategy)
        section.error("retryInterval", "can only be set when .name is 'RetryOnFailure'"
                      if upgrade else "cannot be set when .name is 'RemediateOnFailure'")
    return ActionStrategy(name=name or REMEDIATE_ON_FAILURE,
                          retry_interval=interval if name == RETRY_ON_FAILURE else None)


_ACTION_FLAGS = ("disableWait", "disableWaitForJobs", "disableHooks", "disableOpenAPIValidation",
                 "disableSchemaValidation", "disableTakeOwnership")


def _install(s: Fields) -> Install:
    s.reject_unknown(("timeout", "remediation", "createNamespace", "crds", "skipCRDs", "replace",
                      "serverSideApply", "strategy", *_ACTION_FLAGS), "spec.install")
    return Install(
        timeout=s.duration("timeout"),
        remediation=_remediation(s.section("remediation"), upgrade=False),
        strategy=_strategy(s.section("strategy"), upgrade=False),
        server_side_apply=s.optional_boolean("serverSideApply"),
        create_namespace=s.boolean("createNamespace"),
        crds=s.string("crds", default="Create", enum=CRDS_POLICIES) or "Create",
        skip_crds=s.boolean("skipCRDs"),
        replace=s.boolean("replace"),
        disable_wait=s.boolean("disableWait"),
        disable_wait_for_jobs=s.boolean("disableWaitForJobs"),
        disable_hooks=s.boolean("disableHooks"),
        disable_openapi_validation=s.boolean("disableOpenAPIValidation"),
        disable_schema_validation=s.boolean("disableSchemaValidation"),
        disable_take_ownership=s.boolean("disableTakeOwnership"),
    )


def _upgrade(s: Fields) -> Upgrade:
    s.reject_unknown(("timeout", "remediation", "crds", "force", "preserveValues",
                      "cleanupOnFail", "serverSideApply", "strategy", "chartNameChangeStrategy",
                      *_ACTION_FLAGS), "spec.upgrade")
    return Upgrade(
        timeout=s.duration("timeout"),
        remediation=_remediation(s.section("remediation"), upgrade=True),
        strategy=_strategy(s.section("strategy"), upgrade=True),
        server_side_apply=s.string("serverSideApply", default="auto",
                                   enum=SERVER_SIDE_APPLY_MODES) or "auto",
        chart_name_change_strategy=s.string(
            "chartNameChangeStrategy", default=REINSTALL,
            enum=CHART_NAME_CHANGE_STRATEGIES) or REINSTALL,
        crds=s.string("crds", default="Skip", enum=CRDS_POLICIES) or "Skip",
        force=s.boolean("force"),
        preserve_values=s.boolean("preserveValues"),
        cleanup_on_fail=s.boolean("cleanupOnFail"),
        disable_wait=s.boolean("disableWait"),
        disable_wait_for_jobs=s.boolean("disableWaitForJobs"),
        disable_hooks=s.boolean("disableHooks"),
        disable_openapi_validation=s.boolean("disableOpenAPIValidation"),
        disable_schema_validation=s.boolean("disableSchemaValidation"),
        disable_take_ownership=s.boolean("disableTakeOwnership"),
    )


def _test(spec: Fields) -> Test:
    s = spec.section("test")
    if s is None:
        return Test()
    s.reject_unknown(("enable", "timeout", "ignoreFailures", "filters"), "spec.test")

    def one(item: Fields) -> TestFilter | None:
        item.reject_unknown(("name", "exclude"), "a test filter")
        name = item.string("name", required=True, min_length=1, max_length=253)
        return TestFilter(name, item.boolean("exclude")) if name else None

    return Test(enable=s.boolean("enable"), timeout=s.duration("timeout"),
                ignore_failures=s.boolean("ignoreFailures"), filters=s.each("filters", one))


def _rollback(s: Fields) -> Rollback:
    s.reject_unknown(("timeout", "disableWait", "disableWaitForJobs", "disableHooks", "recreate",
                      "force", "cleanupOnFail", "serverSideApply"), "spec.rollback")
    return Rollback(
        timeout=s.duration("timeout"),
        disable_wait=s.boolean("disableWait"),
        disable_wait_for_jobs=s.boolean("disableWaitForJobs"),
        disable_hooks=s.boolean("disableHooks"),
        recreate=s.boolean("recreate"),
        force=s.boolean("force"),
        cleanup_on_fail=s.boolean("cleanupOnFail"),
        server_side_apply=s.string("serverSideApply", default="auto",
                                   enum=SERVER_SIDE_APPLY_MODES) or "auto",
    )


def _uninstall(spec: Fields) -> Uninstall:
    s = spec.section("uninstall")
    if s is None:
        return Uninstall()
    s.reject_unknown(("timeout", "disableHooks", "keepHistory", "disableWait",
                      "deletionPropagation"), "spec.uninstall")
    return Uninstall(
        timeout=s.duration("timeout"),
        disable_hooks=s.boolean("disableHooks"),
        keep_history=s.boolean("keepHistory"),
        disable_wait=s.boolean("disableWait"),
        deletion_propagation=s.string("deletionPropagation", default="background",
                                      enum=("background", "foreground", "orphan"))
        or "background",
    )


_VALUES_KEY = re.compile(r"^[\-._a-zA-Z0-9]+$")
_TARGET_PATH = re.compile(r"^([a-zA-Z0-9_\-.\\\/]|\[[0-9]{1,5}\])+$")


def _values_reference(item: Fields) -> ValuesReference | None:
    item.reject_unknown(("kind", "name", "valuesKey", "targetPath", "optional", "literal"),
                        "a valuesFrom entry")
    kind = item.string("kind", required=True, enum=("Secret", "ConfigMap"))
    name = item.string("name", required=True, min_length=1, max_length=253)
    key = item.string("valuesKey", default="values.yaml", max_length=253, pattern=_VALUES_KEY)
    target = item.string("targetPath", default="", max_length=250, pattern=_TARGET_PATH)
    if kind is None or name is None:
        return None
    return ValuesReference(kind=kind, name=name, values_key=key or "values.yaml",
                           target_path=target or "", optional=item.boolean("optional"),
                           literal=item.boolean("literal"))


def _values(spec: Fields) -> Frozen:
    values = spec.data.get("values")
    if values is None:
        return MappingProxyType({})
    if not isinstance(values, Mapping):
        spec.error("values", f"must be an object (a map of Helm values), got {values!r}")
        return MappingProxyType({})
    return spec.raw("values")

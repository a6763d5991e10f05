"""Invalid documents are rejected by the models (which run without an API server) and, where the
schema can express the rule, by the CRD schema too; every message names the field path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from crdschema import validate

from chartguard.api import HelmChart, HelmRelease, HelmRepository, InvalidSpecError

RELEASE: dict[str, Any] = {
    "apiVersion": "helm.toolkit.fluxcd.io/v2",
    "kind": "HelmRelease",
    "metadata": {"name": "podinfo", "namespace": "apps"},
    "spec": {
        "interval": "10m",
        "chart": {"spec": {
            "chart": "podinfo",
            "version": ">=6.0.0 <7.0.0",
            "sourceRef": {"kind": "HelmRepository", "name": "podinfo", "namespace": "flux-system"},
            "verify": {"provider": "cosign", "matchOIDCIdentity": [
                {"issuer": "^https://token.actions.githubusercontent.com$",
                 "subject": "^https://github.com/stefanprodan/podinfo.*$"}]},
        }},
    },
}
CHART: dict[str, Any] = {
    "apiVersion": "source.toolkit.fluxcd.io/v1",
    "kind": "HelmChart",
    "metadata": {"name": "podinfo", "namespace": "flux-system"},
    "spec": {"chart": "podinfo", "interval": "5m",
             "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}},
}
REPOSITORY: dict[str, Any] = {
    "apiVersion": "source.toolkit.fluxcd.io/v1",
    "kind": "HelmRepository",
    "metadata": {"name": "podinfo", "namespace": "flux-system"},
    "spec": {"type": "oci", "url": "oci://ghcr.io/stefanprodan/charts", "interval": "5m"},
}
PARSERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "HelmRelease": HelmRelease.from_object,
    "HelmChart": HelmChart.from_object,
    "HelmRepository": HelmRepository.from_object,
}
BASES = {"HelmRelease": RELEASE, "HelmChart": CHART, "HelmRepository": REPOSITORY}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return mutate


def _chain(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for one in mutations:
            one(doc)
    return mutate


_DELETE = object()
V = "spec.chart.spec.verify"

# (id, kind, mutation, model error path, words in the model message, schema error path or None
#  when the schema cannot express the rule and only chartguard.api catches it)
CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], str, str, str | None]] = [
    ("git-url", "HelmRepository", _set("spec.url", "git://github.com/org/charts"),
     "spec.url", "does not match", "spec.url"),
    ("both-chart-and-chartRef", "HelmRelease",
     _set("spec.chartRef", {"kind": "HelmChart", "name": "x"}),
     "spec", "either chart or chartRef", "spec"),
    ("neither-chart-nor-chartRef", "HelmRelease", _set("spec.chart", _DELETE),
     "spec", "either chart or chartRef", "spec"),
    ("releaseName-54", "HelmRelease", _set("spec.releaseName", "r" * 54),
     "spec.releaseName", "at most 53 characters", "spec.releaseName"),
    ("interval-in-words", "HelmRelease", _set("spec.interval", "10 minutes"),
     "spec.interval", "not a Go duration", "spec.interval"),
    ("bad-regex-subject", "HelmRelease", _set(f"{V}.matchOIDCIdentity.0.subject", "^(https://"),
     f"{V}.matchOIDCIdentity[0].subject", "invalid regular expression", None),
    ("lookaround-regex", "HelmRelease", _set(f"{V}.matchOIDCIdentity.0.issuer", "(?!evil).*"),
     f"{V}.matchOIDCIdentity[0].issuer", "RE2", None),
    ("unknown-verify-provider", "HelmRelease", _set(f"{V}.provider", "gpg"),
     f"{V}.provider", "unsupported value 'gpg'", f"{V}.provider"),
    ("notation-not-supported", "HelmRelease", _set(f"{V}.provider", "notation"),
     f"{V}.provider", "not supported by chartguard", None),
    ("helmchart-sourceRef-kind", "HelmChart", _set("spec.sourceRef.kind", "OCIRepository"),
     "spec.sourceRef.kind", "must be one of HelmRepository, GitRepository, Bucket",
     "spec.sourceRef.kind"),
    ("helmchart-sourceRef-kind-that-does-not-exist", "HelmChart",
     _set("spec.sourceRef.kind", "HelmRepo"), "spec.sourceRef.kind",
     "unsupported value 'HelmRepo': must be one of HelmRepository, GitRepository, Bucket",
     "spec.sourceRef.kind"),
    ("helmchart-verify-needs-a-helmrepository", "HelmChart",
     _chain(_set("spec.sourceRef.kind", "GitRepository"),
            _set("spec.verify", {"provider": "cosign"})),
     "spec.verify", "only supported when sourceRef.kind is 'HelmRepository', not "
     "'GitRepository'", "spec"),
    ("release-verify-needs-a-helmrepository", "HelmRelease",
     _set("spec.chart.spec.sourceRef.kind", "Bucket"),
     V, "only supported when sourceRef.kind is 'HelmRepository'", None),
    ("bad-semver", "HelmRelease", _set("spec.chart.spec.version", ">>6"),
     "spec.chart.spec.version", "invalid version constraint", None),
    ("helmchart-bad-semver", "HelmChart", _set("spec.version", "latest"),
     "spec.version", "invalid version constraint", None),
    ("name-too-long", "HelmChart", _set("metadata.name", "n" * 254),
     "metadata.name", "at most 253 characters", None),
    ("implied-helmchart-name-too-long", "HelmRelease", _set("metadata.name", "n" * 250),
     "spec.chart", "shorten the name", None),
    ("unknown-field", "HelmRelease", _set("spec.intervall", "5m"),
     "spec.intervall", "unknown field", "spec"),
    ("oci-url-without-type", "HelmRepository", _set("spec.type", _DELETE),
     "spec.type", "must be 'oci'", None),
    ("repository-timeout-in-hours", "HelmRepository", _set("spec.timeout", "1h"),
     "spec.timeout", "not a Go duration", "spec.timeout"),
    ("valuesFrom-kind", "HelmRelease", _set("spec.valuesFrom", [{"kind": "Pod", "name": "v"}]),
     "spec.valuesFrom[0].kind", "must be one of Secret, ConfigMap", "spec.valuesFrom[0].kind"),
    ("targetNamespace-not-dns", "HelmRelease", _set("spec.targetNamespace", "Bad_NS"),
     "spec.targetNamespace", "DNS-1123 label", None),
    ("interval-missing", "HelmChart", _set("spec.interval", _DELETE),
     "spec.interval", "required field is missing: write a Go duration, e.g. 10m", "spec"),
    ("waitStrategy-name", "HelmRelease", _set("spec.waitStrategy", {"name": "watcher"}),
     "spec.waitStrategy.name", "must be one of poller, legacy", None),
    ("waitStrategy-without-name", "HelmRelease", _set("spec.waitStrategy", {}),
     "spec.waitStrategy.name", "required field is missing", None),
    ("healthCheckExprs-without-current", "HelmRelease",
     _set("spec.healthCheckExprs", [{"apiVersion": "v1", "kind": "ConfigMap"}]),
     "spec.healthCheckExprs[0].current", "required field is missing", None),
    ("healthCheckExprs-unknown-field", "HelmRelease",
     _set("spec.healthCheckExprs", [{"apiVersion": "v1", "current": "true", "ready": "x"}]),
     "spec.healthCheckExprs[0].ready", "unknown field", None),
    ("readyExpr-not-a-string", "HelmRelease",
     _set("spec.dependsOn", [{"name": "backend", "readyExpr": True}]),
     "spec.dependsOn[0].readyExpr", "must be a string", None),
    ("install-strategy-name", "HelmRelease",
     _set("spec.install", {"strategy": {"name": "RetryForever"}}), "spec.install.strategy.name",
     "must be one of RemediateOnFailure, RetryOnFailure", "spec.install.strategy.name"),
    ("install-strategy-without-name", "HelmRelease",
     _set("spec.install", {"strategy": {"retryInterval": "1m"}}), "spec.install.strategy.name",
     "required field is missing", "spec.install.strategy"),
    ("install-retry-interval-when-remediating", "HelmRelease",
     _set("spec.install", {"strategy": {"name": "RemediateOnFailure", "retryInterval": "1m"}}),
     "spec.install.strategy.retryInterval",
     "cannot be set when .name is 'RemediateOnFailure'", "spec.install.strategy"),
    ("upgrade-retry-interval-when-remediating", "HelmRelease",
     _set("spec.upgrade", {"strategy": {"name": "RemediateOnFailure", "retryInterval": "1m"}}),
     "spec.upgrade.strategy.retryInterval",
     "can only be set when .name is 'RetryOnFailure'", "spec.upgrade.strategy"),
    ("retry-interval-not-a-duration", "HelmRelease",
     _set("spec.upgrade", {"strategy": {"name": "RetryOnFailure", "retryInterval": "soon"}}),
     "spec.upgrade.strategy.retryInterval", "soon", "spec.upgrade.strategy.retryInterval"),
    ("upgrade-server-side-apply-mode", "HelmRelease",
     _set("spec.upgrade", {"serverSideApply": "true"}), "spec.upgrade.serverSideApply",
     "must be one of enabled, disabled, auto", "spec.upgrade.serverSideApply"),
    ("install-server-side-apply-bool", "HelmRelease",
     _set("spec.install", {"serverSideApply": "enabled"}), "spec.install.serverSideApply",
     "must be true or false", "spec.install.serverSideApply"),
    ("rollback-server-side-apply-mode", "HelmRelease",
     _set("spec.rollback", {"serverSideApply": "on"}), "spec.rollback.serverSideApply",
     "must be one of enabled, disabled, auto", "spec.rollback.serverSideApply"),
    ("chart-name-change-strategy", "HelmRelease",
     _set("spec.upgrade", {"chartNameChangeStrategy": "Upgrade"}),
     "spec.upgrade.chartNameChangeStrategy", "must be one of InPlaceUpdate, Reinstall",
     "spec.upgrade.chartNameChangeStrategy"),
    ("valuesFrom-literal-bool", "HelmRelease",
     _set("spec.valuesFrom", [{"kind": "Secret", "name": "v", "literal": "yes"}]),
     "spec.valuesFrom[0].literal", "must be true or false", "spec.valuesFrom[0].literal"),
    ("wrong-type", "HelmRelease", _set("spec.suspend", "yes"),
     "spec.suspend", "must be true or false", "spec.suspend"),
    ("drift-ignore-without-paths", "HelmRelease",
     _set("spec.driftDetection", {"mode": "enabled", "ignore": [{"target": {"kind": "Pod"}}]}),
     "spec.driftDetection.ignore[0].paths", "required field is missing",
     "spec.driftDetection.ignore[0]"),
    ("post-renderer-image-without-name", "HelmRelease",
     _set("spec.postRenderers", [{"kustomize": {"images": [{"newTag": "1.0"}]}}]),
     "spec.postRenderers[0].kustomize.images[0].name", "required field is missing",
     "spec.postRenderers[0].kustomize.images[0]"),
    ("unserved-version", "HelmRelease", _set("apiVersion", "helm.toolkit.fluxcd.io/v2beta2"),
     "apiVersion", "serves HelmRelease as helm.toolkit.fluxcd.io/v2 and", None),
]


def test_valid_bases_are_accepted(crds: dict[str, Any]) -> None:
    for kind, base in BASES.items():
        assert validate(crds, base)[1] == []
        PARSERS[kind](copy.deepcopy(base))


@pytest.mark.parametrize(
    ("kind", "mutate", "path", "words", "schema_path"),
    [c[1:] for c in CASES], ids=[c[0] for c in CASES],
)
def test_invalid_document_is_rejected_naming_the_field(
    crds: dict[str, Any], kind: str, mutate: Callable[[dict[str, Any]], None], path: str,
    words: str, schema_path: str | None,
) -> None:
    doc = copy.deepcopy(BASES[kind])
    mutate(doc)
    with pytest.raises(InvalidSpecError) as caught:
        PARSERS[kind](doc)
    assert (caught.value.path, words in caught.value.message) == (path, True), caught.value
    assert str(caught.value).startswith(f"{kind} "), "the message names the object"
    assert f"{path}: " in str(caught.value)
    if schema_path is not None and doc["apiVersion"].endswith(("/v2", "/v1")):
        errors = validate(crds, doc)[1]
        assert schema_path in [e.path for e in errors], errors


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    doc = copy.deepcopy(RELEASE)
    doc["spec"]["interval"] = "soon"
    doc["spec"]["releaseName"] = "r" * 60
    doc["spec"]["chart"]["spec"]["verify"]["matchOIDCIdentity"][0]["subject"] = "(["
    with pytest.raises(InvalidSpecError) as caught:
        HelmRelease.from_object(doc)
    assert {e.path for e in caught.value.errors} == {
        "spec.interval", "spec.releaseName", f"{V}.matchOIDCIdentity[0].subject"}


def test_error_message_reads_as_the_issue_asks() -> None:
    doc = copy.deepcopy(RELEASE)
    doc["spec"]["chart"]["spec"]["verify"]["matchOIDCIdentity"][0]["subject"] = "(["
    with pytest.raises(InvalidSpecError) as caught:
        HelmRelease.from_object(doc)
    assert str(caught.value).startswith(
        "HelmRelease apps/podinfo: "
        "spec.chart.spec.verify.matchOIDCIdentity[0].subject: invalid regular expression '(['")


def test_a_non_object_or_another_kind_is_rejected() -> None:
    with pytest.raises(InvalidSpecError, match="kind: expected HelmChart"):
        HelmChart.from_object(REPOSITORY)
    with pytest.raises(InvalidSpecError, match="must be a JSON/YAML object"):
        HelmChart.from_object([])  # type: ignore[arg-type]
    with pytest.raises(InvalidSpecError, match="spec: required field is missing"):
        HelmChart.from_object({k: v for k, v in CHART.items() if k != "spec"})


def test_helmchart_verify_rule_message_is_fluxs(crds: dict[str, Any]) -> None:
    doc = copy.deepcopy(CHART)
    doc["spec"]["sourceRef"]["kind"] = "Bucket"
    doc["spec"]["verify"] = {"provider": "cosign"}
    errors = validate(crds, doc)[1]
    assert [(e.path, e.message) for e in errors] == [
        ("spec", "spec.verify is only supported when spec.sourceRef.kind is 'HelmRepository'")]
    del doc["spec"]["verify"]
    assert validate(crds, doc)[1] == []
    HelmChart.from_object(doc)


@pytest.mark.parametrize("url", [
    "ftp://chartguard:pw-9c1e77@ghcr.io/charts",  # does not match the pattern
    "https://chartguard:pw-9c1e77@ghcr.io/charts",  # oci type, not oci://
    "oci://chartguard:pw-9c1e77@/charts",  # no host
])
def test_a_refused_repository_url_is_quoted_without_its_password(url: str) -> None:
    doc = copy.deepcopy(REPOSITORY)
    doc["spec"]["url"] = url
    with pytest.raises(InvalidSpecError) as raised:
        HelmRepository.from_object(doc)
    assert "pw-9c1e77" not in str(raised.value)
    assert "[redacted]@" in str(raised.value)

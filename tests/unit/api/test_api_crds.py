"""chartguard's CRDs serve Flux's kinds: names, versions, columns, structural schemas, and every
Flux manifest we keep (the seed's, `flux create --export` output, Flux's documentation examples)
validates against them with defaults applied and parses into the models."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from crdschema import (
    REPO,
    flux_documents,
    is_structural,
    schema_paths,
    validate,
    version_schema,
)

from chartguard.api import HelmChart, HelmRelease, HelmRepository, implied_helmchart

SEED = REPO.parent / "shared" / "seed" / "000_ad0eb231692158bf.txt"
MODELS: dict[str, Any] = {
    "HelmRepository": HelmRepository, "HelmChart": HelmChart, "HelmRelease": HelmRelease,
}

EXPECTED = {
    # kind: (plural, group, versions storage-first, short names, printer column names)
    "HelmRepository": ("helmrepositories", "source.toolkit.fluxcd.io", ["v1", "v1beta2"],
                       ["helmrepo"], ["URL", "Age", "Ready", "Status"]),
    "HelmChart": ("helmcharts", "source.toolkit.fluxcd.io", ["v1", "v1beta2"], ["hc"],
                  ["Chart", "Version", "Source Kind", "Source Name", "Age", "Ready", "Status"]),
    "HelmRelease": ("helmreleases", "helm.toolkit.fluxcd.io", ["v2", "v2beta1"], ["hr"],
                    ["Age", "Ready", "Status"]),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_crd_names_versions_and_columns_match_flux(crds: dict[str, Any], kind: str) -> None:
    plural, group, versions, short, columns = EXPECTED[kind]
    crd = crds[kind]
    assert crd["metadata"]["name"] == f"{plural}.{group}"
    assert crd["spec"]["group"] == group
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == short
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    served = crd["spec"]["versions"]
    assert [v["name"] for v in served] == versions
    assert [v["storage"] for v in served] == [True, False]
    assert all(v["served"] and v["subresources"] == {"status": {}} for v in served)
    for version in served:
        assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    # conversion None is only safe when every served version has the same schema
    assert served[0]["schema"] == served[1]["schema"]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_crd_schemas_are_structural(crds: dict[str, Any], kind: str) -> None:
    schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert list(is_structural(schema)) == []


# Flux's current generated CRDs: categories and annotations per kind (HelmRelease has none)
CATEGORIES = {"HelmRepository": ["all", "fluxcd", "fluxcd-sources"],
              "HelmChart": ["all", "fluxcd", "fluxcd-sources"], "HelmRelease": None}


@pytest.mark.parametrize("kind", sorted(CATEGORIES))
def test_crd_categories_and_annotations_match_flux(crds: dict[str, Any], kind: str) -> None:
    crd = crds[kind]
    assert crd["spec"]["names"].get("categories") == CATEGORIES[kind]
    substitute = crd["metadata"].get("annotations", {}).get(
        "kustomize.toolkit.fluxcd.io/substitute")
    assert substitute == ("disabled" if kind != "HelmRelease" else None)


@pytest.mark.parametrize("kind", ["HelmRepository", "HelmChart"])
def test_artifact_requires_a_digest_as_fluxs_current_crd(crds: dict[str, Any], kind: str) -> None:
    schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    artifact = schema["properties"]["status"]["properties"]["artifact"]
    assert artifact["required"] == ["digest", "lastUpdateTime", "path", "revision", "url"]
    assert artifact["properties"]["digest"]["pattern"] == (
        "^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


# Every CEL rule of Flux's current CRDs for the three kinds, rule text and message verbatim
# (helmchart: source-controller CRD by controller-gen v0.21.0; helmrelease: helm-controller
# api/v2 HelmReleaseSpec). Rules inside fields chartguard keeps opaque are not listed.
FLUX_CEL = {
    "HelmRepository": [],
    "HelmChart": [("spec", "!has(self.verify) || self.sourceRef.kind == 'HelmRepository'",
                   "spec.verify is only supported when spec.sourceRef.kind is 'HelmRepository'")],
    "HelmRelease": [("spec", "(has(self.chart) && !has(self.chartRef)) || "
                     "(!has(self.chart) && has(self.chartRef))",
                     "either chart or chartRef must be set"),
                    ("spec.kubeConfig", "has(self.configMapRef) || has(self.secretRef)",
                     "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef "
                     "must be specified"),
                    ("spec.kubeConfig", "!has(self.configMapRef) || !has(self.secretRef)",
                     "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef "
                     "must be specified"),
                    ("spec.install.strategy",
                     "!has(self.retryInterval) || self.name != 'RemediateOnFailure'",
                     ".retryInterval cannot be set when .name is 'RemediateOnFailure'"),
                    ("spec.upgrade.strategy",
                     "!has(self.retryInterval) || self.name == 'RetryOnFailure'",
                     ".retryInterval can only be set when .name is 'RetryOnFailure'")],
}


@pytest.mark.parametrize("kind", sorted(FLUX_CEL))
def test_crd_cel_rules_are_fluxs(crds: dict[str, Any], kind: str) -> None:
    schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    found = [(path, rule["rule"], rule["message"]) for path, node in schema_paths(schema)
             for rule in node.get("x-kubernetes-validations", [])]
    assert found == FLUX_CEL[kind]


def test_ready_printer_column_reads_the_ready_condition(crds: dict[str, Any]) -> None:
    columns = crds["HelmChart"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ready = next(c for c in columns if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


DOCUMENTS = list(flux_documents())


@pytest.mark.parametrize(("where", "document"), DOCUMENTS, ids=[w for w, _ in DOCUMENTS])
def test_flux_manifest_validates_against_crd_and_parses(
    crds: dict[str, Any], where: str, document: dict[str, Any]
) -> None:
    defaulted, errors = validate(crds, document)
    assert errors == [], where
    model = MODELS[document["kind"]].from_object(defaulted)
    # the API server's defaults and the model's defaults agree (parsing before/after defaulting)
    assert MODELS[document["kind"]].from_object(document) == model


def test_test_data_covers_every_kind_and_version() -> None:
    seen = {(doc["kind"], doc["apiVersion"].rsplit("/", 1)[1]) for _, doc in DOCUMENTS}
    assert seen >= {("HelmRepository", "v1"), ("HelmRepository", "v1beta2"), ("HelmChart", "v1"),
                    ("HelmRelease", "v2"), ("HelmRelease", "v2beta1")}


def test_structural_defaults_are_flux_defaults(crds: dict[str, Any]) -> None:
    doc = yaml.safe_load((REPO / "tests/data/flux/docs-source-controller-helmcharts.yaml")
                         .read_text().split("---")[2])
    doc["spec"].pop("version")
    doc["spec"].pop("reconcileStrategy")
    doc["spec"]["verify"].pop("provider")
    defaulted, errors = validate(crds, doc)
    assert errors == []
    assert defaulted["spec"]["version"] == "*"
    assert defaulted["spec"]["reconcileStrategy"] == "ChartVersion"
    assert defaulted["spec"]["verify"]["provider"] == "cosign"
    assert defaulted["status"] == {"observedGeneration": -1}
    model = HelmChart.from_object(doc)
    assert (model.spec.version, model.spec.reconcile_strategy) == ("*", "ChartVersion")


def _seed_yaml_blocks() -> list[Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", SEED.read_text(), re.S)
    return [yaml.safe_load(b) for b in blocks]


def test_every_manifest_in_the_seed_validates_and_parses(crds: dict[str, Any]) -> None:
    manifests = [b for b in _seed_yaml_blocks() if isinstance(b, dict) and "kind" in b]
    assert [m["kind"] for m in manifests] == ["HelmRepository"]
    for manifest in manifests:
        defaulted, errors = validate(crds, manifest)
        assert errors == []
        repo = HelmRepository.from_object(defaulted)
        assert repo.spec.is_oci
        assert repo.spec.oci_location == "ghcr.io/stefanprodan/charts"


def _yq_prepend_verify(release: dict[str, Any], verify: dict[str, Any]) -> dict[str, Any]:
    """What the seed's `yq e '.spec.chart.spec|=({"verify": ...} +.)'` does."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(release))
    out["spec"]["chart"]["spec"] = {"verify": verify, **out["spec"]["chart"]["spec"]}
    return out


@pytest.mark.parametrize("era", ["seed-export-v0.36", "flux-export-current"])
@pytest.mark.parametrize(
    ("variant", "snippet_index", "secret"),
    [("prometheus-verify-keyless", 0, None), ("nginx-verify-key", 1, "cosign-pub")],
)
def test_seed_verify_variants_equal_yq_output_and_imply_a_verified_helmchart(
    crds: dict[str, Any], era: str, variant: str, snippet_index: int, secret: str | None
) -> None:
    snippets = [b for b in _seed_yaml_blocks() if isinstance(b, dict) and "verify" in b]
    verify = snippets[snippet_index]["verify"]
    data = list(yaml.safe_load_all((REPO / f"tests/data/flux/{era}-{variant}.yaml").read_text()))
    release = next(d for d in data if d and d["kind"] == "HelmRelease")
    unverified = dict(release)
    unverified["spec"] = {**release["spec"],
                          "chart": {"spec": {k: v for k, v in release["spec"]["chart"]["spec"]
                                             .items() if k != "verify"}}}
    assert _yq_prepend_verify(unverified, verify) == release
    assert next(iter(release["spec"]["chart"]["spec"])) == "verify"  # yq puts it first
    defaulted, errors = validate(crds, release)
    assert errors == []
    chart = implied_helmchart(HelmRelease.from_object(defaulted))
    assert chart.spec.verify is not None
    assert chart.spec.verify.provider == "cosign"
    assert (chart.spec.verify.secret_ref.name if chart.spec.verify.secret_ref else None) == secret
    # the HelmChart the seed inspects: flux-system-prometheus in flux-system
    assert chart.metadata.namespace == "flux-system"
    assert chart.metadata.name == f"flux-system-{release['metadata']['name']}"


def test_seed_helmchart_is_named_as_the_seed_queries_it() -> None:
    doc = yaml.safe_load_all((REPO / "tests/data/flux/flux-export-current-prometheus.yaml")
                             .read_text())
    release = HelmRelease.from_object(next(d for d in doc if d and d["kind"] == "HelmRelease"))
    # `kubectl get helmcharts -n flux-system flux-system-prometheus` in the seed
    assert (release.helmchart_namespace, release.helmchart_name) == (
        "flux-system", "flux-system-prometheus")
    assert (release.release_name, release.release_namespace) == ("prometheus", "monitoring")
    assert release.spec.install.create_namespace is True


def test_v1beta2_and_v1_share_one_schema(crds: dict[str, Any]) -> None:
    assert version_schema(crds, "source.toolkit.fluxcd.io/v1", "HelmChart") == version_schema(
        crds, "source.toolkit.fluxcd.io/v1beta2", "HelmChart")
    with pytest.raises(KeyError):
        version_schema(crds, "helm.toolkit.fluxcd.io/v2beta2", "HelmRelease")


FULL_RELEASE: dict[str, Any] = {
    "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
    "metadata": {"name": "app", "namespace": "apps"},
    "spec": {
        "chart": {"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}},
                  "spec": {"chart": "app", "version": "~1.2", "interval": "1m",
                           "sourceRef": {"apiVersion": "source.toolkit.fluxcd.io/v1",
                                         "kind": "HelmRepository", "name": "repo",
                                         "namespace": "flux-system"},
                           "reconcileStrategy": "Revision", "valuesFiles": ["values.yaml"],
                           "ignoreMissingValuesFiles": True,
                           "verify": {"provider": "cosign", "secretRef": {"name": "keys"},
                                      "trustedRootSecretRef": {"name": "root"}}}},
        "interval": "5m", "kubeConfig": {"secretRef": {"name": "kc", "key": "value"}},
        "suspend": False, "releaseName": "app", "targetNamespace": "prod",
        "storageNamespace": "apps", "dependsOn": [{"name": "db", "namespace": "data"}],
        "timeout": "3m", "maxHistory": 10, "serviceAccountName": "deployer",
        "persistentClient": False,
        "driftDetection": {"mode": "warn", "ignore": [
            {"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}]},
        "install": {"timeout": "4m", "remediation": {"retries": 3, "ignoreTestFailures": True,
                                                     "remediateLastFailure": True},
                    "disableTakeOwnership": True, "disableWait": True,
                    "disableWaitForJobs": True, "disableHooks": True,
                    "disableOpenAPIValidation": True, "disableSchemaValidation": True,
                    "replace": True, "skipCRDs": False, "crds": "CreateReplace",
                    "createNamespace": True},
        "upgrade": {"timeout": "4m", "remediation": {"retries": -1, "strategy": "uninstall"},
                    "disableTakeOwnership": True, "force": True, "preserveValues": True,
                    "cleanupOnFail": True, "crds": "Create", "disableWait": False,
                    "disableWaitForJobs": False, "disableHooks": False,
                    "disableOpenAPIValidation": False, "disableSchemaValidation": False},
        "test": {"enable": True, "timeout": "2m", "ignoreFailures": True,
                 "filters": [{"name": "smoke", "exclude": True}]},
        "rollback": {"timeout": "1m", "disableWait": True, "disableWaitForJobs": True,
                     "disableHooks": True, "recreate": True, "force": True,
                     "cleanupOnFail": True},
        "uninstall": {"timeout": "1m", "disableHooks": True, "keepHistory": True,
                      "disableWait": True, "deletionPropagation": "foreground"},
        "valuesFrom": [{"kind": "Secret", "name": "vals", "valuesKey": "tls.crt",
                        "targetPath": "tls.crt", "optional": True}],
        "values": {"replicaCount": 2, "nested": {"list": [1, 2]}},
        "postRenderers": [{"kustomize": {
            "patches": [{"patch": "- op: add", "target": {"kind": "Deployment"}}],
            "images": [{"name": "nginx", "newName": "nginx", "newTag": "1.25",
                        "digest": "sha256:abc"}]}}],
        "commonMetadata": {"labels": {"team": "a"}, "annotations": {"owner": "b"}},
        "postRenderStrategy": "separate",
    },
}


def test_a_release_using_every_served_field_validates_and_parses(crds: dict[str, Any]) -> None:
    defaulted, errors = validate(crds, FULL_RELEASE)
    assert errors == []
    release = HelmRelease.from_object(defaulted)
    spec = release.spec
    assert spec.upgrade.remediation == type(spec.upgrade.remediation)(
        retries=-1, strategy="uninstall")
    assert spec.install.crds == "CreateReplace"
    assert spec.uninstall.deletion_propagation == "foreground"
    assert spec.kube_config is not None
    assert spec.kube_config.secret_name == "kc"
    assert spec.test.filters[0].name == "smoke"
    assert spec.values_from[0].target_path == "tls.crt"
    assert spec.drift_detection_mode == "warn"
    assert (release.release_name, release.release_namespace, release.helmchart_namespace) == (
        "app", "prod", "flux-system")
    chart = implied_helmchart(release)
    assert chart.spec.verify is not None
    assert chart.spec.verify.trusted_root_secret_ref is not None
    assert chart.spec.verify.trusted_root_secret_ref.name == "root"

"""`kubectl apply -f crds/` and the seed's manifests against the API emulator, with real kubectl
(the system one and 1.35), then the seed's own read-back commands (`kubectl get helmcharts ...
-o jsonpath=...`) on a status written with chartguard.api.conditions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from chartguard.api import HelmRelease, implied_helmchart
from chartguard.api import conditions as c
from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl

REPO = Path(__file__).resolve().parents[2]
FLUX_DATA = REPO / "tests" / "data" / "flux"
KUBECTLS = {"kubectl-system": "/usr/bin/kubectl", "kubectl-1.35": str(tools.TOOLS_DIR / "kubectl")}
SERVED = ("HelmRepository", "HelmChart", "HelmRelease")
SEED_FILES = ("seed-helmrepository-podinfo.yaml", "seed-export-v0.36-prometheus.yaml",
              "seed-export-v0.36-prometheus-verify-keyless.yaml",
              "seed-export-v0.36-nginx-verify-key.yaml")


@pytest.fixture(params=sorted(KUBECTLS))
def kubectl(request: pytest.FixtureRequest, kube_api: KubeAPI, tmp_path: Path) -> Kubectl:
    binary = KUBECTLS[request.param]
    assert Path(binary).is_file(), f"{binary} missing: run `make tools`"
    return Kubectl(binary, kube_api, tmp_path)


@pytest.fixture
def kubectl_new(kube_api: KubeAPI, tmp_path: Path) -> Kubectl:
    """kubectl 1.35 only, for read-back checks that do not depend on the client version."""
    return Kubectl(KUBECTLS["kubectl-1.35"], kube_api, tmp_path)


def _served_documents(names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    files = [FLUX_DATA / n for n in names] if names else sorted(FLUX_DATA.glob("*.yaml"))
    return [doc for path in files for doc in yaml.safe_load_all(path.read_text())
            if isinstance(doc, dict) and doc.get("kind") in SERVED]


def _install_crds(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", str(REPO / "crds")).stdout
    for name in ("helmrepositories.source.toolkit.fluxcd.io",
                 "helmcharts.source.toolkit.fluxcd.io", "helmreleases.helm.toolkit.fluxcd.io"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{name} created" in out
    kubectl("wait", "--for", "condition=established", "--timeout=20s", "crd",
            "helmrepositories.source.toolkit.fluxcd.io", "helmcharts.source.toolkit.fluxcd.io",
            "helmreleases.helm.toolkit.fluxcd.io")


def _namespaces(kubectl: Kubectl, docs: list[dict[str, Any]]) -> None:
    names = sorted({d["metadata"].get("namespace", "default") for d in docs} - {"default"})
    kubectl.apply(*({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                    for n in names))


def test_crds_apply_and_serve_the_seed_manifests_under_their_short_names(
    kubectl: Kubectl,
) -> None:
    _install_crds(kubectl)
    docs = _served_documents(SEED_FILES)
    _namespaces(kubectl, docs)
    out = kubectl("apply", *[a for n in SEED_FILES for a in ("-f", str(FLUX_DATA / n))]).stdout
    assert "helmrepository.source.toolkit.fluxcd.io/podinfo created" in out
    assert "helmrelease.helm.toolkit.fluxcd.io/prometheus created" in out
    assert "helmrelease.helm.toolkit.fluxcd.io/nginx created" in out
    # v1beta2/v2beta1 as written by the seed, read back through the storage versions
    got = kubectl("get", "helmrepo", "-n", "default", "podinfo", "-o",
                  "jsonpath={.apiVersion} {.spec.type} {.spec.url}").stdout
    assert got == "source.toolkit.fluxcd.io/v1 oci oci://ghcr.io/stefanprodan/charts"
    verify = kubectl("get", "hr", "-n", "flux-system", "nginx", "-o",
                     "jsonpath={.spec.chart.spec.verify}").stdout
    assert json.loads(verify) == {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
    names = kubectl("get", "helmreleases.v2beta1.helm.toolkit.fluxcd.io", "-n", "flux-system",
                    "-o", "name").stdout.split()
    assert names == ["helmrelease.helm.toolkit.fluxcd.io/nginx",
                     "helmrelease.helm.toolkit.fluxcd.io/prometheus"]


def test_every_flux_manifest_of_the_test_data_applies(
    kubectl_new: Kubectl, tmp_path: Path
) -> None:
    kubectl = kubectl_new
    _install_crds(kubectl)
    docs = _served_documents()
    _namespaces(kubectl, docs)
    stream = tmp_path / "all.yaml"
    stream.write_text(yaml.safe_dump_all(docs))
    kubectl("apply", "-f", str(stream))
    listed = json.loads(kubectl("get", "helmrepo,hc,hr", "-A", "-o", "json").stdout)["items"]
    expected = {(d["kind"], d["metadata"].get("namespace", "default"), d["metadata"]["name"])
                for d in docs}
    assert {(i["kind"], i["metadata"]["namespace"], i["metadata"]["name"])
            for i in listed} == expected


def test_seed_status_queries_print_what_the_seed_shows(kubectl_new: Kubectl) -> None:
    kubectl = kubectl_new
    _install_crds(kubectl)
    docs = _served_documents(("seed-export-v0.36-prometheus-verify-keyless.yaml",))
    _namespaces(kubectl, docs)
    release = HelmRelease.from_object(docs[0])
    chart = implied_helmchart(release)
    kubectl.apply(chart.to_object())
    when = datetime(2022, 11, 9, 13, 27, 38, tzinfo=UTC)
    conds = c.set_condition([], c.ARTIFACT_IN_STORAGE, c.TRUE, c.CHART_PULL_SUCCEEDED,
                            c.pulled_chart_message("prometheus", "15.18.0"),
                            observed_generation=1, now=when)
    conds = c.set_condition(conds, c.SOURCE_VERIFIED, c.TRUE, c.SUCCEEDED,
                            c.verified_signature_message("15.18.0"), observed_generation=1,
                            now=when)
    conds = c.summarize_ready(conds, c.HELMCHART_READY, observed_generation=1, now=when)
    kubectl("patch", "helmchart", "-n", chart.metadata.namespace, chart.metadata.name,
            "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"observedGeneration": 1, "conditions": conds}}))
    # the seed's command, verbatim
    out = kubectl("get", "helmcharts", "-n", "flux-system", "flux-system-prometheus",
                  "-ojsonpath={.status.conditions[?(@.type==\"SourceVerified\")]}").stdout
    assert out == ('{"lastTransitionTime":"2022-11-09T13:27:38Z","message":"verified signature '
                   'of version 15.18.0","observedGeneration":1,"reason":"Succeeded",'
                   '"status":"True","type":"SourceVerified"}')
    ready = kubectl("get", "hc", "-n", "flux-system", "flux-system-prometheus", "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}").stdout
    assert ready == "pulled 'prometheus' chart with version '15.18.0'"


def test_printer_columns_are_flux_columns(kubectl_new: Kubectl) -> None:
    kubectl = kubectl_new
    _install_crds(kubectl)
    docs = _served_documents(("seed-export-v0.36-prometheus.yaml",))
    _namespaces(kubectl, docs)
    release = HelmRelease.from_object(docs[1])
    chart = implied_helmchart(release).to_object()
    kubectl.apply(*docs, chart)
    when = datetime(2022, 11, 9, 13, 27, 38, tzinfo=UTC)
    ready = c.set_condition([], c.READY, c.TRUE, c.SUCCEEDED, c.HELM_REPOSITORY_READY_MESSAGE,
                            observed_generation=1, now=when)
    kubectl("patch", "helmrepo", "-n", "flux-system", "prometheus-community",
            "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"observedGeneration": 1, "conditions": ready}}))
    repos = kubectl("get", "helmrepo", "-n", "flux-system").stdout.splitlines()
    assert repos[0].split() == ["NAME", "URL", "AGE", "READY", "STATUS"]
    assert repos[1].split()[:2] == ["prometheus-community",
                                    "oci://ghcr.io/prometheus-community/charts"]
    assert repos[1].endswith("True    Helm repository is ready")
    charts = kubectl("get", "hc", "-n", "flux-system").stdout.splitlines()
    assert charts[0].split() == ["NAME", "CHART", "VERSION", "SOURCE", "KIND", "SOURCE", "NAME",
                                 "AGE", "READY", "STATUS"]
    assert charts[1].split()[:5] == ["flux-system-prometheus", "prometheus", "*",
                                     "HelmRepository", "prometheus-community"]
    assert kubectl("get", "hr", "-n", "flux-system").stdout.splitlines()[0].split() == [
        "NAME", "AGE", "READY", "STATUS"]
    # Flux's categories: `kubectl get fluxcd-sources` lists both source kinds, not releases
    sources = kubectl("get", "fluxcd-sources", "-n", "flux-system", "-o", "name").stdout.split()
    assert sorted(sources) == [
        "helmchart.source.toolkit.fluxcd.io/flux-system-prometheus",
        "helmrepository.source.toolkit.fluxcd.io/prometheus-community"]

"""The real control plane (``make controlplane``) serving real kubectl and helm: our CRDs and the
seed's manifests, the schema refusing what our models refuse with the same field named,
pruning, server-side apply conflicts, finalizers, garbage collection and RBAC."""

from __future__ import annotations

import json
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from chartguard.api import HelmRepository
from chartguard.api.errors import InvalidSpecError
from chartguard.operator.kube import Kube, KubeError, load_config
from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl, KubectlError
from chartguard_testing.charts import HelmEnv
from chartguard_testing.controlplane import ControlPlane, Namespaced

REPO = Path(__file__).resolve().parents[3]
FLUX_DATA = REPO / "tests" / "data" / "flux"
SEED_FILES = ("seed-helmrepository-podinfo.yaml", "seed-export-v0.36-prometheus.yaml",
              "seed-export-v0.36-prometheus-verify-keyless.yaml",
              "seed-export-v0.36-nginx-verify-key.yaml")
SERVED = ("HelmRepository", "HelmChart", "HelmRelease")

# one control plane per pytest process: `make check` runs xdist with --dist loadgroup, so
# these tests share one worker (and one control plane) instead of starting one per worker
pytestmark = pytest.mark.xdist_group("controlplane")


def _pinned_kubernetes() -> str:
    """The version scripts/build_go_tools.py builds (the single place it is pinned)."""
    found = re.search(r'^KUBERNETES = "(v[0-9.]+)"', (REPO / "scripts" /
                                                       "build_go_tools.py").read_text(), re.M)
    assert found
    return found[1]


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not after {timeout:.0f}s")


@pytest.fixture
def kubectl(real_kube: Namespaced, tmp_path: Path) -> Kubectl:
    return Kubectl(tools.kubectl(), real_kube, tmp_path)


class _Both:
    """kubectl bound to a namespace of the emulator or of the real control plane."""

    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl = kubectl
        self.namespace = namespace


@pytest.fixture(params=["emulator", "real"])
def both(request: pytest.FixtureRequest, tmp_path: Path) -> _Both:
    """The same checks on both targets, for what the emulator claims to do like the real
    API server (its README section); the real one is the reference."""
    if request.param == "real":
        real: Namespaced = request.getfixturevalue("real_kube")
        return _Both(Kubectl(tools.kubectl(), real, tmp_path), real.namespace)
    api: KubeAPI = request.getfixturevalue("kube_api")
    kubectl = Kubectl(tools.kubectl(), api, tmp_path)
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=established", "--timeout=20s", "crd", "--all")
    kubectl("create", "namespace", "both")
    return _Both(Kubectl(tools.kubectl(), _Defaulted(api, "both", tmp_path), tmp_path), "both")


class _Defaulted:
    """An emulator KubeTarget whose kubeconfig context defaults to ``namespace``."""

    def __init__(self, api: KubeAPI, namespace: str, workdir: Path) -> None:
        config = yaml.safe_load(api.kubeconfig.read_text())
        for context in config["contexts"]:
            context["context"]["namespace"] = namespace
        self._kubeconfig = workdir / "namespaced.kubeconfig"
        self._kubeconfig.write_text(yaml.safe_dump(config))
        self._api = api

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def env(self) -> dict[str, str]:
        return {**self._api.env, "KUBECONFIG": str(self._kubeconfig)}


def _seed_documents(namespace: str) -> list[dict[str, Any]]:
    """The seed's HelmRepository/HelmChart/HelmRelease documents, moved into ``namespace``
    (the control plane is shared by the tests of one pytest process)."""
    docs = [doc for name in SEED_FILES for doc in yaml.safe_load_all((FLUX_DATA / name)
                                                                    .read_text())
            if isinstance(doc, dict) and doc.get("kind") in SERVED]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        source = doc.get("spec", {}).get("chart", {}).get("spec", {}).get("sourceRef", {})
        source.pop("namespace", None)
    return docs


def _repository(name: str, namespace: str, **spec: object) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"url": "oci://registry.example/charts", "type": "oci", **spec}}


def test_kubectl_version_shows_the_built_server(kubectl: Kubectl,
                                                controlplane: ControlPlane) -> None:
    got = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert got["gitVersion"] == _pinned_kubernetes() == controlplane.server_version
    assert got["gitTreeState"] == "clean"


def test_crds_are_established_and_serve_the_seed_manifests(both: _Both) -> None:
    kubectl = both.kubectl
    # crds/ was applied already; applying it again as a user would changes nothing
    out = kubectl("apply", "-f", str(REPO / "crds")).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/helmreleases.helm.toolkit.fluxcd.io"\
        " unchanged" in out
    docs = _seed_documents(both.namespace)
    out = kubectl.apply(*docs)
    assert "helmrepository.source.toolkit.fluxcd.io/podinfo created" in out
    assert "helmrelease.helm.toolkit.fluxcd.io/prometheus created" in out
    assert "helmrelease.helm.toolkit.fluxcd.io/nginx created" in out
    # written as v1beta2/v2beta1, read back through the storage versions (conversion: None)
    got = kubectl("get", "helmrepo", "podinfo", "-o",
                  "jsonpath={.apiVersion} {.spec.type} {.spec.url}").stdout
    assert got == "source.toolkit.fluxcd.io/v1 oci oci://ghcr.io/stefanprodan/charts"
    verify = kubectl("get", "hr", "nginx", "-o", "jsonpath={.spec.chart.spec.verify}").stdout
    assert json.loads(verify) == {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
    names = kubectl("get", "helmreleases.v2beta1.helm.toolkit.fluxcd.io", "-o",
                    "name").stdout.split()
    assert names == ["helmrelease.helm.toolkit.fluxcd.io/nginx",
                     "helmrelease.helm.toolkit.fluxcd.io/prometheus"]
    # the category Flux declares, served by the real discovery
    sources = kubectl("get", "fluxcd-sources", "-o", "name").stdout.split()
    assert "helmrepository.source.toolkit.fluxcd.io/podinfo" in sources


@pytest.mark.parametrize(("spec", "field"), [
    ({"type": "git"}, "spec.type"),                      # enum
    ({"url": "ftp://registry.example/charts"}, "spec.url"),  # pattern
    ({"interval": "10 minutes"}, "spec.interval"),       # pattern
])
def test_the_server_refuses_what_our_models_refuse_naming_the_same_field(
    kubectl: Kubectl, real_kube: Namespaced, spec: dict[str, str], field: str,
) -> None:
    doc = _repository("refused", real_kube.namespace, **spec)
    with pytest.raises(InvalidSpecError) as ours:
        HelmRepository.from_object(doc)
    assert field in {e.path for e in ours.value.errors}
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
    assert refused.returncode != 0
    assert "is invalid" in refused.stderr
    assert f"{field}: " in refused.stderr, refused.stderr
    assert kubectl("get", "helmrepo", "-o", "name").stdout == ""


def _release(name: str, namespace: str, **spec: object) -> dict[str, object]:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"interval": "5m", "chartRef": {"kind": "HelmChart", "name": "app"},
                     **spec}}


def test_every_current_flux_field_is_kept_and_fluxs_cel_rules_refuse(
    kubectl: Kubectl, real_kube: Namespaced,
) -> None:
    """Our HelmRelease schema keeps the fields of Flux's current CRD (none pruned, strict
    kubectl takes them) and the real server evaluates Flux's CEL rules with Flux's messages."""
    newest = {"postRenderStrategy": "combined",
              "upgrade": {"chartNameChangeStrategy": "Reinstall", "crds": "CreateReplace",
                          "strategy": {"name": "RetryOnFailure", "retryInterval": "1m"}},
              "install": {"strategy": {"name": "RemediateOnFailure"}, "serverSideApply": True},
              "valuesFrom": [{"kind": "Secret", "name": "v", "literal": True}],
              "kubeConfig": {"configMapRef": {"name": "remote"}},
              "waitStrategy": {"name": "poller"},
              "commonMetadata": {"labels": {"team": "a"}},
              "healthCheckExprs": [{"apiVersion": "v1", "kind": "X", "current": "true"}]}
    doc = _release("newest", real_kube.namespace, **newest)
    kubectl("apply", "--validate=strict", "-f", "-", stdin=yaml.safe_dump(doc))
    stored = json.loads(kubectl("get", "hr", "newest", "-o", "json").stdout)["spec"]
    assert {k: stored[k] for k in newest} == newest
    for spec, message in (
            ({"kubeConfig": {"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}},
             "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must "
             "be specified"),
            ({"install": {"strategy": {"name": "RemediateOnFailure", "retryInterval": "1m"}}},
             ".retryInterval cannot be set when .name is 'RemediateOnFailure'"),
            ({"upgrade": {"strategy": {"name": "RemediateOnFailure", "retryInterval": "1m"}}},
             ".retryInterval can only be set when .name is 'RetryOnFailure'"),
            ({"postRenderStrategy": "sometimes"}, "spec.postRenderStrategy: Unsupported value")):
        refused = kubectl("apply", "-f", "-", check=False,
                          stdin=yaml.safe_dump(_release("refused", real_kube.namespace, **spec)))
        assert refused.returncode != 0
        assert message in refused.stderr, refused.stderr


def test_unknown_fields_are_pruned_and_strict_kubectl_refuses_them(
    kubectl: Kubectl, real_kube: Namespaced, controlplane: ControlPlane,
) -> None:
    ns = real_kube.namespace
    doc = _repository("pruned", ns, color="blue")
    strict = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
    assert strict.returncode != 0
    assert 'unknown field "spec.color"' in strict.stderr
    # a client that does not ask for strict validation (kopf, client libraries) gets it
    # stored without the field: a structural schema prunes it
    controlplane.request("POST", f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}"
                                 "/helmrepositories", doc)
    stored = controlplane.request("GET", f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}"
                                         "/helmrepositories/pruned")
    assert "color" not in stored["spec"]
    # kopf's default progress storage (status.kopf) is pruned the same way (DESIGN section 7)
    patched = controlplane.request(
        "PATCH", f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/helmrepositories/pruned"
                 "/status", {"status": {"kopf": {"progress": {}}, "observedGeneration": 1}},
        content_type="application/merge-patch+json")
    assert patched["status"] == {"observedGeneration": 1}


def test_chartguards_own_writes_refuse_unknown_fields_instead_of_pruning_them(
    real_kube: Namespaced, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator writes HelmCharts (a release's implied chart) with strict field validation:
    under a CRD that lacks a field it writes (Flux's HelmChart has no ``attestations``), the
    write is refused naming the field, never stored without it, so a requirement cannot be
    dropped on the way. Shown with a field no CRD has."""
    monkeypatch.setenv("KUBECONFIG", str(real_kube.kubeconfig))
    kube = Kube(load_config(2))
    ns = real_kube.namespace
    doc = _repository("strict", ns)
    doc["spec"]["verifyExtra"] = {"attestations": []}
    with pytest.raises(KubeError) as caught:
        kube.create_custom("source.toolkit.fluxcd.io", "v1", "helmrepositories", ns, doc)
    assert caught.value.status == 400
    assert 'unknown field "spec.verifyExtra"' in str(caught.value)
    del doc["spec"]["verifyExtra"]
    kube.create_custom("source.toolkit.fluxcd.io", "v1", "helmrepositories", ns, doc)
    with pytest.raises(KubeError) as caught:
        kube.merge_patch("source.toolkit.fluxcd.io", "v1", "helmrepositories", ns, "strict",
                         {"spec": {"verifyExtra": {"x": 1}}})
    assert 'unknown field "spec.verifyExtra"' in str(caught.value)
    stored = kube.get_custom("source.toolkit.fluxcd.io", "v1", "helmrepositories", ns, "strict")
    assert "verifyExtra" not in stored["spec"]


@pytest.mark.parametrize("both", [
    pytest.param("emulator", marks=pytest.mark.xfail(
        strict=True, reason="the emulator applies server-side patches without tracking field "
                            "managers, so it never answers 409 Conflict (README)")),
    "real"], indirect=True)
def test_server_side_apply_conflicts_between_field_managers(both: _Both) -> None:
    kubectl = both.kubectl
    doc = _repository("shared", both.namespace, interval="5m")
    kubectl("apply", "--server-side", "--field-manager=gitops", "-f", "-",
            stdin=yaml.safe_dump(doc))
    doc["spec"]["interval"] = "1m"
    conflict = kubectl("apply", "--server-side", "--field-manager=someone-else", "-f", "-",
                       stdin=yaml.safe_dump(doc), check=False)
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower()
    assert ".spec.interval" in conflict.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=someone-else",
            "-f", "-", stdin=yaml.safe_dump(doc))
    assert kubectl("get", "helmrepo", "shared", "-o",
                   "jsonpath={.spec.interval}").stdout == "1m"


def test_a_finalizer_holds_deletion_until_it_is_removed(both: _Both) -> None:
    kubectl = both.kubectl
    doc = _repository("held", both.namespace)
    doc["metadata"]["finalizers"] = ["finalizers.fluxcd.io"]
    kubectl.apply(doc)
    kubectl("delete", "helmrepo", "held", "--wait=false")
    marked = kubectl("get", "helmrepo", "held", "-o",
                     "jsonpath={.metadata.deletionTimestamp}").stdout
    assert marked, "deletionTimestamp set while the finalizer stays"
    kubectl("patch", "helmrepo", "held", "--type=json",
            "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')
    _eventually(lambda: kubectl("get", "helmrepo", "held", check=False).returncode != 0,
                "deleted once the finalizer went")


def test_garbage_collection_follows_owner_references(both: _Both) -> None:
    kubectl = both.kubectl
    owner = _repository("owner", both.namespace)
    kubectl.apply(owner)
    uid = kubectl("get", "helmrepo", "owner", "-o", "jsonpath={.metadata.uid}").stdout
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "dependent", "namespace": both.namespace,
                                "ownerReferences": [{
                                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                                    "kind": "HelmRepository", "name": "owner", "uid": uid,
                                    "controller": True, "blockOwnerDeletion": True}]},
                   "data": {"k": "v"}})
    kubectl("delete", "helmrepo", "owner")
    # the controller-manager's garbage collector deletes the dependent
    _eventually(lambda: kubectl("get", "configmap", "dependent", check=False).returncode != 0,
                "dependent ConfigMap collected")


def test_rbac_a_service_account_without_a_rule_is_forbidden(
    kubectl: Kubectl, real_kube: Namespaced, controlplane: ControlPlane, tmp_path: Path,
) -> None:
    ns = real_kube.namespace
    kubectl("create", "serviceaccount", "operator")
    token = kubectl("create", "token", "operator").stdout.strip()
    as_sa = Kubectl(tools.kubectl(), _TokenTarget(controlplane.write_kubeconfig(
        tmp_path / "sa.kubeconfig", namespace=ns, token=token, user="operator")), tmp_path)
    denied = as_sa("get", "helmcharts", check=False)
    assert denied.returncode != 0
    assert (f'User "system:serviceaccount:{ns}:operator" cannot list resource "helmcharts" '
            f'in API group "source.toolkit.fluxcd.io"') in denied.stderr
    # the same request with the rule granted: the 403 above was RBAC, nothing else
    kubectl("create", "role", "read-charts", "--verb=get,list,watch",
            "--resource=helmcharts.source.toolkit.fluxcd.io")
    kubectl("create", "rolebinding", "read-charts", "--role=read-charts",
            f"--serviceaccount={ns}:operator")
    _eventually(lambda: as_sa("get", "helmcharts", check=False).returncode == 0,
                "allowed once bound", timeout=30)
    with pytest.raises(KubectlError, match="cannot list resource"):
        as_sa("get", "helmreleases")


class _TokenTarget:
    """A KubeTarget from a bare kubeconfig (the ServiceAccount's token)."""

    def __init__(self, kubeconfig: Path) -> None:
        self._kubeconfig = kubeconfig

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self._kubeconfig),
                "KUBECACHEDIR": str(self._kubeconfig.parent / "sa-kube-cache")}


@pytest.mark.parametrize("helm", ["helm", "helm3"])
def test_helm_install_wait_completes_through_kwok(helm: str, real_kube: Namespaced,
                                                  kubectl: Kubectl, tmp_path: Path) -> None:
    env = HelmEnv(tmp_path / "helm", helm=tools.find_tool(helm))
    chart = env.create("hello", "0.1.0")
    started = time.monotonic()
    env.run("upgrade", "--install", "hello", str(chart), "--namespace", real_kube.namespace,
            "--kubeconfig", str(real_kube.kubeconfig), "--set", "replicaCount=2",
            "--wait", "--timeout", "120s", env={"KUBECACHEDIR": str(tmp_path / "kc")})
    waited = time.monotonic() - started
    available = kubectl("get", "deployment", "hello", "-o", "jsonpath={.status.conditions"
                        "[?(@.type==\"Available\")].status} {.status.readyReplicas}").stdout
    assert available == "True 2", f"after {waited:.1f}s"
    pods = json.loads(kubectl("get", "pods", "-l", "app.kubernetes.io/instance=hello",
                              "-o", "json").stdout)["items"]
    assert {p["spec"]["nodeName"] for p in pods} <= {"kwok-node-0"}
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    status = json.loads(env.run("status", "hello", "-n", real_kube.namespace, "--kubeconfig",
                                str(real_kube.kubeconfig), "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"


def test_requests_without_credentials_are_anonymous_and_forbidden(
        controlplane: ControlPlane) -> None:
    ctx = ssl.create_default_context(cafile=str(controlplane.pki.ca.cert))
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(controlplane.url + "/api/v1/namespaces",  # noqa: S310
                               context=ctx, timeout=10)
    assert denied.value.code == 403
    denied.value.close()


def test_statefulsets_and_jobs_reach_their_ready_states_through_kwok(kubectl: Kubectl) -> None:
    labels = {"app": "db"}
    pod = {"metadata": {"labels": labels},
           "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]}}
    kubectl.apply(
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
         "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": labels},
                  "template": pod}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
         "spec": {"template": {"spec": {"restartPolicy": "Never",
                                        "containers": [{"name": "c",
                                                        "image": "registry.example/job:1"}]}}}})
    # kwok's pod-complete stage finishes the Job's pod; pod-ready readies the StatefulSet's
    kubectl("wait", "--for=condition=complete", "job/once", "--timeout=60s")
    kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    assert kubectl("get", "statefulset", "db", "-o",
                   "jsonpath={.status.readyReplicas}").stdout == "2"

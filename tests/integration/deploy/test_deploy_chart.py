"""The operator's Helm chart (deploy/chart/chartguard) with real helm: ``helm lint --strict`` and
``helm template`` in every mode, its CRDs byte for byte those of crds/, the flags its
Deployment passes accepted by ``chartguard run``, kopf peering only with more than one replica,
deploy/manifests/chartguard.yaml in sync; and ``helm install`` into the API emulator creating
the ServiceAccount, ClusterRole(Binding), Deployment and Service with their security settings
(and ``kubectl apply -f`` of the plain manifests doing the same)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from chartguard.cli import build_parser
from chartguard.cli.run import config_from
from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl

REPO = Path(tools.REPO_ROOT)
CHART = REPO / "deploy" / "chart" / "chartguard"
CRDS = REPO / "crds"
MANIFEST = REPO / "deploy" / "manifests" / "chartguard.yaml"
KEEP = "    helm.sh/resource-policy: keep\n"
RBAC = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def helm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real helm with homes of its own (removed after)."""
    with tempfile.TemporaryDirectory(prefix="chartguard-helm-") as home:
        homes = {f"HELM_{k}_HOME": str(Path(home) / k.lower()) for k in ("CONFIG", "CACHE",
                                                                          "DATA")}
        return subprocess.run([tools.helm(), *args], capture_output=True, text=True,
                              timeout=120, env={**(env or os.environ), **homes}, check=False)


def template(*flags: str, namespace: str = "ops") -> str:
    out = helm("template", "cg", str(CHART), "-n", namespace, *flags)
    assert out.returncode == 0, out.stderr
    return out.stdout


def render(*flags: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(template(*flags)) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind
              and (name is None or d["metadata"]["name"] == name)]
    return doc


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


VALUE_SETS = [
    (),
    ("--set", "replicas=3"),
    ("--set", "watchNamespaces={a,b}", "--set", "replicas=2"),
    ("--set", "installCRDs=false", "--set", "metrics.serviceMonitor.enabled=true"),
    ("--set", "trustedRoot.secretName=root", "--set", "requireKeylessIdentity=true",
     "--set", "selector=sharding.fluxcd.io/key=chartguard", "--set", "rbac.releases.create=false"),
]


@pytest.mark.parametrize("flags", VALUE_SETS, ids=lambda f: " ".join(f[1::2]) or "defaults")
def test_helm_lint_strict_and_template_pass(flags: tuple[str, ...]) -> None:
    lint = helm("lint", "--strict", str(CHART), *flags)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 chart(s) failed" in lint.stdout
    docs = render(*flags)
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
            "Service"} <= {d["kind"] for d in docs}


def test_the_chart_crds_are_byte_identical_to_crds_and_optional() -> None:
    sources = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert copies == sources, "the chart's CRDs differ from crds/: run `make manifests`"
    assert len(sources) == 3

    def rendered(*flags: str) -> dict[str, str]:
        """Each rendered CRD document's text (helm's `# Source:` line dropped), by name."""
        out = {}
        for chunk in template(*flags).split("\n---\n"):
            if "kind: CustomResourceDefinition" in chunk and "toolkit.fluxcd.io" in chunk:
                text = chunk.split("\n", 1)[1] if chunk.startswith("# Source:") else chunk
                out[yaml.safe_load(text)["metadata"]["name"]] = text
        return out

    by_name = {yaml.safe_load(t)["metadata"]["name"]: t.decode() for t in sources.values()}
    # without the keep annotation, the rendered text is the file's, byte for byte
    assert {n: t.rstrip("\n") for n, t in rendered("--set", "crds.keep=false").items()} == {
        n: t.rstrip("\n") for n, t in by_name.items()}
    # by default one line more: helm uninstall leaves them (and every object of the kinds)
    kept = rendered()
    assert kept.keys() == by_name.keys()
    for name, text in kept.items():
        assert text.count(KEEP) == 1
        source = yaml.safe_load(by_name[name])
        source["metadata"].setdefault("annotations", {})["helm.sh/resource-policy"] = "keep"
        assert yaml.safe_load(text) == source
    # beside Flux, which owns them
    assert rendered("--set", "installCRDs=false") == {}


def test_the_deployment_is_hardened_and_passes_its_values_as_flags() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(docs)
    assert c["image"] == "chartguard:0.1.0"
    assert pod["serviceAccountName"] == "cg-chartguard"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert c["securityContext"] == {
        "runAsNonRoot": True, "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert {m["mountPath"]: m["name"] for m in c["volumeMounts"]} == {
        "/data": "data", "/helm": "helm", "/tmp": "tmp"}
    assert all("emptyDir" in v for v in pod["volumes"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8081,
                                                                   "metrics": 8080}
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]["memory"]
    assert c["args"] == ["--all-namespaces", "--artifact-dir=/data", "--helm-home=/helm",
                         "--concurrency=4", "--release-concurrency=4", "--log-format=json",
                         "--health-port=8081", "--metrics-port=8080",
                         "--release-service-account=ops/cg-chartguard-releases"]
    # the releases' identity it names is the one the chart creates and lets it impersonate
    assert one(docs, "ServiceAccount", "cg-chartguard-releases")
    assert one(docs, "Role", "cg-chartguard-impersonate")["rules"][0]["resourceNames"] == [
        "cg-chartguard-releases"]
    # one replica: no rolling update that would run two operators side by side
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]

    custom = container(render(
        "--set", "watchNamespaces={a,b}", "--set", "concurrency=8", "--set", "logFormat=text",
        "--set", "requireKeylessIdentity=true", "--set", "selector=shard=one",
        "--set", "trustedRoot.secretName=root", "--set", "metrics.port=9090",
        "--set", "rbac.releases.create=false", "--set", "extraArgs={--gc-interval=60}"))
    assert custom["args"] == ["--namespace=a", "--namespace=b", "--artifact-dir=/data",
                              "--helm-home=/helm", "--concurrency=8",
                              "--release-concurrency=4", "--log-format=text",
                              "--health-port=8081", "--metrics-port=9090",
                              "--require-keyless-identity", "--selector=shard=one",
                              "--trusted-root=/etc/chartguard/trusted-root/trusted_root.json",
                              "--gc-interval=60"]
    assert {"name": "trusted-root", "mountPath": "/etc/chartguard/trusted-root",
            "readOnly": True} in custom["volumeMounts"]


@pytest.mark.parametrize("flags", VALUE_SETS, ids=lambda f: " ".join(f[1::2]) or "defaults")
def test_every_flag_the_deployment_passes_is_one_chartguard_run_accepts(
        flags: tuple[str, ...]) -> None:
    args = container(render(*flags))["args"]
    parsed, unknown = build_parser().parse_known_args(["run", *args])
    assert unknown == [], f"the chart passes flags chartguard run does not know: {unknown}"
    config = config_from(parsed)  # and values it accepts
    assert config.helm_home == Path("/helm")
    assert config.artifact_dir == Path("/data")
    assert bool(config.peering) == ("replicas=" in " ".join(flags))


def test_peering_comes_with_more_than_one_replica_only() -> None:
    single = render()
    assert "--peering" not in " ".join(container(single)["args"])
    assert not [d for d in single if "kopf" in json.dumps(d)]

    docs = render("--set", "replicas=3")
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]  # rolling: a stand-by takes over meanwhile
    assert "--peering=cg-chartguard" in container(docs)["args"]
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crds
    peering_rules = [r for r in one(docs, "ClusterRole")["rules"] if r["apiGroups"] == [
        "kopf.dev"]]
    assert peering_rules == [{"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"],
                              "verbs": ["get", "list", "watch", "patch", "create"]}]
    # watching namespaces: a KopfPeering in each, so the rule is in each namespace's Role
    spaced = render("--set", "replicas=2", "--set", "watchNamespaces={a,b}",
                    "--set", "peering.name=ha", "--set", "peering.installCRDs=false")
    assert "--peering=ha" in container(spaced)["args"]
    assert not [d for d in spaced if d["kind"] == "CustomResourceDefinition"
                and "kopf" in d["metadata"]["name"]]
    for ns in ("a", "b"):
        role = one([d for d in spaced if d["metadata"].get("namespace") == ns], "Role")
        assert {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"],
                "verbs": ["get", "list", "watch", "patch", "create"]} in role["rules"]
    assert "kopf" not in json.dumps(one(spaced, "ClusterRole"))


def test_the_service_monitor_scrapes_the_metrics_port_when_enabled() -> None:
    docs = render("--set", "metrics.serviceMonitor.enabled=true",
                  "--set", "metrics.serviceMonitor.labels.release=prometheus")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"][
        "labels"].items()


def _render_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_manifests",
                                                  REPO / "scripts" / "render_manifests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_manifests"] = module
    spec.loader.exec_module(module)
    return module


def test_the_plain_manifests_are_the_chart_rendered_with_defaults() -> None:
    script = _render_script()
    assert script.crd_copies_differ() == []
    assert MANIFEST.read_text() == script.manifest(), (
        "deploy/manifests/chartguard.yaml is out of date: run `make manifests`")
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "chartguard-system", "labels": {"app.kubernetes.io/name": "chartguard",
                                                "app.kubernetes.io/instance": "chartguard"}}}
    assert {d["metadata"].get("namespace", "chartguard-system") for d in docs} == {
        "chartguard-system"}


def _check_installed(kubectl: Kubectl, ns: str, name: str) -> None:
    """The objects the chart (or its manifests) created, read back from the API."""
    def get(kind: str, obj: str, namespaced: bool = True) -> dict[str, Any]:
        where = ("-n", ns) if namespaced else ()
        body: dict[str, Any] = json.loads(kubectl("get", kind, obj, *where, "-o", "json").stdout)
        return body

    assert get("serviceaccount", name)["metadata"]["name"] == name
    role = get("clusterrole", name, namespaced=False)
    assert {"apiGroups": ["source.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io"],
            "resources": ["helmrepositories/status", "helmcharts/status",
                          "helmreleases/status"], "verbs": ["patch"]} in role["rules"]
    binding = get("clusterrolebinding", name, namespaced=False)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    assert binding["roleRef"]["name"] == name
    deployment = get("deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["serviceAccountName"] == name
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} == {"data", "helm", "tmp"}
    assert f"--release-service-account={ns}/{name}-releases" in c["args"]
    service = get("service", f"{name}-metrics")
    assert service["spec"]["ports"][0]["name"] == "metrics"
    for crd in ("helmrepositories.source", "helmcharts.source", "helmreleases.helm"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}.toolkit.fluxcd.io",
                "--timeout=10s")


def test_helm_installs_the_chart_into_the_emulator(kube_api: KubeAPI, tmp_path: Path) -> None:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    ns = "chartguard-system"
    installed = helm("install", "cg", str(CHART), "-n", ns, "--create-namespace", "--wait",
                     "--timeout", "60s", env=kube_api.env)
    assert installed.returncode == 0, installed.stderr
    _check_installed(kubectl, ns, "cg-chartguard")
    # the kinds it installed are served: a HelmRelease can be created
    kubectl("create", "namespace", "apps")
    kubectl.apply({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                   "metadata": {"name": "web", "namespace": "apps"},
                   "spec": {"interval": "10m", "chart": {"spec": {
                       "chart": "nginx", "sourceRef": {"kind": "HelmRepository",
                                                       "name": "charts"}}}}})
    # two replicas: kopf's peering kinds come with the upgrade
    upgraded = helm("upgrade", "cg", str(CHART), "-n", ns, "--set", "replicas=2", "--wait",
                    "--timeout", "60s", env=kube_api.env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "--peering=cg-chartguard" in json.loads(kubectl(
        "get", "deployment", "cg-chartguard", "-n", ns, "-o", "json").stdout)["spec"][
        "template"]["spec"]["containers"][0]["args"]
    assert kubectl("get", "clusterkopfpeerings").returncode == 0
    # uninstalled, the operator goes and the CRDs (and the HelmRelease) stay
    removed = helm("uninstall", "cg", "-n", ns, "--wait", env=kube_api.env)
    assert removed.returncode == 0, removed.stderr
    assert "helmreleases.helm.toolkit.fluxcd.io" in removed.stdout  # "kept due to the policy"
    assert kubectl("get", "deployment", "cg-chartguard", "-n", ns,
                   check=False).returncode != 0
    assert kubectl("get", "helmrelease", "web", "-n", "apps", "-o", "name").stdout.strip() == (
        "helmrelease.helm.toolkit.fluxcd.io/web")


def test_beside_flux_the_chart_installs_without_the_crds_flux_owns(
        kube_api: KubeAPI, tmp_path: Path) -> None:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    kubectl("apply", "-f", str(CRDS))  # as Flux's own installation would have
    ns = "chartguard-system"
    installed = helm("install", "cg", str(CHART), "-n", ns, "--create-namespace", "--wait",
                     "--timeout", "60s", "--set", "installCRDs=false", env=kube_api.env)
    assert installed.returncode == 0, installed.stderr
    _check_installed(kubectl, ns, "cg-chartguard")
    manifest = helm("get", "manifest", "cg", "-n", ns, env=kube_api.env).stdout
    assert "CustomResourceDefinition" not in manifest


def test_kubectl_applies_the_plain_manifests(kube_api: KubeAPI, tmp_path: Path) -> None:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    kubectl("apply", "-f", str(MANIFEST))
    _check_installed(kubectl, "chartguard-system", "chartguard")

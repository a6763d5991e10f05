"""``chartguard run --all-namespaces`` under the RBAC of its deploy chart
(deploy/chart/chartguard), on the real control plane with the chart's ServiceAccount token (not
admin): the blog's HelmChart reaches SourceVerified=True with no 403 anywhere; without one of
the rules the flow fails visibly, so each rule tested here is needed. With replicas, the
peering rules let ``--peering`` lead. And ``helm lint`` of the chart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import (
    TEST_LABEL,
    Charts,
    Cluster,
    Operator,
    OperatorTarget,
    helmchart,
    helmrelease,
    release_finalizers,
    repository,
    secret,
    wait_for,
)

from chartguard_testing import tools
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.controlplane import ApiError, ControlPlane, Namespaced, namespaced
from chartguard_testing.proxy import CountingProxy

CHART = Path(tools.REPO_ROOT) / "deploy" / "chart" / "chartguard"
#: a refusal in the operator's log (a log line's milliseconds, ``04:02:46,403``, are not one)
DENIED = re.compile(r"(?<![,.:])\b403\b|Forbidden|Not enough permissions|"
                    r"cannot (list|watch|get|patch)")
KEY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}

# the real control plane is one per pytest process: share the worker its other tests use
pytestmark = pytest.mark.xdist_group("controlplane")


@dataclass(frozen=True)
class TokenTarget:
    """A KubeTarget from a kubeconfig holding only a ServiceAccount token."""

    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(self.kubeconfig.parent / "kube-cache")}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """The real helm with homes of its own (removed after), so nothing of the user's is read."""
    with tempfile.TemporaryDirectory(prefix="chartguard-helm-") as home:
        env = {**os.environ, **{f"HELM_{k}_HOME": str(Path(home) / k.lower())
                                for k in ("CONFIG", "CACHE", "DATA")}}
        return subprocess.run([tools.helm(), *args], capture_output=True, text=True,
                              timeout=60, env=env, check=False)


RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def render(release: str, namespace: str, *flags: str) -> list[dict[str, Any]]:
    """The chart's identities and RBAC (its CRDs, Deployment and Service are
    tests/integration/deploy's: here the operator runs as a process under these rules)."""
    out = helm("template", release, str(CHART), "-n", namespace, *flags)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc and doc["kind"] in RBAC_KINDS]


@dataclass
class Installed:
    """The chart's RBAC applied by admin, and the operator running as its ServiceAccount."""

    admin: Cluster
    operator: Operator
    plane: ControlPlane
    namespace: str
    cluster_objects: list[tuple[str, str]]

    def start(self, docs: list[dict[str, Any]], workdir: Path, *,
              clusterwide: bool = True, extra: tuple[str, ...] = ()) -> Operator:
        self.admin.kubectl.apply(*docs)
        self.cluster_objects += [(d["kind"], d["metadata"]["name"]) for d in docs
                                 if d["kind"].startswith("Cluster")]
        sa = next(d for d in docs if d["kind"] == "ServiceAccount"
                  and not d["metadata"]["name"].endswith("-releases"))["metadata"]["name"]
        token = self.admin.kubectl("create", "token", sa, "-n", self.namespace,
                                   "--duration=1h").stdout.strip()
        config = self.plane.write_kubeconfig(workdir / "sa" / "kubeconfig", token=token,
                                             user=sa)
        as_sa = TokenTarget(config)
        # the token is the ServiceAccount's, not admin's
        who = Kubectl(tools.kubectl(), as_sa, workdir)("auth", "whoami", "-o", "json").stdout
        assert json.loads(who)["status"]["userInfo"]["username"] == (
            f"system:serviceaccount:{self.namespace}:{sa}")
        self.operator.api = OperatorTarget("real", as_sa, self.namespace,
                                           clusterwide=clusterwide)
        if clusterwide:  # the cluster-wide operator's --selector (OperatorTarget.scope)
            self.admin.kubectl("label", "helmcharts,helmrepositories,helmreleases", "--all",
                               "-n", self.namespace, f"{TEST_LABEL}={self.namespace}")
        return self.operator.start(*extra)


@pytest.fixture
def installed(controlplane: ControlPlane, tmp_path: Path,
              request: pytest.FixtureRequest) -> Iterator[Installed]:
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    ns: Namespaced = namespaced(controlplane, f"{stem}-{uuid.uuid4().hex[:6]}",
                                tmp_path / "admin")
    admin = Cluster(Kubectl(tools.kubectl(), ns, tmp_path), ns.namespace)
    op = Operator(OperatorTarget("real", ns, ns.namespace, clusterwide=True), tmp_path / "op")
    op.workdir.mkdir()
    setup = Installed(admin, op, controlplane, ns.namespace, [])
    yield setup
    if op.proc is not None and op.proc.poll() is None:
        op.stop()
    release_finalizers(controlplane, ns.namespace)
    for kind, name in setup.cluster_objects:
        path = {"ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                "ClusterKopfPeering": "/apis/kopf.dev/v1/clusterkopfpeerings"}[kind]
        try:
            controlplane.request("DELETE", f"{path}/{name}")
        except ApiError as err:
            if err.code != 404:
                raise
    controlplane.request("DELETE", f"/api/v1/namespaces/{ns.namespace}")
    log = op.output() if op.log.exists() else ""
    assert "Traceback" not in log, log[-8000:]


def _blog_objects(admin: Cluster, charts: Charts, proxy: CountingProxy) -> None:
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    ns = admin.ns
    admin.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("developer-guy-charts", ns, proxy.oci(), api_version="v1beta2"),
        helmchart("flux-system-nginx", ns, "nginx", "*", "developer-guy-charts", KEY,
                  api_version="v1beta2"))


def _release(tag: str) -> str:
    return f"cg-{tag}-{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("mode", ["all-namespaces", "namespaced"])
def test_the_deploy_charts_rbac_is_enough_for_the_whole_flow_with_no_403(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path,
        mode: str) -> None:
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    if mode == "all-namespaces":  # `chartguard run --all-namespaces`, one ClusterRole
        docs = render(_release("all"), ns)
        assert {d["kind"] for d in docs} == {"ServiceAccount", "ClusterRole",
                                             "ClusterRoleBinding", "Role", "RoleBinding"}
    else:  # `chartguard run --namespace NS`: a Role in NS, kopf's namespace list cluster-wide
        docs = render(_release("ns"), ns, "--set", f"watchNamespaces={{{ns}}}")
        assert {d["kind"] for d in docs} == {"ServiceAccount", "ClusterRole",
                                             "ClusterRoleBinding", "Role", "RoleBinding"}
    operator = installed.start(docs, tmp_path, clusterwide=mode == "all-namespaces")

    wait_for(lambda: admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")
             .get("status") == "True", "SourceVerified=True as the ServiceAccount",
             operator=operator)
    cond = admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")
    assert cond["message"] == "verified signature of version 0.1.0"
    wait_for(lambda: admin.condition("helmrepository", ns, "developer-guy-charts", "Ready")
             .get("status") == "True", "HelmRepository Ready", operator=operator)
    assert ("flux-system-nginx", "ChartPullSucceeded") in {
        (e["involvedObject"]["name"], e["reason"]) for e in admin.events(ns)}
    assert admin.body("helmchart", ns, "flux-system-nginx")["metadata"]["finalizers"] == [
        "finalizers.fluxcd.io"]
    # a rotated key in the Secret reaches the operator through its Secret watch
    admin.kubectl.apply(secret("cosign-pub", ns, {"cosign.pub": charts.key("new").public_pem}))
    wait_for(lambda: admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")
             .get("status") == "False", "rotated key noticed", operator=operator)
    # deletion: the operator removes Flux's finalizer (a patch of the object)
    admin.kubectl("delete", "helmchart", "-n", ns, "flux-system-nginx", "--timeout=30s")
    assert operator.stop() == 0
    log = operator.output()
    assert not DENIED.search(log), log[-6000:]


def _drop(docs: list[dict[str, Any]], unwanted: Callable[[dict[str, Any]], bool]) -> None:
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    before = len(role["rules"])
    role["rules"] = [r for r in role["rules"] if not unwanted(r)]
    assert len(role["rules"]) == before - 1


def test_without_the_status_rule_no_condition_is_written_and_the_log_says_403(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path) -> None:
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    docs = render(_release("nostatus"), ns)
    _drop(docs, lambda r: any(res.endswith("/status") for res in r["resources"]))
    operator = installed.start(docs, tmp_path)
    refused = re.compile(r"HelmChart \S+/flux-system-nginx: status not written: .*403")
    wait_for(lambda: bool(refused.search(operator.output())),
             "the refused status patch in the log", operator=operator)
    # the finalizer (an allowed patch) is there, the verification result is not
    body = admin.body("helmchart", ns, "flux-system-nginx")
    assert body["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    assert not admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")


def test_without_the_events_rule_the_chart_verifies_but_its_event_is_refused(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path) -> None:
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    docs = render(_release("noevents"), ns)
    _drop(docs, lambda r: "events" in r["resources"])
    operator = installed.start(docs, tmp_path)
    wait_for(lambda: "not posted" in operator.output(), "the refused Event in the log",
             operator=operator)
    assert re.search(r"event ChartPullSucceeded not posted: .*403", operator.output()), (
        operator.output()[-4000:])
    assert admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")[
        "status"] == "True"
    assert not [e for e in admin.events(ns) if e["reason"] == "ChartPullSucceeded"]


def test_helm_lint_passes_and_namespaced_mode_renders_a_role_per_namespace() -> None:
    lint = helm("lint", "--strict", str(CHART))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render("cg", "ops", "--set", "watchNamespaces={a,b}")
    roles = {(d["kind"], d["metadata"].get("namespace")) for d in docs
             if d["kind"] in ("Role", "RoleBinding")}
    # the operator's Role in each watched namespace (and a binding of the releases' identity
    # there); in its own namespace only the right to impersonate that identity
    assert roles == {("Role", "a"), ("Role", "b"), ("RoleBinding", "a"), ("RoleBinding", "b"),
                     ("Role", "ops"), ("RoleBinding", "ops")}
    impersonate = next(d for d in docs if d["kind"] == "Role"
                       and d["metadata"]["namespace"] == "ops")
    assert impersonate["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts"],
                                     "verbs": ["impersonate"],
                                     "resourceNames": ["cg-chartguard-releases"]}]
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert "secrets" not in json.dumps(cluster_role)  # no cluster-wide Secret reads


def test_without_the_secrets_rule_the_key_cannot_be_read_and_nothing_is_verified(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path) -> None:
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    docs = render(_release("nosecrets"), ns)
    _drop(docs, lambda r: "secrets" in r["resources"])
    operator = installed.start(docs, tmp_path)
    wait_for(lambda: admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")
             .get("status") == "False", "verification refused for want of the key",
             operator=operator)
    cond = admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")
    assert cond["message"].endswith(
        "secret '" + ns + "/cosign-pub' could not be read: 403 Forbidden"), cond
    assert not admin.status("helmchart", ns, "flux-system-nginx").get("artifact")
    assert "cannot list resource \"secrets\"" in operator.output()  # kopf's watch, refused
    assert operator.stop() == 0


def _web_release(ns: str, charts_label: dict[str, str]) -> dict[str, Any]:
    """A HelmRelease of the blog's nginx chart; the HelmChart it implies carries the test's
    label, so a cluster-wide operator's --selector sees it."""
    body = helmrelease("web", ns, "nginx", "developer-guy-charts", KEY, targetNamespace=ns,
                       releaseName="web")
    body["spec"]["chart"]["metadata"] = {"labels": charts_label}
    return body


@pytest.mark.parametrize("mode", ["all-namespaces", "namespaced"])
def test_releases_install_as_the_releases_identity_and_the_operator_needs_no_more(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path,
        mode: str) -> None:
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    admin.kubectl.apply(_web_release(ns, {TEST_LABEL: ns}))
    name = _release("rel")
    flags = ("--set", f"watchNamespaces={{{ns}}}") if mode == "namespaced" else ()
    docs = render(name, ns, *flags)
    identity = f"{ns}/{name}-chartguard-releases"
    operator = installed.start(docs, tmp_path, clusterwide=mode == "all-namespaces",
                               extra=("--release-service-account", identity))
    wait_for(lambda: admin.condition("helmrelease", ns, "web", "Ready").get("status")
             == "True", "HelmRelease web Ready as the releases' identity", timeout=120,
             operator=operator)
    assert admin.body("deployment", ns, "web-nginx")["metadata"]["labels"][
        "app.kubernetes.io/instance"] == "web"
    admin.kubectl("delete", "helmrelease", "-n", ns, "web", "--timeout=60s")
    out = admin.kubectl("get", "secrets", "-n", ns, "-l", "owner=helm,name=web",
                        "-o", "name").stdout
    assert out.strip() == ""  # uninstalled as the releases' identity too
    assert operator.stop() == 0
    log = operator.output()
    assert not DENIED.search(log), log[-6000:]


def test_drift_is_read_and_corrected_as_the_releases_identity(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path) -> None:
    """driftDetection acts as the identity helm runs the release as: the operator's own
    ServiceAccount may not patch a Deployment, yet a scaled one is put back, with no 403."""
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    body = _web_release(ns, {TEST_LABEL: ns})
    body["spec"]["driftDetection"] = {"mode": "enabled"}
    admin.kubectl.apply(body)
    name = _release("drift")
    docs = render(name, ns)
    own = next(d for d in docs if d["kind"] == "ServiceAccount"
               and not d["metadata"]["name"].endswith("-releases"))["metadata"]["name"]
    operator = installed.start(docs, tmp_path, extra=(
        "--release-service-account", f"{ns}/{name}-chartguard-releases"))
    wait_for(lambda: admin.condition("helmrelease", ns, "web", "Drifted").get("reason")
             == "NoDriftDetected", "HelmRelease web installed and compared", timeout=120,
             operator=operator)
    can = admin.kubectl("auth", "can-i", "patch", "deployments", "-n", ns, "--as",
                        f"system:serviceaccount:{ns}:{own}", check=False).stdout.strip()
    assert can == "no"
    admin.kubectl("patch", "deployment", "-n", ns, "web-nginx", "--type", "merge",
                  "-p", '{"spec": {"replicas": 3}}')
    admin.request_reconcile("helmrelease", ns, "web")
    wait_for(lambda: any(e["reason"] == "DriftCorrected" for e in admin.events(ns)),
             "drift corrected as the releases' identity", timeout=60, operator=operator)
    assert admin.body("deployment", ns, "web-nginx")["spec"]["replicas"] == 1
    assert operator.stop() == 0
    log = operator.output()
    assert not DENIED.search(log), log[-6000:]


def test_without_the_releases_binding_helm_is_refused_as_that_identity(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path) -> None:
    """The operator's own ServiceAccount cannot install anything: helm acts as the releases'
    identity, and without its binding the API server refuses that identity, by name."""
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    admin.kubectl.apply(_web_release(ns, {TEST_LABEL: ns}))
    name = _release("nobind")
    docs = render(name, ns, "--set", "rbac.releases.clusterRole=")
    identity = f"{ns}/{name}-chartguard-releases"
    operator = installed.start(docs, tmp_path, extra=("--release-service-account", identity))
    refused = f"system:serviceaccount:{ns}:{name}-chartguard-releases"
    wait_for(lambda: refused in admin.condition("helmrelease", ns, "web", "Ready").get(
        "message", ""), "the install refused as the releases' identity", timeout=120,
        operator=operator)
    cond = admin.condition("helmrelease", ns, "web", "Ready")
    assert cond["status"] == "False"
    assert "forbidden" in cond["message"].lower()
    assert admin.kubectl("get", "deployments", "-n", ns, "-o", "name").stdout.strip() == ""


PEERING_CRDS = CHART / "files" / "kopf-peering-crds.yaml"


def _with_peering(installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path,
                  drop_peering_rule: bool) -> tuple[Operator, str]:
    """The chart rendered with replicas=2 (kopf's peering rules), the operator started as its
    ServiceAccount with ``--peering``; the ClusterKopfPeering it creates is removed after."""
    admin, ns = installed.admin, installed.namespace
    _blog_objects(admin, charts, proxy)
    admin.kubectl("apply", "-f", str(PEERING_CRDS))
    admin.kubectl("wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev",
                  "--timeout=30s")
    name = _release("ha")
    docs = render(name, ns, "--set", "replicas=2")
    if drop_peering_rule:
        _drop(docs, lambda r: r["apiGroups"] == ["kopf.dev"])
    peering = f"{name}-chartguard"  # cluster-scoped: one per test on the shared control plane
    installed.cluster_objects.append(("ClusterKopfPeering", peering))
    return installed.start(docs, tmp_path, extra=("--peering", peering)), peering


def test_with_replicas_the_peering_rules_let_the_operator_lead_with_no_403(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path) -> None:
    operator, peering = _with_peering(installed, charts, proxy, tmp_path, False)
    wait_for(lambda: "leads and reconciles" in operator.output(), "the replica leads",
             operator=operator)
    assert f"peering: created ClusterKopfPeering {peering}" in operator.output()
    admin, ns = installed.admin, installed.namespace
    wait_for(lambda: admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")
             .get("status") == "True", "SourceVerified=True under peering", operator=operator)
    # kopf's keep-alive reaches the peering object through the patch rule; kopf writes it on
    # its own schedule after the object appears (the operator creates it), so it is awaited

    def lifetimes() -> list[object]:
        status = installed.plane.request(
            "GET", f"/apis/kopf.dev/v1/clusterkopfpeerings/{peering}").get("status") or {}
        return [entry.get("lifetime") for entry in status.values()]

    wait_for(lambda: lifetimes() == [60], "kopf's keep-alive in the peering object",
             timeout=90, operator=operator)
    assert operator.stop() == 0
    log = operator.output()
    assert not DENIED.search(log), log[-6000:]


def test_without_the_peering_rule_the_replica_stands_by_and_says_why(
        installed: Installed, charts: Charts, proxy: CountingProxy, tmp_path: Path) -> None:
    operator, peering = _with_peering(installed, charts, proxy, tmp_path, True)
    refused = re.compile(rf"stands by: ClusterKopfPeering {peering} cannot be read: .*403")
    wait_for(lambda: bool(refused.search(operator.output())),
             "the refused peering object in the log", operator=operator)
    assert "leads and reconciles" not in operator.output()
    # standing by, it reconciles nothing: no verification result is written
    admin, ns = installed.admin, installed.namespace
    assert not admin.condition("helmchart", ns, "flux-system-nginx", "SourceVerified")

"""``spec.kubeConfig.secretRef``: a HelmRelease installed into another cluster.

The operator runs on one API server; the release's kubeconfig Secret points at a SECOND one (a
second emulator process). helm's records and the chart's Deployment must be there and not in
the operator's cluster; a kubeconfig chartguard refuses (an exec plugin, a missing key) is a
``RESTClientError`` condition naming the Secret and what is wrong; the kubeconfig's token never
appears in the log, the status or Events; deleting the HelmRelease uninstalls from the remote
cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import (
    EMULATOR_ONLY,
    Charts,
    Cluster,
    Operator,
    OperatorTarget,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI, run_apiserver
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.controlplane import Namespaced
from chartguard_testing.helm_calls import HelmCalls
from chartguard_testing.procs import free_port
from chartguard_testing.proxy import CountingProxy

KEY_BLOCK = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
TOKEN = "remote-cluster-token-5f3c9a1e7b2d4c68"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[KubeAPI]:
    """The second API server the releases go to."""
    with run_apiserver(tmp_path / "remote-api") as api:
        yield api


def remote_kubeconfig(remote: KubeAPI) -> bytes:
    """The remote's kubeconfig with a bearer token (the emulator does not check it; the
    test greps for it)."""
    doc = yaml.safe_load(remote.kubeconfig.read_text())
    for user in doc["users"]:
        user["user"] = {"token": TOKEN}
    return yaml.safe_dump(doc).encode()


def records(kubectl: Kubectl, namespace: str, release: str) -> dict[str, str]:
    out = kubectl("get", "secrets", "-n", namespace, "-l", f"owner=helm,name={release}",
                  "-o", "json").stdout
    return {s["metadata"]["name"]: s["metadata"]["labels"]["status"]
            for s in json.loads(out)["items"]}


def ready(cluster: Cluster, name: str) -> dict[str, object]:
    return cluster.condition("helmrelease", cluster.ns, name, "Ready")


@EMULATOR_ONLY
def test_a_release_with_a_kubeconfig_secret_installs_into_the_remote_cluster(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        remote: KubeAPI, tmp_path: Path) -> None:
    ns = cluster.ns
    far = Kubectl(tools.kubectl(), remote, tmp_path)
    far("create", "namespace", ns)
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    exec_config = yaml.safe_load(remote_kubeconfig(remote))
    for user in exec_config["users"]:
        user["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                 "command": "/bin/true"}}
    down_config = yaml.safe_load(remote_kubeconfig(remote))
    for entry in down_config["clusters"]:
        entry["cluster"]["server"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        secret("remote-kubeconfig", ns, {"value": remote_kubeconfig(remote)}),
        secret("exec-kubeconfig", ns, {"value.yaml": yaml.safe_dump(exec_config).encode()}),
        secret("down-kubeconfig", ns, {"value": yaml.safe_dump(down_config).encode()}),
        repository("charts", ns, proxy.oci()),
        helmrelease("far", ns, "nginx", "charts", KEY_BLOCK, releaseName="nginx",
                    serviceAccountName="deployer", driftDetection={"mode": "enabled"},
                    kubeConfig={"secretRef": {"name": "remote-kubeconfig"}}),
        helmrelease("exec", ns, "nginx", "charts", KEY_BLOCK, releaseName="exec",
                    kubeConfig={"secretRef": {"name": "exec-kubeconfig"}}),
        helmrelease("nokey", ns, "nginx", "charts", KEY_BLOCK, releaseName="nokey",
                    kubeConfig={"secretRef": {"name": "remote-kubeconfig", "key": "other"}}),
        helmrelease("gone", ns, "nginx", "charts", KEY_BLOCK, releaseName="gone",
                    kubeConfig={"secretRef": {"name": "no-such-secret"}}),
        helmrelease("down", ns, "nginx", "charts", KEY_BLOCK, releaseName="down",
                    kubeConfig={"secretRef": {"name": "down-kubeconfig"}}))
    calls = HelmCalls.create(tmp_path)
    # the operator's default release identity is an account of ITS cluster: not used remotely
    operator.start("--release-service-account", f"{ns}/releases", helm=str(calls.wrapper))
    wait_for(lambda: ready(cluster, "far").get("status") == "True", "far Ready",
             timeout=90, operator=operator)
    assert ready(cluster, "far")["message"] == (
        f"Helm install succeeded for release {ns}/nginx.v1 with chart nginx@0.1.0")
    # helm's record and the Deployment are in the remote cluster, not in the operator's
    assert records(far, ns, "nginx") == {"sh.helm.release.v1.nginx.v1": "deployed"}
    deploy = json.loads(far("get", "deployment", "-n", ns, "nginx", "-o", "json").stdout)
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "nginx-0.1.0"
    assert records(cluster.kubectl, ns, "nginx") == {}
    assert cluster.kubectl("get", "deployment", "-n", ns, "nginx",
                           check=False).returncode != 0
    # helm ran with the private kubeconfig, impersonating spec.serviceAccountName in the remote
    # cluster (as Flux does with a kubeConfig), not the operator's default identity
    (install,) = [c.split() for c in calls.calls() if "install" in c.split()]
    kubeconfig = install[install.index("--kubeconfig") + 1]
    assert kubeconfig.startswith(str(operator.workdir / "helm-home" / "tmp"))
    assert not Path(kubeconfig).exists()
    assert install[install.index("--kube-as-user") + 1] == (
        f"system:serviceaccount:{ns}:deployer")
    assert install.count("--kube-as-user") == 1
    status = cluster.status("helmrelease", ns, "far")
    assert status["history"][0]["namespace"] == ns
    assert status["storageNamespace"] == ns

    # drift detection reads and corrects the remote cluster's objects: scaled there, put back
    # there (with no new helm revision), and the operator's cluster is not touched
    wait_for(lambda: cluster.condition("helmrelease", ns, "far", "Drifted").get("reason")
             == "NoDriftDetected", "far NoDriftDetected", operator=operator)
    far("patch", "deployment", "-n", ns, "nginx", "--type", "merge",
        "-p", json.dumps({"spec": {"replicas": 4}}))

    def replicas() -> int:
        body = json.loads(far("get", "deployment", "-n", ns, "nginx", "-o", "json").stdout)
        return int(body["spec"]["replicas"])

    assert replicas() == 4
    cluster.request_reconcile("helmrelease", ns, "far")

    def far_events(reason: str) -> list[str]:
        return [e["message"] for e in cluster.events(ns)
                if e["reason"] == reason and e["involvedObject"]["name"] == "far"]

    wait_for(lambda: bool(far_events("DriftCorrected")), "far DriftCorrected",
             operator=operator)
    assert replicas() == 1
    assert far_events("DriftCorrected") == [
        f"Cluster state of release {ns}/nginx.v1 has been corrected:\n"
        f"Deployment/{ns}/nginx configured"]
    assert far_events("DriftDetected") == [
        f"Cluster state of release {ns}/nginx.v1 has drifted from the desired state:\n"
        f"Deployment/{ns}/nginx changed (0 additions, 1 changes, 0 removals): /spec/replicas"]
    assert records(far, ns, "nginx") == {"sh.helm.release.v1.nginx.v1": "deployed"}

    # kubeconfigs chartguard refuses: a condition naming the Secret and what is wrong
    for name, words in (
            ("exec", f"failed to load KubeConfig from secret '{ns}/exec-kubeconfig': user.exec: "
                     "exec plugins are not run (chartguard run --insecure-kubeconfig-exec "
                     "allows them"),
            ("nokey", f"KubeConfig secret '{ns}/remote-kubeconfig' does not contain a 'other' "
                      "key with data"),
            ("gone", f"could not get KubeConfig secret '{ns}/no-such-secret': secret not found")):
        wait_for(lambda n=name: ready(cluster, n).get("reason") == "RESTClientError",
                 f"{name} RESTClientError", operator=operator)
        cond = ready(cluster, name)
        assert cond["status"] == "False"
        assert str(cond["message"]).startswith(words), cond
    assert records(far, ns, "exec") == {}
    assert records(cluster.kubectl, ns, "exec") == {}
    # a remote API server that does not answer: the release's condition, retried
    wait_for(lambda: ready(cluster, "down").get("reason") == "GetLastReleaseFailed",
             "down GetLastReleaseFailed", operator=operator)
    assert "no answer (cannot connect)" in str(ready(cluster, "down")["message"])
    # deleting a release whose kubeConfig Secret is gone skips the uninstall, as Flux
    cluster.kubectl("delete", "helmrelease", "-n", ns, "gone", "--timeout=60s")

    # the kubeconfig's secrets never leak: log, every status, Events
    shown = [operator.output(), cluster.kubectl("get", "helmreleases", "-n", ns, "-o",
                                                "json").stdout,
             json.dumps(cluster.events(ns))]
    for text in shown:
        assert TOKEN not in text

    # deleting the release uninstalls it from the remote cluster
    cluster.kubectl("delete", "helmrelease", "-n", ns, "far", "--wait=false")
    wait_for(lambda: records(far, ns, "nginx") == {}, "remote release uninstalled",
             operator=operator)
    assert far("get", "deployment", "-n", ns, "nginx", check=False).returncode != 0


@EMULATOR_ONLY
@pytest.mark.xdist_group("controlplane")
def test_a_kubeconfig_with_client_certificates_installs_on_a_real_api_server(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        real_kube: Namespaced) -> None:
    """The operator on the emulator, the release on the real control plane: TLS verified
    against the kubeconfig's CA data, the admin's client certificate and key (written for the
    Python client beside the kubeconfig, removed after)."""
    ns, far_ns = cluster.ns, real_kube.namespace
    far = Kubectl(tools.kubectl(), real_kube, real_kube.kubeconfig.parent)
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        secret("real-kubeconfig", ns, {"value": real_kube.kubeconfig.read_bytes()}),
        repository("charts", ns, proxy.oci()),
        helmrelease("far", ns, "nginx", "charts", KEY_BLOCK, releaseName="nginx",
                    targetNamespace=far_ns,
                    kubeConfig={"secretRef": {"name": "real-kubeconfig"}}))
    operator.start()
    wait_for(lambda: ready(cluster, "far").get("status") == "True", "far Ready",
             timeout=120, operator=operator)
    assert records(far, far_ns, "nginx") == {"sh.helm.release.v1.nginx.v1": "deployed"}
    assert json.loads(far("get", "deployment", "nginx", "-o", "json").stdout)["metadata"][
        "namespace"] == far_ns
    assert records(cluster.kubectl, far_ns, "nginx") == {}
    key = yaml.safe_load(real_kube.kubeconfig.read_text())["users"][0]["user"][
        "client-key-data"]
    for text in (operator.output(), json.dumps(cluster.status("helmrelease", ns, "far")),
                 json.dumps(cluster.events(ns))):
        assert key[20:60] not in text
    helm_tmp = operator.workdir / "helm-home" / "tmp"
    assert [p for p in helm_tmp.rglob("*") if p.name in ("kubeconfig", "tls.key")] == []


REAL_ONLY = pytest.mark.parametrize("kube", [pytest.param(
    "real", marks=pytest.mark.xdist_group("controlplane"))], indirect=True)
AUDIENCE = "https://kubernetes.default.svc.cluster.local"  # the control plane's issuer


@REAL_ONLY
def test_workload_identity_generic_provider_on_a_real_api_server(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        kube: OperatorTarget) -> None:
    """configMapRef, provider generic: a token of the ConfigMap's ServiceAccount from the
    TokenRequest API reaches the cluster at ``address`` (here the same control plane, which
    trusts its own issuer): with the namespace's admin role bound the release installs, an
    account without it is refused (the token's identity is the one used), and a cloud
    provider is refused with the reason."""
    assert isinstance(kube.api, Namespaced)
    plane = kube.api.plane
    ns = cluster.ns
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")

    def identity(name: str, account: str, provider: str = "generic") -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns},
                "data": {"provider": provider, "address": plane.url,
                         "ca.crt": plane.pki.ca.cert.read_text(),
                         "serviceAccountName": account, "audiences": AUDIENCE}}

    cluster.kubectl("create", "serviceaccount", "deployer", "-n", ns)
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    cluster.kubectl("create", "rolebinding", "deployer-admin", "-n", ns, "--clusterrole=admin",
                    f"--serviceaccount={ns}:deployer")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        identity("deployer-identity", "deployer"), identity("nobody-identity", "nobody"),
        identity("aws-identity", "deployer", provider="aws"),
        repository("charts", ns, proxy.oci()),
        helmrelease("wi", ns, "nginx", "charts", KEY_BLOCK, releaseName="wi",
                    kubeConfig={"configMapRef": {"name": "deployer-identity"}}),
        helmrelease("denied", ns, "nginx", "charts", KEY_BLOCK, releaseName="denied",
                    kubeConfig={"configMapRef": {"name": "nobody-identity"}}),
        helmrelease("cloud", ns, "nginx", "charts", KEY_BLOCK, releaseName="cloud",
                    kubeConfig={"configMapRef": {"name": "aws-identity"}}))
    operator.start()
    wait_for(lambda: ready(cluster, "wi").get("status") == "True", "wi Ready", timeout=120,
             operator=operator)
    assert records(cluster.kubectl, ns, "wi") == {"sh.helm.release.v1.wi.v1": "deployed"}
    wait_for(lambda: "403" in str(ready(cluster, "denied").get("message")), "denied 403",
             timeout=60, operator=operator)
    assert ready(cluster, "denied")["reason"] == "GetLastReleaseFailed"
    assert records(cluster.kubectl, ns, "denied") == {}
    wait_for(lambda: ready(cluster, "cloud").get("reason") == "RESTClientError", "cloud",
             operator=operator)
    assert "provider 'aws' is not supported by chartguard" in str(
        ready(cluster, "cloud")["message"])

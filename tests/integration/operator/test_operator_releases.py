"""HelmReleases run by ``chartguard run``: the blog's second half. Manifests applied with real
kubectl, charts pushed by real helm and signed, installed by real helm 4 from the verified
bytes; helm's release Secrets and the charts' Deployments read back with kubectl."""

from __future__ import annotations

import json
from typing import Any

from operator_support import (
    Charts,
    Cluster,
    Operator,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard_testing.proxy import CountingProxy

KEY_BLOCK = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}


def ready(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.condition("helmrelease", cluster.ns, name, "Ready")


def wait_ready(cluster: Cluster, operator: Operator, name: str, status: str = "True",
               timeout: float = 90) -> dict[str, Any]:
    wait_for(lambda: ready(cluster, name).get("status") == status,
             f"HelmRelease {name} Ready={status}", timeout=timeout, operator=operator)
    return ready(cluster, name)


def release_secrets(cluster: Cluster, namespace: str, release: str) -> dict[str, str]:
    """helm's release records: Secret name -> its status label."""
    out = cluster.kubectl("get", "secrets", "-n", namespace, "-l",
                          f"owner=helm,name={release}", "-o", "json").stdout
    return {s["metadata"]["name"]: s["metadata"]["labels"]["status"]
            for s in json.loads(out)["items"]}


def test_blog_v2beta1_release_with_the_key_block_installs_the_verified_chart(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("developer-guy-charts", ns, proxy.oci(), api_version="v1beta2"),
        # `flux create helmrelease nginx --target-namespace=default` + the blog's yq edit
        helmrelease("nginx", ns, "nginx", "developer-guy-charts", KEY_BLOCK,
                    api_version="v2beta1", releaseName="nginx", targetNamespace=ns))
    operator.start()
    cond = wait_ready(cluster, operator, "nginx")
    assert cond["reason"] == "InstallSucceeded"
    assert cond["message"] == (f"Helm install succeeded for release {ns}/nginx.v1 with chart "
                               "nginx@0.1.0")
    # helm's record and the chart's Deployment, in the target namespace
    assert release_secrets(cluster, ns, "nginx") == {"sh.helm.release.v1.nginx.v1": "deployed"}
    deploy = cluster.body("deployment", ns, "nginx")
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "nginx-0.1.0"
    # the chart the release implies, verified: the blog's read-back
    verified = json.loads(cluster.kubectl(
        "get", "helmcharts", "-n", ns, f"{ns}-nginx",
        '-ojsonpath={.status.conditions[?(@.type=="SourceVerified")]}').stdout)
    assert (verified["status"], verified["reason"], verified["message"]) == (
        "True", "Succeeded", "verified signature of version 0.1.0")
    status = cluster.status("helmrelease", ns, "nginx")
    assert status["helmChart"] == f"{ns}/{ns}-nginx"
    (snapshot,) = status["history"]
    assert {k: snapshot[k] for k in ("name", "namespace", "version", "status", "chartName",
                                     "chartVersion")} == {
        "name": "nginx", "namespace": ns, "version": 1, "status": "deployed",
        "chartName": "nginx", "chartVersion": "0.1.0"}
    assert snapshot["ociDigest"] == nginx.digest
    assert status["lastAttemptedRevision"] == "0.1.0"
    assert status["lastAttemptedReleaseAction"] == "install"
    assert status["observedGeneration"] == 1
    # `kubectl get helmreleases`: the CRD's printer columns, Ready and its message
    header, row = cluster.kubectl("get", "helmreleases", "-n", ns).stdout.splitlines()
    assert header.split()[:4] == ["NAME", "AGE", "READY", "STATUS"], header
    assert row.split()[0] == "nginx"
    assert row.split()[2] == "True"
    assert row.endswith(cond["message"]), row

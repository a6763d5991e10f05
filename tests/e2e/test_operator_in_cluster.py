"""The blog's flow against the operator `make e2e` installed with the deploy chart: a chart
pushed by real helm to the registry in the cluster, signed by the real cosign
(``.tools/cosign``, offline, ``cosign sign --key``), the objects written by ``chartguard
create ... --export`` (the YAML the blog needed yq for) and applied with kubectl; the release
installed from the verified bytes; an unsigned chart never installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e_support import InCluster

from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.charts import HelmEnv
from chartguard_testing.cosign_cli import CosignCLI

pytestmark = pytest.mark.e2e

_DIGEST = re.compile(r"Digest:\s*(sha256:[0-9a-f]{64})")


def push(helm: HelmEnv, in_cluster: InCluster, name: str, version: str) -> str:
    """``helm push`` a fresh chart to the registry in the cluster; its manifest digest."""
    package = helm.package(helm.create(name, version))
    out = helm.run("push", str(package), f"oci://{in_cluster.registry}/charts", "--plain-http")
    found = _DIGEST.search(out.stdout + out.stderr)
    assert found, out.stderr
    return found[1]


def chartguard(kubectl: Kubectl, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "chartguard", *args], env=kubectl.api.env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def condition(kubectl: Kubectl, kind: str, namespace: str, name: str, type_: str) -> dict[
        str, str]:
    body = json.loads(kubectl("get", kind, "-n", namespace, name, "-o", "json").stdout)
    for cond in (body.get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return {}


def test_the_blogs_flow_installs_only_the_signed_chart(
        kubectl: Kubectl, namespace: str, in_cluster: InCluster, tmp_path: Path) -> None:
    helm = HelmEnv(tmp_path / "helm")
    cosign = CosignCLI(tmp_path / "cosign")
    keys = cosign.generate_key_pair()
    signed = push(helm, in_cluster, "nginx", "0.1.0")
    cosign.sign(f"{in_cluster.registry}/charts/nginx@{signed}", keys)
    push(helm, in_cluster, "unsigned", "0.1.0")
    kubectl("-n", namespace, "create", "secret", "generic", "cosign-pub",
            f"--from-file=cosign.pub={keys.public}")
    ns = ["-n", namespace]
    # `flux create source helm ... --export` (insecure: the registry in kind speaks HTTP)
    docs = [yaml.safe_load(chartguard(
        kubectl, "create", "source", "helm", "developer-guy-charts", *ns, "--insecure",
        f"--url=oci://{in_cluster.registry_in_cluster}/charts", "--export"))]
    for release in ("nginx", "unsigned"):
        # `flux create helmrelease ... --export` with the verify block the blog added with yq
        docs.append(yaml.safe_load(chartguard(
            kubectl, "create", "helmrelease", release, *ns,
            "--source=HelmRepository/developer-guy-charts", f"--chart={release}",
            f"--release-name={release}", f"--target-namespace={namespace}",
            "--verify-provider=cosign", "--verify-secret-ref=cosign-pub", "--export")))
    kubectl.apply(*docs)

    kubectl(*ns, "wait", "--for=condition=Ready", "helmrelease/nginx", "--timeout=300s",
            timeout=320)
    verified = condition(kubectl, "helmchart", namespace, f"{namespace}-nginx",
                         "SourceVerified")
    assert (verified["status"], verified["message"]) == (
        "True", "verified signature of version 0.1.0")
    deployments = kubectl(*ns, "get", "deployments", "-o", "name").stdout.split()
    assert "deployment.apps/nginx" in deployments
    table = chartguard(kubectl, "get", "helmreleases", *ns)
    assert re.search(r"^nginx\s+0\.1\.0\s+False\s+True\s+Helm install succeeded", table, re.M), \
        table

    # the unsigned chart: refused by the operator in the cluster, never handed to helm
    kubectl(*ns, "wait", "--for=condition=SourceVerified=False",
            f"helmchart/{namespace}-unsigned", "--timeout=300s", timeout=320)
    assert condition(kubectl, "helmrelease", namespace, "unsigned", "Ready")["status"] \
        != "True"
    assert "deployment.apps/unsigned" not in kubectl(*ns, "get", "deployments", "-o",
                                                      "name").stdout.split()

"""The blog's objects on a real cluster: CRDs, the seed's manifests, helm --wait."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.charts import HelmEnv

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "tests" / "data" / "flux" / "seed-export-v0.36-nginx-verify-key.yaml"


def _in_namespace(docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return docs


def test_seed_manifests_apply_and_read_back_on_a_real_cluster(kubectl: Kubectl,
                                                               namespace: str) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=established", "--timeout=60s", "-f", str(REPO / "crds"))
    docs = _in_namespace(list(yaml.safe_load_all(SEED.read_text())), namespace)
    kubectl.apply(*docs)
    got = kubectl("get", "hr", "-n", namespace, "nginx", "-o",
                  "jsonpath={.spec.chart.spec.verify}").stdout
    assert json.loads(got) == {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
    api_version = kubectl("get", "helmrepo", "-n", namespace, "developer-guy-charts", "-o",
                          "jsonpath={.apiVersion}").stdout
    assert api_version == "source.toolkit.fluxcd.io/v1"


def test_helm_installs_and_uninstalls_with_wait(kubectl: Kubectl, namespace: str,
                                                tmp_path: Path) -> None:
    helm = HelmEnv(tmp_path / "helm")
    chart = helm.package(helm.create("e2e", "0.1.0"))
    env = {"KUBECONFIG": str(kubectl.api.kubeconfig)}
    helm.run("install", "e2e", str(chart), "-n", namespace, "--wait", "--timeout", "5m",
             env=env)
    deployed = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
    assert deployed == ["deployment.apps/e2e"]
    helm.run("uninstall", "e2e", "-n", namespace, "--wait", env=env)
    assert kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split() == []

"""Real helm 4 and 3.17 install, upgrade, roll back and uninstall a `helm create` chart with
--wait; the release Secrets and the workloads are visible through kubectl."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.charts import HelmEnv


def _release_secrets(kubectl: Kubectl) -> dict[str, str]:
    """Release Secret name -> the status label helm keeps on it."""
    out = kubectl("get", "secrets", "-l", "owner=helm,name=web", "-o", "json").stdout
    return {s["metadata"]["name"]: s["metadata"]["labels"]["status"]
            for s in json.loads(out)["items"]}


def test_helm_lifecycle_with_wait(helm: tuple[HelmEnv, str], kube_api: KubeAPI,
                                  tmp_path: Path) -> None:
    helm_env, wait = helm
    chart = helm_env.create("demo", "0.1.0")
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    k = ["--kubeconfig", str(kube_api.kubeconfig), "--namespace", "default"]

    helm_env.run("install", "web", str(chart), wait, "--timeout", "60s", *k)
    assert _release_secrets(kubectl) == {"sh.helm.release.v1.web.v1": "deployed"}
    listed = kubectl("get", "deployment,service", "-o", "name").stdout.split()
    assert listed == ["deployment.apps/web-demo", "service/web-demo"]
    ready = kubectl("get", "deployment", "web-demo", "-o",
                    "jsonpath={.status.readyReplicas}/{.spec.replicas}").stdout
    assert ready == "1/1"
    assert kubectl("get", "service", "web-demo", "-o",
                   "jsonpath={.spec.clusterIP}").stdout.startswith("10.96.")

    helm_env.run("upgrade", "web", str(chart), "--set", "replicaCount=3", wait,
                 "--timeout", "60s", *k)
    assert _release_secrets(kubectl) == {"sh.helm.release.v1.web.v1": "superseded",
                                         "sh.helm.release.v1.web.v2": "deployed"}
    assert kubectl("get", "deploy", "web-demo", "-o",
                   "jsonpath={.spec.replicas}").stdout == "3"

    helm_env.run("rollback", "web", "1", wait, "--timeout", "60s", *k)
    assert _release_secrets(kubectl)["sh.helm.release.v1.web.v3"] == "deployed"
    assert kubectl("get", "deploy", "web-demo", "-o",
                   "jsonpath={.spec.replicas}").stdout == "1"
    history = json.loads(helm_env.run("history", "web", "-o", "json", *k).stdout)
    assert [h["status"] for h in history] == ["superseded", "superseded", "deployed"]

    helm_env.run("uninstall", "web", wait, "--timeout", "60s", *k)
    left = kubectl("get", "deployments,replicasets,services,secrets", "-o", "name").stdout
    assert left.strip() == ""


_POD_SPEC = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
_LABELS = {"app": "extra"}
_TEMPLATE = {"metadata": {"labels": _LABELS}, "spec": _POD_SPEC}
EXTRA_WORKLOADS = [
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
     "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": _LABELS},
              "template": _TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
     "spec": {"selector": {"matchLabels": _LABELS}, "template": _TEMPLATE}},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
     "spec": {"template": {"spec": {**_POD_SPEC, "restartPolicy": "Never"}}}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
     "spec": {"accessModes": ["ReadWriteOnce"],
              "resources": {"requests": {"storage": "1Gi"}}}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "single"}, "spec": _POD_SPEC},
]


def test_helm_wait_finishes_for_every_workload_kind(helm: tuple[HelmEnv, str], kube_api: KubeAPI,
                                                    tmp_path: Path) -> None:
    helm_env, wait = helm
    extra = {"templates/extra.yaml": yaml.safe_dump_all(EXTRA_WORKLOADS).encode()}
    chart = helm_env.create("demo", "0.1.0", extra_files=extra)
    helm_env.run("install", "web", str(chart), wait, "--timeout", "30s",
                 "--kubeconfig", str(kube_api.kubeconfig), "--namespace", "default")
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    phases = kubectl("get", "pvc/data", "pod/single", "job/migrate", "-o",
                     "jsonpath={.items[*].status.phase} {.items[2].status.succeeded}").stdout
    assert phases == "Bound Running 1"

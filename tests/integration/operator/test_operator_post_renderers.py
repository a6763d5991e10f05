"""spec.postRenderers, spec.commonMetadata and spec.postRenderStrategy run by ``chartguard
run``: real helm 4 runs chartguard's post-renderer plugin, which runs real ``kubectl
kustomize``; the objects helm applied are read back with kubectl. A post-renderer change
upgrades the release (helm-controller's observed digests), a broken patch says what kustomize
said and leaves the running release alone."""

from __future__ import annotations

import json
from typing import Any

from operator_support import (
    EMULATOR_ONLY,
    Charts,
    Cluster,
    Operator,
    helmrelease,
    repository,
    secret,
    wait_for,
)
from test_operator_release_lifecycle import succeeded, wait_message
from test_operator_releases import KEY_BLOCK, ready, release_secrets

from chartguard_testing.proxy import CountingProxy

ORIGIN = ("helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace")
SMP = {"target": {"kind": "Deployment", "labelSelector": "app.kubernetes.io/name=web"},
       "patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: any}\n"
                "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n"
                "        env: [{name: PATCHED, value: strategic-merge}]\n"}
JSON6902 = {"target": {"kind": "Deployment", "name": "web"},
            "patch": "- op: replace\n  path: /spec/replicas\n  value: 2\n"}
COMMON = {"labels": {"team": "payments"}, "annotations": {"owner": "me@example.com"}}
HOOK = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
data: {from: hook}
"""


def kustomize(tag: str, *patches: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"kustomize": {"patches": list(patches),
                           "images": [{"name": "nginx", "newName": "mirror.local/nginx",
                                       "newTag": tag}]}}]


def setup(cluster: Cluster, charts: Charts, proxy: CountingProxy, name: str,
          **spec: Any) -> None:
    chart = charts.helm.make_chart(charts.registry, name, "0.1.0",
                                   extra_files={"templates/hook.yaml": HOOK})
    charts.sign_with_key(chart, "cosign")
    ns = cluster.ns
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("charts", ns, proxy.oci()),
        helmrelease(name, ns, name, "charts", KEY_BLOCK, **spec))


def patch_spec(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "helmrelease", "-n", cluster.ns, name, "--type=merge", "-p",
                    json.dumps({"spec": spec}))


def test_post_renderers_shape_the_release_a_change_upgrades_and_a_broken_patch_keeps_it(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    setup(cluster, charts, proxy, "web", postRenderers=kustomize("1.27.0", SMP, JSON6902),
          commonMetadata=COMMON)
    operator.start()
    wait_message(cluster, operator, "web", succeeded("install", ns, "web", 1, "web@0.1.0"))
    deploy = cluster.body("deployment", ns, "web")
    assert deploy["spec"]["replicas"] == 2  # JSON6902
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "mirror.local/nginx:1.27.0"  # images
    assert {"name": "PATCHED", "value": "strategic-merge"} in container["env"]  # SMP, target
    for kind in ("deployment", "service", "serviceaccount"):
        meta = cluster.body(kind, ns, "web")["metadata"]
        assert meta["labels"]["team"] == "payments", kind
        assert meta["annotations"]["owner"] == "me@example.com", kind
        assert [meta["labels"][k] for k in ORIGIN] == ["web", ns], kind
    # metadata only, as Flux: selectors and the pod template stay the chart's
    assert "team" not in deploy["spec"]["selector"]["matchLabels"]
    assert "team" not in deploy["spec"]["template"]["metadata"]["labels"]
    assert "team" not in cluster.body("service", ns, "web")["spec"]["selector"]
    status = cluster.status("helmrelease", ns, "web")
    first = status["observedPostRenderersDigest"]
    assert first.startswith("sha256:")
    assert status["observedCommonMetadataDigest"].startswith("sha256:")

    # a changed post-renderer alone: a new generation, one upgrade
    patch_spec(cluster, "web", {"postRenderers": kustomize("1.28.1", SMP, JSON6902)})
    wait_message(cluster, operator, "web", succeeded("upgrade", ns, "web", 2, "web@0.1.0"))
    (container,) = cluster.body("deployment", ns, "web")["spec"]["template"]["spec"][
        "containers"]
    assert container["image"] == "mirror.local/nginx:1.28.1"
    second = cluster.status("helmrelease", ns, "web")["observedPostRenderersDigest"]
    assert second.startswith("sha256:")
    assert second != first

    # a patch kustomize refuses: Ready False with its words, revision 2 keeps running
    broken = {"target": {"kind": "Deployment"},
              "patch": "- op: replace\n  path: /spec/no/such/field\n  value: 1\n"}
    patch_spec(cluster, "web", {"postRenderers": kustomize("1.29.0", broken)})
    wait_for(lambda: ready(cluster, "web").get("status") == "False",
             "web Ready=False", timeout=60, operator=operator)
    cond = ready(cluster, "web")
    assert cond["reason"] == "UpgradeFailed"
    assert "post-rendering failed: spec.postRenderers[0]: replace operation does not apply: " \
           "doc is missing path: /spec/no/such/field" in cond["message"], cond
    assert release_secrets(cluster, ns, "web") == {
        "sh.helm.release.v1.web.v1": "superseded", "sh.helm.release.v1.web.v2": "deployed"}
    (container,) = cluster.body("deployment", ns, "web")["spec"]["template"]["spec"][
        "containers"]
    assert container["image"] == "mirror.local/nginx:1.28.1"


@EMULATOR_ONLY
def test_nohooks_leaves_hooks_as_the_chart_renders_them(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    setup(cluster, charts, proxy, "plain", postRenderStrategy="nohooks", commonMetadata=COMMON)
    setup(cluster, charts, proxy, "mixed", commonMetadata=COMMON)  # combined, the default
    operator.start()
    wait_message(cluster, operator, "plain", succeeded("install", ns, "plain", 1,
                                                       "plain@0.1.0"))
    wait_message(cluster, operator, "mixed", succeeded("install", ns, "mixed", 1,
                                                       "mixed@0.1.0"))
    assert cluster.body("deployment", ns, "plain")["metadata"]["labels"]["team"] == "payments"
    plain_hook = cluster.body("configmap", ns, "plain-hook")["metadata"]
    assert "team" not in plain_hook.get("labels", {})
    assert "owner" not in plain_hook.get("annotations", {})
    mixed_hook = cluster.body("configmap", ns, "mixed-hook")["metadata"]
    assert mixed_hook["labels"]["team"] == "payments"
    assert [mixed_hook["labels"][k] for k in ORIGIN] == ["mixed", ns]

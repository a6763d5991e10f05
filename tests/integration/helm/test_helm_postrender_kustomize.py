"""spec.postRenderers, spec.commonMetadata and spec.postRenderStrategy through the runner: real
helm 4 runs chartguard's post-renderer plugin, which runs real ``kubectl kustomize``; what helm
applied is read back from the API emulator."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from helm_support import Kube, KubectlReleaseStorage, chart_file, helm_release

from chartguard.helm.errors import HelmError
from chartguard.helm.runner import ChartFile, Helm
from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.charts import HelmEnv

ORIGIN = {"helm.toolkit.fluxcd.io/name": "demo", "helm.toolkit.fluxcd.io/namespace": "flux-system"}
HOOK = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
data: {from: hook}
"""
# the same object as a template and as a hook that is gone before the templates are applied:
# one kustomize build of both refuses the duplicate (why helm 4.2 added "separate")
SHARED = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-shared
data: {from: template}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-shared
  annotations:
    helm.sh/hook: pre-install
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
data: {from: hook}
"""
EVERYTHING = """
postRenderers:
- kustomize:
    patches:
    - target: {kind: Deployment, labelSelector: "app.kubernetes.io/name=demo"}
      patch: |
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: any}
        spec:
          template:
            spec:
              containers:
              - name: demo
                env: [{name: PATCHED, value: strategic-merge}]
    - target: {kind: Deployment}
      patch: |
        - op: replace
          path: /spec/replicas
          value: 3
    images:
    - {name: nginx, newName: registry.local/mirror/nginx, newTag: "1.27.3"}
commonMetadata:
  labels: {team: payments, helm.toolkit.fluxcd.io/name: overridden}
  annotations: {owner: me@example.com}
"""


@pytest.fixture
def helm(tmp_path: Path, kube_api: KubeAPI, storage: KubectlReleaseStorage) -> Helm:
    return Helm(binary=tools.helm(), home=tmp_path / "runner", storage=storage,
                env=kube_api.env, kubectl=tools.kubectl())


def one(kube: Kube, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in kube.items(kind, "flux-system") if o["metadata"]["name"] == name]
    return found


def test_patches_images_and_common_metadata_shape_what_helm_applies(
        helm: Helm, helm_env: HelmEnv, kube: Kube) -> None:
    chart = chart_file(helm_env, app_version="1.0.0", files={"templates/hook.yaml": HOOK})
    helm.install(helm_release(EVERYTHING), chart, {})
    deploy = one(kube, "deployments", "demo")
    assert deploy["spec"]["replicas"] == 3  # JSON6902
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.local/mirror/nginx:1.27.3"  # images
    assert {"name": "PATCHED", "value": "strategic-merge"} in container["env"]
    # commonMetadata and Flux's origin labels (which win a collision) on every object's
    # metadata, never on selectors or pod templates
    for kind, name in (("deployments", "demo"), ("services", "demo"),
                       ("serviceaccounts", "demo"), ("configmaps", "demo-hook")):
        meta = one(kube, kind, name)["metadata"]
        assert meta["labels"]["team"] == "payments", (kind, meta)
        assert {k: meta["labels"][k] for k in ORIGIN} == ORIGIN, (kind, meta)
        assert meta["annotations"]["owner"] == "me@example.com"
        assert not any(k.startswith("postrenderer.helm.sh") for k in meta["annotations"])
    assert "team" not in deploy["spec"]["selector"]["matchLabels"]
    assert "team" not in deploy["spec"]["template"]["metadata"]["labels"]
    assert "owner" not in deploy["spec"]["template"]["metadata"].get("annotations", {})
    assert "team" not in one(kube, "services", "demo")["spec"]["selector"]


@pytest.mark.parametrize(("strategy", "hook_rendered"), [
    ("combined", True), ("nohooks", False), ("separate", True)])
def test_post_render_strategy_decides_whether_hooks_are_post_rendered(
        helm: Helm, helm_env: HelmEnv, kube: Kube, strategy: str, hook_rendered: bool) -> None:
    chart = chart_file(helm_env, files={"templates/hook.yaml": HOOK})
    spec = f"{{postRenderStrategy: {strategy}, commonMetadata: {{labels: {{team: a}}}}}}"
    helm.install(helm_release(spec), chart, {})
    assert one(kube, "deployments", "demo")["metadata"]["labels"]["team"] == "a"
    hook = one(kube, "configmaps", "demo-hook")["metadata"]
    assert ("team" in hook.get("labels", {})) is hook_rendered
    assert (ORIGIN.items() <= hook.get("labels", {}).items()) is hook_rendered


def test_separate_builds_hooks_apart_where_combined_meets_a_duplicate(
        helm: Helm, helm_env: HelmEnv, kube: Kube, storage: KubectlReleaseStorage) -> None:
    chart = chart_file(helm_env, files={"templates/shared.yaml": SHARED})
    spec = "{commonMetadata: {labels: {team: a}}}"
    with pytest.raises(HelmError) as failed:
        helm.install(helm_release(spec), chart, {})
    assert "post-rendering failed" in failed.value.message
    assert "demo-shared" in failed.value.message  # kustomize's words: the duplicate id
    assert not failed.value.storage_changed
    assert storage.history("flux-system", "demo") == []
    installed = helm.install(helm_release("{postRenderStrategy: separate, " + spec[1:]),
                             chart, {})
    assert installed.status == "deployed"
    shared = one(kube, "configmaps", "demo-shared")
    assert shared["data"] == {"from": "template"}
    assert shared["metadata"]["labels"]["team"] == "a"


def test_a_broken_patch_fails_the_upgrade_with_kustomize_s_message_and_keeps_the_release(
        helm: Helm, helm_env: HelmEnv, kube: Kube, storage: KubectlReleaseStorage) -> None:
    chart = chart_file(helm_env)
    release = helm_release("{commonMetadata: {labels: {team: a}}}")
    helm.install(release, chart, {})
    broken = helm_release("""
      postRenderers:
      - kustomize: {images: [{name: nginx, newTag: "2"}]}
      - kustomize:
          patches:
          - target: {kind: Deployment}
            patch: |
              - op: replace
                path: /spec/no/such/path
                value: "\\u001b[31mred"
    """)
    with pytest.raises(HelmError) as failed:
        helm.upgrade(broken, chart, {})
    message = failed.value.message
    assert message.startswith("post-rendering failed: spec.postRenderers[1]: replace "
                              "operation does not apply: doc is missing path: "
                              "/spec/no/such/path"), message
    assert "\x1b" not in message
    assert not failed.value.storage_changed
    assert [(r.version, r.status) for r in storage.history("flux-system", "demo")] == [
        (1, "deployed")]
    assert one(kube, "deployments", "demo")["metadata"]["labels"]["team"] == "a"


def test_v2beta1_patches_strategic_merge_and_json6902_are_applied(
        helm: Helm, helm_env: HelmEnv, kube: Kube) -> None:
    """Flux v2beta1's fields (the blog's API version, still served) reach kustomize as
    patches: a strategic merge patch found by its name, a JSON6902 patch by its target."""
    chart = chart_file(helm_env)
    helm.install(helm_release("""
      postRenderers:
      - kustomize:
          patchesStrategicMerge:
          - apiVersion: v1
            kind: Service
            metadata: {name: demo}
            spec: {type: NodePort}
          patchesJson6902:
          - target: {group: apps, version: v1, kind: Deployment, name: demo}
            patch: [{op: replace, path: /spec/replicas, value: 4}]
    """), chart, {})
    assert one(kube, "services", "demo")["spec"]["type"] == "NodePort"
    assert one(kube, "deployments", "demo")["spec"]["replicas"] == 4


def test_a_chart_rendering_nothing_installs_with_common_metadata(
        helm: Helm, helm_env: HelmEnv, storage: KubectlReleaseStorage) -> None:
    """helm 4 refuses a post-renderer's empty output; Flux's in-process renderer passes an
    empty stream. The plugin answers a stream of no documents."""
    source = helm_env.create("demo", "0.1.0")
    for template in (source / "templates").rglob("*"):
        if template.is_file():
            template.unlink()
    package = helm_env.package(source)
    chart = ChartFile(package, "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest())
    installed = helm.install(helm_release("{commonMetadata: {labels: {team: a}}}"), chart, {})
    assert installed.status == "deployed"

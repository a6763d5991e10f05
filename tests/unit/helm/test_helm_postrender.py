"""The post-renderer plugin's plan and the kustomizations it writes (kustomize itself runs in
tests/integration/helm/test_helm_postrender_kustomize.py): Flux's order, its transformer
configurations, and which documents are hooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from chartguard.api import HelmRelease
from chartguard.helm.args import install_args, upgrade_args
from chartguard.helm.postrender import (
    PLUGIN_NAME,
    PostRenderPlan,
    install_plugin,
    kustomizations,
    plan_for,
    split_documents,
    write_tree,
)

BASE = """
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: apps}
spec:
  interval: 5m
  chart: {spec: {chart: web, sourceRef: {kind: HelmRepository, name: charts}}}
"""
ORIGIN = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "apps"}


def release(spec_yaml: str = "") -> HelmRelease:
    doc = yaml.safe_load(BASE)
    doc["spec"].update(yaml.safe_load(spec_yaml) or {})
    return HelmRelease.from_object(doc)


def test_no_post_renderers_and_no_common_metadata_run_no_post_renderer() -> None:
    assert plan_for(release(), kubectl="kubectl") is None
    argv = install_args(release(), Path("/c.tgz"), Path("/v.json"))
    assert "--post-renderer" not in argv


def test_the_plan_reaches_helm_as_the_plugin_and_its_one_argument() -> None:
    plan = Path("/work/postrender.json")
    for argv in (install_args(release(), Path("/c.tgz"), Path("/v.json"), post_render=plan),
                 upgrade_args(release(), Path("/c.tgz"), Path("/v.json"), server_side=True,
                              post_render=plan)):
        flags = argv[:argv.index("--")]
        at = flags.index("--post-renderer")
        assert flags[at:at + 4] == ["--post-renderer", PLUGIN_NAME, "--post-renderer-args",
                                    str(plan)]


def test_each_post_renderer_is_one_kustomization_then_common_metadata_then_origin_labels(
) -> None:
    plan = plan_for(release("""
      postRenderers:
      - kustomize:
          images: [{name: nginx, newName: registry.local/nginx, newTag: "1.27"}]
      - kustomize:
          patches:
          - target: {kind: Deployment, name: web, labelSelector: "app=web"}
            patch: |
              - op: add
                path: /spec/replicas
                value: 3
      - {}
      commonMetadata:
        labels: {team: a, helm.toolkit.fluxcd.io/name: other}
        annotations: {owner: me}
    """), kubectl="/bin/kubectl", error_file="/w/err")
    assert plan is not None
    chain = kustomizations(plan)
    assert [name for name, _ in chain] == ["postrenderer-0", "postrenderer-1", "metadata"]
    first, second, last = (doc for _, doc in chain)
    assert first["resources"] == ["helm-output.yaml"]
    assert first["images"] == [{"name": "nginx", "newName": "registry.local/nginx",
                                "newTag": "1.27"}]
    assert "patches" not in first
    assert second["resources"] == ["../postrenderer-0"]
    assert second["patches"] == [{
        "patch": "- op: add\n  path: /spec/replicas\n  value: 3\n",
        "target": {"kind": "Deployment", "name": "web", "labelSelector": "app=web"}}]
    assert last["resources"] == ["../postrenderer-1"]
    transformers = [yaml.safe_load(t) for t in last["transformers"]]
    # Flux's LabelTransformer / AnnotationsTransformer: metadata only, never selectors
    assert transformers == [
        {"apiVersion": "builtin", "kind": "LabelTransformer",
         "metadata": {"name": "common-labels"},
         "labels": {"team": "a", "helm.toolkit.fluxcd.io/name": "other"},
         "fieldSpecs": [{"path": "metadata/labels", "create": True}]},
        {"apiVersion": "builtin", "kind": "AnnotationsTransformer",
         "metadata": {"name": "common-annotations"}, "annotations": {"owner": "me"},
         "fieldSpecs": [{"path": "metadata/annotations", "create": True}]},
        {"apiVersion": "builtin", "kind": "LabelTransformer",
         "metadata": {"name": "origin-labels"}, "labels": ORIGIN,
         "fieldSpecs": [{"path": "metadata/labels", "create": True}]},
    ]
    assert plan.strategy == "combined"
    assert PostRenderPlan.from_json(plan.to_json()) == plan


def test_common_metadata_alone_reads_the_manifests_itself(tmp_path: Path) -> None:
    plan = plan_for(release("commonMetadata: {labels: {team: a}}"), kubectl="kubectl")
    assert plan is not None
    built = write_tree(tmp_path, "kind: ConfigMap\n", plan)
    assert built == tmp_path / "metadata"
    assert (built / "helm-output.yaml").read_text() == "kind: ConfigMap\n"
    doc = json.loads((built / "kustomization.yaml").read_text())
    assert doc["resources"] == ["helm-output.yaml"]
    assert doc["kind"] == "Kustomization"


@pytest.mark.parametrize("strategy", ["nohooks", "combined", "separate"])
def test_post_render_strategy_is_parsed_with_its_enum(strategy: str) -> None:
    plan = plan_for(release(f"{{postRenderStrategy: {strategy}, commonMetadata: {{}}}}"),
                    kubectl="kubectl")
    assert plan is not None
    assert plan.strategy == strategy


def test_hooks_are_the_documents_with_a_helm_hook_annotation() -> None:
    stream = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
              "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  annotations:\n"
              "    helm.sh/hook: pre-install\n"
              "---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: "
              "{other: x}}\n"
              "---\n: not yaml: [\n")
    templates, hooks = split_documents(stream)
    assert [yaml.safe_load(t)["metadata"]["name"] for t in templates[:2]] == ["a", "s"]
    assert templates[2] == ": not yaml: [\n"  # left for kustomize to report
    assert [yaml.safe_load(h)["metadata"]["name"] for h in hooks] == ["j"]


def test_the_plugin_is_a_postrenderer_v1_subprocess_plugin(tmp_path: Path) -> None:
    home = install_plugin(tmp_path, python="/opt/my python/bin/python3")
    meta: dict[str, Any] = yaml.safe_load((home / "plugin.yaml").read_text())
    assert meta["name"] == PLUGIN_NAME
    assert meta["type"] == "postrenderer/v1"
    assert meta["runtime"] == "subprocess"
    assert meta["runtimeConfig"]["platformCommand"] == [{"command": "${HELM_PLUGIN_DIR}/run"}]
    script = (home / "run").read_text()
    assert "exec '/opt/my python/bin/python3' -m chartguard.helm._plugin \"$@\"" in script
    assert (home / "run").stat().st_mode & 0o777 == 0o700

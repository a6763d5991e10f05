"""Flux's CRD policies where helm's CLI has none: ``install.crds: CreateReplace`` and
``upgrade.crds: Create|CreateReplace``. chartguard applies the verified chart's crds/ itself
before helm runs (helm-controller's applyCRDs): a CRD whose schema changes between two chart
versions is replaced under CreateReplace and left as it was under Create, which still creates
a CRD that is new in the chart."""

from __future__ import annotations

import json
from typing import Any

import yaml
from operator_support import (
    Charts,
    Cluster,
    Operator,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard_testing.charts import PushedChart
from chartguard_testing.helm_calls import HelmCalls
from chartguard_testing.proxy import CountingProxy

KEY_BLOCK = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}


def crd(plural: str, group: str, properties: dict[str, Any]) -> bytes:
    kind = plural.rstrip("s").capitalize()
    return yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": plural.rstrip("s"), "kind": kind,
                           "listKind": f"{kind}List"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                         "type": "object", "properties": properties}}}}}]}}).encode()


def push(charts: Charts, name: str, version: str, files: dict[str, bytes]) -> PushedChart:
    chart = charts.helm.make_chart(charts.registry, name, version, extra_files=files)
    charts.sign_with_key(chart, "cosign")
    return chart


def schema(cluster: Cluster, name: str) -> set[str]:
    out = cluster.kubectl("get", "crd", name, "-o", "json").stdout
    version = json.loads(out)["spec"]["versions"][0]
    return set(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])


def revision(cluster: Cluster, name: str) -> tuple[str, str]:
    ready = cluster.condition("helmrelease", cluster.ns, name, "Ready")
    history = cluster.status("helmrelease", cluster.ns, name).get("history") or [{}]
    return str(ready.get("status")), str(history[0].get("chartVersion"))


def test_crd_policies_create_replace_and_create(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        tmp_path: Any) -> None:
    ns = cluster.ns
    group = f"{ns}.example.com"  # CRDs are cluster-wide: named for this test's namespace
    size = {"size": {"type": "integer"}}
    colour = {**size, "color": {"type": "string"}}
    push(charts, "widgets", "0.1.0", {"crds/widgets.yaml": crd("widgets", group, size)})
    push(charts, "widgets", "0.2.0", {"crds/widgets.yaml": crd("widgets", group, colour)})
    push(charts, "gadgets", "0.1.0", {"crds/gadgets.yaml": crd("gadgets", group, size)})
    push(charts, "gadgets", "0.2.0", {"crds/gadgets.yaml": crd("gadgets", group, colour),
                                      "crds/sprockets.yaml": crd("sprockets", group, size)})
    policies = {"install": {"crds": "CreateReplace"}, "upgrade": {"crds": "CreateReplace"}}
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("charts", ns, proxy.oci()),
        helmrelease("widgets", ns, "widgets", "charts", KEY_BLOCK, version="0.1.0",
                    **policies),
        helmrelease("gadgets", ns, "gadgets", "charts", KEY_BLOCK, version="0.1.0",
                    upgrade={"crds": "Create"}))
    calls = HelmCalls.create(tmp_path)
    operator.start(helm=str(calls.wrapper))
    for name in ("widgets", "gadgets"):
        wait_for(lambda n=name: revision(cluster, n) == ("True", "0.1.0"), f"{name} 0.1.0",
                 timeout=90, operator=operator)
    assert schema(cluster, f"widgets.{group}") == {"size"}
    assert schema(cluster, f"gadgets.{group}") == {"size"}
    (install,) = [c.split() for c in calls.calls()
                  if c.startswith("install") and "widgets" in c]
    assert "--skip-crds" in install  # applied by chartguard before helm ran

    for name in ("widgets", "gadgets"):
        cluster.kubectl("patch", "helmrelease", "-n", ns, name, "--type", "merge", "-p",
                        json.dumps({"spec": {"chart": {"spec": {"version": "0.2.0"}}}}))
    for name in ("widgets", "gadgets"):
        wait_for(lambda n=name: revision(cluster, n) == ("True", "0.2.0"), f"{name} 0.2.0",
                 timeout=90, operator=operator)
    # CreateReplace: the CRD of the new chart version replaced the old one
    assert schema(cluster, f"widgets.{group}") == {"size", "color"}
    # Create: the existing CRD is left as it was, the new one is created
    assert schema(cluster, f"gadgets.{group}") == {"size"}
    assert schema(cluster, f"sprockets.{group}") == {"size"}
    ready = cluster.condition("helmrelease", ns, "widgets", "Ready")
    assert ready["reason"] == "UpgradeSucceeded"

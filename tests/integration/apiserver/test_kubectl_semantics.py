"""API semantics DESIGN.md §4 lists, each driven by real kubectl (the system one and 1.35):
conflicts, JSON-patch tests, selectors, the status subresource, cascades, discovery."""

from __future__ import annotations

import json

from test_kubectl import WIDGET_CRD, widget  # a sibling module (pytest prepends this dir)

from chartguard_testing.apiserver.kubectl import Kubectl


def _names(kubectl: Kubectl, *args: str) -> list[str]:
    return kubectl("get", "configmaps", *args, "-o",
                   "jsonpath={.items[*].metadata.name}").stdout.split()


def test_stale_replace_conflicts_and_failed_json_patch_test_is_refused(
        kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "c", "--from-literal=n=1")
    stale = json.loads(kubectl("get", "configmap", "c", "-o", "json").stdout)
    kubectl("patch", "configmap", "c", "--type=merge", "-p", '{"data":{"n":"2"}}')
    stale["data"]["n"] = "3"
    conflict = kubectl("replace", "-f", "-", stdin=json.dumps(stale), check=False)
    assert conflict.returncode == 1
    assert "the object has been modified" in conflict.stderr
    refused = kubectl("patch", "configmap", "c", "--type=json", "-p",
                      '[{"op":"test","path":"/data/n","value":"1"},'
                      '{"op":"replace","path":"/data/n","value":"4"}]', check=False)
    assert refused.returncode == 1
    assert "test" in refused.stderr
    kubectl("patch", "configmap", "c", "--type=json", "-p",
            '[{"op":"test","path":"/data/n","value":"2"},'
            '{"op":"replace","path":"/data/n","value":"4"}]')
    assert kubectl("get", "cm", "c", "-o", "jsonpath={.data.n}").stdout == "4"


def test_label_and_field_selectors(kubectl: Kubectl) -> None:
    for name, tier in (("a", "web"), ("b", "db"), ("c", "")):
        kubectl("create", "configmap", name)
        if tier:
            kubectl("label", "configmap", name, f"tier={tier}")
    assert _names(kubectl, "-l", "tier=web") == ["a"]
    assert _names(kubectl, "-l", "tier!=web") == ["b", "c"]
    assert _names(kubectl, "-l", "tier in (db,cache)") == ["b"]
    assert _names(kubectl, "-l", "tier notin (db)") == ["a", "c"]
    assert _names(kubectl, "-l", "tier") == ["a", "b"]
    assert _names(kubectl, "-l", "!tier") == ["c"]
    assert _names(kubectl, "--field-selector", "metadata.name=b") == ["b"]
    assert _names(kubectl, "--field-selector", "metadata.name!=b") == ["a", "c"]


def test_status_subresource_keeps_spec_and_status_apart(kubectl: Kubectl) -> None:
    kubectl.apply(WIDGET_CRD)
    with_status = {**widget("w1", "small"), "status": {"phase": "forged"}}
    kubectl.apply(with_status)
    assert kubectl("get", "wd", "w1", "-o", "jsonpath={.status}").stdout == ""
    kubectl("patch", "wd", "w1", "--subresource=status", "--type=merge", "-p",
            '{"spec":{"size":"huge"},"status":{"phase":"ok"}}')
    got = kubectl("get", "wd", "w1", "-o",
                  "jsonpath={.spec.size} {.status.phase} {.metadata.generation}").stdout
    assert got == "small ok 1"  # /status wrote status only, and did not bump generation
    kubectl("patch", "wd", "w1", "--type=merge", "-p",
            '{"spec":{"size":"large"},"status":{"phase":"forged"}}')
    got = kubectl("get", "wd", "w1", "-o",
                  "jsonpath={.spec.size} {.status.phase} {.metadata.generation}").stdout
    assert got == "large ok 2"  # the main resource wrote spec only, and bumped generation


def test_deleting_an_owner_deletes_its_dependents(kubectl: Kubectl) -> None:
    uid, created = kubectl("create", "configmap", "owner", "-o", "jsonpath={.metadata.uid} "
                           "{.metadata.creationTimestamp}").stdout.split()
    assert len(uid) == 36  # server-set metadata
    assert created.endswith("Z")
    dependent = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "dependent", "namespace": "default",
                              "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                                   "name": "owner", "uid": uid}]}}
    kubectl.apply(dependent, {**dependent, "metadata": {"name": "unrelated"}})
    kubectl("delete", "configmap", "owner", "--cascade=background")
    assert _names(kubectl) == ["unrelated"]


def test_discovery_serves_crd_kinds_short_names_and_scope(kubectl: Kubectl) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl("wait", "--for=condition=Established", "crd/widgets.example.com",
            "--timeout=10s")
    rows = kubectl("api-resources", "--api-group=example.com", "--no-headers").stdout
    assert rows.split() == ["widgets", "wd", "example.com/v1", "true", "Widget"]
    versions = kubectl("api-versions").stdout.split()
    assert {"example.com/v1", "example.com/v1beta1", "apps/v1", "v1"} <= set(versions)
    kubectl("delete", "crd", "widgets.example.com")
    assert "example.com/v1" not in kubectl("api-versions").stdout.split()

"""Real kubectl (the system one and 1.35) against the emulator, the way the seed drives it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from chartguard_testing import procs
from chartguard_testing.apiserver.kubectl import Kubectl

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                  "shortNames": ["wd"], "listKind": "WidgetList"},
        "versions": [
            {"name": v, "served": True, "storage": v == "v1",
             "subresources": {"status": {}},
             "schema": {"openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}},
             "additionalPrinterColumns": [
                 {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
                 {"name": "Ready", "type": "string",
                  "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                 {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}
            for v in ("v1", "v1beta1")],
    },
}


def widget(name: str, size: str, namespace: str = "default", version: str = "v1",
           ) -> dict[str, Any]:
    return {"apiVersion": f"example.com/{version}", "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"size": size}}


def _until_in(path: Path, text: str) -> str:
    procs.wait_until(lambda: text in path.read_text(), timeout=20,
                     what=f"{text!r} in {path.name}")
    return path.read_text()


def test_crd_then_cr_apply_reapply_and_server_side_apply(kubectl: Kubectl) -> None:
    assert "created" in kubectl.apply(WIDGET_CRD)
    assert "widget.example.com/w1 created" in kubectl.apply(widget("w1", "small"))
    assert kubectl("get", "wd", "w1", "-o", "jsonpath={.metadata.generation}").stdout == "1"

    assert "configured" in kubectl.apply(widget("w1", "large"))
    got = kubectl("get", "widgets", "w1", "-o",
                  "jsonpath={.metadata.generation} {.spec.size}").stdout
    assert got == "2 large"

    out = kubectl.apply(widget("w1", "huge", version="v1beta1"), server_side=True)
    assert "serverside-applied" in out
    got = kubectl("get", "widgets.v1beta1.example.com", "w1", "-o",
                  "jsonpath={.apiVersion} {.metadata.generation} {.spec.size}").stdout
    assert got == "example.com/v1beta1 3 huge"

    # re-applying the same object changes nothing: no new generation
    kubectl.apply(widget("w1", "huge"), server_side=True)
    assert kubectl("get", "wd", "w1", "-o", "jsonpath={.metadata.generation}").stdout == "3"


def test_get_shows_the_crds_printer_columns(kubectl: Kubectl) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl.apply(widget("w1", "small"))
    kubectl("patch", "wd", "w1", "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    header, row = kubectl("get", "widgets").stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "READY", "AGE"]
    assert row.split()[:3] == ["w1", "small", "True"]


def test_get_watch_sees_an_update(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl.apply(widget("w1", "small"))
    out = tmp_path / "watch.out"
    proc = kubectl.popen("get", "widgets", "-w", "--request-timeout=30s", out=out)
    try:
        _until_in(out, "small")
        kubectl("patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"size":"medium"}}')
        lines = _until_in(out, "medium").splitlines()
    finally:
        procs.stop(proc)
    assert lines[0].split()[:2] == ["NAME", "SIZE"]
    assert [line.split()[:2] for line in lines[1:]] == [["w1", "small"], ["w1", "medium"]]


def test_wait_for_condition_returns_once_status_says_so(kubectl: Kubectl,
                                                        tmp_path: Path) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl.apply(widget("w1", "small"))
    out = tmp_path / "wait.out"
    proc = kubectl.popen("wait", "--for=condition=Ready", "widget/w1", "--timeout=30s",
                         out=out)
    try:
        with pytest.raises(TimeoutError):  # not ready yet: kubectl keeps waiting
            procs.wait_until(lambda: proc.poll() is not None, timeout=1, what="wait")
        kubectl("patch", "wd", "w1", "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        assert proc.wait(timeout=20) == 0
    finally:
        procs.stop(proc)
    assert "widget.example.com/w1 condition met" in out.read_text()


def test_delete_waits_for_the_finalizer(kubectl: Kubectl) -> None:
    kubectl.apply(WIDGET_CRD)
    held = widget("w1", "small")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    kubectl.apply(held)
    kubectl("delete", "widget", "w1", "--wait=false")
    stamp = kubectl("get", "wd", "w1", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout
    assert stamp.endswith("Z")  # still there, marked for deletion
    kubectl("patch", "wd", "w1", "--type=json", "-p",
            '[{"op":"remove","path":"/metadata/finalizers"}]')
    gone = kubectl("get", "wd", "w1", check=False)
    assert gone.returncode == 1
    assert 'widgets.example.com "w1" not found' in gone.stderr


def test_multi_document_apply_namespace_and_generic_secret(kubectl: Kubectl,
                                                           tmp_path: Path) -> None:
    # the seed: kubectl create namespace, then create secret generic --from-file
    assert "namespace/flux-system created" in kubectl("create", "namespace",
                                                      "flux-system").stdout
    (tmp_path / "cosign.pub").write_bytes(b"-----BEGIN PUBLIC KEY-----\nMFk=\n")
    kubectl("-n", "flux-system", "create", "secret", "generic", "cosign-pub",
            "--from-file=cosign.pub=cosign.pub")
    data = kubectl("-n", "flux-system", "get", "secret", "cosign-pub", "-o",
                   "jsonpath={.type} {.data.cosign\\.pub}").stdout
    kind, encoded = data.split()
    assert kind == "Opaque"
    assert base64.b64decode(encoded) == b"-----BEGIN PUBLIC KEY-----\nMFk=\n"
    # stringData from a manifest ends up in data, as on a real cluster
    kubectl.apply({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "auth", "namespace": "flux-system"},
                   "stringData": {"password": "s3cret"}})
    stored = kubectl("-n", "flux-system", "get", "secret", "auth", "-o", "json").stdout
    assert json.loads(stored)["data"] == {"password": base64.b64encode(b"s3cret").decode()}
    assert "stringData" not in json.loads(stored)

    # kubectl refuses a CR in the same stream as its CRD (as with a real apiserver), so the
    # CRD goes first; then one stream holding a namespace, a ConfigMap in it and two CRs
    kubectl.apply(WIDGET_CRD)
    out = kubectl.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "settings", "namespace": "apps"}, "data": {"k": "v"}},
        widget("w1", "tiny", namespace="apps"), widget("w2", "big", namespace="apps"))
    assert out.split("\n")[:4] == ["namespace/apps created", "configmap/settings created",
                                    "widget.example.com/w1 created",
                                    "widget.example.com/w2 created"]
    names = kubectl("get", "widgets,configmaps", "-n", "apps", "-o", "name").stdout
    assert names.split() == ["widget.example.com/w1", "widget.example.com/w2",
                             "configmap/settings"]


def test_missing_namespace_and_duplicates_are_refused(kubectl: Kubectl) -> None:
    missing = kubectl("-n", "nowhere", "create", "configmap", "c", check=False)
    assert missing.returncode == 1
    assert 'namespaces "nowhere" not found' in missing.stderr
    kubectl("create", "configmap", "c")
    dup = kubectl("create", "configmap", "c", check=False)
    assert 'configmaps "c" already exists' in dup.stderr


def test_namespace_delete_removes_its_objects(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "doomed")
    kubectl("-n", "doomed", "create", "configmap", "c")
    kubectl("delete", "namespace", "doomed", "--timeout=20s")
    assert kubectl("get", "ns", "doomed", check=False).returncode == 1
    assert kubectl("get", "configmaps", "-A", "-o", "name").stdout.strip() == ""


def test_deleting_a_crd_unregisters_it_and_removes_its_objects(kubectl: Kubectl) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl.apply(widget("w1", "small"))
    kubectl("delete", "crd", "widgets.example.com")
    gone = kubectl("get", "widgets.example.com", check=False)
    assert gone.returncode == 1
    assert 'the server doesn\'t have a resource type "widgets"' in gone.stderr
    kubectl.apply(WIDGET_CRD)  # registered again: the old objects did not come back
    assert kubectl("get", "widgets", "-o", "name").stdout == ""


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"generateName": "web-", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "a", "image": "a:1"},
                                                  {"name": "b", "image": "b:1"}]}}},
}


def test_strategic_merge_keeps_other_containers_and_rollout_completes(
        kubectl: Kubectl) -> None:
    created = kubectl("create", "-f", "-", "-o", "jsonpath={.metadata.name}",
                      stdin=json.dumps(DEPLOYMENT)).stdout
    assert created.startswith("web-")
    assert len(created) > len("web-")  # generateName got a suffix
    kubectl("patch", "deployment", created, "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b:2"}]}}}}')
    images = kubectl("get", "deployment", created, "-o",
                     "jsonpath={.spec.template.spec.containers[*].image}").stdout
    assert images == "a:1 b:2"  # merged by name, not replaced
    out = kubectl("rollout", "status", f"deployment/{created}", "--timeout=20s").stdout
    assert "successfully rolled out" in out
    # one ReplicaSet for the current template, owned by the Deployment
    rs = json.loads(kubectl("get", "rs", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(rs) == 1
    assert rs[0]["metadata"]["ownerReferences"][0]["name"] == created
    assert rs[0]["spec"]["template"]["spec"]["containers"][1]["image"] == "b:2"


def test_server_side_apply_drops_what_the_manager_stopped_applying(kubectl: Kubectl) -> None:
    kubectl.apply(WIDGET_CRD)
    first = widget("w1", "small")
    first["spec"]["color"] = "red"
    kubectl.apply(first, server_side=True)
    kubectl("patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"owner":"someone-else"}}')
    kubectl.apply(widget("w1", "small"), server_side=True)  # color no longer applied
    spec = json.loads(kubectl("get", "wd", "w1", "-o", "jsonpath={.spec}").stdout)
    assert spec == {"size": "small", "owner": "someone-else"}


def test_server_dry_run_stores_nothing(kubectl: Kubectl) -> None:
    out = kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(WIDGET_CRD)).stdout
    assert "(server dry run)" in out
    assert kubectl("get", "crd", "-o", "name").stdout == ""
    assert "widgets" not in kubectl("api-resources", "-o", "name").stdout


def test_reapplying_an_unchanged_deployment_is_a_no_op(kubectl: Kubectl) -> None:
    deployment = {**DEPLOYMENT, "metadata": {"name": "web", "namespace": "default"}}
    kubectl.apply(deployment, server_side=True)
    before = kubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}")
    kubectl.apply(deployment, server_side=True)
    after = kubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}")
    assert before.stdout == after.stdout  # no new version, so no watch event either

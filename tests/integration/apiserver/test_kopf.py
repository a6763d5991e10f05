"""A kopf 1.45 operator (create/update/delete handlers, status patches) on the emulator."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kopf.testing import KopfRunner

from chartguard_testing import procs, tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl

GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {
                               "type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def gadget(name: str, namespace: str, size: str) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Gadget",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"size": size}}


class Recorder:
    """An operator whose handlers write ``status.phase`` and remember what they saw."""

    def __init__(self, kubeconfig: Path) -> None:
        self.registry = kopf.OperatorRegistry()
        self.deleted: list[str] = []
        self._lock = threading.Lock()
        registry = self.registry

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            # what kopf's default login reads from a kubeconfig: the server and a token
            config = yaml.safe_load(kubeconfig.read_text())
            return kopf.ConnectionInfo(server=config["clusters"][0]["cluster"]["server"],
                                       token=config["users"][0]["user"]["token"])

        @kopf.on.create("example.com", "v1", "gadgets", registry=registry)
        def created(body: Any, spec: Any, patch: Any, **_: Any) -> None:
            patch.status["phase"] = f"created:{spec['size']}"
            kopf.info(body, reason="Created", message=f"size {spec['size']}")

        @kopf.on.update("example.com", "v1", "gadgets", registry=registry)
        def updated(spec: Any, patch: Any, **_: Any) -> None:
            patch.status["phase"] = f"updated:{spec['size']}"

        @kopf.on.delete("example.com", "v1", "gadgets", registry=registry)
        def deleted(name: str, namespace: str | None, **_: Any) -> None:
            with self._lock:
                self.deleted.append(f"{namespace}/{name}")


def _settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 40
    settings.watching.reconnect_backoff = 0.1
    settings.queueing.idle_timeout = 1.0
    settings.queueing.exit_timeout = 1.0
    return settings


def _phase(kubectl: Kubectl, namespace: str, name: str) -> str:
    return kubectl("-n", namespace, "get", "gadget", name, "-o",
                   "jsonpath={.status.phase}").stdout


def _until(check: Any, what: str) -> None:
    procs.wait_until(check, timeout=30, what=what)


@pytest.mark.parametrize("scope", ["namespaced", "cluster-wide"])
def test_kopf_operator_reconciles_create_update_delete(
        scope: str, kube_api: KubeAPI, tmp_path: Path) -> None:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    kubectl.apply(GADGET_CRD, {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": "other"}})
    op = Recorder(kube_api.kubeconfig)
    watched = "other" if scope == "cluster-wide" else "default"
    flags = ["--all-namespaces"] if scope == "cluster-wide" else ["--namespace", "default"]
    with KopfRunner(["run", "--standalone", *flags], registry=op.registry,
                    settings=_settings(), timeout=30) as runner:
        kubectl.apply(gadget("g1", watched, "small"))
        _until(lambda: _phase(kubectl, watched, "g1") == "created:small", "create handler")

        kubectl("-n", watched, "patch", "gadget", "g1", "--type=merge",
                "-p", '{"spec":{"size":"large"}}')
        _until(lambda: _phase(kubectl, watched, "g1") == "updated:large", "update handler")

        kubectl("-n", watched, "delete", "gadget", "g1", "--timeout=30s")
        assert kubectl("-n", watched, "get", "gadget", "g1", check=False).returncode == 1
        assert op.deleted == [f"{watched}/g1"]
        # kopf.info() posts a core/v1 Event about the object (in the background)
        _until(lambda: kubectl("-n", watched, "get", "events", "-o",
                               "jsonpath={.items[*].reason}").stdout == "Created",
               "the event kopf posts")

        if scope == "namespaced":
            # an object outside the operator's namespace is left alone
            kubectl.apply(gadget("g2", "other", "small"))
            kubectl.apply(gadget("g3", "default", "small"))
            _until(lambda: _phase(kubectl, "default", "g3") == "created:small", "g3")
            assert _phase(kubectl, "other", "g2") == ""
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None

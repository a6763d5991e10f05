"""KubeCluster: manifest objects reach the API by the resource discovery names (Kube's
discovery), in their namespace or at cluster scope, with the query each call needs, as the
release's identity; a kind the API does not serve and names that would reach another URL are
refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from chartguard.operator.cluster import KubeCluster
from chartguard.operator.kube import KubeError
from chartguard.reconcile.seams import ClusterError

DISCOVERY = {
    "/api/v1": [{"name": "services", "kind": "Service", "namespaced": True},
                {"name": "services/status", "kind": "Service", "namespaced": True},
                {"name": "namespaces", "kind": "Namespace", "namespaced": False}],
    "/apis/apps/v1": [{"name": "deployments", "kind": "Deployment", "namespaced": True}],
}


class FakeKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], str, str]] = []
        self.discovery = {k: list(v) for k, v in DISCOVERY.items()}

    def resource(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        root = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        self.calls.append(("GET", root, {}, "discovery", ""))
        for item in self.discovery.get(root, []):
            if item["kind"] == kind and "/" not in item["name"]:
                return item["name"], item["namespaced"]
        return None

    def request(self, what: str, method: str, path: str, *,
                query: Mapping[str, str] | None = None, body: Any = None,
                content_type: str = "application/json", as_user: str = "") -> dict[str, Any]:
        self.calls.append((method, path, dict(query or {}), content_type, as_user))
        if path.endswith("/gone"):
            raise KubeError(f"{what}: 404 Not Found", 404)
        return {"path": path}


def obj(api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def test_objects_are_reached_by_their_resource_paths_as_the_release_identity() -> None:
    kube = FakeKube()
    cluster = KubeCluster(kube)  # type: ignore[arg-type]
    user = "system:serviceaccount:apps:deployer"
    assert cluster.namespaced("v1", "Service")
    assert not cluster.namespaced("v1", "Namespace")
    cluster.get(obj("apps/v1", "Deployment", "web", "apps"), as_user=user)
    cluster.dry_run_apply(obj("v1", "Service", "web", "apps"), field_manager="helm",
                          as_user=user)
    cluster.create(obj("v1", "Namespace", "apps"), field_manager="helm", as_user=user)
    cluster.json_patch(obj("apps/v1", "Deployment", "web", "apps"),
                       [{"op": "replace", "path": "/spec/replicas", "value": 1}],
                       field_manager="helm", as_user=user)
    assert cluster.get(obj("v1", "Service", "gone", "apps"), as_user=user) is None
    assert [call for call in kube.calls if call[3] != "discovery"] == [
        ("GET", "/apis/apps/v1/namespaces/apps/deployments/web", {}, "application/json", user),
        ("PATCH", "/api/v1/namespaces/apps/services/web",
         {"fieldManager": "helm", "force": "true", "dryRun": "All"},
         "application/apply-patch+yaml", user),
        ("POST", "/api/v1/namespaces", {"fieldManager": "helm"}, "application/json", user),
        ("PATCH", "/apis/apps/v1/namespaces/apps/deployments/web", {"fieldManager": "helm"},
         "application/json-patch+json", user),
        ("GET", "/api/v1/namespaces/apps/services/gone", {}, "application/json", user)]


def test_a_kind_the_api_does_not_serve_is_an_error_naming_it() -> None:
    cluster = KubeCluster(FakeKube())  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match="the API serves no kind DaemonSet in apps/v1"):
        cluster.namespaced("apps/v1", "DaemonSet")
    with pytest.raises(ClusterError, match=r"no kind Thing in nothing\.example/v1"):
        cluster.get(obj("nothing.example/v1", "Thing", "x", "apps"), as_user="")


@pytest.mark.parametrize("name", ["a/b", "..", "x?watch=1", "%2e", ""])
def test_names_that_would_reach_another_url_are_refused(name: str) -> None:
    cluster = KubeCluster(FakeKube())  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match="cannot name an object in an API path"):
        cluster.get(obj("v1", "Service", name, "apps"), as_user="")

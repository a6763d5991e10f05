"""The Kubernetes API as the flux-like commands use it: plain JSON through the ``kubernetes``
client, on the current kubeconfig (``KUBECONFIG``, ``--kubeconfig``, ``--context``) or, inside a
pod without one, the pod's service account.

Not :mod:`chartguard.operator.kube`: importing anything under ``chartguard.operator`` imports
kopf, and ``chartguard get`` must start fast. Every failure is a :class:`KubeError` whose text
says what was asked and what the API server answered (its ``Status`` message, bounded).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from chartguard.cli._kinds import Kind

MERGE_PATCH = "application/merge-patch+json"
_MAX_REASON = 300


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def connect(kubeconfig: str | None, context: str | None, *,
            timeout: float = 30.0) -> Kube:
    """A client of the cluster the kubeconfig's (or ``context``'s) current context names."""
    config = kubernetes.client.Configuration()
    try:
        if (kubeconfig is None and context is None and not os.environ.get("KUBECONFIG")
                and os.environ.get("KUBERNETES_SERVICE_HOST")):
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=config,
                persist_config=False)
    except (ConfigException, OSError, ValueError, TypeError) as err:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise KubeError(f"cannot use the kubeconfig {where}"
                        f"{f' (context {context})' if context else ''}: {err}; set KUBECONFIG "
                        "or pass --kubeconfig/--context") from None
    return Kube(kubernetes.client.ApiClient(config), timeout=timeout)


class Kube:
    """Reads and writes of the three kinds and of Events, as plain JSON."""

    def __init__(self, api: kubernetes.client.ApiClient, *, timeout: float) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self._timeout = timeout

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kw)
        except ApiException as err:
            raise KubeError(f"{what}: {_reason(err)}", err.status or 0) from None
        except Exception as err:
            if not _transport_error(err):
                raise
            raise KubeError(f"{what}: the API server did not answer ({type(err).__name__}); "
                            "is the kubeconfig's cluster reachable?") from None
        try:
            return json.loads(response.data) if response.data else {}
        except ValueError:
            raise KubeError(f"{what}: the API server's answer is not JSON") from None

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object; None when there is none."""
        try:
            body: dict[str, Any] = self._call(
                f"get {kind.name} {namespace}/{name}",
                self._custom.get_namespaced_custom_object,
                kind.group, kind.version, namespace, kind.plural, name)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return body

    def list_objects(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        """The objects of ``namespace`` (None: of every namespace)."""
        if namespace is None:
            body = self._call(f"list {kind.name} objects",
                              self._custom.list_cluster_custom_object,
                              kind.group, kind.version, kind.plural)
        else:
            body = self._call(f"list {kind.name} objects in {namespace}",
                              self._custom.list_namespaced_custom_object,
                              kind.group, kind.version, namespace, kind.plural)
        return _items(body)

    def create(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        meta = body.get("metadata") or {}
        created: dict[str, Any] = self._call(
            f"create {kind.name} {meta.get('namespace')}/{meta.get('name')}",
            self._custom.create_namespaced_custom_object,
            kind.group, kind.version, meta.get("namespace"), kind.plural, dict(body))
        return created

    def replace(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``body`` (its resourceVersion guards against a concurrent writer: 409)."""
        meta = body.get("metadata") or {}
        stored: dict[str, Any] = self._call(
            f"update {kind.name} {meta.get('namespace')}/{meta.get('name')}",
            self._custom.replace_namespaced_custom_object,
            kind.group, kind.version, meta.get("namespace"), kind.plural, meta.get("name"),
            dict(body))
        return stored

    def merge_patch(self, kind: Kind, namespace: str, name: str,
                    patch: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self._call(
            f"patch {kind.name} {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            kind.group, kind.version, namespace, kind.plural, name, dict(patch),
            _content_type=MERGE_PATCH)
        return body

    def events(self, namespace: str | None) -> list[dict[str, Any]]:
        """core/v1 Events of ``namespace`` (None: of every namespace)."""
        if namespace is None:
            body = self._call("list events", self._core.list_event_for_all_namespaces)
        else:
            body = self._call(f"list events in {namespace}", self._core.list_namespaced_event,
                              namespace)
        return _items(body)


def _transport_error(err: Exception) -> bool:
    """A connection that failed (socket errors, and urllib3's, which the client lets through:
    urllib3 itself is not imported here, it stays behind chartguard.oci)."""
    return isinstance(err, OSError) or any(
        cls.__module__.split(".")[0] == "urllib3" for cls in type(err).__mro__)


def _items(body: Any) -> list[dict[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _reason(err: ApiException) -> str:
    """``404 Not Found``, plus the Status message the API server sent (bounded)."""
    head = f"{err.status} {err.reason}".strip()
    try:
        status = json.loads(err.body) if err.body else {}
    except (TypeError, ValueError):
        status = {}
    message = status.get("message") if isinstance(status, dict) else None
    if isinstance(message, str) and message:
        return f"{head}: {message[:_MAX_REASON]}"
    return head

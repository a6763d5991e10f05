"""The Kubernetes API calls kopf does not make for us, through the ``kubernetes`` client.

Status patches (merge patches of what changed, on the ``/status`` subresource), our finalizer
(JSON patches that add or remove exactly one entry), Secrets read on a cache miss, and core v1
Events as Flux's recorder writes them. Responses are read as plain JSON (no model objects).
Every call is synchronous: the operator makes them from its worker threads.

An API server that sheds load (429 from priority and fairness) or cannot answer this once
(5xx while etcd elects a leader or the server restarts; no connection at all) gets a few more
tries, after a backoff with jitter that grows per try and is never shorter than the server's
``Retry-After``, as client-go retries: a burst costs a few seconds, not a failed reconcile.
What still fails raises :class:`KubeError` naming the fault; the caller's own backoff (the
work queue's) takes it from there. A 409 Conflict is never retried here: only the caller
knows how to redo its write on a fresh read.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from chartguard import __version__
from chartguard.api.meta import SOURCE_GROUP
from chartguard.untrusted import escape

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
COMPONENT = "chartguard"
#: the manager of every field chartguard writes (metadata.managedFields)
FIELD_MANAGER = "chartguard"
#: answers another try may change: load shed (429) or the server unable to answer this once
RETRIABLE = frozenset({429, 500, 502, 503, 504})
#: tries after the first one, and the backoff's first step and ceiling (seconds): at most
#: about 8 s of waiting per call, unless the server asks for longer (up to RETRY_AFTER_MAX)
RETRIES = 4
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 4.0
RETRY_AFTER_MAX = 10.0

_log = logging.getLogger("chartguard")


class KubeError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def load_config(pool_size: int) -> kubernetes.client.ApiClient:
    """An API client from the in-cluster service account, else the kubeconfig (KUBECONFIG)."""
    config = kubernetes.client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=config)
    config.connection_pool_maxsize = pool_size
    # urllib3's own retries come at once and log a line each: Kube retries instead, after a
    # backoff (a refused connection is retried three times in a millisecond otherwise)
    config.retries = 0
    client = kubernetes.client.ApiClient(config)
    # the API server names a request's field manager after its user agent (up to the first
    # "/"): every write shows up as "chartguard" in managedFields, as Flux's controllers show
    # up as "source-controller" and "helm-controller", not as the client's "OpenAPI-Generator"
    client.user_agent = f"{FIELD_MANAGER}/{__version__}"
    return client


def _invalid_because(err: ApiException) -> str:
    """For a 400 or 422 (the object was refused as invalid: an unknown field under strict
    validation, a schema rule), the API server's reason, which names the field; escaped and
    capped. Other answers are named by their status only."""
    if err.status not in (400, 422) or not err.body:
        return ""
    try:
        doc = json.loads(err.body)
    except ValueError:
        return ""
    message = doc.get("message") if isinstance(doc, dict) else None
    if not isinstance(message, str) or not message:
        return ""
    # a refused patch quotes the whole patched object before the reason: only the reason
    _, strict, reason = message.rpartition("strict decoding error: ")
    return f": {escape(reason if strict else message, 400)}"


#: the ``fieldValidation`` of chartguard's object writes: unknown fields are an error, not pruned
STRICT = "Strict"


class Kube:
    """Plain-JSON access to the objects chartguard writes and reads."""

    def __init__(self, api: kubernetes.client.ApiClient, *, timeout: float = 30.0,
                 retries: int = RETRIES) -> None:
        self.api = api
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self._crds = kubernetes.client.ApiextensionsV1Api(api)
        self._timeout = timeout
        self._retries = retries
        self._host = socket.gethostname()
        #: apiVersion -> kind -> (plural, namespaced), from the API's discovery documents
        self._discovered: dict[str, dict[str, tuple[str, bool]]] = {}

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        for attempt in range(self._retries + 1):
            try:
                response = fn(*args, _preload_content=False, _request_timeout=self._timeout,
                              **kw)
            except ApiException as err:
                status = err.status or 0
                fault = f"{status} {err.reason or ''}".rstrip()
                if status not in RETRIABLE or attempt == self._retries:
                    raise KubeError(f"{what}: {fault}{_invalid_because(err)}",
                                    status) from None
                delay = backoff(attempt, retry_after(err.headers))
            except Exception as err:  # urllib3 errors too (MaxRetryError is no OSError)
                # no answer: named by the error's class only (its text may carry the URL)
                fault = _no_answer(err)
                if not _unanswered(err) or attempt == self._retries:
                    raise KubeError(f"{what}: {fault}") from None
                delay = backoff(attempt, None)
            else:
                return json.loads(response.data) if response.data else {}
            _log.warning("Kubernetes API: %s: %s; trying again in %.1fs (retry %d of %d)",
                         escape(what), escape(fault), delay, attempt + 1, self._retries)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads -----------------------------------------------------------------------------

    def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's data, decoded; None when there is no such Secret."""
        try:
            body = self._call(f"Secret {namespace}/{name}", self._core.read_namespaced_secret,
                              name, namespace)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return secret_data(body)

    def get_secret_body(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret as the API returns it (helm's release records); None when absent."""
        try:
            body: dict[str, Any] = self._call(f"Secret {namespace}/{name}",
                                              self._core.read_namespaced_secret, name, namespace)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return body

    def replace_secret(self, namespace: str, name: str, body: Mapping[str, Any], *,
                       as_user: str = "") -> dict[str, Any]:
        """PUT the Secret (its resourceVersion guards against a concurrent writer), as
        ``as_user`` when given (an ``Impersonate-User`` request)."""
        headers = {"Impersonate-User": as_user} if as_user else None
        stored: dict[str, Any] = self._call(f"Secret {namespace}/{name}",
                                            self._core.replace_namespaced_secret, name,
                                            namespace, dict(body), _headers=headers)
        return stored

    def get_source(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_custom(SOURCE_GROUP, "v1", plural, namespace, name)

    def get_custom(self, group: str, version: str, plural: str, namespace: str,
                   name: str) -> dict[str, Any] | None:
        """A custom object's body; None when there is none."""
        try:
            body: dict[str, Any] = self._call(
                f"{plural} {namespace}/{name}", self._custom.get_namespaced_custom_object,
                group, version, namespace, plural, name)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return body

    def get_object(self, group: str, version: str, plural: str, namespace: str,
                   name: str) -> dict[str, Any] | None:
        """A custom object, namespaced or (``namespace`` "") cluster-scoped; None when absent."""
        if namespace:
            return self.get_custom(group, version, plural, namespace, name)
        try:
            body: dict[str, Any] = self._call(
                f"{plural} {name}", self._custom.get_cluster_custom_object, group, version,
                plural, name)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return body

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's ``data``; None when there is no such ConfigMap."""
        try:
            body = self._call(f"ConfigMap {namespace}/{name}",
                              self._core.read_namespaced_config_map, name, namespace)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return configmap_data(body)

    def get_live(self, api_version: str, kind: str, namespace: str, name: str, *,
                 as_user: str = "") -> dict[str, Any] | None:
        """Any object by apiVersion and kind (its resource found through discovery), as
        ``as_user`` when given; ``namespace`` is ignored for a cluster-scoped kind. None when
        the object, or its kind, does not exist."""
        resource = self.resource(api_version, kind)
        if resource is None:
            return None
        plural, namespaced = resource
        base, params = api_path(api_version)
        params = {**params, "plural": plural, "name": name}
        scope = ""
        if namespaced:
            scope, params["namespace"] = "/namespaces/{namespace}", namespace
        headers = {"Impersonate-User": as_user} if as_user else {}
        try:
            body: dict[str, Any] = self._call(
                f"{kind} {namespace}/{name}", self._get_path,
                f"{base}{scope}/{{plural}}/{{name}}", params, headers)
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return body

    def _get_path(self, resource_path: str, path_params: Mapping[str, str],
                  headers: Mapping[str, str], *, _preload_content: bool,
                  _request_timeout: float) -> Any:
        """GET ``resource_path`` (its parameters quoted by the client) as the generated API
        methods do with ``_preload_content=False``: the raw response, non-2xx raised as
        ``ApiException`` (what :meth:`_call` expects)."""
        method, url, header_params, body, post_params = self.api.param_serialize(
            "GET", resource_path, path_params=dict(path_params),
            header_params={"Accept": "application/json", **headers},
            auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, header_params=header_params, body=body,
                                     post_params=post_params, _request_timeout=_request_timeout)
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]  # the client's, untyped
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def resource(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        """(plural, namespaced) of ``kind`` in ``api_version``; discovery is read again when
        the kind is not known yet (a CRD installed since)."""
        known = self._discovered.get(api_version, {})
        if kind in known:
            return known[kind]
        path, params = api_path(api_version)
        try:
            body = self._call(f"discovery of {api_version}", self._get_path, path, params, {})
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        found: dict[str, tuple[str, bool]] = {}
        for item in body.get("resources") or [] if isinstance(body, dict) else []:
            if (isinstance(item, dict) and isinstance(item.get("kind"), str)
                    and isinstance(item.get("name"), str) and "/" not in item["name"]):
                found[item["kind"]] = (item["name"], bool(item.get("namespaced")))
        self._discovered[api_version] = found
        return found.get(kind)

    def list_secrets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The Secrets of ``namespace`` matching ``label_selector`` (whole bodies)."""
        body = self._call(f"Secrets in {namespace} ({label_selector})",
                          self._core.list_namespaced_secret, namespace,
                          label_selector=label_selector)
        items = body.get("items") if isinstance(body, dict) else None
        return [item for item in items or [] if isinstance(item, dict)]

    def request(self, what: str, method: str, path: str, *,
                query: Mapping[str, str] | None = None, body: Any = None,
                content_type: str = "application/json", as_user: str = "") -> dict[str, Any]:
        """Any API call by path (``/api/v1/…``, ``/apis/<group>/<version>/…``) with the same
        retries, as ``as_user`` when given (``Impersonate-User``); the answer as JSON."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if as_user:
            headers["Impersonate-User"] = as_user
        params = list((query or {}).items())

        def call(*, _preload_content: bool, _request_timeout: float) -> Any:
            serialized = self.api.param_serialize(
                method=method, resource_path=path, query_params=params, header_params=headers,
                body=body, auth_settings=["BearerToken"])
            response = self.api.call_api(*serialized, _request_timeout=_request_timeout)
            response.read()  # type: ignore[no-untyped-call]
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(http_resp=response, body=None, data=None)
            return response

        answer: dict[str, Any] = self._call(what, call)
        return answer

    def get_crd(self, name: str, *, as_user: str = "") -> dict[str, Any] | None:
        """A CustomResourceDefinition (as ``as_user`` when given); None when absent."""
        try:
            body: dict[str, Any] = self._call(
                f"CustomResourceDefinition {name}", self._crds.read_custom_resource_definition,
                name, _headers=_impersonate(as_user))
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return body

    # -- writes ----------------------------------------------------------------------------

    def create_token(self, namespace: str, name: str, audiences: list[str],
                     expiration: int = 3600) -> str:
        """A token of ServiceAccount ``namespace/name`` from the TokenRequest API."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": audiences, "expirationSeconds": expiration}}
        answer: dict[str, Any] = self._call(
            f"token of ServiceAccount {namespace}/{name}",
            self._core.create_namespaced_service_account_token, name, namespace, body)
        token = (answer.get("status") or {}).get("token")
        if not isinstance(token, str) or not token:
            raise KubeError(f"token of ServiceAccount {namespace}/{name}: no token in the "
                            "answer")
        return token

    def apply_crd(self, body: Mapping[str, Any], *, as_user: str = "") -> dict[str, Any]:
        """Server-side apply of a CustomResourceDefinition as chartguard, conflicts forced (as
        helm-controller applies a chart's CRDs), as ``as_user`` when given."""
        name = str((body.get("metadata") or {}).get("name", ""))
        stored: dict[str, Any] = self._call(
            f"apply CustomResourceDefinition {name}",
            self._crds.patch_custom_resource_definition, name, dict(body),
            field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH,
            _headers=_impersonate(as_user))
        return stored

    def create_crd(self, body: Mapping[str, Any], *, as_user: str = "") -> dict[str, Any]:
        """Create a CustomResourceDefinition client-side, as chartguard (as ``as_user`` when
        given): helm-controller's applyCRDs when server-side apply is off."""
        name = str((body.get("metadata") or {}).get("name", ""))
        stored: dict[str, Any] = self._call(
            f"create CustomResourceDefinition {name}",
            self._crds.create_custom_resource_definition, dict(body),
            field_manager=FIELD_MANAGER, _headers=_impersonate(as_user))
        return stored

    def replace_crd(self, body: Mapping[str, Any], resource_version: str, *,
                    as_user: str = "") -> dict[str, Any]:
        """Replace a CustomResourceDefinition client-side (a PUT at ``resource_version``), as
        helm-controller's applyCRDs force-replaces one when server-side apply is off."""
        meta = dict(body.get("metadata") or {})
        name = str(meta.get("name", ""))
        stored: dict[str, Any] = self._call(
            f"replace CustomResourceDefinition {name}",
            self._crds.replace_custom_resource_definition, name,
            {**body, "metadata": {**meta, "resourceVersion": resource_version}},
            field_manager=FIELD_MANAGER, _headers=_impersonate(as_user))
        return stored

    def patch_status(self, group: str, version: str, plural: str, namespace: str, name: str,
                     status: Mapping[str, Any], *,
                     resource_version: str | None = None) -> dict[str, Any]:
        """Merge-patch ``status`` (only the keys that changed; None deletes one); with
        ``resource_version``, only if the object is still at that version (else 409)."""
        patch: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        body: dict[str, Any] = self._call(
            f"status of {plural} {namespace}/{name}",
            self._custom.patch_namespaced_custom_object_status,
            group, version, namespace, plural, name, patch, _content_type=MERGE_PATCH)
        return body

    def patch_finalizers(self, group: str, version: str, plural: str, namespace: str,
                         name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """A JSON patch of ``metadata.finalizers`` (guarded by a ``test`` of the old list)."""
        body: dict[str, Any] = self._call(
            f"finalizers of {plural} {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            group, version, namespace, plural, name, ops, _content_type=JSON_PATCH)
        return body

    def create_custom(self, group: str, version: str, plural: str, namespace: str,
                      body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a namespaced custom object. Strict field validation: a field the served CRD
        does not declare (e.g. a chartguard extension under Flux's CRDs) is refused (400)
        instead of being pruned in silence, so a requirement can never be dropped on the way."""
        created: dict[str, Any] = self._call(
            f"create {plural} {namespace}/{body.get('metadata', {}).get('name')}",
            self._custom.create_namespaced_custom_object, group, version, namespace, plural,
            dict(body), field_validation=STRICT)
        return created

    def create_object(self, group: str, version: str, plural: str, namespace: str,
                      body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a custom object, namespaced or (``namespace`` "") cluster-scoped."""
        if namespace:
            return self.create_custom(group, version, plural, namespace, body)
        created: dict[str, Any] = self._call(
            f"create {plural} {body.get('metadata', {}).get('name')}",
            self._custom.create_cluster_custom_object, group, version, plural, dict(body),
            field_validation=STRICT)
        return created

    def merge_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                    patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (not its status), strictly validated as
        :meth:`create_custom` is."""
        body: dict[str, Any] = self._call(
            f"patch {plural} {namespace}/{name}", self._custom.patch_namespaced_custom_object,
            group, version, namespace, plural, name, dict(patch), _content_type=MERGE_PATCH,
            field_validation=STRICT)
        return body

    def delete_custom(self, group: str, version: str, plural: str, namespace: str,
                      name: str) -> bool:
        """Delete the object; False when it was already gone."""
        try:
            self._call(f"delete {plural} {namespace}/{name}",
                       self._custom.delete_namespaced_custom_object, group, version, namespace,
                       plural, name)
        except KubeError as err:
            if err.status == 404:
                return False
            raise
        return True

    def post_event(self, involved: Mapping[str, Any], type_: str, reason: str, message: str,
                   annotations: Mapping[str, str]) -> None:
        """A core v1 Event about ``involved`` (as client-go's recorder writes one)."""
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace", "default")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'object')}.",
                         "namespace": namespace, "annotations": dict(annotations)},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                "name": meta.get("name"), "namespace": namespace, "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion")},
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": COMPONENT, "reportingInstance": self._host,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        self._call(f"Event {reason} in {namespace}", self._core.create_namespaced_event,
                   namespace, event)


def api_path(api_version: str) -> tuple[str, dict[str, str]]:
    """The discovery path of ``api_version`` and its parameters (quoted by the client)."""
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return "/apis/{group}/{version}", {"group": group, "version": version}
    return "/api/{version}", {"version": api_version}
def _impersonate(as_user: str) -> dict[str, str] | None:
    return {"Impersonate-User": as_user} if as_user else None


def backoff(attempt: int, server_asked: float | None) -> float:
    """The wait before retry ``attempt + 1``: doubling from BACKOFF_FIRST up to BACKOFF_MAX,
    its upper half drawn at random (replicas that failed together do not retry together),
    and never shorter than what the server asked for (capped at RETRY_AFTER_MAX)."""
    step = min(BACKOFF_FIRST * 2.0 ** attempt, BACKOFF_MAX)
    delay = step / 2 + random.uniform(0, step / 2)  # noqa: S311 (jitter, not a secret)
    if server_asked is not None:
        delay = max(delay, min(server_asked, RETRY_AFTER_MAX))
    return delay


def retry_after(headers: Any) -> float | None:
    """The seconds of a ``Retry-After`` header (an HTTP date is not worth parsing: None)."""
    if headers is None:
        return None
    try:
        value = headers.get("Retry-After")
    except AttributeError:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < float("inf") else None


def _unanswered(err: Exception) -> bool:
    """The request got no answer because the connection failed (refused, reset, closed
    mid-answer); a read timeout is not retried (the server may still be working on it).
    urllib3's errors are known by name: only chartguard.oci imports the HTTP libraries."""
    names = _names(err)
    if "ReadTimeoutError" in names:
        return False
    if "MaxRetryError" in names:
        return "ReadTimeoutError" not in _names(getattr(err, "reason", None))
    return bool(names & {"ProtocolError", "ConnectionError", "NewConnectionError"})


def _no_answer(err: Exception) -> str:
    """What went wrong with a request that got no answer, in a few words."""
    names = _names(err) | _names(getattr(err, "reason", None))
    if names & {"NewConnectionError", "ConnectionRefusedError"}:
        return "no answer (cannot connect)"
    if names & {"ConnectTimeoutError"}:
        return "no answer (connect timed out)"
    if names & {"ReadTimeoutError", "TimeoutError"}:
        return "no answer (read timed out)"
    if names & {"ProtocolError", "ConnectionResetError", "RemoteDisconnected"}:
        return "no answer (connection lost)"
    return f"no answer ({type(err).__name__})"


def _names(err: object) -> set[str]:
    return {cls.__name__ for cls in type(err).__mro__} if err is not None else set()


def secret_data(body: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's ``data`` (base64) and ``stringData`` decoded to bytes."""
    out: dict[str, bytes] = {}
    data = body.get("data")
    if isinstance(data, Mapping):
        for key, value in data.items():
            try:
                out[str(key)] = base64.b64decode(str(value or ""), validate=True)
            except (binascii.Error, ValueError):
                continue
    string_data = body.get("stringData")
    if isinstance(string_data, Mapping):
        for key, value in string_data.items():
            out[str(key)] = str(value).encode()
    return out


def configmap_data(body: Mapping[str, Any]) -> dict[str, str]:
    """A ConfigMap's ``data`` (``binaryData`` is not values text and is left out)."""
    data = body.get("data")
    if not isinstance(data, Mapping):
        return {}
    return {str(k): str(v) for k, v in data.items() if v is not None}

"""The objects releases made, read and written by path for drift detection: a
:class:`~chartguard.reconcile.seams.ClusterObjects` over :class:`~.kube.Kube`.

A manifest names objects by apiVersion and kind; the API serves them by resource. API
discovery (:meth:`Kube.resource`: ``/api/v1``, ``/apis/<group>/<version>``, readable by every
authenticated user, read again only for a kind it did not list) maps one to the other and
says whether the kind is namespaced. Reads and writes of
the objects are made as the identity helm runs the release as (``Impersonate-User``), so they
reach exactly what helm may reach. Server-side apply is a PATCH of type
``application/apply-patch+yaml`` (JSON is YAML) with ``force=true`` and ``dryRun=All``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chartguard.operator.kube import JSON_PATCH, Kube, KubeError, api_path
from chartguard.operator.releases import ReleaseStorageError, read_revision
from chartguard.reconcile.outcome import safe
from chartguard.reconcile.seams import ClusterError

APPLY_PATCH = "application/apply-patch+yaml"


class KubeCluster:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    # -- discovery (Kube's, shared with the health checks) ---------------------------------

    def namespaced(self, api_version: str, kind: str) -> bool:
        return self._resource(api_version, kind)[1]

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of ``kind`` in ``api_version``."""
        try:
            found = self._kube.resource(api_version, kind)
        except KubeError as err:
            raise ClusterError(safe(err), err.status) from None
        if found is None:
            raise ClusterError(f"the API serves no kind {safe(kind)} in {safe(api_version)}")
        return found

    def _path(self, obj: Mapping[str, Any], *, named: bool = True) -> str:
        api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        plural, namespaced = self._resource(api_version, kind)
        meta = obj.get("metadata") or {}
        template, params = api_path(api_version)
        path = template.format(**{key: _segment(value) for key, value in params.items()})
        if namespaced:
            path += f"/namespaces/{_segment(meta.get('namespace'))}"
        path += f"/{plural}"
        return path + f"/{_segment(meta.get('name'))}" if named else path

    # -- objects ---------------------------------------------------------------------------

    def get(self, obj: Mapping[str, Any], *, as_user: str) -> dict[str, Any] | None:
        try:
            return self._kube.request(f"get {_name(obj)}", "GET", self._path(obj),
                                      as_user=as_user)
        except KubeError as err:
            if err.status == 404:
                return None
            raise ClusterError(safe(err), err.status) from None

    def dry_run_apply(self, obj: Mapping[str, Any], *, field_manager: str,
                      as_user: str) -> dict[str, Any]:
        return self._write(f"dry-run apply {_name(obj)}", "PATCH", self._path(obj), obj,
                           APPLY_PATCH, as_user, {"fieldManager": field_manager,
                                                  "force": "true", "dryRun": "All"})

    def create(self, obj: Mapping[str, Any], *, field_manager: str,
               as_user: str) -> dict[str, Any]:
        return self._write(f"create {_name(obj)}", "POST", self._path(obj, named=False), obj,
                           "application/json", as_user, {"fieldManager": field_manager})

    def json_patch(self, obj: Mapping[str, Any], ops: Sequence[Mapping[str, Any]], *,
                   field_manager: str, as_user: str) -> dict[str, Any]:
        return self._write(f"patch {_name(obj)}", "PATCH", self._path(obj),
                           [dict(op) for op in ops], JSON_PATCH, as_user,
                           {"fieldManager": field_manager})

    def _write(self, what: str, method: str, path: str, body: Any, content_type: str,
               as_user: str, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            return self._kube.request(what, method, path, query=query,
                                      body=dict(body) if isinstance(body, Mapping) else body,
                                      content_type=content_type, as_user=as_user)
        except KubeError as err:
            raise ClusterError(safe(err), err.status) from None

    # -- helm's record ---------------------------------------------------------------------

    def release_manifest(self, namespace: str, name: str, version: int) -> tuple[str, str]:
        try:
            stored, manifest = read_revision(self._kube, namespace, name, version)
        except ReleaseStorageError as err:
            raise ClusterError(str(err)) from None
        return stored.digest, manifest


def _segment(value: object) -> str:
    """One path segment: a name with '/' or a dot-only name would reach another URL."""
    text = str(value or "")
    if not text or "/" in text or text in (".", "..") or "?" in text or "%" in text:
        raise ClusterError(f"{safe(text)!r} cannot name an object in an API path")
    return text


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    parts = [obj.get("kind"), meta.get("namespace"), meta.get("name")]
    return "/".join(str(p) for p in parts if p)

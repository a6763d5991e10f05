"""What the operator remembers between events: object bodies, Secrets, who uses what.

- :class:`Objects`   the latest body of each watched object (from kopf's watch events and our
  own patch responses), so a reconcile never re-reads the API for its object or its source.
- :class:`Secrets`   the data of Secrets some object refers to, read once and kept fresh by the
  Secret watch; a Secret nobody refers to is never kept (Helm's release Secrets are big).
- :class:`Index`     which objects use which Secret or HelmRepository, so a change of one
  re-reconciles exactly its users.

Written by the event loop and read by worker threads: every structure holds its own lock.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from chartguard.api.meta import SOURCE_GROUP
from chartguard.operator.kube import Kube, KubeError, configmap_data, secret_data
from chartguard.reconcile.seams import (
    ConfigMapNotFoundError,
    SecretNotFoundError,
    SecretUnreadableError,
)

K = TypeVar("K", bound=Hashable)
Ref = tuple[str, str]  # (namespace, name)


class Objects:
    """Latest bodies by (namespace, name) for one kind."""

    def __init__(self) -> None:
        self._bodies: dict[Ref, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        ref = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            old = self._bodies.get(ref)
            # never go back to an older body (a patch response may race a watch event)
            if old is not None and _rv(old) > _rv(body):
                return
            self._bodies[ref] = slim(body)

    def drop(self, ref: Ref) -> None:
        with self._lock:
            self._bodies.pop(ref, None)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._bodies.get((namespace, name))

    def values(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._bodies.values())


#: kept by the API server on every object, read by nothing in the operator: ``kubectl apply``'s
#: copy of the whole spec is about half of an applied object's body
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without what the operator never reads (``managedFields``, kubectl's
    last-applied copy): at 1,000 releases and charts that is most of the cache."""
    out = dict(body)
    meta = body.get("metadata")
    if isinstance(meta, Mapping):
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping) and _LAST_APPLIED in annotations:
            meta["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
        out["metadata"] = meta
    return out


def _rv(body: Mapping[str, Any]) -> int:
    value = body.get("metadata", {}).get("resourceVersion", "")
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0  # opaque resourceVersions (not ours to order): take the newest seen


class Sources:
    """An :class:`~chartguard.reconcile.seams.ObjectReader` of one source kind: the cache, or
    the API on a miss (at start-up a chart's event may come before its repository's)."""

    def __init__(self, objects: Objects, kube: Kube, plural: str, *,
                 group: str = SOURCE_GROUP, version: str = "v1") -> None:
        self._objects = objects
        self._kube = kube
        self._plural = plural
        self._group = group
        self._version = version

    def get(self, namespace: str, name: str) -> Mapping[str, object] | None:
        body = self._objects.get(namespace, name)
        if body is None:
            body = self._kube.get_custom(self._group, self._version, self._plural, namespace,
                                         name)
            if body is not None:
                self._objects.put(body)
        return body


V = TypeVar("V")


class _Referenced(Generic[V]):
    """Core objects some object refers to (Secrets, ConfigMaps), read once from the API and
    kept fresh by their watch; one nobody refers to is never kept (helm's release Secrets are
    big). Subclasses say how to read and decode one and what its absence raises."""

    kind = ""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._data: dict[Ref, tuple[str, V]] = {}
        self._latest: dict[Ref, str] = {}  # resourceVersion of every event seen
        self._lock = threading.Lock()

    def _read(self, namespace: str, name: str) -> V | None:
        raise NotImplementedError

    def _decode(self, body: Mapping[str, Any]) -> V:
        raise NotImplementedError

    def _missing(self, namespace: str, name: str) -> Exception:
        raise NotImplementedError

    def get(self, namespace: str, name: str) -> V:
        ref = (namespace, name)
        with self._lock:
            cached = self._data.get(ref)
            latest = self._latest.get(ref)
        if cached is not None and (latest is None or latest == cached[0]):
            return cached[1]
        try:
            data = self._read(namespace, name)
        except KubeError as err:  # 403 (RBAC), 5xx, no answer: a failure the object shows
            raise SecretUnreadableError(
                str(err).removeprefix(f"{self.kind} {namespace}/{name}: ")) from None
        if data is None:
            with self._lock:
                self._data.pop(ref, None)
            raise self._missing(namespace, name)
        # the resourceVersion read is not returned by the read: key it by the latest event
        with self._lock:
            self._data[ref] = (self._latest.get(ref, ""), data)
        return data

    def observe(self, body: Mapping[str, Any], deleted: bool,
                listing: bool = False) -> tuple[Ref, bool]:
        """A watch event (``listing``: one of a listing's): refresh a cached object, forget a
        deleted one. Also says whether the object changed since the last event seen of it.

        A re-listing (the watch expired, 410 Gone) brings what the watch missed as listing
        events, but nothing at all of an object deleted meanwhile: once one is seen, no cached
        object is trusted any more, and each is read again when next needed (a key Secret
        deleted during the gap must not go on verifying charts)."""
        meta = body.get("metadata", {})
        ref = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        rv = str(meta.get("resourceVersion", ""))
        with self._lock:
            if deleted:
                self._data.pop(ref, None)
                self._latest.pop(ref, None)
                return ref, True
            before = self._latest.get(ref)
            if listing and before is not None:  # known before: a re-listing, not the first
                self._data.clear()
            self._latest[ref] = rv
            if ref in self._data:
                self._data[ref] = (rv, self._decode(body))
        return ref, before is not None and before != rv


class Secrets(_Referenced[dict[str, bytes]]):
    """A :class:`~chartguard.reconcile.seams.SecretReader` over the API with a watch-fed cache."""

    kind = "Secret"

    def _read(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self._kube.get_secret(namespace, name)

    def _decode(self, body: Mapping[str, Any]) -> dict[str, bytes]:
        return secret_data(body)

    def _missing(self, namespace: str, name: str) -> Exception:
        return SecretNotFoundError(f"{namespace}/{name}")


class ConfigMaps(_Referenced[dict[str, str]]):
    """A :class:`~chartguard.reconcile.seams.ConfigMapReader` over the API with a watch-fed
    cache of the ConfigMaps some HelmRelease's ``valuesFrom`` names."""

    kind = "ConfigMap"

    def _read(self, namespace: str, name: str) -> dict[str, str] | None:
        return self._kube.get_configmap(namespace, name)

    def _decode(self, body: Mapping[str, Any]) -> dict[str, str]:
        return configmap_data(body)

    def _missing(self, namespace: str, name: str) -> Exception:
        return ConfigMapNotFoundError(f"{namespace}/{name}")


class Index(Generic[K]):
    """Users by what they use: ``users(thing)`` is every key that last said it uses it."""

    def __init__(self) -> None:
        self._uses: dict[K, frozenset[Ref]] = {}
        self._users: dict[Ref, set[K]] = defaultdict(set)
        self._lock = threading.Lock()

    def update(self, key: K, things: Iterable[Ref]) -> None:
        new = frozenset(things)
        with self._lock:
            for thing in self._uses.get(key, frozenset()) - new:
                self._users[thing].discard(key)
                if not self._users[thing]:
                    del self._users[thing]
            for thing in new:
                self._users[thing].add(key)
            self._uses[key] = new

    def drop(self, key: K) -> None:
        self.update(key, ())
        with self._lock:
            self._uses.pop(key, None)

    def users(self, thing: Ref) -> set[K]:
        with self._lock:
            return set(self._users.get(thing, ()))

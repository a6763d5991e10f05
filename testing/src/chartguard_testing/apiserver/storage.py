"""In-memory objects with the metadata the apiserver sets, and the log watches read from.

Everything here runs on the server's single event loop thread, so a write is atomic with
respect to every other request. One global counter is every object's resourceVersion, as
with etcd; the last ``history`` changes are kept so watches can resume from one of them.

:meth:`Store.save` and :meth:`Store.load` keep the objects and the counter in a file across a
stop and a start of the server (``--state``), as etcd keeps them across an API server's
restart; the change history is not kept, as a restarted API server's watch cache starts at
the current resourceVersion: a watch resuming from an older one gets 410 Expired.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chartguard_testing.apiserver import patching, validation, workloads
from chartguard_testing.apiserver.resources import (
    CRD_KEY,
    NAMESPACE_KEY,
    ApiError,
    Catalog,
    Obj,
    ResourceType,
    now,
)

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Event:
    """One change, as a watch sends it; ``obj`` is a snapshot in the storage version."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: tuple[str, str]
    obj: Obj


# Sentinels a watcher's queue can hold besides changes: the watcher fell ``history`` changes
# behind (its client gets 410 Expired and re-lists), or the server is shutting down.
OVERFLOW = Event(0, "OVERFLOW", ("", ""), {})
STOP = Event(0, "STOP", ("", ""), {})
# a fault (:mod:`.faults`): the watch's connection is cut now
DROP = Event(0, "DROP", ("", ""), {})


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.describe()} "{name}" not found',
                    details={"name": name, "group": rt.group, "kind": rt.plural})


def _spec_part(rt: ResourceType, obj: Obj) -> Obj:
    """What generation counts: everything but metadata (and status when it is separate)."""
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if rt.status_subresource else set())
    return {k: v for k, v in obj.items() if k not in skip}


class Store:
    def __init__(self, catalog: Catalog, *, history: int = 1000) -> None:
        self.catalog = catalog
        self.rv = 0
        self.objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self.history = history
        self.events: deque[Event] = deque(maxlen=history)
        self.watchers: set[asyncio.Queue[Event]] = set()
        self._behind: set[asyncio.Queue[Event]] = set()
        self._stalled: set[asyncio.Queue[Event]] = set()
        self._applied: dict[tuple[Any, ...], Obj] = {}
        ns_type = catalog.by_key(NAMESPACE_KEY)
        assert ns_type is not None
        for name in INITIAL_NAMESPACES:
            self.create(ns_type, "", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name}})

    # ---- reading --------------------------------------------------------------------

    def _bucket(self, rt: ResourceType) -> dict[tuple[str, str], Obj]:
        return self.objects.setdefault(rt.key, {})

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        found = self._bucket(rt).get((namespace, name))
        if found is None:
            raise _not_found(rt, name)
        return found

    def exists(self, rt: ResourceType, namespace: str, name: str) -> bool:
        return (namespace, name) in self._bucket(rt)

    def list(self, rt: ResourceType, namespace: str | None,
             match: Callable[[Obj], bool]) -> list[Obj]:
        return [o for (ns, _), o in sorted(self._bucket(rt).items())
                if (namespace is None or ns == namespace) and match(o)]

    def oldest_rv(self) -> int:
        """The first resourceVersion a watch can still resume after."""
        return self.events[0].rv - 1 if self.events else self.rv

    # ---- watchers --------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[Event]:
        """A queue of every change from now on; at most ``history`` unread ones are kept."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=self.history)
        self.watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self.watchers.discard(queue)
        self._behind.discard(queue)
        self._stalled.discard(queue)

    def _tell(self, queue: asyncio.Queue[Event], event: Event) -> None:
        if queue in self._behind:
            return  # it already holds OVERFLOW; nothing after it will be read
        if queue in self._stalled and event is not STOP and event is not DROP:
            return  # a stalled watch delivers nothing (what it misses stays in the history)
        if event is STOP or event is DROP or queue.full():
            # a client that stops reading must not make the server keep every change
            while not queue.empty():
                queue.get_nowait()
            if event is not STOP and event is not DROP:
                self._behind.add(queue)
                event = OVERFLOW
        queue.put_nowait(event)

    def stop_watchers(self) -> None:
        """Tell every open watch to end (server shutdown)."""
        for queue in self.watchers:
            self._tell(queue, STOP)

    def drop_watchers(self) -> int:
        """Cut every open watch (a fault); how many there were."""
        watchers = list(self.watchers)
        for queue in watchers:
            self._stalled.discard(queue)
            self._tell(queue, DROP)
        return len(watchers)

    def stall_watchers(self) -> int:
        """Open watches deliver nothing more (a fault) until dropped; how many there were."""
        self._stalled |= self.watchers
        return len(self.watchers)

    def compact(self) -> int:
        """Forget the change history (etcd compaction); the oldest resumable version."""
        self.events.clear()
        return self.oldest_rv()

    # ---- persistence (a stopped and started server keeps its objects) -----------------

    def save(self, path: Path) -> None:
        """Write every object, the resourceVersion counter and server-side apply's memory
        to ``path`` (atomically: a reader never finds half a file)."""
        state = {
            "resourceVersion": self.rv,
            "objects": [[group, plural, obj] for (group, plural), bucket in self.objects.items()
                        for obj in bucket.values()],
            "applied": [[list(key[0]), key[1], key[2], key[3], patch]
                        for key, patch in self._applied.items()],
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(path)

    def load(self, path: Path) -> None:
        """Replace everything with what :meth:`save` wrote; CRDs are served again first."""
        state = json.loads(path.read_text(encoding="utf-8"))
        self.objects = {}
        for group, plural, obj in state["objects"]:
            if (group, plural) == CRD_KEY:
                self.catalog.register_crd(obj)
        for group, plural, obj in state["objects"]:
            meta = obj["metadata"]
            self.objects.setdefault((group, plural), {})[
                (meta.get("namespace", ""), meta["name"])] = obj
        self._applied = {(tuple(key), ns, name, manager): patch
                         for key, ns, name, manager, patch in state["applied"]}
        self.rv = int(state["resourceVersion"])
        self.events.clear()

    # ---- writing --------------------------------------------------------------------

    def _emit(self, type_: str, rt: ResourceType, obj: Obj) -> None:
        event = Event(int(obj["metadata"]["resourceVersion"]), type_, rt.key,
                      copy.deepcopy(obj))
        self.events.append(event)
        for queue in self.watchers:
            self._tell(queue, event)

    def _stamp(self, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced:
            return
        ns_type = self.catalog.by_key(NAMESPACE_KEY)
        assert ns_type is not None
        ns = self._bucket(ns_type).get(("", namespace))
        if ns is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           details={"name": namespace, "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f"unable to create new content in namespace {namespace} "
                           "because it is being terminated")

    def create(self, rt: ResourceType, namespace: str, body: Obj, *,
               dry_run: bool = False) -> Obj:
        obj = validation.check(rt, copy.deepcopy(body))
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{rt.kind}: metadata.name or generateName is "
                           "required")
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise ApiError(400, "BadRequest",
                               f"the namespace of the object ({meta['namespace']}) does not "
                               f"match the namespace on the request ({namespace})")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        self._check_namespace(rt, namespace)
        if (namespace, name) in self._bucket(rt):
            raise ApiError(409, "AlreadyExists", f'{rt.describe()} "{name}" already exists',
                           details={"name": name, "group": rt.group, "kind": rt.plural})
        obj["kind"] = rt.kind
        obj["apiVersion"] = rt.api_version(rt.versions[0])
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion",
                  "managedFields", "selfLink"):
            meta.pop(k, None)
        if rt.status_subresource:
            obj.pop("status", None)
        self._prepare(rt, obj)
        if dry_run:
            return obj
        self._stamp(obj)
        self._bucket(rt)[(namespace, name)] = obj
        self._emit("ADDED", rt, obj)
        self._after_write(rt, obj)
        return obj

    def _prepare(self, rt: ResourceType, obj: Obj) -> None:
        """Server-set fields, checked before anything is stored: a body of the wrong
        shape is the client's error (422), not a half-written object."""
        try:
            self._defaults(rt, obj)
            for _ in workloads.children(rt, obj):
                pass
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise validation.invalid(rt, obj["metadata"].get("name"),
                                     f"a field has the wrong type ({exc})") from exc

    def _defaults(self, rt: ResourceType, obj: Obj) -> None:
        if rt.key == CRD_KEY:
            declared = self.catalog.crd_type(obj)  # validated now, served once stored
            names = obj["spec"]["names"]
            obj["status"] = {
                "acceptedNames": names, "storedVersions": [declared.versions[0]],
                "conditions": [
                    {"type": t, "status": "True", "reason": r, "message": m,
                     "lastTransitionTime": obj["metadata"].get("creationTimestamp") or now()}
                    for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                    ("Established", "InitialNamesAccepted",
                                     "the initial names have been accepted"))]}
        elif rt.key == NAMESPACE_KEY and not obj["metadata"].get("deletionTimestamp"):
            obj["status"] = {"phase": "Active"}
        elif rt.key == ("", "secrets"):
            obj["type"] = obj.get("type") or "Opaque"
            # stringData is write-only: the apiserver folds it into data
            for key, value in (obj.pop("stringData", None) or {}).items():
                obj.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
        workloads.apply_defaults(rt, obj)
        if rt.schema:
            schema_defaults(rt.schema, obj, top=True)

    def replace(self, rt: ResourceType, namespace: str, name: str, body: Obj, *,
                status: bool = False, dry_run: bool = False) -> Obj:
        old = self.get(rt, namespace, name)
        sent_rv = (body.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {rt.describe()} "{name}": the '
                           "object has been modified; please apply your changes to the "
                           "latest version and try again",
                           details={"name": name, "group": rt.group, "kind": rt.plural})
        return self._update(rt, old, body, status=status, dry_run=dry_run)

    def patch(self, rt: ResourceType, namespace: str, name: str, content_type: str,
              body: bytes, *, status: bool = False, manager: str = "",
              dry_run: bool = False) -> tuple[Obj, bool]:
        """Apply a patch; return the object and whether it was created (apply only)."""
        patch = patching.parse_body(content_type, body)
        if content_type != patching.JSON_PATCH and not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", f"a {content_type} body must be an object")
        try:
            old = self.get(rt, namespace, name)
        except ApiError:
            if content_type != patching.APPLY_PATCH or status:
                raise
            created = self.create(rt, namespace, patch, dry_run=dry_run)
            if not dry_run:
                self._applied[(rt.key, namespace, name, manager)] = patch
            return created, True
        key = (rt.key, namespace, name, manager)
        try:
            if content_type == patching.JSON_PATCH:
                new = patching.json_patch(old, patch)
            elif content_type == patching.MERGE_PATCH:
                new = patching.merge_patch(old, patch)
            elif content_type == patching.STRATEGIC_PATCH:
                new = patching.strategic_merge(old, patch)
            else:
                new = patching.server_side_apply(old, patch, self._applied.get(key))
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise validation.invalid(rt, name, f"cannot apply the {content_type} patch "
                                     f"({exc})") from exc
        sent_rv = (patch.get("metadata") or {}).get("resourceVersion") \
            if isinstance(patch, dict) else None
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'{rt.describe()} "{name}": the object has '
                           "been modified; please apply your changes to the latest version")
        updated = self._update(rt, old, new, status=status, dry_run=dry_run)
        if content_type == patching.APPLY_PATCH and not dry_run:
            self._applied[key] = patch  # only once the apply took effect
        return updated, False

    def _update(self, rt: ResourceType, old: Obj, body: Obj, *, status: bool,
                dry_run: bool) -> Obj:
        body = validation.check(rt, body)
        if status:
            # the status subresource changes status only
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new["metadata"] = {**(new.get("metadata") or {})}
            if rt.status_subresource:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        meta, old_meta = new["metadata"], old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        meta.pop("managedFields", None)
        new["kind"], new["apiVersion"] = old["kind"], old["apiVersion"]
        if _spec_part(rt, new) != _spec_part(rt, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if not status:
            self._prepare(rt, new)
        if dry_run:
            return new
        new_meta_rv = meta.get("resourceVersion")
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old  # a no-op write does not bump the resourceVersion
        meta["resourceVersion"] = new_meta_rv
        self._stamp(new)
        ns = meta.get("namespace", "")
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self._bucket(rt)[(ns, meta["name"])]
            self._emit("DELETED", rt, new)
            self._after_delete(rt, new)
            return new
        self._bucket(rt)[(ns, meta["name"])] = new
        self._emit("MODIFIED", rt, new)
        if not status:
            self._after_write(rt, new)
        return new

    def delete(self, rt: ResourceType, namespace: str, name: str, *,
               dry_run: bool = False) -> Obj:
        obj = self.get(rt, namespace, name)
        if dry_run:
            return obj
        meta = obj["metadata"]
        if meta.get("finalizers") or (rt.key == NAMESPACE_KEY and self._namespace_busy(name)):
            if not meta.get("deletionTimestamp"):
                obj = copy.deepcopy(obj)
                obj["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
                if rt.key == NAMESPACE_KEY:
                    obj["status"] = {"phase": "Terminating"}
                self._stamp(obj)
                self._bucket(rt)[(namespace, name)] = obj
                self._emit("MODIFIED", rt, obj)
                if rt.key == NAMESPACE_KEY:
                    self._empty_namespace(name)
            return obj
        del self._bucket(rt)[(namespace, name)]
        gone = copy.deepcopy(obj)
        self._stamp(gone)
        self._emit("DELETED", rt, gone)
        self._after_delete(rt, gone)
        return gone

    # ---- consequences of writes -----------------------------------------------------

    def _after_write(self, rt: ResourceType, obj: Obj) -> None:
        if rt.key == CRD_KEY:
            self.catalog.register_crd(obj)
        for child_rt_key, child in workloads.children(rt, obj):
            child_rt = self.catalog.by_key(child_rt_key)
            assert child_rt is not None
            ns, name = child["metadata"]["namespace"], child["metadata"]["name"]
            owned = [o for o in self.list(child_rt, ns, lambda o: True)
                     if _owned_by(o, obj["metadata"]["uid"])]
            for stale in owned:
                if stale["metadata"]["name"] != name:
                    self.delete(child_rt, ns, stale["metadata"]["name"])
            existing = self._bucket(child_rt).get((ns, name))
            if existing is None:
                self.create(child_rt, ns, child)
            elif existing.get("spec") != child["spec"]:
                self._update(child_rt, existing, {**existing, "spec": child["spec"]},
                             status=False, dry_run=False)

    def _after_delete(self, rt: ResourceType, obj: Obj) -> None:
        uid = obj["metadata"]["uid"]
        namespace = obj["metadata"].get("namespace", "")
        for key in [k for k in self._applied
                    if k[:3] == (rt.key, namespace, obj["metadata"]["name"])]:
            del self._applied[key]  # a later object of that name starts with no history
        for key, bucket in list(self.objects.items()):
            child_rt = self.catalog.by_key(key)
            if child_rt is None:
                continue
            for (ns, name), child in list(bucket.items()):
                if _owned_by(child, uid):
                    self.delete(child_rt, ns, name)
        if rt.key == CRD_KEY:
            gone_rt = self.catalog.unregister_crd(obj)
            if gone_rt is not None:
                for child in self.objects.pop(gone_rt.key, {}).values():
                    self._stamp(child)
                    self._emit("DELETED", gone_rt, child)
        if rt.namespaced and namespace:
            self._finish_namespace(namespace)

    def _namespace_busy(self, namespace: str) -> bool:
        return any(ns == namespace for key, bucket in self.objects.items()
                   for (ns, _) in bucket if key != NAMESPACE_KEY)

    def _empty_namespace(self, namespace: str) -> None:
        for key, bucket in list(self.objects.items()):
            rt = self.catalog.by_key(key)
            if rt is None or not rt.namespaced:
                continue
            for (ns, name) in list(bucket):
                if ns == namespace and (ns, name) in bucket:
                    self.delete(rt, ns, name)
        self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        ns_type = self.catalog.by_key(NAMESPACE_KEY)
        assert ns_type is not None
        ns = self._bucket(ns_type).get(("", namespace))
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if self._namespace_busy(namespace) or ns["metadata"].get("finalizers"):
            return
        del self._bucket(ns_type)[("", namespace)]
        gone = copy.deepcopy(ns)
        self._stamp(gone)
        self._emit("DELETED", ns_type, gone)


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid
               for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def schema_defaults(schema: Obj, value: Any, *, top: bool = False) -> None:
    """A structural schema's ``default`` values for the fields ``value`` lacks, as the real
    API server sets them on every write (a CRD with ``status: {default: …}`` gives a new
    object that status); metadata is the server's own and never defaulted."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if top and key in ("metadata", "apiVersion", "kind"):
                continue
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                schema_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in (schema.get("properties") or {}):
                    schema_defaults(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            schema_defaults(schema["items"], item)

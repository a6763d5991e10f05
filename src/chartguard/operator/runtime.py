"""The running operator: caches, the work queue, the workers, and the glue to reconcile/.

Watch events (kopf handlers in :mod:`.handlers`) update the caches and queue keys; workers take
keys off the queue and run one reconcile each in a thread (registry I/O), then write what
changed as one status patch, post the Events, and queue the key again after ``spec.interval``
(plus jitter), after a backoff on failure, or never while stalled or suspended.

Marks on user objects: only the finalizer ``finalizers.fluxcd.io`` (Flux's own), added on the
first reconcile and removed on deletion. Everything else the operator knows lives in memory and
is rebuilt from the objects' status after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from chartguard.api import HelmChart, HelmRepository, InvalidSpecError
from chartguard.api import conditions as c
from chartguard.api.meta import SOURCE_GROUP
from chartguard.api.status import HelmChartStatus, HelmRepositoryStatus
from chartguard.operator.caches import Index, Objects, Secrets, Sources
from chartguard.operator.config import OperatorConfig
from chartguard.operator.kube import Kube, KubeError
from chartguard.operator.workqueue import WorkQueue
from chartguard.reconcile.helmchart import ChartEnv, ChartResult, Verified, reconcile_helmchart
from chartguard.reconcile.helmrepository import reconcile_helmrepository
from chartguard.reconcile.outcome import INVALID_SPEC, invalid_spec_conditions, safe
from chartguard.reconcile.seams import Event, utcnow
from chartguard.reconcile.shared import RegistryClients, Verifiers
from chartguard.store import ArtifactStore
from chartguard.verify import VerifiedCache

FINALIZER = "finalizers.fluxcd.io"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
CHARTS, REPOSITORIES = "helmcharts", "helmrepositories"
_MAX_BACKOFF = 300.0

_log = logging.getLogger("chartguard")

Key = tuple[str, str, str]  # (plural, namespace, name)


@dataclass
class _Memory:
    """What the operator remembers of one object between reconciles (never written out)."""

    generation: int = -1  # the generation last reconciled
    requested_at: str | None = None  # the requestedAt annotation last handled
    verified: Verified | None = None
    failures: int = 0


class Runtime:
    """Everything shared by handlers and workers, built once at start-up."""

    def __init__(self, config: OperatorConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.charts = Objects()
        self.repositories = Objects()
        self.secrets = Secrets(kube)
        self.secret_users: Index[Key] = Index()
        self.repository_users: Index[Key] = Index()
        self.store = ArtifactStore(config.artifact_dir)
        self.store.ensure()
        self.registries = RegistryClients(timeout=config.registry_timeout)
        base = config.artifact_url_base or f"file://{Path(config.artifact_dir).resolve()}"
        self.env = ChartEnv(
            secrets=self.secrets, repositories=Sources(self.repositories, kube, REPOSITORIES),
            registries=self.registries,
            verifiers=Verifiers(), verified=VerifiedCache(4096), store=self.store,
            require_keyless_identity=config.require_keyless_identity, artifact_url_base=base)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.memory: dict[Key, _Memory] = {}
        self._memory_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max(1, config.concurrency),
                                            thread_name_prefix="reconcile")
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        for n in range(max(1, self.config.concurrency)):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"worker-{n}"))
        self._tasks.append(asyncio.create_task(self._collector(), name="store-gc"))

    async def stop(self) -> None:
        self.queue.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # in-flight registry calls are bounded by their timeouts; do not wait for them
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _mem(self, key: Key) -> _Memory:
        with self._memory_lock:
            return self.memory.setdefault(key, _Memory())

    # -- events (called in the event loop) ---------------------------------------------------

    def observe_chart(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self._observe(CHARTS, self.charts, event_type, body)

    def observe_repository(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = self._observe(REPOSITORIES, self.repositories, event_type, body)
        if key is None:
            return
        meta = body.get("metadata", {})
        known = self._mem(key)
        # a new, changed or deleted repository: its charts look again now
        if event_type == "DELETED" or known.generation != meta.get("generation"):
            for user in self.repository_users.users((key[1], key[2])):
                self.queue.add(user)

    def observe_secret(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        ref = self.secrets.observe(body, deleted=event_type == "DELETED")
        if event_type is None:
            return  # the initial listing: nothing changed
        for user in self.secret_users.users(ref):
            self.queue.add(user)

    def _observe(self, plural: str, cache: Objects, event_type: str | None,
                 body: Mapping[str, Any]) -> Key | None:
        meta = body.get("metadata", {})
        key: Key = (plural, str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            cache.drop((key[1], key[2]))
            self._forget(key)
            return key
        cache.put(body)
        known = self._mem(key)
        annotations = meta.get("annotations") or {}
        if (meta.get("deletionTimestamp") or known.generation != meta.get("generation")
                or known.requested_at != annotations.get(REQUESTED_AT)):
            self.queue.add(key)
        return key

    def _forget(self, key: Key) -> None:
        self.queue.forget(key)
        self.secret_users.drop(key)
        self.repository_users.drop(key)
        with self._memory_lock:
            self.memory.pop(key, None)

    # -- workers ---------------------------------------------------------------------------

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            try:
                delay = await loop.run_in_executor(self._executor, self.reconcile, key)
            except Exception:  # a bug: log it, keep the worker, retry later
                _log.exception("reconciling %s %s/%s failed unexpectedly", *key)
                delay = _MAX_BACKOFF
            finally:
                self.queue.done(key)
            if delay is not None:
                self.queue.add_after(key, delay)

    def reconcile(self, key: Key) -> float | None:
        """Reconcile one object (in a worker thread); the delay until the next time."""
        plural, namespace, name = key
        cache = self.charts if plural == CHARTS else self.repositories
        body = cache.get(namespace, name)
        if body is None:
            return None
        meta = body.get("metadata", {})
        if meta.get("deletionTimestamp"):
            self._finalize(key, body)
            return None
        memory = self._mem(key)
        annotations = meta.get("annotations") or {}
        requested = annotations.get(REQUESTED_AT)
        memory.generation = meta.get("generation", 0)
        memory.requested_at = requested
        if (body.get("spec") or {}).get("suspend") is True:
            _log.info("%s %s/%s is suspended: not reconciled", _kind(plural), namespace, name)
            return None
        try:
            body = self._ensure_finalizer(key, body)
        except KubeError as err:
            _log.warning("%s %s/%s: cannot add finalizer: %s", _kind(plural), namespace, name,
                         safe(err))
            return self._backoff(memory, 5.0)
        if plural == CHARTS:
            return self._reconcile_chart(key, body, memory, requested or "")
        return self._reconcile_repository(key, body, memory, requested or "")

    def _reconcile_chart(self, key: Key, body: dict[str, Any], memory: _Memory,
                         requested: str) -> float | None:
        old = HelmChartStatus.from_status(body.get("status"))
        try:
            chart = HelmChart.from_object(body)
        except InvalidSpecError as err:
            self._write_invalid(key, body, old.conditions, str(err), requested)
            return None
        result = reconcile_helmchart(chart, old, self.env, verified_before=memory.verified,
                                     requested_at=requested)
        self.secret_users.update(key, result.secrets)
        self.repository_users.update(key, [result.repository] if result.repository else [])
        memory.verified = result.verified
        self._write(key, body, result.status.to_status(), result.events)
        self._log_chart(chart, result)
        if result.failure is not None:
            return None if result.failure.stalled else self._backoff(memory, _seconds(
                result.requeue_after))
        memory.failures = 0
        return self._jitter(result.requeue_after)

    def _reconcile_repository(self, key: Key, body: dict[str, Any], memory: _Memory,
                              requested: str) -> float | None:
        old = HelmRepositoryStatus.from_status(body.get("status"))
        try:
            repo = HelmRepository.from_object(body)
        except InvalidSpecError as err:
            self._write_invalid(key, body, old.conditions, str(err), requested)
            return None
        result = reconcile_helmrepository(repo, old, self.secrets, now=utcnow(),
                                          requested_at=requested)
        self.secret_users.update(key, result.secrets)
        events: tuple[Event, ...] = ()
        if result.failure is not None:
            events = (Event("Warning", result.failure.reason, result.failure.message),)
            _log.warning("%s: %s", repo.subject, result.failure.message)
        self._write(key, body, result.status.to_status(), events)
        if result.failure is not None and not result.failure.stalled:
            return self._backoff(memory, _seconds(result.requeue_after))
        memory.failures = 0
        return self._jitter(result.requeue_after)

    # -- writing ---------------------------------------------------------------------------

    def _write(self, key: Key, body: dict[str, Any], status: Mapping[str, Any],
               events: tuple[Event, ...]) -> None:
        plural, namespace, name = key
        patch = status_patch(body.get("status") or {}, status)
        if patch:
            try:
                fresh = self.kube.patch_status(SOURCE_GROUP, "v1", plural, namespace, name,
                                               patch)
            except KubeError as err:
                _log.warning("%s %s/%s: status not written: %s", _kind(plural), namespace,
                             name, safe(err))
            else:
                (self.charts if plural == CHARTS else self.repositories).put(fresh)
        for event in events:
            try:
                self.kube.post_event(body, event.type, event.reason, event.message,
                                     event.annotations)
            except KubeError as err:
                _log.warning("%s %s/%s: event %s not posted: %s", _kind(plural), namespace,
                             name, event.reason, safe(err))

    def _write_invalid(self, key: Key, body: dict[str, Any], conditions: Any, message: str,
                       requested: str) -> None:
        gen = body.get("metadata", {}).get("generation", 0)
        text, conds = invalid_spec_conditions(conditions, message, generation=gen, now=utcnow())
        status: dict[str, Any] = {**(body.get("status") or {}), "conditions": conds,
                                  "observedGeneration": gen}
        if requested:
            status["lastHandledReconcileAt"] = requested
        _log.warning("%s %s/%s: %s", _kind(key[0]), key[1], key[2], text)
        self._write(key, body, status, (Event("Warning", INVALID_SPEC, text),))

    def _ensure_finalizer(self, key: Key, body: dict[str, Any]) -> dict[str, Any]:
        finalizers = list(body.get("metadata", {}).get("finalizers") or [])
        if FINALIZER in finalizers:
            return body
        ops: list[dict[str, Any]] = (
            [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
             {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}]
            if finalizers else
            [{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
        fresh = self.kube.patch_finalizers(SOURCE_GROUP, "v1", key[0], key[1], key[2], ops)
        (self.charts if key[0] == CHARTS else self.repositories).put(fresh)
        return fresh

    def _finalize(self, key: Key, body: dict[str, Any]) -> None:
        """The object is being deleted: drop what we know, then our (or Flux's) finalizer."""
        self._forget(key)
        finalizers = list(body.get("metadata", {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        ops = [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
               {"op": "replace", "path": "/metadata/finalizers",
                "value": [f for f in finalizers if f != FINALIZER]}]
        try:
            self.kube.patch_finalizers(SOURCE_GROUP, "v1", key[0], key[1], key[2], ops)
        except KubeError as err:
            if err.status != 404:
                _log.warning("%s %s/%s: finalizer not removed: %s", _kind(key[0]), key[1],
                             key[2], safe(err))
        else:
            _log.info("%s %s/%s deleted", _kind(key[0]), key[1], key[2])

    # -- timing ----------------------------------------------------------------------------

    def _jitter(self, interval: timedelta | None) -> float | None:
        if interval is None:
            return None
        seconds = interval.total_seconds()
        return seconds * (1 + random.uniform(0, self.config.interval_jitter))  # noqa: S311

    def _backoff(self, memory: _Memory, ceiling: float) -> float:
        memory.failures += 1
        delay = min(2.0 ** (memory.failures - 1), _MAX_BACKOFF, max(ceiling, 1.0))
        return delay * (1 + random.uniform(0, 0.1))  # noqa: S311

    # -- store garbage collection ----------------------------------------------------------

    async def _collector(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.gc_interval)
            await loop.run_in_executor(self._executor, self.collect)

    def collect(self) -> list[str]:
        """Remove store files no HelmChart's status refers to; return their digests."""
        referenced = set()
        for body in self.charts.values():
            artifact = (body.get("status") or {}).get("artifact") or {}
            if isinstance(artifact.get("digest"), str):
                referenced.add(artifact["digest"])
        removed = self.store.collect(referenced)
        for digest in removed:
            _log.info("artifact %s removed from the store: no HelmChart refers to it", digest)
        return removed

    # -- logs ------------------------------------------------------------------------------

    def _log_chart(self, chart: HelmChart, result: ChartResult) -> None:
        if result.failure is not None:
            _log.warning("%s: %s", chart.subject, result.failure.message)
            return
        ready = c.get_condition(result.status.conditions, c.READY) or {}
        level = logging.DEBUG if result.actions == ("unchanged",) else logging.INFO
        artifact = result.status.artifact
        _log.log(level, "%s: %s (%s)", chart.subject, ready.get("message", ""),
                 artifact.revision if artifact else "no artifact")


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch turning ``old`` into ``new`` at the top level of status (None deletes).

    Keys chartguard does not write (another writer's) are left alone.
    """
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    for key in _STATUS_KEYS:
        if key in old and key not in new:
            patch[key] = None
    return patch


_STATUS_KEYS = ("observedGeneration", "observedSourceArtifactRevision", "observedChartName",
                "observedValuesFiles", "conditions", "url", "artifact", "lastHandledReconcileAt")


def _seconds(interval: timedelta | None) -> float:
    return interval.total_seconds() if interval is not None else _MAX_BACKOFF


def _kind(plural: str) -> str:
    return "HelmChart" if plural == CHARTS else "HelmRepository"

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
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from chartguard import metrics
from chartguard.api import HelmChart, HelmRelease, HelmRepository, InvalidSpecError
from chartguard.api import conditions as c
from chartguard.api.meta import HELM_GROUP, SOURCE_GROUP
from chartguard.api.status import HelmChartStatus, HelmReleaseStatus, HelmRepositoryStatus
from chartguard.helm.runner import Helm
from chartguard.operator.caches import ConfigMaps, Index, Objects, Secrets, Sources
from chartguard.operator.cluster import KubeCluster
from chartguard.operator.clusters import KubeRemoteClusters, KubeTokens
from chartguard.operator.config import OperatorConfig
from chartguard.operator.kube import RETRIABLE, Kube, KubeError
from chartguard.operator.releases import (
    KubeCharts,
    KubeCRDs,
    KubeLiveObjects,
    KubeReleaseStorage,
    ReleaseStorageError,
)
from chartguard.operator.workqueue import WorkQueue
from chartguard.reconcile.helmchart import ChartEnv, ChartResult, Verified, reconcile_helmchart
from chartguard.reconcile.helmrepository import reconcile_helmrepository
from chartguard.reconcile.http_source import HTTPSources
from chartguard.reconcile.kubeconfig import KubeConfigOptions
from chartguard.reconcile.outcome import (
    INVALID_SPEC,
    RetryAfterIntervalError,
    WaitingError,
    invalid_spec_conditions,
    safe,
)
from chartguard.reconcile.release_flow import (
    ReleaseEnv,
    ReleaseOutcome,
    finalize_helmrelease,
    reconcile_helmrelease,
)
from chartguard.reconcile.release_prepare import PrepareEnv
from chartguard.reconcile.seams import Event, utcnow
from chartguard.reconcile.shared import RegistryClients, Verifiers
from chartguard.store import ArtifactStore
from chartguard.verify import TrustRoot, VerifiedCache

FINALIZER = "finalizers.fluxcd.io"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"
CHARTS, REPOSITORIES, RELEASES = "helmcharts", "helmrepositories", "helmreleases"
#: (group, version) each plural is read and written at
GROUPS = {CHARTS: (SOURCE_GROUP, "v1"), REPOSITORIES: (SOURCE_GROUP, "v1"),
          RELEASES: (HELM_GROUP, "v2")}
KINDS = {CHARTS: "HelmChart", REPOSITORIES: "HelmRepository", RELEASES: "HelmRelease"}
_MAX_BACKOFF = 300.0
#: the longest wait before a pass the Kubernetes API failed for a while (no answer, 5xx,
#: 429, 409) is tried again: an outage is noticed over within this once it ends. A refusal
#: that lasts (403 from RBAC, 422) backs off up to _MAX_BACKOFF instead.
_API_RETRY = 15.0
#: status writes redone on a fresh read after a 409 Conflict, before the pass is retried
_CONFLICT_RETRIES = 3

_log = logging.getLogger("chartguard")

Key = tuple[str, str, str]  # (plural, namespace, name)
#: what a reconcile pass ended with (``chartguard_reconcile_duration_seconds{result}``)
SUCCESS, FAILURE, STALLED, SUSPENDED = "success", "failure", "stalled", "suspended"
WAITING = "waiting"  # a release's dependency or chart is not Ready yet
_Pass = tuple[float | None, str]  # the delay until the next pass, the pass's result


@dataclass
class _Memory:
    """What the operator remembers of one object between reconciles (never written out)."""

    generation: int = -1  # the generation last reconciled
    requested_at: str | None = None  # the requestedAt annotation last handled
    verified: Verified | None = None
    failures: int = 0
    #: what a change of this object means to its users (a chart's artifact and Ready, a
    #: release's Ready), as last seen in a watch event
    seen: tuple[Any, ...] | None = None


class Runtime:
    """Everything shared by handlers and workers, built once at start-up."""

    def __init__(self, config: OperatorConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.charts = Objects()
        self.repositories = Objects()
        self.releases = Objects()
        self.secrets = Secrets(kube)
        self.configmaps = ConfigMaps(kube)
        self.secret_users: Index[Key] = Index()
        self.configmap_users: Index[Key] = Index()
        self.repository_users: Index[Key] = Index()
        self.chart_users: Index[Key] = Index()  # HelmChart -> HelmReleases installing it
        self.dependency_users: Index[Key] = Index()  # HelmRelease -> its dependents
        self.store = ArtifactStore(config.artifact_dir)
        self.store.ensure()
        leftovers = self.store.remove_leftovers()
        if leftovers:
            _log.info("artifact store: removed %d temporary file(s) a stopped operator left",
                      len(leftovers))
        self.registries = RegistryClients(timeout=config.registry_timeout,
                                          deadline=config.registry_deadline)
        # HTTP repositories' indexes: the same directory, files named <digest>.yaml
        self.http = HTTPSources(ArtifactStore(config.artifact_dir, suffix=".yaml"))
        base = config.artifact_url_base or f"file://{Path(config.artifact_dir).resolve()}"
        self.artifact_url_base = base
        self.env = ChartEnv(
            secrets=self.secrets, repositories=Sources(self.repositories, kube, REPOSITORIES),
            registries=self.registries,
            verifiers=Verifiers(), verified=VerifiedCache(4096), store=self.store,
            require_keyless_identity=config.require_keyless_identity, artifact_url_base=base,
            default_trust_root=_trust_root(config.trusted_root), http=self.http)
        self.release_storage = KubeReleaseStorage(kube)
        self._helm_home = config.helm_home or Path(tempfile.mkdtemp(prefix="chartguard-helm-"))
        self.helm = Helm(binary=config.helm_binary, home=self._helm_home,
                         storage=self.release_storage,
                         max_processes=max(1, config.release_concurrency),
                         default_service_account=config.release_service_account,
                         live=KubeLiveObjects(kube), crds=KubeCRDs(kube),
                         kubectl=config.kubectl_binary)
        if self.helm.leftovers_removed:
            _log.info("helm: removed %d work directory(ies) a stopped operator left",
                      self.helm.leftovers_removed)
        self.release_env = ReleaseEnv(
            helm=self.helm, storage=self.release_storage,
            clusters=KubeRemoteClusters(self.helm), tokens=KubeTokens(kube),
            kubeconfig_options=KubeConfigOptions(
                insecure_exec=config.insecure_kubeconfig_exec,
                insecure_tls=config.insecure_kubeconfig_tls),
            prepare=PrepareEnv(
                charts=Sources(self.charts, kube, CHARTS),
                chart_writer=KubeCharts(kube, self.charts),
                releases=Sources(self.releases, kube, RELEASES, group=HELM_GROUP, version="v2"),
                secrets=self.secrets, configmaps=self.configmaps, store=self.store,
                verified=self.chart_verified),
            cluster=KubeCluster(kube))
        # sources and releases have queues and workers of their own: a release's helm run
        # (minutes with --wait) never holds up a chart's verification
        self.queue: WorkQueue[Key] = WorkQueue()
        self.release_queue: WorkQueue[Key] = WorkQueue()
        self.memory: dict[Key, _Memory] = {}
        self._memory_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max(1, config.concurrency),
                                            thread_name_prefix="reconcile")
        self._release_executor = ThreadPoolExecutor(
            max_workers=max(1, config.release_concurrency), thread_name_prefix="release")
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        #: set while this replica reconciles: always when standalone; with peering, only
        #: while it leads (:mod:`.peering` sets and clears it)
        self.active = asyncio.Event()
        if not config.peering:
            self.active.set()

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        for n in range(max(1, self.config.concurrency)):
            self._tasks.append(asyncio.create_task(
                self._worker(self.queue, self._executor), name=f"worker-{n}"))
        for n in range(max(1, self.config.release_concurrency)):
            self._tasks.append(asyncio.create_task(
                self._worker(self.release_queue, self._release_executor),
                name=f"release-worker-{n}"))
        self._tasks.append(asyncio.create_task(self._collector(), name="store-gc"))
        metrics.sample_objects(self.ready_counts)
        metrics.sample_store(self.store.usage)

    async def stop(self) -> None:
        metrics.sample_objects(None)
        metrics.sample_store(None)
        self.queue.close()
        self.release_queue.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # in-flight registry calls are bounded by their timeouts; do not wait for them
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._release_executor.shutdown(wait=False, cancel_futures=True)

    def ready_counts(self) -> list[tuple[str, str, int]]:
        """(kind, status of Ready, how many) of the objects watched: ``chartguard_objects``."""
        counts: dict[tuple[str, str], int] = {}
        for plural, kind in KINDS.items():
            for body in self._cache(plural).values():
                ready = c.get_condition((body.get("status") or {}).get("conditions") or [],
                                        c.READY) or {}
                status = ready.get("status")
                key = (kind, status if status in (c.TRUE, c.FALSE) else c.UNKNOWN)
                counts[key] = counts.get(key, 0) + 1
        return [(kind, status, count) for (kind, status), count in counts.items()]

    def pause(self, reason: str) -> None:
        """Another replica reconciles: forget the queues and what was learnt, as if stopped
        (reconciles in flight finish). kopf's watches are paused too; when they resume they
        list everything again, and that re-queues every object."""
        self.active.clear()
        self.queue.clear()
        self.release_queue.clear()
        with self._memory_lock:
            self.memory.clear()

    def resume(self) -> None:
        self.active.set()

    def _mem(self, key: Key) -> _Memory:
        with self._memory_lock:
            return self.memory.setdefault(key, _Memory())

    # -- events (called in the event loop) ---------------------------------------------------

    def queue_of(self, key: Key) -> WorkQueue[Key]:
        return self.release_queue if key[0] == RELEASES else self.queue

    def chart_verified(self, namespace: str, name: str) -> str | None:
        """The manifest digest this process last verified for HelmChart ``namespace/name``
        (or resolved, when the chart has no ``verify``); None before it has."""
        with self._memory_lock:
            memory = self.memory.get((CHARTS, namespace, name))
        verified = memory.verified if memory is not None else None
        if verified is None:
            return None
        # the file a release gets is the one this process bound to that digest: a status whose
        # artifact names another file (not written by this process) is not taken
        body = self.charts.get(namespace, name) or {}
        artifact = (body.get("status") or {}).get("artifact") or {}
        return verified.digest if artifact.get("digest") == verified.artifact else None

    def observe_chart(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = self._observe(CHARTS, self.charts, event_type, body)
        status = body.get("status") or {}
        artifact = status.get("artifact") or {}
        ready = c.get_condition(status.get("conditions") or [], c.READY) or {}
        self._notify_users(key, self.chart_users, event_type, (
            artifact.get("revision"), artifact.get("digest"), status.get("observedGeneration"),
            ready.get("status"), ready.get("reason"), ready.get("message")))

    def observe_release(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = self._observe(RELEASES, self.releases, event_type, body)
        status = body.get("status") or {}
        ready = c.get_condition(status.get("conditions") or [], c.READY) or {}
        self._notify_users(key, self.dependency_users, event_type, (
            ready.get("status"), ready.get("observedGeneration"),
            body.get("metadata", {}).get("generation")))

    def observe_configmap(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        ref, changed = self.configmaps.observe(body, deleted=event_type == "DELETED",
                                          listing=event_type is None)
        if event_type is None and not changed:
            return  # the initial listing, or a re-listing that found it unchanged
        for user in self.configmap_users.users(ref):
            self.queue_of(user).add(user)

    def _notify_users(self, key: Key | None, users: Index[Key], event_type: str | None,
                      seen: tuple[Any, ...]) -> None:
        """Queue the users of ``key`` when what they depend on changed (or it went away)."""
        if key is None:
            return
        if event_type == "DELETED":
            changed = True
        else:
            known = self._mem(key)
            changed, known.seen = known.seen is not None and known.seen != seen, seen
        if changed:
            for user in users.users((key[1], key[2])):
                self.queue_of(user).add(user)

    def observe_repository(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = self._observe(REPOSITORIES, self.repositories, event_type, body)
        if key is None:
            return
        meta = body.get("metadata", {})
        known = self._mem(key)
        # an HTTP repository's new index (its artifact) matters to its charts as a new spec does
        artifact = (body.get("status") or {}).get("artifact") or {}
        seen = (artifact.get("revision"), artifact.get("digest"),
                artifact.get("lastUpdateTime"))  # stored again (e.g. after a restart)
        new_index, known.seen = known.seen is not None and known.seen != seen, seen
        # a new, changed or deleted repository: its charts look again now
        if (event_type == "DELETED" or known.generation != meta.get("generation")
                or new_index):
            for user in self.repository_users.users((key[1], key[2])):
                self.queue.add(user)

    def observe_secret(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        ref, changed = self.secrets.observe(body, deleted=event_type == "DELETED",
                                          listing=event_type is None)
        if event_type is None and not changed:
            return  # the initial listing, or a re-listing that found it unchanged
        for user in self.secret_users.users(ref):
            # a release on the sources' queue could run beside its own queue's worker
            self.queue_of(user).add(user)

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
            self.queue_of(key).add(key)
        return key

    def _forget(self, key: Key) -> None:
        metrics.forget(_kind(key[0]), key[1], key[2])
        self.queue_of(key).forget(key)
        self.secret_users.drop(key)
        self.configmap_users.drop(key)
        self.repository_users.drop(key)
        self.chart_users.drop(key)
        self.dependency_users.drop(key)
        if key[0] == REPOSITORIES:
            self.http.forget((key[1], key[2]))
        with self._memory_lock:
            self.memory.pop(key, None)

    # -- workers ---------------------------------------------------------------------------

    async def _worker(self, queue: WorkQueue[Key], executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.active.wait()
            key = await queue.get()
            if not self.active.is_set():  # paused while waiting: the re-listing brings it back
                queue.done(key)
                continue
            try:
                delay = await loop.run_in_executor(executor, self.reconcile, key)
            except Exception:  # a bug: log it, keep the worker, retry later
                _log.exception("reconciling %s %s/%s failed unexpectedly", *key)
                delay = _MAX_BACKOFF
            finally:
                queue.done(key)
            if delay is not None:
                queue.add_after(key, delay)

    def reconcile(self, key: Key) -> float | None:
        """Reconcile one object (in a worker thread); the delay until the next time."""
        started = time.monotonic()
        result: str | None = FAILURE  # unless _reconcile returns
        try:
            try:
                delay, result = self._reconcile(key)
            except (KubeError, ReleaseStorageError) as err:
                # the API failed beyond the client's own retries (an outage, a long burst):
                # nothing was decided on what could not be read; try again after a backoff
                delay = self._backoff(self._mem(key), _ceiling(err))
                _log.warning("%s %s/%s: the Kubernetes API failed: %s; reconciling again in "
                             "%.1fs", _kind(key[0]), key[1], key[2], safe(err), delay)
        finally:
            if result is not None:
                body = self._cache(key[0]).get(key[1], key[2])
                # an object let go (finalizer removed) has no series any more, as in Flux
                gone = result == SUCCESS and (
                    body is None or bool(body.get("metadata", {}).get("deletionTimestamp")))
                metrics.reconciled(_kind(key[0]), key[1], key[2], result,
                                   time.monotonic() - started, gone=gone)
        return delay

    def _reconcile(self, key: Key) -> tuple[float | None, str | None]:
        """The delay until the next time and the pass's result (None: nothing to do)."""
        plural, namespace, name = key
        body = self._cache(plural).get(namespace, name)
        if body is None:
            return None, None
        meta = body.get("metadata", {})
        if meta.get("deletionTimestamp"):
            if plural == RELEASES:
                return self._finalize_release(key, body)
            self._finalize(key, body)
            return None, SUCCESS
        memory = self._mem(key)
        annotations = meta.get("annotations") or {}
        requested = annotations.get(REQUESTED_AT)
        memory.generation = meta.get("generation", 0)
        memory.requested_at = requested
        if (body.get("spec") or {}).get("suspend") is True:
            _log.info("%s %s/%s is suspended: not reconciled", _kind(plural), namespace, name)
            return None, SUSPENDED
        try:
            body = self._ensure_finalizer(key, body)
        except KubeError as err:
            _log.warning("%s %s/%s: cannot add finalizer: %s", _kind(plural), namespace, name,
                         safe(err))
            return self._backoff(memory, 5.0), FAILURE
        if plural == CHARTS:
            return self._reconcile_chart(key, body, memory, requested or "")
        if plural == RELEASES:
            return self._reconcile_release(key, body, memory, requested or "")
        return self._reconcile_repository(key, body, memory, requested or "")

    def _cache(self, plural: str) -> Objects:
        return {CHARTS: self.charts, REPOSITORIES: self.repositories,
                RELEASES: self.releases}[plural]

    def _reconcile_chart(self, key: Key, body: dict[str, Any], memory: _Memory,
                         requested: str) -> _Pass:
        old = HelmChartStatus.from_status(body.get("status"))
        try:
            chart = HelmChart.from_object(body)
        except InvalidSpecError as err:
            self._write_invalid(key, body, old.conditions, str(err), requested)
            return None, STALLED
        result = reconcile_helmchart(chart, old, self.env, verified_before=memory.verified,
                                     requested_at=requested)
        self.secret_users.update(key, result.secrets)
        self.repository_users.update(key, [result.repository] if result.repository else [])
        memory.verified = result.verified
        refused = self._write(key, body, result.status.to_status(), result.events)
        self._log_chart(chart, result)
        if refused is not None:
            return self._backoff(memory, _ceiling(refused)), FAILURE
        if result.failure is not None:
            if result.failure.stalled:
                return None, STALLED
            return self._backoff(memory, _seconds(result.requeue_after),
                                 result.failure.retry_after), FAILURE
        memory.failures = 0
        return self._jitter(result.requeue_after), SUCCESS

    def _reconcile_repository(self, key: Key, body: dict[str, Any], memory: _Memory,
                              requested: str) -> _Pass:
        old = HelmRepositoryStatus.from_status(body.get("status"))
        try:
            repo = HelmRepository.from_object(body)
        except InvalidSpecError as err:
            self._write_invalid(key, body, old.conditions, str(err), requested)
            return None, STALLED
        result = reconcile_helmrepository(repo, old, self.secrets, now=utcnow(),
                                          requested_at=requested, http=self.http,
                                          artifact_url_base=self.artifact_url_base)
        self.secret_users.update(key, result.secrets)
        for note in result.notes:
            _log.info("%s: %s", repo.subject, note)
        events: tuple[Event, ...] = result.events
        if result.failure is not None:
            if not any(e.type == "Warning" for e in events):
                events = (*events, Event("Warning", result.failure.reason,
                                         result.failure.message))
            _log.warning("%s: %s", repo.subject, result.failure.message)
        elif result.actions:
            artifact = result.status.artifact
            _log.log(logging.DEBUG if result.actions != ("parsed",) else logging.INFO,
                     "%s: index %s (%s)", repo.subject, result.actions[0],
                     artifact.revision if artifact else "no artifact")
        refused = self._write(key, body, result.status.to_status(), events)
        if refused is not None:
            return self._backoff(memory, _ceiling(refused)), FAILURE
        if result.failure is not None and not result.failure.stalled:
            return self._backoff(memory, _seconds(result.requeue_after)), FAILURE
        memory.failures = 0
        return self._jitter(result.requeue_after), STALLED if result.failure else SUCCESS

    def _reconcile_release(self, key: Key, body: dict[str, Any], memory: _Memory,
                           requested: str) -> _Pass:
        old = HelmReleaseStatus.from_status(body.get("status"))
        try:
            release = HelmRelease.from_object(body)
        except InvalidSpecError as err:
            self._write_invalid(key, body, old.conditions, str(err), requested)
            return None, STALLED
        annotations = body.get("metadata", {}).get("annotations") or {}

        def progress(status: HelmReleaseStatus) -> None:
            # written before each helm run: a long install shows Reconciling meanwhile
            self._write(key, self.releases.get(key[1], key[2]) or body, status.to_status(), ())

        result = reconcile_helmrelease(
            release, old, self.release_env, requested_at=requested,
            force=_handle(annotations, FORCE_AT, requested, old.last_handled_force_at),
            reset=_handle(annotations, RESET_AT, requested, old.last_handled_reset_at),
            on_progress=progress)
        self._index_release(key, result)
        refused = self._write(key, self.releases.get(key[1], key[2]) or body,
                              result.status.to_status(), result.events)
        self._log_release(release, result)
        if refused is not None:
            return self._backoff(memory, _ceiling(refused)), FAILURE
        if result.failure is not None:
            if result.requeue_after is None:  # stalled: only a change of the spec helps
                return None, STALLED
            if isinstance(result.failure, RetryAfterIntervalError):
                # RetryOnFailure: at the strategy's retryInterval, as Flux, not a backoff
                memory.failures = 0
                return self._jitter(result.requeue_after), FAILURE
            return self._backoff(memory, _seconds(result.requeue_after)), (
                WAITING if isinstance(result.failure, WaitingError) else FAILURE)
        memory.failures = 0
        return self._jitter(result.requeue_after), SUCCESS

    def _index_release(self, key: Key, result: ReleaseOutcome) -> None:
        self.secret_users.update(key, result.secrets)
        self.configmap_users.update(key, result.configmaps)
        self.chart_users.update(key, result.charts)
        self.dependency_users.update(key, result.dependencies)

    def _finalize_release(self, key: Key, body: dict[str, Any]) -> _Pass:
        """Uninstall (unless suspended, as helm-controller), delete the owned HelmChart, then
        let the object go; a failure keeps the finalizer and is retried."""
        finalizers = list(body.get("metadata", {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            self._forget(key)
            return None, SUCCESS
        try:
            release = HelmRelease.from_object(body)
        except InvalidSpecError:
            release = None  # nothing chartguard could have installed from it
        if release is not None and not release.spec.suspend:
            old = HelmReleaseStatus.from_status(body.get("status"))
            result = finalize_helmrelease(release, old, self.release_env)
            if result.failure is not None:
                self._write(key, body, result.status.to_status(), result.events)
                _log.warning("%s: %s", release.subject, result.failure.message)
                return self._backoff(self._mem(key), 30.0), FAILURE
            for event in result.events:
                self._post(key, body, event)
        self._finalize(key, body)
        return None, SUCCESS

    # -- writing ---------------------------------------------------------------------------

    def _write(self, key: Key, body: dict[str, Any], status: Mapping[str, Any],
               events: tuple[Event, ...]) -> KubeError | None:
        """Write ``status`` (what differs from ``body``'s) and post ``events``; the error
        when the status could not be written (the caller tries the pass again later)."""
        refused = self._patch_status(key, body, status)
        for event in events:
            self._post(key, body, event)
        return refused

    def _patch_status(self, key: Key, body: Mapping[str, Any],
                      status: Mapping[str, Any]) -> KubeError | None:
        """Merge-patch the keys of ``status`` that differ from the object's. On a 409
        Conflict the object is read again and the patch worked out anew against what is
        stored now, sent only if the object is still at the version read: another writer's
        change is never overwritten blindly."""
        plural, namespace, name = key
        current, version = body, None
        for attempt in range(_CONFLICT_RETRIES + 1):
            patch = status_patch(current.get("status") or {}, status)
            if not patch:
                return None
            try:
                fresh = self.kube.patch_status(*GROUPS[plural], plural, namespace, name, patch,
                                               resource_version=version)
            except KubeError as err:
                if err.status != 409 or attempt == _CONFLICT_RETRIES:
                    _log.warning("%s %s/%s: status not written: %s", _kind(plural), namespace,
                                 name, safe(err))
                    return err
                _log.info("%s %s/%s: status write conflicted (409 Conflict): writing it again "
                          "on a fresh read", _kind(plural), namespace, name)
                try:
                    reread = self.kube.get_custom(*GROUPS[plural], plural, namespace, name)
                except KubeError as read_err:
                    _log.warning("%s %s/%s: status not written: %s", _kind(plural),
                                 namespace, name, safe(read_err))
                    return read_err
                if reread is None:
                    return None  # deleted meanwhile: no status to write
                self._cache(plural).put(reread)
                current = reread
                version = str(reread.get("metadata", {}).get("resourceVersion") or "") or None
                continue
            self._cache(plural).put(fresh)
            return None
        raise AssertionError("unreachable")  # pragma: no cover (the loop returns)

    def _post(self, key: Key, body: Mapping[str, Any], event: Event) -> None:
        try:
            self.kube.post_event(body, event.type, event.reason, event.message,
                                 event.annotations)
        except KubeError as err:
            _log.warning("%s %s/%s: event %s not posted: %s", _kind(key[0]), key[1], key[2],
                         event.reason, safe(err))

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
        fresh = self.kube.patch_finalizers(*GROUPS[key[0]], key[0], key[1], key[2], ops)
        self._cache(key[0]).put(fresh)
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
            self.kube.patch_finalizers(*GROUPS[key[0]], key[0], key[1], key[2], ops)
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

    def _backoff(self, memory: _Memory, ceiling: float,
                 retry_after: timedelta | None = None) -> float:
        memory.failures += 1
        return failure_delay(memory.failures, ceiling, retry_after)

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
        indexes = set()
        for body in self.repositories.values():
            artifact = (body.get("status") or {}).get("artifact") or {}
            if isinstance(artifact.get("digest"), str):
                indexes.add(artifact["digest"])
        for digest in self.http.store.collect(indexes):
            _log.info("index %s removed from the store: no HelmRepository refers to it", digest)
            removed.append(digest)
        return removed

    # -- logs ------------------------------------------------------------------------------

    def _log_release(self, release: HelmRelease, result: ReleaseOutcome) -> None:
        if result.failure is not None:
            _log.warning("%s: %s", release.subject, result.failure.message)
            return
        ready = c.get_condition(result.status.conditions, c.READY) or {}
        level = logging.INFO if result.actions else logging.DEBUG
        _log.log(level, "%s: %s", release.subject, ready.get("message", ""))

    def _log_chart(self, chart: HelmChart, result: ChartResult) -> None:
        if result.failure is not None:
            _log.warning("%s: %s", chart.subject, result.failure.message)
            return
        ready = c.get_condition(result.status.conditions, c.READY) or {}
        level = logging.DEBUG if result.actions == ("unchanged",) else logging.INFO
        artifact = result.status.artifact
        _log.log(level, "%s: %s (%s)", chart.subject, ready.get("message", ""),
                 artifact.revision if artifact else "no artifact")


def failure_delay(failures: int, ceiling: float, retry_after: timedelta | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds until the next attempt after ``failures`` failed passes in a row: doubling
    from 1 s, at most ``ceiling`` (the object's interval) and :data:`_MAX_BACKOFF`.

    ``retry_after`` (a registry's Retry-After) is a floor: asking again sooner would only
    earn another 429; but never past ``ceiling``, so a registry asking for a day does not
    stall an object beyond its interval. The jitter (up to 10 %) only adds: objects that
    failed together spread out, and none comes back before the registry said.
    """
    cap = max(ceiling, 1.0)
    delay = min(2.0 ** min(failures - 1, 32), _MAX_BACKOFF, cap)
    if retry_after is not None:
        delay = max(delay, min(retry_after.total_seconds(), cap))
    return delay * (1 + (rng or random).uniform(0, 0.1))


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
                "observedValuesFiles", "conditions", "url", "artifact", "lastHandledReconcileAt",
                # HelmRelease
                "observedPostRenderersDigest", "observedCommonMetadataDigest", "helmChart",
                "storageNamespace", "history",
                "lastAttemptedGeneration", "lastAttemptedRevision",
                "lastAttemptedRevisionDigest", "lastAttemptedConfigDigest",
                "lastAttemptedReleaseAction", "lastAppliedRevision", "failures",
                "installFailures", "upgradeFailures", "lastHandledForceAt",
                "lastHandledResetAt")


def _ceiling(err: Exception) -> float:
    """How long a pass may wait after the API failed with ``err``: an outage or a burst
    (no answer, 5xx, 429, 409) is retried within _API_RETRY, a lasting refusal backs off."""
    status = err.status if isinstance(err, KubeError) else 0
    return _API_RETRY if status in (0, 409) or status in RETRIABLE else _MAX_BACKOFF


def _seconds(interval: timedelta | None) -> float:
    return interval.total_seconds() if interval is not None else _MAX_BACKOFF


def _trust_root(path: Path | None) -> TrustRoot | None:
    """The operator-wide trusted root (read once at start-up; a bad file stops the start)."""
    if path is None:
        return None
    return TrustRoot.from_json(path.read_bytes(), str(path))


def _kind(plural: str) -> str:
    return KINDS[plural]


def _handle(annotations: Mapping[str, Any], annotation: str, requested: str,
            handled: str) -> bool:
    """Flux's force/reset requests: the annotation equals ``requestedAt`` and that value has
    not been handled yet (fluxcd/pkg runtime/reconcile ``handleRequest``)."""
    value = annotations.get(annotation)
    return bool(requested) and value == requested and requested != handled

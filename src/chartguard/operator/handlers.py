"""The kopf layer: watch events in, work queue out. Nothing else happens here.

Only ``@kopf.on.event`` handlers are registered, on purpose: they need no progress storage and
no diff-base, so kopf writes nothing on users' objects (no ``status.kopf``, which a real API
server prunes from Flux's structural schemas, and no ``last-handled-configuration``
annotation). Per-object intervals, retries and triggers are the operator's own work queue
(:mod:`.runtime`), as in Flux's controllers. The storages are still set to annotations under
``chartguard.fluxcd.io`` so that a handler added later cannot silently write into status.
With ``--peering`` the start-up handler also starts :func:`.peering.follow`, which pauses the
work queue while another replica leads.

kopf's own API requests (lists, watches, peering) are retried for ever (:class:`KopfBackoffs`):
with kopf's default schedule a watch that meets 5xx for about a minute gives up, and a watch
that gives up stops the whole operator. client-go's reflectors, which Flux's controllers use,
never give up either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator
from typing import Any

import kopf

from chartguard import metrics
from chartguard.api.meta import HELM_GROUP, SOURCE_GROUP
from chartguard.operator.config import OperatorConfig
from chartguard.operator.kube import Kube, load_config
from chartguard.operator.peering import Peering, follow, own_identity
from chartguard.operator.runtime import CHARTS, RELEASES, REPOSITORIES, Runtime
from chartguard.operator.selectors import label_filter

ANNOTATION_PREFIX = "chartguard.fluxcd.io"


class KopfBackoffs:
    """kopf's waits between tries of one failed API request: kopf's default steps, then
    every ``ceiling`` seconds for ever, each with up to 10 % jitter. A new iterator per
    request (kopf iterates the setting once per request)."""

    STEPS = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)

    def __init__(self, ceiling: float = 30.0) -> None:
        self.ceiling = ceiling

    def __iter__(self) -> Iterator[float]:
        for step in self.STEPS:
            yield _jitter(min(step, self.ceiling))
        while True:
            yield _jitter(self.ceiling)


def _jitter(seconds: float) -> float:
    return seconds * (1 + random.uniform(0, 0.1))  # noqa: S311 (jitter, not a secret)


def build_registry(config: OperatorConfig, *, identity: str = "") -> kopf.OperatorRegistry:
    """The handlers of ``chartguard run`` for ``config`` (the selector filters Flux's kinds);
    ``identity``: this replica's name in the peering object (with ``config.peering``)."""
    registry = kopf.OperatorRegistry()
    labels = label_filter(config.selector) or None

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # a registry of our own has none of kopf's default login handlers
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        # kopf's own finalizer stays kopf's: with no deletion handlers kopf removes that name
        # from every object it sees, so it must never be Flux's finalizers.fluxcd.io
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
        settings.posting.enabled = False  # chartguard posts its own Events, worded as Flux's
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.reconnect_backoff = 1.0
        settings.networking.request_timeout = 30
        settings.networking.error_backoffs = KopfBackoffs()
        settings.queueing.exit_timeout = 2.0
        kube = Kube(load_config(
            config.concurrency + config.release_concurrency + 4))
        memo.runtime = Runtime(config, kube)
        memo.runtime.start()
        if config.peering:
            peering = Peering(kube, config.peering, config.namespaces, identity,
                              config.peering_priority)
            memo.peering = asyncio.create_task(follow(peering, memo.runtime), name="peering")

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        follower: asyncio.Task[None] | None = getattr(memo, "peering", None)
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        runtime: Runtime | None = getattr(memo, "runtime", None)
        if runtime is not None:
            await runtime.stop()

    @kopf.on.event(SOURCE_GROUP, "v1", CHARTS, labels=labels, registry=registry)
    async def chart_event(event: Any, memo: Any, **_: Any) -> None:
        memo.runtime.observe_chart(event["type"], event["object"])

    @kopf.on.event(SOURCE_GROUP, "v1", REPOSITORIES, labels=labels, registry=registry)
    async def repository_event(event: Any, memo: Any, **_: Any) -> None:
        memo.runtime.observe_repository(event["type"], event["object"])

    @kopf.on.event(HELM_GROUP, "v2", RELEASES, labels=labels, registry=registry)
    async def release_event(event: Any, memo: Any, **_: Any) -> None:
        memo.runtime.observe_release(event["type"], event["object"])

    @kopf.on.event("v1", "configmaps", registry=registry)
    async def configmap_event(event: Any, memo: Any, **_: Any) -> None:
        memo.runtime.observe_configmap(event["type"], event["object"])

    @kopf.on.event("v1", "secrets", registry=registry)
    async def secret_event(event: Any, memo: Any, **_: Any) -> None:
        memo.runtime.observe_secret(event["type"], event["object"])

    @kopf.on.probe(id="queued", registry=registry)
    def queued(memo: Any, **_: Any) -> int:
        runtime: Runtime | None = getattr(memo, "runtime", None)
        return len(runtime.queue) + len(runtime.release_queue) if runtime is not None else 0

    return registry


def run(config: OperatorConfig) -> None:
    """Run the operator until SIGTERM/SIGINT (kopf's signal handling stops it cleanly)."""
    kopf.configure(log_format=kopf.LogFormat.JSON if config.log_format == "json"
                   else kopf.LogFormat.FULL)
    # kopf logs every handler call at INFO; ours are queue feeders, not worth a line each
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    liveness = (f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None)
    # our own identity even when standalone: kopf's default asks the passwd database for the
    # user name, and the image's numeric user may have none
    identity = own_identity()
    peering: dict[str, Any] = {"identity": identity, "standalone": not config.peering}
    if config.peering:  # mandatory peering: kopf waits until the object exists
        peering.update(peering_name=config.peering, priority=config.peering_priority)
    # before kopf: a port in use stops the start with a clear message (MetricsServerError)
    server = (metrics.serve(config.metrics_port, config.metrics_address)
              if config.metrics_port else None)
    try:
        kopf.run(registry=build_registry(config, identity=identity),
                 clusterwide=not config.namespaces, namespaces=list(config.namespaces),
                 liveness_endpoint=liveness, memo=kopf.Memo(), **peering)
    finally:
        if server is not None:
            server.close()

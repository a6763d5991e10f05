"""The operator's Prometheus metrics: the metric objects, one recording function per fact, and
the ``/metrics`` server of ``chartguard run --metrics-port``.

prometheus-client stays in this module: the layers that know a fact (the runtime, the registry
transport, verification, the helm runner) call a plain function here with plain values, and
nothing else imports ``prometheus_client``. Every label value is one of a fixed few, checked
here (anything else is recorded as ``other``), so no text from outside (a URL, a chart name, an
error) ever becomes a label and the number of series stays bounded. The one exception is
Flux's own ``gotk_reconcile_duration_seconds``, labelled by our objects' namespace and name
(bounded by the objects in the cluster, dropped when an object is deleted, as Flux does).

What is in the store and how many objects are Ready is read when Prometheus scrapes
(:func:`sample_objects`, :func:`sample_store`), so those gauges are never stale.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "REGISTRY",
    "MetricsServer",
    "exposition",
    "forget",
    "helm_command",
    "helm_index",
    "reconciled",
    "registry_answer",
    "registry_bytes",
    "registry_failure",
    "sample_objects",
    "sample_store",
    "serve",
    "verification",
    "verification_cache",
]

KINDS: tuple[str, ...] = ("HelmRepository", "HelmChart", "HelmRelease")
READY_STATUSES: tuple[str, ...] = ("True", "False", "Unknown")
#: success: done until the next interval; failure: retried with backoff; stalled: waits for a
#: change of the spec; waiting: a release's dependency or chart is not Ready yet (looked at
#: again soon, not a failure, as helm-controller's errWaitForChart); suspended: spec.suspend
RESULTS: tuple[str, ...] = ("success", "failure", "stalled", "waiting", "suspended")
#: verified: a signature verified; failed: signatures were tried and none verified;
#: unsigned: there was no signature to try
OUTCOMES: tuple[str, ...] = ("verified", "failed", "unsigned")
#: what verified ("none" when nothing did): cosign's legacy ``.sig`` manifest or a Sigstore
#: bundle (OCI referrer), signed with a key or keyless (a Fulcio certificate); ``pgp``: Helm's
#: provenance (.prov) with an OpenPGP key
FORMATS: tuple[str, ...] = ("legacy_key", "legacy_keyless", "bundle_key", "bundle_keyless",
                            "pgp", "none")
#: answered: an HTTP answer came (its class is in ``code``); unreachable: refused, reset or
#: timed out; tls_error: the TLS handshake failed
REGISTRY_OUTCOMES: tuple[str, ...] = ("answered", "unreachable", "tls_error")
CODES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")
ACTIONS: tuple[str, ...] = ("install", "upgrade", "test", "rollback", "uninstall")
INDEX_RESULTS: tuple[str, ...] = ("parsed", "unchanged", "not_modified")
OTHER = "other"


def _exponential_range(low: float, high: float, count: int) -> tuple[float, ...]:
    """``count`` buckets from ``low`` to ``high``, each a constant factor above the last
    (client_golang's ``ExponentialBucketsRange``, which Flux's histograms use)."""
    factor = (high / low) ** (1 / (count - 1))
    return tuple(float(f"{low * factor ** n:.4g}") for n in range(count))


#: Flux's reconcile buckets: 10 from 10 ms to 30 min (fluxcd/pkg runtime/metrics)
DURATION_BUCKETS = _exponential_range(0.01, 1800, 10)

# a *_created sample per series doubles what is scraped and no dashboard of Flux's reads it
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

_reconcile_object = Histogram(
    "gotk_reconcile_duration_seconds",
    "The duration in seconds of a GitOps Toolkit resource reconciliation.",
    ["kind", "name", "namespace"], buckets=DURATION_BUCKETS, registry=REGISTRY)
_reconcile = Histogram(
    "chartguard_reconcile_duration_seconds",
    "Reconcile passes by kind and result (success, failure, stalled, waiting, suspended), in "
    "seconds.",
    ["kind", "result"], buckets=DURATION_BUCKETS, registry=REGISTRY)
_verifications = Counter(
    "chartguard_verifications",
    "Signature verifications of a chart digest by outcome (verified, failed, unsigned) and "
    "the format that verified.",
    ["outcome", "format"], registry=REGISTRY)
_cache_hits = Counter(
    "chartguard_verification_cache_hits",
    "Verifications not done again: the digest was verified before under the same policy.",
    registry=REGISTRY)
_cache_misses = Counter(
    "chartguard_verification_cache_misses",
    "Verifications that had to fetch and check signatures (no earlier success to reuse).",
    registry=REGISTRY)
_registry_requests = Counter(
    "chartguard_registry_requests",
    "HTTP exchanges with OCI registries (and the hosts they send us to) by outcome and "
    "status class.",
    ["outcome", "code"], registry=REGISTRY)
_registry_bytes = Counter(
    "chartguard_registry_downloaded_bytes",
    "Response body bytes read from OCI registries, by status class.",
    ["code"], registry=REGISTRY)
_helm_index = Counter(
    "chartguard_helm_index_fetches",
    "Index fetches of HTTP Helm repositories by result: parsed (a new index, parsed and "
    "stored), unchanged (the same digest as the stored one: not parsed), not_modified (a 304 "
    "to the conditional request).",
    ["result"], registry=REGISTRY)
_helm_duration = Histogram(
    "chartguard_helm_command_duration_seconds",
    "Wall time of helm processes by action.",
    ["action"], buckets=DURATION_BUCKETS, registry=REGISTRY)
_helm_failures = Counter(
    "chartguard_helm_command_failures",
    "helm processes that failed (non-zero exit, stopped at their timeout, or not startable) "
    "by action.",
    ["action"], registry=REGISTRY)


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


# -- recording -----------------------------------------------------------------------------


def reconciled(kind: str, namespace: str, name: str, result: str, seconds: float, *,
               gone: bool = False) -> None:
    """One reconcile pass of our object ``namespace/name`` took ``seconds``; ``gone``: the
    pass let the deleted object go (its own series is dropped instead)."""
    kind_label = _bounded(kind, KINDS)
    _reconcile.labels(kind_label, _bounded(result, RESULTS)).observe(seconds)
    if gone:
        forget(kind, namespace, name)
    else:
        _reconcile_object.labels(kind_label, name, namespace).observe(seconds)


def forget(kind: str, namespace: str, name: str) -> None:
    """The object is gone: drop its own series (Flux's ``DeleteDuration``)."""
    with contextlib.suppress(KeyError):  # never reconciled by this process
        _reconcile_object.remove(_bounded(kind, KINDS), name, namespace)


def verification(outcome: str, signature_format: str) -> None:
    """One digest's verification ended with ``outcome``; ``signature_format`` verified it."""
    _verifications.labels(_bounded(outcome, OUTCOMES),
                          _bounded(signature_format, FORMATS)).inc()


def verification_cache(hit: bool) -> None:
    """A verification was reused (``hit``) or had to be done."""
    (_cache_hits if hit else _cache_misses).inc()


def status_class(status: int) -> str:
    """``2xx`` for 200..299, and so on; ``other`` outside 100..599."""
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


def registry_answer(status: int) -> str:
    """Count an exchange the registry answered with HTTP ``status``; return the status class
    its body's bytes are counted under (:func:`registry_bytes`)."""
    code = status_class(status)
    _registry_requests.labels("answered", code).inc()
    return code


def registry_failure(outcome: str) -> None:
    """Count an exchange that got no HTTP answer."""
    _registry_requests.labels(_bounded(outcome, REGISTRY_OUTCOMES), "none").inc()


def registry_bytes(code: str, count: int) -> None:
    """``count`` body bytes were read from an answer of status class ``code``."""
    if count > 0:
        _registry_bytes.labels(_bounded(code, CODES)).inc(count)


def helm_index(result: str) -> None:
    """An HTTP Helm repository's index was fetched with ``result`` (:data:`INDEX_RESULTS`)."""
    _helm_index.labels(_bounded(result, INDEX_RESULTS)).inc()


def helm_command(action: str, seconds: float, *, failed: bool) -> None:
    """A helm process for ``action`` ran ``seconds`` (0 when it could not start)."""
    label = _bounded(action, ACTIONS)
    _helm_duration.labels(label).observe(seconds)
    if failed:
        _helm_failures.labels(label).inc()


# -- read at scrape time -------------------------------------------------------------------

#: (kind, Ready status, how many objects)
ObjectCounts = Callable[[], Iterable[tuple[str, str, int]]]
#: (artifacts, bytes) in the store
StoreUsage = Callable[[], tuple[int, int]]


class _Sampled(Collector):
    """Gauges computed when scraped, from sources the running operator registers."""

    def __init__(self) -> None:
        self.objects: ObjectCounts | None = None
        self.store: StoreUsage | None = None

    def describe(self) -> Iterable[Metric]:
        return ()  # the families depend on the sources set: nothing to check at register

    def collect(self) -> Iterator[Metric]:
        objects, store = self.objects, self.store
        if objects is not None:
            family = GaugeMetricFamily(
                "chartguard_objects",
                "Objects this operator watches, by kind and the status of their Ready "
                "condition (Unknown: none yet).", labels=["kind", "ready"])
            counts = {(kind, ready): 0 for kind in KINDS for ready in READY_STATUSES}
            for kind, ready, count in objects():
                key = (_bounded(kind, KINDS), _bounded(ready, READY_STATUSES))
                counts[key] = counts.get(key, 0) + count
            for (kind, ready), count in sorted(counts.items()):
                family.add_metric([kind, ready], count)
            yield family
        if store is not None:
            artifacts, size = store()
            yield GaugeMetricFamily("chartguard_store_artifacts",
                                    "Chart archives in the artifact store.", value=artifacts)
            yield GaugeMetricFamily("chartguard_store_bytes",
                                    "Bytes of the chart archives in the artifact store.",
                                    value=size)


_sampled = _Sampled()
REGISTRY.register(_sampled)


def sample_objects(source: ObjectCounts | None) -> None:
    """Read ``chartguard_objects`` from ``source`` at every scrape (None: stop)."""
    _sampled.objects = source


def sample_store(source: StoreUsage | None) -> None:
    """Read ``chartguard_store_*`` from ``source`` at every scrape (None: stop)."""
    _sampled.store = source


# -- exposition ----------------------------------------------------------------------------


def exposition() -> bytes:
    """Every metric in Prometheus' text format (what ``/metrics`` answers)."""
    return generate_latest(REGISTRY)


class MetricsServerError(Exception):
    """The metrics endpoint cannot listen; the message says where and why."""


class MetricsServer:
    """``/metrics`` over HTTP in a daemon thread, until :meth:`close`."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(port: int, address: str = "0.0.0.0") -> MetricsServer:  # noqa: S104 - in the pod
    """Serve :func:`exposition` on ``http://address:port/metrics``."""
    try:
        server, thread = start_http_server(port, addr=address, registry=REGISTRY)
    except OSError as err:
        raise MetricsServerError(
            f"cannot serve metrics on {address}:{port} ({err.strerror or err}): choose a free "
            "port (--metrics-port) or another address (--metrics-address)") from None
    return MetricsServer(server, thread)

"""One HelmRelease reconcile from start to end: refuse what cannot be honoured, prepare the
inputs (dependencies, the HelmChart, its verified artifact, the values), then let the release
loop run helm; and the deletion path (uninstall, then the owned HelmChart).

The steps live in their own modules (:mod:`.release_prepare`, :mod:`.helmrelease`); this one
joins them and turns a stop before helm into the conditions helm-controller writes for it.
Nothing here imports kopf or the Kubernetes client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from chartguard.api import HelmRelease
from chartguard.api import conditions as c
from chartguard.api.status import HelmReleaseStatus
from chartguard.helm.release import ReleaseStorage
from chartguard.reconcile.helmrelease import (
    reconcile_release,
    reset_failure_counts,
    uninstall_release,
)
from chartguard.reconcile.kubeconfig import (
    REST_CLIENT_ERROR,
    ClusterConnectError,
    KubeConfigError,
    KubeConfigOptions,
    KubeConfigSecretNotFoundError,
    RemoteClusters,
    RemoteStorageError,
    ServiceAccountTokens,
    remote_kubeconfig,
    workload_identity_kubeconfig,
)
from chartguard.reconcile.outcome import StepFailedError, WaitingError, safe
from chartguard.reconcile.release_prepare import (
    PrepareEnv,
    ReleaseRefs,
    check_expressions,
    prepare_release,
    refuse_unsupported,
    release_chart_to_delete,
    release_refs,
    sync_release_chart,
)
from chartguard.reconcile.seams import (
    ChartWriteError,
    ClusterObjects,
    Event,
    HelmActions,
    SecretUnreadableError,
    utcnow,
)
from chartguard.reconcile.values import secret_strings

_log = logging.getLogger("chartguard")


@dataclass(frozen=True)
class ReleaseEnv:
    """The I/O a release reconcile uses, built once at start-up."""

    helm: HelmActions
    storage: ReleaseStorage
    prepare: PrepareEnv
    now: Callable[[], datetime] = utcnow
    #: the released objects, for spec.driftDetection (None: drift detection refused)
    cluster: ClusterObjects | None = None
    #: helm and storage of the remote clusters ``spec.kubeConfig`` names; None: refused
    clusters: RemoteClusters | None = None
    kubeconfig_options: KubeConfigOptions = field(default_factory=KubeConfigOptions)
    #: the TokenRequest API for workload-identity kubeconfigs (configMapRef, generic)
    tokens: ServiceAccountTokens | None = None


@dataclass(frozen=True)
class ReleaseOutcome:
    status: HelmReleaseStatus
    events: tuple[Event, ...] = ()
    #: when to look again (before jitter or backoff); None: only when something changes
    requeue_after: timedelta | None = None
    failure: StepFailedError | None = None
    #: helm actions run, in order (install, upgrade, test, rollback, uninstall, unlock)
    actions: tuple[str, ...] = ()
    #: what the reconcile read, so a change of one re-reconciles the release
    secrets: frozenset[tuple[str, str]] = frozenset()
    configmaps: frozenset[tuple[str, str]] = frozenset()
    charts: frozenset[tuple[str, str]] = frozenset()
    dependencies: frozenset[tuple[str, str]] = frozenset()


def reconcile_helmrelease(release: HelmRelease, status: HelmReleaseStatus, env: ReleaseEnv, *,
                          requested_at: str = "", force: bool = False, reset: bool = False,
                          on_progress: Callable[[HelmReleaseStatus], None]
                          ) -> ReleaseOutcome:
    """The status ``release`` should have now, the Events to emit, when to look again.

    ``force``/``reset``: the ``reconcile.fluxcd.io/forceAt``/``resetAt`` request is new (the
    caller compared it with ``requestedAt`` and the status, as Flux does).
    """
    now = env.now()
    if requested_at:
        status = replace(status, last_handled_reconcile_at=requested_at)
    if reset:
        status = replace(reset_failure_counts(status), last_handled_reset_at=requested_at)
    if force:
        status = replace(status, last_handled_force_at=requested_at)
    status = replace(status, storage_namespace=release.release_namespace)
    # what the spec refers to is watched even when a step stops (a missing Secret created
    # later, a dependency becoming Ready, re-reconcile at once)
    refs = release_refs(release)
    try:
        refuse_unsupported(release)  # before anything is written for it
        check_expressions(release)
        sync = sync_release_chart(release, status, env.prepare)
        status = replace(status, helm_chart=sync.helm_chart)
        prepared = prepare_release(release, status, env.prepare, chart_sync=sync)
    except StepFailedError as err:
        return _stopped(release, status, err, now, refs)
    try:
        with _cluster(release, env) as (helm, storage, sensitive, objects):
            values = replace(prepared.values, sensitive=prepared.values.sensitive | sensitive)
            result = reconcile_release(release, status, helm, storage, chart=prepared.chart,
                                       values=values, now=now, on_progress=on_progress,
                                       force=force, cluster=objects)
    except StepFailedError as err:
        return _stopped(release, status, err, now, refs)
    except RemoteStorageError as err:
        return _stopped(release, status, StepFailedError(
            c.READY, c.GET_LAST_RELEASE_FAILED, f"remote cluster: {err}", status=c.FALSE),
            now, refs)
    return _with_refs(ReleaseOutcome(
        status=result.status, events=result.events, requeue_after=result.requeue_after,
        failure=result.failure, actions=sync.actions + result.actions), refs)


def finalize_helmrelease(release: HelmRelease, status: HelmReleaseStatus,
                         env: ReleaseEnv) -> ReleaseOutcome:
    """The release is being deleted: helm uninstall (a release already gone is fine), then the
    HelmChart it owns. A failure leaves both for the next try. What the release's Secrets give
    is kept out of helm's message, as in a release action. A remote release whose kubeConfig
    Secret is gone is not uninstalled (there is no client for it), as helm-controller skips it."""
    sensitive = secret_strings(release, env.prepare.secrets, env.prepare.configmaps)
    try:
        with _cluster(release, env, deleting=True) as (helm, storage, remote_sensitive, _):
            result = uninstall_release(release, status, helm, storage, now=env.now(),
                                       sensitive=sensitive | remote_sensitive)
    except RemoteStorageError as err:
        message = f"failed to uninstall release: remote cluster: {err}"
        return ReleaseOutcome(
            status=status, events=(Event("Warning", c.UNINSTALL_FAILED, message),),
            requeue_after=release.spec.interval,
            failure=StepFailedError(c.READY, c.UNINSTALL_FAILED, message, status=c.FALSE))
    except _NoKubeConfigSecretError as gone:
        _log.warning("HelmRelease %s/%s: skipping Helm release uninstallation: %s",
                     release.metadata.namespace, release.metadata.name, gone)
        result = None
    except StepFailedError as err:
        message = f"failed to build REST client getter to uninstall release: {err.message}"
        return ReleaseOutcome(
            status=status, events=(Event("Warning", c.UNINSTALL_FAILED, message),),
            requeue_after=release.spec.interval,
            failure=StepFailedError(c.READY, c.UNINSTALL_FAILED, message, status=c.FALSE))
    if result is not None and result.failure is not None:
        return ReleaseOutcome(status=result.status, events=result.events,
                              requeue_after=release.spec.interval, failure=result.failure,
                              actions=result.actions)
    final_status = result.status if result is not None else status
    events = result.events if result is not None else ()
    actions = result.actions if result is not None else ()
    chart = release_chart_to_delete(release, status)
    if chart is not None:
        try:
            env.prepare.chart_writer.delete(*chart)
        except ChartWriteError as err:
            message = f"failed to delete HelmChart '{chart[0]}/{chart[1]}': {err}"
            return ReleaseOutcome(
                status=final_status, events=(Event("Warning", c.ARTIFACT_FAILED, message),),
                requeue_after=release.spec.interval,
                failure=StepFailedError(c.READY, c.ARTIFACT_FAILED, message, status=c.FALSE),
                actions=actions)
    return ReleaseOutcome(status=final_status, events=events, actions=actions)


class _NoKubeConfigSecretError(Exception):
    """The kubeConfig Secret of a release being deleted is gone."""


@contextmanager
def _cluster(release: HelmRelease, env: ReleaseEnv, *, deleting: bool = False
             ) -> Iterator[tuple[HelmActions, ReleaseStorage, frozenset[str],
                                 ClusterObjects | None]]:
    """helm, its storage and the released objects (drift detection; None: not served) for
    ``release``: the operator's cluster, or the remote one its ``spec.kubeConfig`` names
    (with what must be kept out of helm's messages). A kubeconfig
    that cannot be used is ``StepFailedError`` with helm-controller's ``RESTClientError``."""
    if release.spec.kube_config is None:
        yield env.helm, env.storage, frozenset(), env.cluster
        return
    if env.clusters is None:
        raise StepFailedError(c.READY, "UnsupportedField", "spec.kubeConfig is not supported: "
                              "this operator was started without remote clusters",
                              stalled=True, status=c.FALSE)
    try:
        if release.spec.kube_config.configmap_name:
            if env.tokens is None:
                raise KubeConfigError("this operator was started without a TokenRequest client")
            config = workload_identity_kubeconfig(release, env.prepare.configmaps, env.tokens)
        else:
            config = remote_kubeconfig(release, env.prepare.secrets, env.kubeconfig_options)
    except KubeConfigSecretNotFoundError as err:
        if deleting:
            raise _NoKubeConfigSecretError(str(err)) from None
        raise StepFailedError(c.READY, REST_CLIENT_ERROR, str(err), status=c.FALSE) from None
    except KubeConfigError as err:
        raise StepFailedError(c.READY, REST_CLIENT_ERROR, str(err), status=c.FALSE) from None
    except SecretUnreadableError as err:
        raise StepFailedError(c.READY, REST_CLIENT_ERROR,
                              f"could not read spec.kubeConfig's reference: {safe(err)}",
                              status=c.FALSE) from None
    try:
        connection = env.clusters.connect(release, config)
        helm, storage, objects = connection.__enter__()
    except ClusterConnectError as err:
        raise StepFailedError(c.READY, REST_CLIENT_ERROR, f"{config.source}: {err}",
                              status=c.FALSE) from None
    try:
        yield helm, storage, config.sensitive, objects
    except BaseException as exc:
        if not connection.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        connection.__exit__(None, None, None)


def _stopped(release: HelmRelease, status: HelmReleaseStatus, err: StepFailedError,
             now: datetime, refs: ReleaseRefs | None = None) -> ReleaseOutcome:
    """A stop before helm ran: Ready False with the step's reason and message (and Stalled
    when only a spec change helps), as helm-controller marks it; the release stays as it is."""
    gen = release.metadata.generation
    conds = [dict(x) for x in status.conditions]
    conds = c.remove_condition(conds, c.RECONCILING)
    if err.condition not in (c.READY, c.STALLED):
        conds = c.set_condition(conds, err.condition, err.status, err.reason, err.message,
                                observed_generation=gen, now=now)
    for type_, value, reason in err.extra:
        conds = c.set_condition(conds, type_, value, reason, err.message,
                                observed_generation=gen, now=now)
    if err.stalled:
        conds = c.set_condition(conds, c.STALLED, c.TRUE, err.reason, err.message,
                                observed_generation=gen, now=now)
    else:
        conds = c.remove_condition(conds, c.STALLED)
    conds = c.set_condition(conds, c.READY, c.FALSE, err.reason, err.message,
                            observed_generation=gen, now=now)
    new = replace(status, conditions=tuple(conds),
                  observed_generation=gen if err.stalled else status.observed_generation)
    before = c.get_condition(status.conditions, c.READY) or {}
    # one Event per new reason to wait, not one per retry
    repeated = (before.get("status"), before.get("message")) == (c.FALSE, err.message)
    if err.stalled:
        requeue = None
    elif isinstance(err, WaitingError):
        requeue = err.requeue_after
    else:
        requeue = release.spec.interval  # the ceiling of the operator's backoff
    outcome = ReleaseOutcome(
        status=new, events=() if repeated else (Event("Warning", err.reason, err.message),),
        requeue_after=requeue, failure=err)
    return outcome if refs is None else _with_refs(outcome, refs)


def _with_refs(outcome: ReleaseOutcome, refs: ReleaseRefs) -> ReleaseOutcome:
    return replace(outcome, secrets=refs.secrets, configmaps=refs.configmaps,
                   charts=refs.charts, dependencies=refs.dependencies)

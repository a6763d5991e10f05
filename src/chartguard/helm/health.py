"""``spec.healthCheckExprs``: CEL health checks of a release's objects, as Flux runs them.

In helm-controller the expressions are custom kstatus status readers (fluxcd/pkg
``runtime/cel``: ``NewStatusReader``, ``StatusEvaluator``) inside the poller wait of install,
upgrade and rollback, used only when the action waits and the strategy is ``poller``. The helm
CLI takes no custom status reader, so chartguard runs them right after helm's own wait
succeeded, within what is left of the action's timeout:

- the objects checked are those of the release manifest whose group and kind match an entry
  (an entry without ``kind`` matches its whole group; the version is not compared, as Flux);
- each is read live from the API server, as the identity helm ran as, and evaluated as
  ``StatusEvaluator.Evaluate`` does: ``status.observedGeneration`` (an integer) differing from
  ``metadata.generation`` is InProgress; then ``inProgress``, ``failed``, ``current`` in that
  order, the first true deciding; none true is InProgress. The variables are the object's
  top-level fields (``metadata``, ``spec``, ``status``...);
- the wait polls every :data:`POLL_INTERVAL` until every object is Current; a Failed object
  ends it at once (Flux's fail-fast); an object missing or whose evaluation fails counts as not
  Current, and the deadline passing fails the check naming what was still not Current.

A failed check is a failed action: the caller marks helm's revision ``failed`` (helm's
record would otherwise say ``deployed``, where Flux's helm SDK writes ``failed``) and reports
it like a helm wait failure, so install and upgrade remediation follow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from chartguard import cel
from chartguard.api.helmrelease import HealthCheckExpressions, HelmRelease
from chartguard.untrusted import escape

#: helm-controller's poll interval for kstatus waits (copied there from kustomize-controller)
POLL_INTERVAL = 5.0
#: objects of one release the health checks look at, at most
MAX_OBJECTS = 1000
CURRENT, IN_PROGRESS, FAILED = "Current", "InProgress", "Failed"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class HealthCheckError(Exception):
    """The health checks failed (an object Failed, or not Current in time); the message names
    the object and the expression, already escaped."""


class LiveObjects(Protocol):
    """What the health checks read, as the identity helm runs the release as (``as_user``)."""

    def manifest(self, namespace: str, name: str, version: int) -> str:
        """The manifest helm stored for revision ``version`` of release ``name``."""
        ...

    def get(self, api_version: str, kind: str, namespace: str, name: str, *,
            as_user: str = "") -> Mapping[str, Any] | None:
        """The object as the API server has it now; None when absent. ``namespace`` is the
        release namespace for objects that name none (ignored for cluster-scoped kinds)."""
        ...


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{escape(self.kind, 63)}/{escape(where, 253)}"


@dataclass(frozen=True)
class _Evaluator:
    index: int
    check: HealthCheckExpressions

    def evaluate(self, obj: Mapping[str, Any]) -> tuple[str, str]:
        """(status, the expression that decided it, as messages name it)."""
        status = obj.get("status")
        metadata = obj.get("metadata")
        observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
        generation = metadata.get("generation") if isinstance(metadata, Mapping) else None
        if (_is_int(observed) and _is_int(generation) and observed != generation):
            return IN_PROGRESS, "status.observedGeneration differs from metadata.generation"
        for field, expression, result in (("inProgress", self.check.in_progress, IN_PROGRESS),
                                          ("failed", self.check.failed, FAILED),
                                          ("current", self.check.current, CURRENT)):
            if expression and cel.evaluate_boolean(expression, obj):
                return result, (f"healthCheckExprs[{self.index}].{field} "
                                f"'{cel.quote(expression)}'")
        return IN_PROGRESS, "no expression is true"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def group_kind(api_version: str, kind: str) -> tuple[str, str]:
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return group, kind


class HealthChecks:
    """The compiled ``spec.healthCheckExprs`` of one release."""

    def __init__(self, checks: Sequence[HealthCheckExpressions]) -> None:
        self._by_group_kind: dict[tuple[str, str], _Evaluator] = {}
        for index, check in enumerate(checks):
            key = group_kind(check.api_version, check.kind)
            if key in self._by_group_kind:
                gk = f"{check.kind}.{key[0]}" if key[0] else check.kind
                raise cel.CompileError(f"duplicate custom health check for GroupKind "
                                       f"{escape(gk)} at healthchecks[{index}]")
            for field, expression in (("Current", check.current),
                                      ("InProgress", check.in_progress),
                                      ("Failed", check.failed)):
                if not expression:
                    continue
                try:
                    cel.check(expression)
                except cel.CompileError as err:
                    raise cel.CompileError(
                        f"failed to create custom status evaluator for healthchecks[{index}]: "
                        f"failed to parse the expression {field}: {err}") from None
            self._by_group_kind[key] = _Evaluator(index, check)

    def evaluator(self, api_version: str, kind: str) -> _Evaluator | None:
        group, _ = group_kind(api_version, kind)
        return (self._by_group_kind.get((group, kind))
                or self._by_group_kind.get((group, "")))

    def __bool__(self) -> bool:
        return bool(self._by_group_kind)


def applies(release: HelmRelease, action: str) -> bool:
    """Flux evaluates the expressions only when the action waits with the poller strategy."""
    spec = release.spec
    if not spec.health_check_exprs or not spec.waits_with_poller:
        return False
    disabled = {"install": spec.install.disable_wait, "upgrade": spec.upgrade.disable_wait,
                "rollback": spec.rollback.disable_wait}
    return action in disabled and not disabled[action]


def manifest_objects(manifest: str, namespace: str) -> list[ObjectRef]:
    """The objects of a release manifest (helm's rendered YAML, hooks not included)."""
    refs: list[ObjectRef] = []
    try:
        documents = list(yaml.load_all(manifest, Loader=_LOADER))
    except yaml.YAMLError as err:
        raise HealthCheckError(f"the release manifest cannot be read: {escape(err)}") from None
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        meta = doc.get("metadata")
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not (isinstance(api_version, str) and isinstance(kind, str) and isinstance(name, str)):
            continue
        ns = meta.get("namespace") if isinstance(meta, Mapping) else None
        refs.append(ObjectRef(api_version, kind, ns if isinstance(ns, str) and ns else namespace,
                              name))
    return refs[:MAX_OBJECTS]


def wait_healthy(checks: HealthChecks, objects: Sequence[ObjectRef], live: LiveObjects, *,
                 as_user: str, deadline: float, interval: float = POLL_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll until every object a check applies to is Current; :class:`HealthCheckError` as
    soon as one is Failed, or when ``deadline`` (a ``clock`` time) passes first."""
    watched = [(ref, ev) for ref in objects
               if (ev := checks.evaluator(ref.api_version, ref.kind)) is not None]
    pending = dict.fromkeys(range(len(watched)), "not read yet")
    while True:
        for i in list(pending):
            if clock() > deadline:
                break  # the objects not read stay pending: the timeout below names them
            ref, evaluator = watched[i]
            try:
                obj = live.get(ref.api_version, ref.kind, ref.namespace, ref.name,
                               as_user=as_user)
            except Exception as err:  # the API's refusal, whatever it is: retried
                pending[i] = f"cannot be read: {escape(err)}"
                continue
            if obj is None:
                pending[i] = "not found"
                continue
            try:
                status, why = evaluator.evaluate(obj)
            except cel.CelError as err:
                pending[i] = str(err)
                continue
            if status == FAILED:
                raise HealthCheckError(f"health check failed for {ref}: {why} is true")
            if status == CURRENT:
                del pending[i]
            else:
                pending[i] = f"in progress ({why})"
        if not pending:
            return
        left = deadline - clock()
        if left <= 0:
            waiting = "; ".join(f"{watched[i][0]}: {why}" for i, why in pending.items())
            raise HealthCheckError(f"timeout waiting for health checks: {waiting}")
        sleep(min(interval, left))

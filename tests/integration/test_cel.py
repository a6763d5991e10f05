"""chartguard.cel: Flux's CEL (fluxcd/pkg runtime/cel) on Google's CEL runtime, in its sandbox
process (so these tests are integration tests: they start it), and the health check evaluator
of chartguard.helm.health on top of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from chartguard import cel
from chartguard.api.helmrelease import HealthCheckExpressions
from chartguard.helm import health

SELF_DEP = ("self", "dep")
READY = {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "observedGeneration": 2},
         "metadata": {"generation": 2, "name": "backend"}}


def test_a_true_expression_over_self_and_dep_is_true() -> None:
    expr = ("dep.status.conditions.filter(c, c.type == 'Ready').all(c, c.status == 'True') "
            "&& self.metadata.name.startsWith('front')")
    cel.check(expr, variables=SELF_DEP, boolean=True)
    assert cel.evaluate_boolean(expr, {"self": {"metadata": {"name": "frontend"}},
                                       "dep": READY}, variables=SELF_DEP) is True
    assert cel.evaluate_boolean(expr, {"self": {"metadata": {"name": "other"}}, "dep": READY},
                                variables=SELF_DEP) is False


@pytest.mark.parametrize(("expr", "value"), [
    # Flux's environment: cross-type numeric comparisons, optional types, strings, encoders
    ("dep.metadata.generation == 2.0", True),
    ("dep.status.observedGeneration > 1u", True),
    ("dep.?spec.suspend.orValue(false)", False),
    ("'Backend'.lowerAscii() == dep.metadata.name", True),
    ("base64.encode(b'hi') == 'aGk='", True),
    ("has(dep.status.conditions)", True),
    # cel-go's ext.Sets, declared in the sandbox (the C++ runtime has none)
    ("sets.contains([1, 2, 3], [3, 1.0])", True),
    ("sets.contains([1, 2], [true])", False),
    ("sets.equivalent(dep.status.conditions.map(c, c.type), ['Ready'])", True),
    ("sets.intersects([[1], {'a': 2}], [{'a': 2}])", True),
    ("sets.intersects(['a'], ['b'])", False),
])
def test_fluxs_cel_environment(expr: str, value: bool) -> None:
    assert cel.evaluate_boolean(expr, {"self": {}, "dep": READY}, variables=SELF_DEP) is value


def test_a_result_that_is_not_a_bool_is_an_evaluation_error() -> None:
    # unchecked (health checks): the type is known only when evaluated
    with pytest.raises(cel.EvaluationError,
                       match="failed to evaluate CEL expression as boolean: 'status' gave a"):
        cel.evaluate_boolean("status", {"status": {"phase": "Ready"}})
    # checked (readyExpr): refused when compiled, as Flux's WithOutputType(BoolType)
    with pytest.raises(cel.CompileError, match="output type mismatch: expected bool, got dyn"):
        cel.check("dep.status", variables=SELF_DEP, boolean=True)
    with pytest.raises(cel.CompileError, match="expected bool, got int"):
        cel.check("size(dep)", variables=SELF_DEP, boolean=True)


def test_a_missing_field_or_variable_is_an_evaluation_error() -> None:
    with pytest.raises(cel.EvaluationError, match='Key not found in map : "nope"'):
        cel.evaluate_boolean("dep.nope == 1", {"self": {}, "dep": {}}, variables=SELF_DEP)
    with pytest.raises(cel.EvaluationError, match='No value with name "status"'):
        cel.evaluate_boolean("status.ready", {"metadata": {}})


def test_an_evaluation_error_does_not_quote_the_data_it_read() -> None:
    """A readyExpr can read another namespace's HelmRelease (``dep``): the runtime's message
    for a failed lookup quotes the key, which the expression can take from that object's
    values; what reaches this release's status must not carry it."""
    secret = "hunter2-in-another-namespace"
    with pytest.raises(cel.EvaluationError) as err:
        cel.evaluate_boolean("{}[dep.spec.values.password] == 1",
                             {"self": {}, "dep": {"spec": {"values": {"password": secret}}}},
                             variables=("self", "dep"))
    assert secret not in str(err.value)
    assert "failed to evaluate the CEL expression" in str(err.value)
    assert "not found" in str(err.value).lower()


def test_compile_errors_name_the_expression_and_are_escaped() -> None:
    with pytest.raises(cel.CompileError) as caught:
        cel.check("dep.status.(", variables=SELF_DEP)
    message = str(caught.value)
    assert message.startswith("failed to parse the CEL expression 'dep.status.(': ERROR: "
                              "<input>:1:12: Syntax error: no viable alternative")
    assert "\n" not in message
    assert "\\x0a" in message  # the caret diagram, escaped
    assert "INVALID_ARGUMENT" not in message
    with pytest.raises(cel.CompileError, match="found no matching overload for '_\\+_'"):
        cel.check("1 + 'a'", variables=SELF_DEP)
    with pytest.raises(cel.CompileError, match=r"undeclared reference to 'other\.x'"):
        cel.check("other.x", variables=SELF_DEP)
    # terminal escapes in an expression never reach a message raw
    with pytest.raises(cel.CompileError) as caught:
        cel.check("\x1b[31m", variables=SELF_DEP)
    assert "\x1b" not in str(caught.value)


def test_the_iteration_budget_bounds_comprehensions() -> None:
    assert cel.evaluate_boolean("dep.all(x, x >= 0)", {"dep": list(range(9000))},
                                variables=("dep",))
    with pytest.raises(cel.EvaluationError, match="Iteration budget exceeded"):
        cel.evaluate_boolean("dep.all(x, dep.all(y, y >= 0))", {"dep": list(range(200))},
                             variables=("dep",))


def test_nesting_and_length_are_bounded_at_compile_time() -> None:
    with pytest.raises(cel.CompileError, match="recursion"):
        cel.check("(" * 100 + "true" + ")" * 100)
    with pytest.raises(cel.CompileError, match=f"more than {cel.MAX_EXPRESSION}"):
        cel.check("true && " * 1000 + "true")
    with pytest.raises(cel.EvaluationError, match=f"more than {cel.MAX_INPUT}"):
        cel.evaluate_boolean("true", {"data": "x" * (cel.MAX_INPUT + 1)})


def test_an_expression_that_builds_gigabytes_is_stopped_by_the_sandbox_memory_cap() -> None:
    hundred = "[" + ",".join(["0"] * 100) + "]"
    expr = f"{hundred}.map(x, {hundred}.map(y, data.s + 'a')).size() == 100"
    with pytest.raises(cel.EvaluationError) as caught:
        cel.evaluate_boolean(expr, {"data": {"s": "x" * 1_000_000}})
    assert ("out of memory" in str(caught.value)
            or "more memory than the sandbox allows" in str(caught.value))
    # the sandbox answers the next expression (restarted if it had to be stopped)
    assert cel.evaluate_boolean("data.ok", {"data": {"ok": True}})


def test_an_expression_past_the_deadline_stops_its_sandbox_which_comes_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel, "DEADLINE", 0.05)
    started = cel.sandbox_processes_started()
    with pytest.raises(cel.EvaluationError, match=r"did not finish within 0\.05s"):
        cel.evaluate_boolean("data.t.replace('x', data.t).size() > 0",
                             {"data": {"t": "x" * 30000}})
    monkeypatch.undo()
    assert cel.evaluate_boolean("true", {})
    assert cel.sandbox_processes_started() == started + 1


# -- the health check evaluator (fluxcd/pkg runtime/cel StatusEvaluator) -------------------


class Live:
    def __init__(self, objects: dict[str, Mapping[str, Any]]) -> None:
        self.objects = objects
        self.reads = 0

    def manifest(self, namespace: str, name: str, version: int) -> str:
        raise AssertionError("not used")

    def get(self, api_version: str, kind: str, namespace: str, name: str, *,
            as_user: str = "") -> Mapping[str, Any] | None:
        self.reads += 1
        return self.objects.get(f"{kind}/{namespace}/{name}")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


CHECK = HealthCheckExpressions(api_version="example.com/v1", kind="Database",
                               current="status.phase == 'Ready'",
                               failed="status.phase == 'Error'",
                               in_progress="status.phase == 'Migrating'")
MANIFEST = """---
apiVersion: example.com/v1alpha1
kind: Database
metadata: {name: db}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: other}
---
apiVersion: example.com/v1
kind: Cache
metadata: {name: cache}
"""


def db(phase: str, generation: int = 1, observed: object = 1) -> dict[str, Any]:
    return {"metadata": {"generation": generation},
            "status": {"phase": phase, "observedGeneration": observed}}


def run(live: Live, checks: list[HealthCheckExpressions], timeout: float = 30) -> Clock:
    clock = Clock()
    health.wait_healthy(health.HealthChecks(checks),
                        health.manifest_objects(MANIFEST, "apps"), live, as_user="",
                        deadline=timeout, interval=5, clock=clock, sleep=clock.sleep)
    return clock


def test_manifest_objects_default_to_the_release_namespace() -> None:
    assert [str(o) for o in health.manifest_objects(MANIFEST, "apps")] == [
        "Database/apps/db", "ConfigMap/other/config", "Cache/apps/cache"]


def test_current_objects_pass_and_the_version_is_not_compared_as_flux() -> None:
    live = Live({"Database/apps/db": db("Ready")})
    assert run(live, [CHECK]).now == 0  # v1alpha1 matched by group and kind; Cache unchecked
    assert live.reads == 1


def test_failed_ends_the_wait_at_once_naming_object_and_expression() -> None:
    live = Live({"Database/apps/db": db("Error")})
    with pytest.raises(health.HealthCheckError) as caught:
        run(live, [CHECK])
    assert str(caught.value) == ("health check failed for Database/apps/db: "
                                 "healthCheckExprs[0].failed 'status.phase == 'Error'' is true")


def test_in_progress_is_evaluated_first_and_observed_generation_is_checked_first() -> None:
    both = HealthCheckExpressions("example.com/v1", "Database", current="true",
                                  in_progress="status.phase == 'Migrating'")
    with pytest.raises(health.HealthCheckError, match=r"in progress .*inProgress"):
        run(Live({"Database/apps/db": db("Migrating")}), [both], timeout=12)
    with pytest.raises(health.HealthCheckError, match="observedGeneration differs"):
        run(Live({"Database/apps/db": db("Ready", generation=2)}), [both], timeout=1)
    # an observedGeneration that is no integer is left to the expressions, as Flux does
    assert run(Live({"Database/apps/db": db("Ready", observed="1")}), [both]).now == 0


def test_a_missing_object_or_a_failing_expression_waits_until_the_deadline() -> None:
    with pytest.raises(health.HealthCheckError) as caught:
        run(Live({}), [CHECK], timeout=11)
    assert str(caught.value) == ("timeout waiting for health checks: Database/apps/db: "
                                 "not found")
    broken = HealthCheckExpressions("example.com/v1", "", current="status.nope == 1")
    with pytest.raises(health.HealthCheckError, match="Cache/apps/cache: failed to evaluate"):
        run(Live({"Database/apps/db": db("Ready"), "Cache/apps/cache": db("Ready")}),
            [broken], timeout=1)


def test_an_object_that_turns_current_ends_the_wait() -> None:
    live = Live({"Database/apps/db": db("Migrating")})
    clock = Clock()
    checks = health.HealthChecks([CHECK])
    objects = health.manifest_objects(MANIFEST, "apps")

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        live.objects["Database/apps/db"] = db("Ready")

    health.wait_healthy(checks, objects, live, as_user="", deadline=60, interval=5,
                        clock=clock, sleep=sleep)
    assert clock.now == 5


def test_duplicate_group_kinds_and_bad_expressions_do_not_compile() -> None:
    with pytest.raises(cel.CompileError,
                       match=r"duplicate custom health check for GroupKind "
                             r"Database.example.com at healthchecks\[1\]"):
        health.HealthChecks([CHECK, CHECK])
    with pytest.raises(cel.CompileError,
                       match=r"healthchecks\[0\]: failed to parse the expression InProgress"):
        health.HealthChecks([HealthCheckExpressions("v1", "ConfigMap", "true", "x ==")])


def test_an_object_as_large_as_etcd_takes_is_evaluated_within_the_memory_cap() -> None:
    big = {"data": {f"k{i}": "v" * 100 for i in range(15_000)}}  # about 1.6 MB of JSON
    assert cel.evaluate_boolean("data.size() == 15000 && data.k7.startsWith('v')", big)
    assert cel.evaluate_boolean("self.data.all(k, self.data[k].size() == 100)",
                                {"self": {"data": dict(list(big["data"].items())[:9000])},
                                 "dep": big}, variables=SELF_DEP)


def test_the_deadline_is_checked_between_objects_not_only_between_polls() -> None:
    """Each object's read and evaluation takes time (a slow expression: up to the sandbox's
    deadline): once the action's deadline passed, the objects left are not read."""
    any_kind = HealthCheckExpressions("example.com/v1", "", current="status.phase == 'Ready'")

    class SlowLive(Live):
        def get(self, api_version: str, kind: str, namespace: str, name: str, *,
                as_user: str = "") -> Mapping[str, Any] | None:
            clock.now += 20  # this read (and its evaluation) took 20 s
            return super().get(api_version, kind, namespace, name, as_user=as_user)

    clock = Clock()
    live = SlowLive({})
    with pytest.raises(health.HealthCheckError) as caught:
        health.wait_healthy(health.HealthChecks([any_kind]),
                            health.manifest_objects(MANIFEST, "apps"), live, as_user="",
                            deadline=10, interval=5, clock=clock, sleep=clock.sleep)
    assert live.reads == 1  # the Cache was not read after the deadline
    assert "Cache/apps/cache: not read yet" in str(caught.value)


def test_a_request_waits_a_bounded_time_for_a_sandbox_another_release_holds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One sandbox serves all releases: a slow expression (here: stopped at the deadline)
    must not hold another release's evaluation beyond ``BUSY_WAIT``."""
    monkeypatch.setattr(cel, "BUSY_WAIT", 0.5)
    slow = ("[" + ",".join(["0"] * 99) + "].all(x, [" + ",".join(["0"] * 99) + "].all(y, "
            "!dep.pad.matches(dep.pad.substring(0, 8000) + 'z')))")
    data = {"self": {}, "dep": {"pad": "x" * 100_000}}
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            cel.evaluate_boolean(slow, data, variables=("self", "dep"))
        except cel.CelError as err:
            errors.append(err)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        time.sleep(0.5)  # the holder has the sandbox (its request runs up to the deadline)
        with pytest.raises(cel.EvaluationError, match="sandbox was busy with other"):
            cel.evaluate_boolean("true", {"self": {}, "dep": {}}, variables=("self", "dep"))
    finally:
        holder.join()
    (held,) = errors
    assert "did not finish within" in str(held)
    assert cel.evaluate_boolean("true", {"self": {}, "dep": {}}, variables=("self", "dep"))

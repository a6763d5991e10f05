"""CEL in HelmReleases, run by ``chartguard run`` with real helm 4: ``spec.healthCheckExprs``
(evaluated on the release's live objects after helm's own wait), ``spec.dependsOn[].readyExpr``
and ``spec.waitStrategy``. The words are helm-controller's and fluxcd/pkg runtime/cel's.

The charts are ``helm create`` charts plus a ConfigMap whose ``data.state`` comes from the
values: the health checks read it, and the tests change it with kubectl as a controller would
change a custom resource's status. The two health check cases run on the real API server too
(discovery of the objects' resources, reads as the release's identity, the revision rewritten
``failed``); the others are operator logic and run on the emulator."""

from __future__ import annotations

from typing import Any

from operator_support import EMULATOR_ONLY, Charts, Cluster, Operator, wait_for
from test_operator_release_failures import (
    apply_release,
    cond,
    records,
    signed,
    stalled,
    summary,
)
from test_operator_releases import wait_ready

from chartguard_testing.helm_calls import HelmCalls
from chartguard_testing.registry import Registry

STATE = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-state
data:
  state: {{ .Values.state | default "pending" | quote }}
"""
CHECKS = [{"apiVersion": "v1", "kind": "ConfigMap",
           "current": "data.state == 'ready'",
           "failed": "data.state == 'broken'"}]


def state_chart(charts: Charts, name: str, version: str = "0.1.0") -> None:
    signed(charts, name, version, {"templates/state.yaml": STATE})


def configmap_state(cluster: Cluster, name: str) -> str:
    body: dict[str, Any] = cluster.body("configmap", cluster.ns, f"{name}-state")
    return str(body["data"]["state"])


def test_a_health_check_whose_current_becomes_true_makes_the_install_succeed(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    state_chart(charts, "waiter")
    apply_release(cluster, charts, registry, "waiter", "0.1.0", healthCheckExprs=CHECKS)
    operator.start()
    # helm has installed (its record exists) but the check holds the action: not Ready yet
    wait_for(lambda: bool(records(cluster, "waiter")), "helm's record", timeout=90,
             operator=operator)
    assert configmap_state(cluster, "waiter") == "pending"
    released = cond(cluster, "waiter", "Released")
    assert released is None or released[0] != "True"
    assert cond(cluster, "waiter", "Ready") != ("True",)  # Unknown while installing
    cluster.kubectl("patch", "configmap", "-n", ns, "waiter-state", "--type=merge",
                    "-p", '{"data": {"state": "ready"}}')
    ready = wait_ready(cluster, operator, "waiter", timeout=120)
    assert (ready["reason"], ready["message"]) == (
        "InstallSucceeded",
        f"Helm install succeeded for release {ns}/waiter.v1 with chart waiter@0.1.0")
    assert summary(cluster, "waiter") == {1: ("deployed", "0.1.0")}


def test_a_health_check_whose_failed_expression_matches_fails_the_install_naming_it(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    state_chart(charts, "broken")
    apply_release(cluster, charts, registry, "broken", "0.1.0", healthCheckExprs=CHECKS,
                  values={"state": "broken"})
    operator.start()
    wait_for(lambda: stalled(cluster, "broken"), "Stalled", timeout=120, operator=operator)
    failed = cond(cluster, "broken", "Ready")
    assert failed is not None
    assert failed[:2] == ("False", "InstallFailed")
    assert failed[2] == (
        f"Helm install failed for release {ns}/broken with chart broken@0.1.0: health check "
        f"failed for ConfigMap/{ns}/broken-state: healthCheckExprs[0].failed "
        "'data.state == 'broken'' is true")
    assert cond(cluster, "broken", "Stalled") == (
        "True", "RetriesExceeded", "Failed to install after 1 attempt(s)")
    # helm wrote "deployed"; the failed check is recorded as helm records a failed wait
    (record,) = records(cluster, "broken").values()
    assert record.status == "failed"
    assert record.description.startswith('Release "broken" failed: health check failed for '
                                         f"ConfigMap/{ns}/broken-state")
    status = cluster.status("helmrelease", ns, "broken")
    assert status["installFailures"] == 1
    assert [(s["version"], s["status"]) for s in status["history"]] == [(1, "failed")]


@EMULATOR_ONLY
def test_a_failed_health_check_on_upgrade_is_rolled_back_like_a_failed_wait(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    state_chart(charts, "flaky", "0.1.0")
    state_chart(charts, "flaky", "0.2.0")
    apply_release(cluster, charts, registry, "flaky", "0.1.0", healthCheckExprs=CHECKS,
                  values={"state": "ready"},
                  upgrade={"remediation": {"retries": 1, "strategy": "rollback"}})
    operator.start()
    wait_ready(cluster, operator, "flaky", timeout=120)
    cluster.kubectl("patch", "helmrelease", "-n", cluster.ns, "flaky", "--type=merge", "-p",
                    '{"spec": {"chart": {"spec": {"version": "0.2.0"}}, '
                    '"values": {"state": "broken"}}}')
    wait_for(lambda: summary(cluster, "flaky").get(3) == ("deployed", "0.1.0"),
             "the rollback to 0.1.0", timeout=120, operator=operator)
    assert summary(cluster, "flaky")[2] == ("failed", "0.2.0")
    # helm's record of the rollback is written before the operator writes its status
    wait_for(lambda: (cond(cluster, "flaky", "Remediated") or ("",))[0] == "True",
             "Remediated", timeout=60, operator=operator)
    remediated = cond(cluster, "flaky", "Remediated")
    assert remediated is not None
    assert remediated[:2] == ("True", "RollbackSucceeded")


@EMULATOR_ONLY
def test_an_invalid_health_check_expression_stalls_before_helm_runs(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Any) -> None:
    calls = HelmCalls.create(tmp_path)
    state_chart(charts, "typo")
    apply_release(cluster, charts, registry, "typo", "0.1.0",
                  healthCheckExprs=[{**CHECKS[0], "failed": "data.state =="}])
    operator.start(helm=str(calls.wrapper))
    wait_for(lambda: stalled(cluster, "typo"), "Stalled", timeout=60, operator=operator)
    found = cond(cluster, "typo", "Ready")
    assert found is not None
    assert found[:2] == ("False", "InvalidCELExpression")
    assert found[2].startswith(
        "Reconciliation failed terminally due to configuration error: failed to create custom "
        "status evaluator for healthchecks[0]: failed to parse the expression Failed: failed "
        "to parse the CEL expression 'data.state ==': ")
    assert "\n" not in found[2]  # the runtime's caret diagram is escaped
    assert calls.releases() == []


@EMULATOR_ONLY
def test_ready_expr_gates_a_dependent_release_on_its_expression_not_on_ready(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    signed(charts, "backend", "0.1.0")
    signed(charts, "frontend", "0.1.0")
    expr = ("dep.metadata.?annotations[?'example.com/schema'].orValue('') == 'migrated' "
            "&& self.metadata.name == 'frontend'")
    apply_release(cluster, charts, registry, "backend", "0.1.0")
    apply_release(cluster, charts, registry, "frontend", "0.1.0",
                  dependsOn=[{"name": "backend", "readyExpr": expr}])
    operator.start()
    wait_ready(cluster, operator, "backend", timeout=120)
    # backend is Ready, but the expression replaces that check: frontend keeps waiting
    cluster.request_reconcile("helmrelease", ns, "frontend")
    wait_for(lambda: (cond(cluster, "frontend", "Ready") or ("",))[0] == "False",
             "frontend waiting", timeout=60, operator=operator)
    waiting = cond(cluster, "frontend", "Ready")
    assert waiting == (
        "False", "DependencyNotReady",
        f"dependency '{ns}/backend' is not ready according to readyExpr eval ('{expr}')")
    assert records(cluster, "frontend") == {}
    cluster.kubectl("annotate", "helmrelease", "-n", ns, "backend",
                    "example.com/schema=migrated")
    cluster.request_reconcile("helmrelease", ns, "frontend")
    ready = wait_ready(cluster, operator, "frontend", timeout=120)
    assert ready["reason"] == "InstallSucceeded"


@EMULATOR_ONLY
def test_ready_expr_that_does_not_compile_stalls_the_dependent(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    signed(charts, "lonely", "0.1.0")
    apply_release(cluster, charts, registry, "lonely", "0.1.0",
                  dependsOn=[{"name": "backend", "readyExpr": "dep.status.conditions"}])
    operator.start()
    wait_for(lambda: stalled(cluster, "lonely"), "Stalled", timeout=60, operator=operator)
    assert cond(cluster, "lonely", "Ready") == (
        "False", "InvalidCELExpression",
        "Reconciliation failed terminally due to configuration error: failed to evaluate "
        "dependency backend: CEL expression output type mismatch: expected bool, got dyn in "
        "'dep.status.conditions'")


@EMULATOR_ONLY
def test_wait_strategy_legacy_runs_helm_with_its_legacy_waiter(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Any) -> None:
    calls = HelmCalls.create(tmp_path)
    signed(charts, "oldstyle", "0.1.0")
    apply_release(cluster, charts, registry, "oldstyle", "0.1.0",
                  waitStrategy={"name": "legacy"})
    operator.start(helm=str(calls.wrapper))
    wait_ready(cluster, operator, "oldstyle", timeout=120)
    (install,) = calls.releases()
    assert install.startswith("install ")
    assert "--wait=legacy" in install.split()
    assert "--wait=watcher" not in install.split()

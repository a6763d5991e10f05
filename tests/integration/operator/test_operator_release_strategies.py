"""HelmRelease fields that choose how helm acts, run by ``chartguard run`` with real helm 4
recorded by ``HelmCalls``: ``install``/``upgrade.strategy`` RetryOnFailure,
``serverSideApply`` (on the real API server too: the managedFields helm leaves),
``upgrade.chartNameChangeStrategy: InPlaceUpdate`` and ``valuesFrom[].literal``.

The expected behaviour is helm-controller's (internal/reconcile/atomic_release.go,
internal/action/install.go, upgrade.go, rollback.go; fluxcd/pkg chartutil values.go)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from operator_support import (
    EMULATOR_ONLY,
    Charts,
    Cluster,
    Operator,
    OperatorTarget,
    helmrelease,
    repository,
    secret,
    wait_for,
)
from test_operator_release_crds import crd, push, schema
from test_operator_release_failures import (
    REPO,
    apply_release,
    cond,
    cond_in,
    hanging_pod,
    patch_spec,
    reasons,
    records,
    request,
    signed,
    stalled,
    summary,
)
from test_operator_releases import KEY_BLOCK, wait_ready

from chartguard_testing.helm_calls import HelmCalls
from chartguard_testing.registry import Registry


def recorded(operator: Operator, tmp_path: Path) -> HelmCalls:
    """Start the operator with a helm that records its command lines."""
    calls = HelmCalls.create(tmp_path)
    operator.start(helm=str(calls.wrapper))
    return calls


def helm_managers(cluster: Cluster, kind: str, name: str) -> set[tuple[str, str]]:
    """(manager, operation) of the managedFields entries helm wrote on an object."""
    out = cluster.kubectl("get", kind, "-n", cluster.ns, name, "--show-managed-fields",
                          "-o", "json").stdout
    return {(entry["manager"], entry["operation"])
            for entry in json.loads(out)["metadata"].get("managedFields") or []
            if entry["manager"].startswith("helm")}


# -- RetryOnFailure ----------------------------------------------------------------------------


@EMULATOR_ONLY
def test_retry_on_failure_retries_a_failing_release_without_remediation(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Path) -> None:
    """A hook that never completes fails every install and upgrade (helm --timeout 1s). With
    RetryOnFailure the failed release stays and is upgraded again after retryInterval:
    no uninstall, no rollback, whatever the remediation settings say; never Stalled."""
    ns = cluster.ns
    signed(charts, "hanging", "0.1.0",
           {"templates/hook.yaml": hanging_pod("pre-install,pre-upgrade")})
    retry = {"name": "RetryOnFailure", "retryInterval": "2s"}
    apply_release(cluster, charts, registry, "hanging", "0.1.0", timeout="1s",
                  install={"strategy": retry, "remediation": {"retries": 3}},
                  upgrade={"strategy": retry, "remediation": {"retries": 3}})
    calls = recorded(operator, tmp_path)
    wait_for(lambda: len(calls.releases()) >= 3, "an install and two retries", timeout=120,
             operator=operator)
    # between two attempts: what helm-controller writes for ErrRetryAfterInterval
    retrying = ("True", "ProgressingWithRetry", "retrying after 2s")
    wait_for(lambda: cond_in(cluster.status("helmrelease", ns, "hanging"),
                             "Reconciling") == retrying,
             "Reconciling ProgressingWithRetry", timeout=30, operator=operator)
    status = cluster.status("helmrelease", ns, "hanging")
    if cond_in(status, "Reconciling") == retrying:  # not already the next attempt
        assert cond_in(status, "Stalled") is None
        assert status["observedGeneration"] == 1
        ready = cond_in(status, "Ready")
        assert ready is not None
        assert ready[:2] == ("False", "UpgradeFailed")
        assert ready[2].startswith(f"Helm upgrade failed for release {ns}/hanging with chart "
                                   "hanging@0.1.0: ")

    ran = calls.subcommands()
    assert ran[:3] == ["install", "upgrade", "upgrade"], ran
    assert "uninstall" not in ran
    assert "rollback" not in ran
    assert not stalled(cluster, "hanging")
    # every attempt left its failed revision; none was removed or rolled back
    stored = summary(cluster, "hanging")
    assert set(stored.values()) == {("failed", "0.1.0")}
    assert len(stored) >= 3
    counted = reasons(cluster, "hanging")
    assert counted["UninstallSucceeded"] == counted["RollbackSucceeded"] == 0
    assert counted["InstallFailed"] == 1


@EMULATOR_ONLY
def test_retry_on_failure_waits_the_retry_interval_not_a_backoff(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Path) -> None:
    """retryInterval 1h: after the failed install nothing runs for far longer than a backoff
    would wait (1 s, 2 s, ...); `flux reconcile` runs the retry at once, as with Flux."""
    signed(charts, "slow", "0.1.0",
           {"templates/hook.yaml": hanging_pod("pre-install,pre-upgrade")})
    retry = {"name": "RetryOnFailure", "retryInterval": "1h"}
    apply_release(cluster, charts, registry, "slow", "0.1.0", timeout="1s",
                  install={"strategy": retry}, upgrade={"strategy": retry})
    calls = recorded(operator, tmp_path)
    retrying = ("True", "ProgressingWithRetry", "retrying after 1h0m0s")
    wait_for(lambda: cond(cluster, "slow", "Reconciling") == retrying,
             "Reconciling retrying after 1h0m0s", timeout=60, operator=operator)
    assert calls.subcommands() == ["install"]
    time.sleep(8)  # a backoff would have retried twice by now
    assert calls.subcommands() == ["install"]
    assert cond(cluster, "slow", "Reconciling") == retrying

    request(cluster, operator, "slow")
    wait_for(lambda: calls.subcommands() == ["install", "upgrade"], "the retry", timeout=60,
             operator=operator)
    assert not stalled(cluster, "slow")


@EMULATOR_ONLY
def test_retry_on_failure_recovers_with_an_upgrade_and_clears_the_failures(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Path) -> None:
    """The install's hook hangs, the upgrade runs no pre-install hook: the retry after
    retryInterval is an upgrade of the failed release, which succeeds (revision 2)."""
    ns = cluster.ns
    signed(charts, "once", "0.1.0", {"templates/hook.yaml": hanging_pod("pre-install")})
    retry = {"name": "RetryOnFailure", "retryInterval": "1s"}
    apply_release(cluster, charts, registry, "once", "0.1.0", timeout="1s",
                  install={"strategy": retry}, upgrade={"strategy": retry})
    calls = recorded(operator, tmp_path)
    ready = wait_ready(cluster, operator, "once", timeout=120)

    assert calls.subcommands() == ["install", "upgrade"]
    assert (ready["reason"], ready["message"]) == (
        "UpgradeSucceeded", f"Helm upgrade succeeded for release {ns}/once.v2 with chart "
                            "once@0.1.0")
    assert summary(cluster, "once") == {1: ("superseded", "0.1.0"), 2: ("deployed", "0.1.0")}
    status = cluster.status("helmrelease", ns, "once")
    # the upgrade's success under RetryOnFailure clears the counts (ClearFailures)
    assert status.get("failures", 0) == status.get("installFailures", 0) == 0
    assert cond(cluster, "once", "Reconciling") is None
    assert reasons(cluster, "once")["UninstallSucceeded"] == 0


# -- serverSideApply -------------------------------------------------------------------------


def test_server_side_apply_disabled_applies_client_side_then_enabled_server_side(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        kube: OperatorTarget, tmp_path: Path) -> None:
    """``install.serverSideApply: false``: helm applies client-side (``--server-side=false``,
    managedFields operation Update, the release's apply method ``csa``); an upgrade with
    ``auto`` keeps it; ``enabled`` switches to server-side apply (operation Apply). The
    emulator keeps no managedFields: they are read on the real API server."""
    ns = cluster.ns
    real = kube.kind == "real"
    signed(charts, "web", "0.1.0")
    apply_release(cluster, charts, registry, "web", "0.1.0",
                  install={"serverSideApply": False})
    calls = recorded(operator, tmp_path)
    wait_ready(cluster, operator, "web")

    (install,) = calls.releases()
    assert install.startswith("install ")
    assert "--server-side=false" in install.split()
    assert "--force-conflicts" not in install.split()
    assert records(cluster, "web")[1].apply_method == "csa"
    if real:
        assert helm_managers(cluster, "deployment", "web") == {("helm", "Update")}

    patch_spec(cluster, "web", {"values": {"replicaCount": 2}})  # upgrade: auto
    wait_for(lambda: summary(cluster, "web").get(2) == ("deployed", "0.1.0"), "revision 2",
             operator=operator)
    assert "--server-side=false" in calls.releases()[1].split()
    assert records(cluster, "web")[2].apply_method == "csa"
    if real:
        assert helm_managers(cluster, "deployment", "web") == {("helm", "Update")}

    patch_spec(cluster, "web", {"values": {"replicaCount": 3},
                                "upgrade": {"serverSideApply": "enabled"}})
    wait_for(lambda: summary(cluster, "web").get(3) == ("deployed", "0.1.0"), "revision 3",
             operator=operator)
    third = calls.releases()[2].split()
    assert {"--server-side=true", "--force-conflicts"} <= set(third)
    assert records(cluster, "web")[3].apply_method == "ssa"
    deploy = cluster.body("deployment", ns, "web")
    assert deploy["spec"]["replicas"] == 3
    if real:
        assert ("helm", "Apply") in helm_managers(cluster, "deployment", "web")


def test_crd_policies_follow_the_apply_method_of_the_action(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        kube: OperatorTarget) -> None:
    """helm-controller's applyCRDs applies a chart's CRDs with the action's apply method:
    with ``install.serverSideApply: false`` (and an upgrade's ``auto`` after it) CreateReplace
    creates and replaces them client-side (managedFields operation Update, no Apply)."""
    ns = cluster.ns
    group = f"{ns}.example.com"  # CRDs are cluster-wide: named for this test's namespace
    size = {"size": {"type": "integer"}}
    push(charts, "tools", "0.1.0", {"crds/tools.yaml": crd("tools", group, size)})
    push(charts, "tools", "0.2.0", {"crds/tools.yaml": crd("tools", group,
                                                           {**size, "color": {"type": "string"}})})
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository(REPO, ns, registry.oci()),
        helmrelease("tools", ns, "tools", REPO, KEY_BLOCK, version="0.1.0", targetNamespace=ns,
                    install={"crds": "CreateReplace", "serverSideApply": False},
                    upgrade={"crds": "CreateReplace"}))
    operator.start()
    wait_ready(cluster, operator, "tools")
    assert schema(cluster, f"tools.{group}") == {"size"}
    patch_spec(cluster, "tools", {"chart": {"spec": {"version": "0.2.0"}}})
    wait_for(lambda: summary(cluster, f"{ns}-tools").get(2) == ("deployed", "0.2.0"),
             "revision 2", timeout=90, operator=operator)
    assert schema(cluster, f"tools.{group}") == {"size", "color"}  # replaced
    assert records(cluster, f"{ns}-tools")[2].apply_method == "csa"
    if kube.kind == "real":  # the emulator keeps no managedFields
        out = cluster.kubectl("get", "crd", f"tools.{group}", "--show-managed-fields",
                              "-o", "json").stdout
        managers = {(e["manager"], e["operation"])
                    for e in json.loads(out)["metadata"]["managedFields"]}
        assert ("chartguard", "Update") in managers
        assert not any(op == "Apply" for _, op in managers), managers


# -- chartNameChangeStrategy -----------------------------------------------------------------


@EMULATOR_ONLY
def test_in_place_update_upgrades_the_release_when_the_chart_name_changes(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Path) -> None:
    ns = cluster.ns
    signed(charts, "alpha", "0.1.0")
    signed(charts, "beta", "0.1.0")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository(REPO, ns, registry.oci()),
        helmrelease("app", ns, "alpha", REPO, KEY_BLOCK, version="0.1.0", releaseName="app",
                    targetNamespace=ns, upgrade={"chartNameChangeStrategy": "InPlaceUpdate"}))
    calls = recorded(operator, tmp_path)
    wait_ready(cluster, operator, "app")
    assert summary(cluster, "app") == {1: ("deployed", "0.1.0")}

    patch_spec(cluster, "app", {"chart": {"spec": {"chart": "beta"}}})
    wait_for(lambda: summary(cluster, "app").get(2) == ("deployed", "0.1.0"), "revision 2",
             timeout=90, operator=operator)
    ready = wait_ready(cluster, operator, "app")
    assert ready["message"] == (f"Helm upgrade succeeded for release {ns}/app.v2 with chart "
                                "beta@0.1.0")
    assert calls.subcommands() == ["install", "upgrade"]  # not uninstalled, not reinstalled
    stored = records(cluster, "app")
    assert (stored[1].chart_name, stored[1].status) == ("alpha", "superseded")
    assert (stored[2].chart_name, stored[2].status) == ("beta", "deployed")


# -- valuesFrom literal ----------------------------------------------------------------------


@EMULATOR_ONLY
def test_a_literal_value_lands_verbatim(cluster: Cluster, charts: Charts, registry: Registry,
                                        operator: Operator) -> None:
    """``literal: true``: a value with commas, dots, '=', braces and a backslash reaches the
    chart as it is written (``--set`` syntax would split it into several keys)."""
    ns = cluster.ns
    value = 'a,b.c=d {x,y} [0] "q" C:\\dir'
    cluster.kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "notes", "namespace": ns},
                           "data": {"note": value}})
    signed(charts, "lit", "0.1.0")
    apply_release(cluster, charts, registry, "lit", "0.1.0", valuesFrom=[
        {"kind": "ConfigMap", "name": "notes", "valuesKey": "note",
         "targetPath": "podAnnotations.example\\.com/note", "literal": True}])
    operator.start()
    wait_ready(cluster, operator, "lit")
    template = cluster.body("deployment", ns, "lit")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"example.com/note": value}

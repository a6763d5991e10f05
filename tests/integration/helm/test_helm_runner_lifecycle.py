"""A release's life through the runner, real helm 4 on the API emulator: install, upgrade with
new values, test, rollback, uninstall; each result is what helm's storage holds afterwards."""

from __future__ import annotations

import pytest
from helm_support import Kube, KubectlReleaseStorage, chart_file, helm_release

from chartguard.helm.errors import HelmError
from chartguard.helm.release import failed_release_secret, values_digest
from chartguard.helm.runner import Helm
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.charts import HelmEnv


def deployments(kube: Kube, namespace: str) -> dict[str, int]:
    return {item["metadata"]["name"]: item["spec"]["replicas"]
            for item in kube.items("deployments", namespace)}


def test_install_upgrade_test_rollback_uninstall(helm: Helm, helm_env: HelmEnv, kube: Kube,
                                                 storage: KubectlReleaseStorage) -> None:
    chart = chart_file(helm_env, app_version="1.2.3")
    release = helm_release("{targetNamespace: apps, install: {createNamespace: true}}")
    assert release.release_name == "apps-demo"

    installed = helm.install(release, chart, {"replicaCount": 2}, description="first")
    assert (installed.name, installed.namespace, installed.version) == ("apps-demo", "apps", 1)
    assert installed.status == "deployed"
    assert (installed.chart_name, installed.chart_version, installed.app_version) == (
        "demo", "0.1.0", "1.2.3")
    assert installed.config_digest == values_digest({"replicaCount": 2})
    assert installed.description == "first"
    # helm's release Secret and the chart's Deployment are in the target namespace
    (secret,) = kube.items("secrets", "apps", "-l", "owner=helm,name=apps-demo")
    assert secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["labels"]["status"] == "deployed"
    assert deployments(kube, "apps") == {"apps-demo": 2}
    assert kube.items("secrets", "flux-system", "-l", "owner=helm") == []

    upgraded = helm.upgrade(release, chart, {"replicaCount": 3})
    assert upgraded.version == 2
    assert upgraded.status == "deployed"
    assert upgraded.config_digest == values_digest({"replicaCount": 3})
    assert upgraded.config_digest != installed.config_digest
    assert deployments(kube, "apps") == {"apps-demo": 3}
    assert [r.status for r in storage.history("apps", "apps-demo")] == ["deployed", "superseded"]

    tested = helm.test(release)
    assert tested.version == 2
    (name, hook), = tested.test_hooks.items()
    assert name == "apps-demo-test-connection"
    assert hook.phase == "Succeeded"
    assert hook.last_started
    assert hook.last_completed
    assert tested.digest != upgraded.digest  # helm recorded the test run in revision 2

    rolled = helm.rollback(release, 0)
    assert rolled.version == 3
    assert rolled.status == "deployed"
    assert rolled.config_digest == installed.config_digest
    assert deployments(kube, "apps") == {"apps-demo": 2}

    before = helm.processes
    helm.uninstall(release)
    assert storage.history("apps", "apps-demo") == []
    assert deployments(kube, "apps") == {}
    helm.uninstall(release)  # already gone: not an error
    assert helm.processes == before + 2
    assert helm.processes == 6


def test_rollback_to_an_explicit_version(helm: Helm, helm_env: HelmEnv) -> None:
    chart = chart_file(helm_env)
    release = helm_release()
    for replicas in (1, 2, 3):
        action = helm.upgrade if replicas > 1 else helm.install
        action(release, chart, {"replicaCount": replicas})
    rolled = helm.rollback(release, 1)
    assert rolled.version == 4
    assert rolled.config_digest == values_digest({"replicaCount": 1})
    assert rolled.description == "Rollback to 1"


def test_uninstall_keeping_history(helm: Helm, helm_env: HelmEnv,
                                   storage: KubectlReleaseStorage) -> None:
    release = helm_release("uninstall: {keepHistory: true, deletionPropagation: foreground}")
    helm.install(release, chart_file(helm_env), {})
    helm.uninstall(release)
    (kept,) = storage.history("flux-system", "demo")
    assert kept.status == "uninstalled"
    assert kept.deleted
    processes = helm.processes
    helm.uninstall(release)  # already uninstalled: nothing to do, helm not started
    assert helm.processes == processes
    assert storage.history("flux-system", "demo") == [kept]
    # without keepHistory, uninstalling again purges the kept history
    helm.uninstall(helm_release())
    assert storage.history("flux-system", "demo") == []


def test_upgrade_of_a_release_that_does_not_exist_fails_without_storage_change(
        helm: Helm, helm_env: HelmEnv) -> None:
    with pytest.raises(HelmError) as caught:
        helm.upgrade(helm_release(), chart_file(helm_env), {})
    assert caught.value.action == "upgrade"
    assert caught.value.storage_changed is False
    assert "has no deployed releases" in caught.value.message


def test_real_helm_4_accepts_every_flag_the_builders_write(helm: Helm, helm_env: HelmEnv,
                                                           kube: Kube) -> None:
    """Each spec option set at once: a misspelt or removed flag would fail the action."""
    kube("create", "namespace", "web")
    release = helm_release("""
      targetNamespace: web
      releaseName: site
      serviceAccountName: deployer
      maxHistory: 2
      install:
        createNamespace: true
        crds: Skip
        replace: true
        disableHooks: true
        disableOpenAPIValidation: true
        disableSchemaValidation: true
        disableTakeOwnership: true
        disableWaitForJobs: true
      upgrade:
        force: true
        preserveValues: true
        cleanupOnFail: true
        disableWait: true
        disableHooks: true
        disableOpenAPIValidation: true
        disableSchemaValidation: true
        disableTakeOwnership: true
      test:
        filters: [{name: site-demo-test-connection}, {name: other, exclude: true}]
      rollback: {force: true, cleanupOnFail: true, disableHooks: true, disableWait: true}
      uninstall: {keepHistory: true, disableHooks: true, disableWait: true,
                  deletionPropagation: orphan}
    """)
    chart = chart_file(helm_env)
    assert helm.install(release, chart, {"a": 1}, description="all flags").status == "deployed"
    upgraded = helm.upgrade(release, chart, {"b": 2}, description="again")
    # preserveValues: helm merged the new values into the previous ones
    assert upgraded.config_digest == values_digest({"a": 1, "b": 2})
    assert helm.test(release).test_hooks["site-demo-test-connection"].phase == "Succeeded"
    assert helm.rollback(release, 1).version == 3
    helm.uninstall(release)
    assert helm.processes == 5


def test_a_client_side_applied_release_stays_client_side_and_honours_force(
        helm: Helm, helm_env: HelmEnv, kube_api: KubeAPI,
        storage: KubectlReleaseStorage) -> None:
    """A release helm applied client-side (as helm 3 did) is upgraded and rolled back
    client-side, where ``force`` means --force-replace (as in helm-controller)."""
    chart = chart_file(helm_env)
    helm_env.run("install", "demo", str(chart.path), "-n", "flux-system", "--server-side=false",
                 env={"KUBECONFIG": str(kube_api.kubeconfig)})
    (first,) = storage.history("flux-system", "demo")
    assert first.apply_method == "csa"
    release = helm_release("{upgrade: {force: true}, rollback: {force: true}}")
    upgraded = helm.upgrade(release, chart, {"replicaCount": 2})
    assert (upgraded.version, upgraded.apply_method) == (2, "csa")
    rolled = helm.rollback(release, 0)
    assert (rolled.version, rolled.apply_method) == (3, "csa")


def test_unlock_lets_real_helm_upgrade_a_release_left_in_pending(
        helm: Helm, helm_env: HelmEnv, kube: Kube, storage: KubectlReleaseStorage) -> None:
    chart = chart_file(helm_env)
    release = helm_release()
    helm.install(release, chart, {})
    # what a helm killed mid-upgrade leaves: the newest revision in pending-upgrade
    (secret,) = kube.items("secrets", "flux-system", "-l", "owner=helm,name=demo")
    kube.replace(failed_release_secret(secret, "Upgrade in progress", status="pending-upgrade"))
    assert storage.history("flux-system", "demo")[0].status == "pending-upgrade"
    with pytest.raises(HelmError) as caught:
        helm.upgrade(release, chart, {"replicaCount": 2})
    assert "another operation" in caught.value.message
    processes = helm.processes
    unlocked = helm.unlock(release, 1, description="Release unlocked from stale "
                                                   "'pending-upgrade' state")
    assert helm.processes == processes  # no helm process: the record is rewritten
    assert (unlocked.status, unlocked.description) == (
        "failed", "Release unlocked from stale 'pending-upgrade' state")
    # helm reads the rewritten record as its own: the next upgrade goes through
    upgraded = helm.upgrade(release, chart, {"replicaCount": 2})
    assert (upgraded.version, upgraded.status) == (2, "deployed")


def test_unlock_of_a_revision_that_is_not_stored_is_a_helm_error(helm: Helm) -> None:
    with pytest.raises(HelmError) as caught:
        helm.unlock(helm_release(), 7, description="x")
    assert caught.value.action == "unlock"
    assert caught.value.storage_changed is False


def test_server_side_apply_modes_choose_each_actions_apply_method(
        helm: Helm, helm_env: HelmEnv, storage: KubectlReleaseStorage) -> None:
    """``spec.install.serverSideApply`` (bool) and ``spec.upgrade``/``spec.rollback``
    ``serverSideApply`` (enabled | disabled | auto) as helm-controller resolves them: auto is
    the apply method of the revision upgraded from, or rolled back to; helm records the
    method each action used."""
    chart = chart_file(helm_env)
    client_side = helm_release("{maxHistory: 0, install: {serverSideApply: false}}")
    assert helm.install(client_side, chart, {}).apply_method == "csa"
    assert helm.upgrade(client_side, chart, {"a": 1}).apply_method == "csa"  # v2, auto
    enabled = helm_release("{maxHistory: 0, upgrade: {serverSideApply: enabled}}")
    assert helm.upgrade(enabled, chart, {"a": 2}).apply_method == "ssa"  # v3
    auto = helm_release("maxHistory: 0")
    assert helm.upgrade(auto, chart, {"a": 3}).apply_method == "ssa"  # v4, auto
    disabled = helm_release("{maxHistory: 0, upgrade: {serverSideApply: disabled}}")
    assert helm.upgrade(disabled, chart, {"a": 4}).apply_method == "csa"  # v5
    # rollback to v3 (ssa): disabled applies client-side; auto follows v3's method
    rolled = helm.rollback(
        helm_release("{maxHistory: 0, rollback: {serverSideApply: disabled}}"), 3)
    assert (rolled.version, rolled.apply_method) == (6, "csa")
    assert helm.rollback(helm_release("maxHistory: 0"), 3).apply_method == "ssa"  # v7
    # rollback to v2 (csa): enabled applies server-side
    forced = helm.rollback(
        helm_release("{maxHistory: 0, rollback: {serverSideApply: enabled}}"), 2)
    assert (forced.version, forced.apply_method) == (8, "ssa")
    assert [r.apply_method for r in sorted(storage.history("flux-system", "demo"),
                                           key=lambda r: r.version)] == [
        "csa", "csa", "ssa", "ssa", "csa", "csa", "ssa", "ssa"]

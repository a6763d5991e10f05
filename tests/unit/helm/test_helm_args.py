"""helm 4 argv from HelmRelease YAML: each spec field becomes the flag helm-controller's
action would set, and what the CLI cannot do is named by ``unsupported``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chartguard.api import HelmRelease
from chartguard.api.durations import format_duration
from chartguard.helm.args import (
    action_timeout,
    install_args,
    rollback_args,
    server_side,
    uninstall_args,
    unsupported,
    upgrade_args,
)
from chartguard.helm.args import test_args as helm_test_args

CHART = Path("/store/chart.tgz")
VALUES = Path("/tmp/values.json")
BASE = """
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo, namespace: flux-system}
spec:
  interval: 5m
  chart:
    spec:
      chart: podinfo
      sourceRef: {kind: HelmRepository, name: podinfo}
"""


def release(spec_yaml: str = "", **meta: Any) -> HelmRelease:
    doc = yaml.safe_load(BASE)
    doc["spec"].update(yaml.safe_load(spec_yaml) or {})
    doc["metadata"].update(meta)
    return HelmRelease.from_object(doc)


def test_install_defaults_wait_like_flux_and_apply_server_side() -> None:
    assert install_args(release(), CHART, VALUES) == [
        "install", "--namespace", "flux-system", "--timeout", "5m0s",
        "--wait=watcher", "--wait-for-jobs", "--server-side=true", "--force-conflicts",
        "--values", "/tmp/values.json", "--take-ownership",
        "--", "podinfo", "/store/chart.tgz"]


def test_install_every_flag() -> None:
    argv = install_args(release("""
      targetNamespace: apps
      timeout: 1m
      install:
        timeout: 90s
        createNamespace: true
        crds: Skip
        replace: true
        disableHooks: true
        disableOpenAPIValidation: true
        disableSchemaValidation: true
        disableTakeOwnership: true
        disableWaitForJobs: true
    """), CHART, VALUES, description="chart podinfo@6.5.0")
    assert argv == [
        "install", "--namespace", "apps", "--timeout", "1m30s",
        "--wait=watcher", "--server-side=true", "--force-conflicts",
        "--values", "/tmp/values.json", "--create-namespace", "--skip-crds", "--no-hooks",
        "--disable-openapi-validation", "--skip-schema-validation", "--replace",
        "--description", "chart podinfo@6.5.0",
        "--", "apps-podinfo", "/store/chart.tgz"]


@pytest.mark.parametrize(("install", "present", "absent"), [
    ("{disableWait: true}", ["--wait=hookOnly"], ["--wait=watcher", "--wait-for-jobs"]),
    ("{skipCRDs: true}", ["--skip-crds"], []),
    ("{crds: Create}", [], ["--skip-crds"]),
    # CreateReplace: the runner applied the chart's CRDs before helm install
    ("{crds: CreateReplace}", ["--skip-crds"], []),
    # Flux creates the namespace only for a targetNamespace
    ("{createNamespace: true}", [], ["--create-namespace"]),
])
def test_install_flag_table(install: str, present: list[str], absent: list[str]) -> None:
    argv = install_args(release(f"install: {install}"), CHART, VALUES)
    assert all(flag in argv for flag in present), argv
    assert not any(flag in argv for flag in absent), argv


def test_install_server_side_apply_false_applies_client_side_without_forcing() -> None:
    """Flux's ``spec.install.serverSideApply: false``: helm 4's ``--server-side=false``;
    conflicts are forced only server-side, and install has no ``force``."""
    argv = install_args(release("install: {serverSideApply: false}"), CHART, VALUES)
    assert "--server-side=false" in argv
    assert not {"--server-side=true", "--force-conflicts", "--force-replace"} & set(argv)
    explicit = install_args(release("install: {serverSideApply: true}"), CHART, VALUES)
    assert explicit == install_args(release(), CHART, VALUES)


@pytest.mark.parametrize(("mode", "previous", "expected"), [
    ("enabled", "csa", True), ("enabled", "", True),
    ("disabled", "ssa", False), ("disabled", "", False),
    ("auto", "ssa", True), ("auto", "csa", False),
    ("auto", "", False),  # a revision helm 3 wrote: client-side, as helm's own auto
])
def test_server_side_follows_the_mode_or_the_previous_apply_method(
        mode: str, previous: str, expected: bool) -> None:
    assert server_side(mode, previous) is expected


def test_upgrade_keeps_server_side_apply_and_resets_values() -> None:
    assert upgrade_args(release("maxHistory: 3"), CHART, VALUES, server_side=True) == [
        "upgrade", "--namespace", "flux-system", "--timeout", "5m0s",
        "--wait=watcher", "--wait-for-jobs", "--server-side=true", "--force-conflicts",
        "--history-max", "3", "--values", "/tmp/values.json", "--reset-values",
        "--take-ownership", "--", "podinfo", "/store/chart.tgz"]


def test_upgrade_every_flag_client_side() -> None:
    argv = upgrade_args(release("""
      releaseName: web
      maxHistory: 0
      serviceAccountName: deployer
      upgrade:
        timeout: 2m
        force: true
        preserveValues: true
        cleanupOnFail: true
        disableWait: true
        disableHooks: true
        disableOpenAPIValidation: true
        disableSchemaValidation: true
        disableTakeOwnership: true
    """), CHART, VALUES, server_side=False, description="d")
    assert argv == [
        "upgrade", "--namespace", "flux-system", "--timeout", "2m0s",
        "--kube-as-user", "system:serviceaccount:flux-system:deployer",
        "--wait=hookOnly", "--server-side=false", "--force-replace",
        "--history-max", "0", "--values", "/tmp/values.json", "--reuse-values",
        "--no-hooks", "--disable-openapi-validation", "--skip-schema-validation",
        "--cleanup-on-fail", "--description", "d", "--", "web", "/store/chart.tgz"]


def test_upgrade_force_is_ignored_under_server_side_apply_as_flux_does() -> None:
    argv = upgrade_args(release("upgrade: {force: true}"), CHART, VALUES, server_side=True)
    assert "--force-replace" not in argv
    assert "--force-conflicts" in argv


def test_test_filters_include_and_exclude() -> None:
    argv = helm_test_args(release("""
      test:
        enable: true
        timeout: 45s
        filters: [{name: smoke}, {name: slow, exclude: true}]
    """))
    assert argv == ["test", "--namespace", "flux-system", "--timeout", "45s",
                    "--filter", "name=smoke", "--filter", "!name=slow", "--", "podinfo"]


def test_rollback_previous_and_explicit_version() -> None:
    spec = """
      rollback:
        timeout: 10s
        force: true
        cleanupOnFail: true
        disableHooks: true
        disableWaitForJobs: true
    """
    assert rollback_args(release(spec), 0, server_side=False) == [
        "rollback", "--namespace", "flux-system", "--timeout", "10s",
        "--wait=watcher", "--server-side=false", "--force-replace", "--history-max", "5",
        "--no-hooks", "--cleanup-on-fail", "--", "podinfo"]
    assert rollback_args(release(spec), 3, server_side=True)[-5:] == [
        "--no-hooks", "--cleanup-on-fail", "--", "podinfo", "3"]
    with pytest.raises(ValueError, match="not -1"):
        rollback_args(release(), -1, server_side=True)


def test_uninstall_flags() -> None:
    assert uninstall_args(release()) == [
        "uninstall", "--namespace", "flux-system", "--timeout", "5m0s", "--wait=watcher",
        "--cascade", "background", "--ignore-not-found", "--", "podinfo"]
    argv = uninstall_args(release("""
      uninstall: {keepHistory: true, disableHooks: true, disableWait: true,
                  deletionPropagation: orphan, timeout: 1h}
    """))
    assert argv == [
        "uninstall", "--namespace", "flux-system", "--timeout", "1h0m0s", "--wait=hookOnly",
        "--cascade", "orphan", "--ignore-not-found", "--keep-history", "--no-hooks",
        "--", "podinfo"]


@pytest.mark.parametrize(("spec", "action", "expected"), [
    ("", "install", "5m0s"),
    ("timeout: 10m", "upgrade", "10m0s"),
    ("{timeout: 10m, test: {timeout: 30s}}", "test", "30s"),
    ("{timeout: 10m, uninstall: {timeout: 1m}}", "rollback", "10m0s"),
])
def test_action_timeout_falls_back_to_spec_timeout(spec: str, action: str,
                                                   expected: str) -> None:
    assert format_duration(action_timeout(release(spec), action)) == expected


def test_a_release_name_that_looks_like_a_flag_stays_positional() -> None:
    argv = uninstall_args(release("releaseName: --all"))
    assert argv[-2:] == ["--", "--all"]


def test_unsupported_names_each_field_the_cli_cannot_honour() -> None:
    assert unsupported(release()) == ()
    assert unsupported(release("{targetNamespace: apps, storageNamespace: apps}")) == ()
    found = unsupported(release("""
      targetNamespace: apps
      storageNamespace: flux-system
      kubeConfig: {secretRef: {name: remote}}
      install: {crds: CreateReplace}
      upgrade: {crds: Create}
      rollback: {recreate: true}
      postRenderers: [{kustomize: {images: [{name: nginx, newTag: "1.25"}]}}]
    """))
    # kubeConfig: --kubeconfig; install/upgrade crds: applied by the runner (helm.crds)
    assert [item.split(":", 1)[0] for item in found] == [
        "spec.storageNamespace", "spec.rollback.recreate"]  # postRenderers: a helm plugin
    assert all(len(item.split(": ", 1)[1]) > 20 for item in found)  # each says why
    assert "(apps)" in found[0]


def test_install_crds_create_replace_with_skip_crds_is_a_skip() -> None:
    assert unsupported(release("install: {crds: CreateReplace, skipCRDs: true}")) == ()


@pytest.mark.parametrize(("strategy", "wait"), [
    ("", "--wait=watcher"),
    ("waitStrategy: {name: poller}", "--wait=watcher"),
    ("waitStrategy: {name: legacy}", "--wait=legacy"),
])
def test_wait_strategy_picks_helms_waiter_for_every_action_that_waits(strategy: str,
                                                                      wait: str) -> None:
    """helm-controller's getWaitStrategy: poller is helm 4's kstatus watcher, legacy helm 3's
    waiting logic, for install, upgrade, rollback and uninstall alike."""
    hr = release(strategy)
    for argv in (install_args(hr, CHART, VALUES),
                 upgrade_args(hr, CHART, VALUES, server_side=True),
                 rollback_args(hr, 0, server_side=True), uninstall_args(hr)):
        assert [a for a in argv if a.startswith("--wait=")] == [wait], argv


def test_disable_wait_wins_over_the_wait_strategy() -> None:
    hr = release("""
      waitStrategy: {name: legacy}
      install: {disableWait: true}
      uninstall: {disableWait: true}
    """)
    assert "--wait=hookOnly" in install_args(hr, CHART, VALUES)
    assert "--wait=hookOnly" in uninstall_args(hr)
    assert "--wait=legacy" in upgrade_args(hr, CHART, VALUES, server_side=True)

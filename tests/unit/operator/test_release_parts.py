"""The operator's HelmRelease parts without a cluster: HelmChart merge patches, Flux's force and
reset requests, the release flags of ``chartguard run``, status patches of release fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from chartguard.cli import build_parser
from chartguard.cli.run import config_from
from chartguard.operator.caches import Objects
from chartguard.operator.config import OperatorConfig
from chartguard.operator.kube import Kube, KubeError
from chartguard.operator.releases import KubeCharts, merge_patch
from chartguard.operator.runtime import (
    CHARTS,
    FORCE_AT,
    RELEASES,
    RESET_AT,
    Runtime,
    _handle,
    status_patch,
)


def test_merge_patch_removes_what_the_template_dropped_and_keeps_foreign_labels() -> None:
    old = {"chart": "a", "version": "1.x", "verify": {"provider": "cosign",
                                                       "secretRef": {"name": "k"}}}
    new = {"chart": "a", "version": "2.x", "verify": {"provider": "cosign"}}
    assert merge_patch(old, new) == {"version": "2.x", "verify": {"secretRef": None}}
    assert merge_patch(new, new) == {}
    labels = merge_patch({"team": "x", "helm.toolkit.fluxcd.io/name": "old"},
                         {"helm.toolkit.fluxcd.io/name": "new"}, keep_unknown=True)
    assert labels == {"helm.toolkit.fluxcd.io/name": "new"}  # "team" (another tool's) stays


class _FakeKube:
    def __init__(self, existing: dict[str, Any] | None) -> None:
        self.existing = existing
        self.calls: list[tuple[str, Any]] = []

    def get_source(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.existing

    def create_custom(self, group: str, version: str, plural: str, namespace: str,
                      body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body))
        if self.existing is not None:
            raise KubeError("exists", 409)
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}

    def merge_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                    patch: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", patch))
        return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "2"}}

    def delete_custom(self, *args: str) -> bool:
        self.calls.append(("delete", args))
        return False


DESIRED = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
           "metadata": {"name": "ns-app", "namespace": "ns",
                        "labels": {"helm.toolkit.fluxcd.io/name": "app"}},
           "spec": {"chart": "app", "version": "*"}}


def test_charts_are_created_once_then_patched_with_only_the_difference() -> None:
    kube = _FakeKube(None)
    charts = KubeCharts(kube, Objects())  # type: ignore[arg-type]
    charts.apply(DESIRED)
    assert [c[0] for c in kube.calls] == ["create"]
    current = {**DESIRED, "metadata": {**DESIRED["metadata"], "resourceVersion": "5"},
               "spec": {"chart": "app", "version": "1.x", "valuesFiles": ["a.yaml"]}}
    kube = _FakeKube(current)
    KubeCharts(kube, Objects()).apply(DESIRED)  # type: ignore[arg-type]
    # the chart exists: one patch of the difference only (the labels are already right)
    assert kube.calls == [("patch", {"spec": {"version": "*", "valuesFiles": None}})]
    kube = _FakeKube({**DESIRED, "metadata": {**DESIRED["metadata"], "resourceVersion": "6"}})
    KubeCharts(kube, Objects()).apply(DESIRED)  # type: ignore[arg-type]
    assert kube.calls == []  # nothing differs: no write at all
    charts = KubeCharts(kube, Objects())  # type: ignore[arg-type]
    charts.delete("ns", "gone")  # already gone: no error
    assert kube.calls[-1] == ("delete", ("source.toolkit.fluxcd.io", "v1", "helmcharts", "ns",
                                         "gone"))


def test_force_and_reset_are_handled_once_and_only_with_a_matching_request() -> None:
    both = {FORCE_AT: "t1", RESET_AT: "t1"}
    assert _handle(both, FORCE_AT, "t1", "")
    assert not _handle(both, FORCE_AT, "t1", "t1")  # handled already
    assert not _handle({FORCE_AT: "t0"}, FORCE_AT, "t1", "")  # not the current request
    assert not _handle({}, RESET_AT, "t1", "")
    assert not _handle({RESET_AT: ""}, RESET_AT, "", "")


def test_release_status_fields_that_go_back_to_empty_are_removed() -> None:
    old = {"failures": 2, "installFailures": 2, "history": [{"version": 1}],
           "lastAttemptedRevision": "0.1.0"}
    new = {"history": [{"version": 1}], "lastAttemptedRevision": "0.1.0"}
    assert status_patch(old, new) == {"failures": None, "installFailures": None}


def test_release_flags_and_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHARTGUARD_HELM", "/opt/helm")
    monkeypatch.setenv("CHARTGUARD_RELEASE_CONCURRENCY", "2")
    config = config_from(build_parser().parse_args(
        ["run", "--helm-home", str(tmp_path), "--trusted-root", str(tmp_path / "root.json")]))
    assert config.helm_binary == "/opt/helm"
    assert config.helm_home == tmp_path
    assert config.release_concurrency == 2
    assert config.trusted_root == tmp_path / "root.json"
    assert config.release_service_account == ""
    assert config.kubectl_binary == "kubectl"  # PATH's: its kustomize post-renders releases
    monkeypatch.setenv("CHARTGUARD_KUBECTL", "/opt/kubectl")
    assert config_from(build_parser().parse_args(["run"])).kubectl_binary == "/opt/kubectl"
    flagged = config_from(build_parser().parse_args(["run", "--kubectl", "/usr/bin/kubectl"]))
    assert flagged.kubectl_binary == "/usr/bin/kubectl"
    named = config_from(build_parser().parse_args(
        ["run", "--release-service-account", "ops/chartguard-releases"]))
    assert named.release_service_account == "ops/chartguard-releases"
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        config_from(build_parser().parse_args(["run", "--release-service-account", "ops"]))
    monkeypatch.setenv("CHARTGUARD_RELEASE_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="--release-concurrency"):
        config_from(build_parser().parse_args(["run"]))


def test_a_secret_change_queues_each_user_on_its_own_kinds_queue(tmp_path: Path) -> None:
    # a release queued on the sources' queue could run beside its own queue's worker: two
    # helm processes on one release at once
    runtime = Runtime(OperatorConfig(artifact_dir=tmp_path / "store",
                                     helm_home=tmp_path / "helm"), cast(Kube, None))
    release, chart = (RELEASES, "ns", "app"), (CHARTS, "ns", "app-chart")
    runtime.secret_users.update(release, [("ns", "shared")])
    runtime.secret_users.update(chart, [("ns", "shared")])
    runtime.observe_secret("MODIFIED", {"metadata": {"namespace": "ns", "name": "shared",
                                                     "resourceVersion": "7"}})
    assert (len(runtime.release_queue), len(runtime.queue)) == (1, 1)
    assert runtime.release_queue._queue.get_nowait() == release
    assert runtime.queue._queue.get_nowait() == chart


def test_cached_bodies_drop_what_the_operator_never_reads() -> None:
    objects = Objects()
    applied = {"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "3",
                            "managedFields": [{"manager": "kubectl"}],
                            "annotations": {
                                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                "reconcile.fluxcd.io/requestedAt": "now"}},
               "spec": {"interval": "1m"}}
    objects.put(applied)
    cached = objects.get("ns", "a")
    assert cached is not None
    assert "managedFields" not in cached["metadata"]
    assert cached["metadata"]["annotations"] == {"reconcile.fluxcd.io/requestedAt": "now"}
    assert cached["spec"] == {"interval": "1m"}
    assert "managedFields" in applied["metadata"]  # the caller's body is not changed

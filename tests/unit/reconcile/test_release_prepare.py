"""Preparing a HelmRelease: refused fields, the implied HelmChart kept in sync (and the old one
deleted when the release moves), dependsOn, chart readiness and values, over small fakes."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from chartguard.api import HelmRelease
from chartguard.api import conditions as c
from chartguard.api.implied import OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL
from chartguard.api.status import HelmReleaseStatus
from chartguard.reconcile.outcome import DEPENDENCY_REQUEUE, StepFailedError, WaitingError
from chartguard.reconcile.release_chart import desired_helmchart_body
from chartguard.reconcile.release_prepare import (
    REFUSED_FIELDS,
    UNSUPPORTED_FIELD,
    UNSUPPORTED_SOURCE_KIND,
    PrepareEnv,
    prepare_release,
    release_chart_to_delete,
    release_refs,
    sync_release_chart,
)
from chartguard.reconcile.seams import (
    ChartWriteError,
    ConfigMapNotFoundError,
    SecretNotFoundError,
)
from chartguard.store import ArtifactStore

NS = "apps"
CHART = "apps-podinfo"
MANIFEST = "sha256:" + "ab" * 32
CHART_BYTES = b"podinfo chart"
CHART_DIGEST = "sha256:" + hashlib.sha256(CHART_BYTES).hexdigest()
READY_STATUS = {
    "observedGeneration": 1, "observedChartName": "podinfo",
    "conditions": [{"type": "Ready", "status": "True", "reason": "ChartPullSucceeded",
                    "message": "pulled 'podinfo' chart with version '6.5.4'"},
                   {"type": "SourceVerified", "status": "True", "reason": "Succeeded",
                    "message": "verified signature of version 6.5.4"}],
    "artifact": {"path": "p", "url": "u", "revision": f"6.5.4@{MANIFEST}",
                 "lastUpdateTime": "2026-01-01T00:00:00Z", "digest": CHART_DIGEST}}


class Objects:
    """HelmCharts or HelmReleases by (namespace, name)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.items.get((namespace, name))


class Writer:
    """Applies into ``charts``, as the API server would, with source-controller's status."""

    def __init__(self, charts: Objects) -> None:
        self.charts = charts
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str]] = []
        self.fail = False

    def apply(self, body: Mapping[str, object]) -> Mapping[str, object]:
        if self.fail:
            raise ChartWriteError("the server could not find the requested resource (503)")
        self.applied.append(copy.deepcopy(dict(body)))
        stored = copy.deepcopy(dict(body))
        stored["metadata"]["generation"] = 1  # type: ignore[index]
        stored["status"] = copy.deepcopy(READY_STATUS)
        key = (stored["metadata"]["namespace"], stored["metadata"]["name"])  # type: ignore[index]
        self.charts.items[key] = stored
        return stored

    def delete(self, namespace: str, name: str) -> None:
        if self.fail:
            raise ChartWriteError("503")
        self.deleted.append((namespace, name))
        self.charts.items.pop((namespace, name), None)


class Secrets:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, bytes]] = {}

    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        try:
            return self.items[name]
        except KeyError:
            raise SecretNotFoundError(name) from None


class ConfigMaps:
    def get(self, namespace: str, name: str) -> Mapping[str, str]:
        raise ConfigMapNotFoundError(name)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.charts = Objects()
        self.releases = Objects()
        self.writer = Writer(self.charts)
        self.secrets = Secrets()
        self.store = ArtifactStore(tmp_path / "store")
        self.store.put(CHART_BYTES)
        self.verified: dict[tuple[str, str], str] = {}
        self.env = PrepareEnv(charts=self.charts, chart_writer=self.writer,
                              releases=self.releases, secrets=self.secrets,
                              configmaps=ConfigMaps(), store=self.store,
                              verified=lambda ns, name: self.verified.get((ns, name)))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def release(**spec: Any) -> HelmRelease:
    body: dict[str, Any] = {"interval": "5m", **spec}
    if "chart" not in body and "chartRef" not in body:
        body["chart"] = {"spec": {"chart": "podinfo", "version": "6.x",
                                  "sourceRef": {"kind": "HelmRepository", "name": "podinfo"},
                                  "verify": {"provider": "cosign",
                                             "secretRef": {"name": "cosign-pub"}}}}
    return HelmRelease.from_object({"apiVersion": "helm.toolkit.fluxcd.io/v2",
                                    "kind": "HelmRelease",
                                    "metadata": {"name": "podinfo", "namespace": NS,
                                                 "generation": 1},
                                    "spec": body})


def status(helm_chart: str = "") -> HelmReleaseStatus:
    return HelmReleaseStatus(helm_chart=helm_chart)


def fails(hr: HelmRelease, world: World, st: HelmReleaseStatus | None = None
          ) -> StepFailedError:
    with pytest.raises(StepFailedError) as info:
        prepare_release(hr, st or status(), world.env)
    err = info.value
    assert (err.condition, err.status) == (c.READY, c.FALSE)
    return err


def test_a_new_release_creates_its_chart_and_is_prepared_once_verified(world: World) -> None:
    hr = release(values={"replicaCount": 2},
                 valuesFrom=[{"kind": "Secret", "name": "extra", "optional": True}])
    err = fails(hr, world)  # created, fetched and stored, but not verified by this process
    assert world.writer.applied == [desired_helmchart_body(hr)]
    assert "has not been verified by this chartguard process yet" in err.message
    world.verified[(NS, CHART)] = MANIFEST
    prepared = prepare_release(hr, status(f"{NS}/{CHART}"), world.env)
    assert len(world.writer.applied) == 1  # in sync: not applied again
    assert prepared.chart.file.digest == CHART_DIGEST
    assert prepared.chart.oci_digest == MANIFEST
    assert prepared.values.values == {"replicaCount": 2}
    assert prepared.helm_chart == f"{NS}/{CHART}"
    assert prepared.secrets == {(NS, "extra")}
    assert prepared.charts == {(NS, CHART)}
    assert prepared.actions == ()


def test_a_changed_template_updates_the_chart(world: World) -> None:
    world.verified[(NS, CHART)] = MANIFEST
    prepare_release(release(), status(), world.env)
    newer = release(chart={"spec": {"chart": "podinfo", "version": "7.x",
                                    "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}})
    prepared = prepare_release(newer, status(f"{NS}/{CHART}"), world.env)
    assert [b["spec"]["version"] for b in world.writer.applied] == ["6.x", "7.x"]
    assert "verify" not in world.writer.applied[-1]["spec"]
    assert prepared.actions == (f"updated {NS}/{CHART}",)


def owned_chart(world: World, namespace: str, name: str, owner: str = "podinfo") -> None:
    world.charts.items[(namespace, name)] = {
        "metadata": {"namespace": namespace, "name": name,
                     "labels": {OWNER_NAME_LABEL: owner, OWNER_NAMESPACE_LABEL: NS}}}


def test_moving_to_another_chart_deletes_the_old_one(world: World) -> None:
    owned_chart(world, "old-sources", CHART)
    world.verified[(NS, CHART)] = MANIFEST
    prepared = prepare_release(release(), status(f"old-sources/{CHART}"), world.env)
    assert world.writer.deleted == [("old-sources", CHART)]
    assert prepared.helm_chart == f"{NS}/{CHART}"
    assert prepared.actions == (f"deleted old-sources/{CHART}", f"created {NS}/{CHART}")


def test_a_chart_not_labelled_as_this_releases_is_never_deleted(world: World) -> None:
    owned_chart(world, "old-sources", CHART, owner="someone-else")
    world.verified[(NS, CHART)] = MANIFEST
    prepared = prepare_release(release(), status(f"old-sources/{CHART}"), world.env)
    assert world.writer.deleted == []
    assert prepared.helm_chart == f"{NS}/{CHART}"


def test_chart_ref_to_a_helmchart_writes_nothing_and_cleans_the_old_chart(world: World) -> None:
    owned_chart(world, NS, CHART)
    shared = desired_helmchart_body(release())
    shared["metadata"].update(name="shared", generation=1)
    shared["status"] = copy.deepcopy(READY_STATUS)
    world.charts.items[("charts", "shared")] = shared
    world.verified[("charts", "shared")] = MANIFEST
    hr = release(chartRef={"kind": "HelmChart", "name": "shared", "namespace": "charts"})
    prepared = prepare_release(hr, status(f"{NS}/{CHART}"), world.env)
    assert world.writer.applied == []
    assert world.writer.deleted == [(NS, CHART)]
    assert prepared.helm_chart == ""
    assert (prepared.chart.namespace, prepared.chart.name) == ("charts", "shared")
    assert prepared.charts == {("charts", "shared")}


def test_a_missing_chart_ref_is_retried_naming_it(world: World) -> None:
    err = fails(release(chartRef={"kind": "HelmChart", "name": "shared"}), world)
    assert (err.reason, err.message, err.stalled) == (
        c.ARTIFACT_FAILED, f"could not get Source object: HelmChart '{NS}/shared' not found",
        False)


def test_a_failed_chart_write_is_retried_with_the_apis_words(world: World) -> None:
    world.writer.fail = True
    err = fails(release(), world)
    assert err.reason == c.ARTIFACT_FAILED
    assert err.message == (f"failed to apply HelmChart '{NS}/{CHART}': the server could not "
                           "find the requested resource (503)")
    assert not err.stalled
    owned_chart(world, "old", CHART)
    with pytest.raises(StepFailedError, match=f"failed to delete HelmChart 'old/{CHART}': 503"):
        sync_release_chart(release(), status(f"old/{CHART}"), world.env)


@pytest.mark.parametrize("kind", ["OCIRepository", "ExternalArtifact"])
def test_an_oci_repository_or_external_artifact_chart_ref_is_stalled(world: World,
                                                                    kind: str) -> None:
    err = fails(release(chartRef={"kind": kind, "name": "podinfo"}), world)
    assert err.stalled
    assert err.reason == UNSUPPORTED_SOURCE_KIND
    assert "not served by chartguard" in err.message
    assert "use spec.chart or chartRef kind HelmChart" in err.message
    assert world.writer.applied == []


@pytest.mark.parametrize(("spec", "field"), [
    ({"storageNamespace": "elsewhere"}, "spec.storageNamespace"),
])
def test_refused_fields_stall_naming_the_field(world: World, spec: dict[str, Any],
                                               field: str) -> None:
    err = fails(release(**spec), world)
    assert err.stalled
    assert err.reason == UNSUPPORTED_FIELD
    assert err.message.startswith(f"{field} is not supported: ")
    assert err.message.endswith("remove it (see README, 'Not supported yet')")
    assert world.writer.applied == []
    assert any(name.startswith(field) for name, _ in REFUSED_FIELDS)


@pytest.mark.parametrize(("spec", "field"), [
    ({"rollback": {"recreate": True}}, "spec.rollback.recreate"),
])
def test_what_the_helm_cli_cannot_do_is_refused_the_same_way(world: World, spec: dict[str, Any],
                                                              field: str) -> None:
    """chartguard.helm.args.unsupported, through the one refusal: Stalled, the field named,
    nothing written for the release."""
    err = fails(release(**spec), world)
    assert err.stalled
    assert err.reason == UNSUPPORTED_FIELD
    assert err.message.startswith(f"{field} is not supported: ")
    assert world.writer.applied == []


def test_every_refused_field_is_named_at_once(world: World) -> None:
    err = fails(release(storageNamespace="elsewhere", driftDetection={"mode": "warn"},
                        kubeConfig={"secretRef": {"name": "remote"}}), world)
    assert "spec.storageNamespace is not supported" in err.message
    assert "driftDetection" not in err.message  # detected in the remote cluster too


@pytest.mark.parametrize("spec", [
    {"persistentClient": False},
    {"serviceAccountName": "deployer"},  # honoured: helm impersonates it
    {"driftDetection": {"mode": "disabled", "ignore": [{"paths": ["/spec/replicas"]}]}},
    {"driftDetection": {"mode": "enabled", "ignore": [{"paths": ["/spec/replicas"]}]}},
    {"driftDetection": {"mode": "warn"}, "serviceAccountName": "deployer"},
    {"storageNamespace": NS},
    {"targetNamespace": "podinfo", "storageNamespace": "podinfo"},
    {"kubeConfig": {"secretRef": {"name": "remote"}}},  # helm --kubeconfig (release_flow)
    {"install": {"crds": "CreateReplace"}, "upgrade": {"crds": "Create"}},  # helm.crds
])
def test_fields_chartguard_honours_or_that_change_nothing_are_accepted(world: World,
                                                                spec: dict[str, Any]) -> None:
    world.verified[(NS, CHART)] = MANIFEST
    assert prepare_release(release(**spec), status(), world.env).chart.file.digest == CHART_DIGEST


def dependency(world: World, name: str, *, namespace: str = NS, generation: int = 2,
               observed: int = 2, ready: str = "True") -> None:
    world.releases.items[(namespace, name)] = {
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "status": {"observedGeneration": observed,
                   "conditions": [{"type": "Ready", "status": ready, "reason": "R",
                                   "message": "m"}]}}


def test_depends_on_waits_for_each_dependency_naming_it(world: World) -> None:
    world.verified[(NS, CHART)] = MANIFEST
    hr = release(dependsOn=[{"name": "database"}, {"name": "cache", "namespace": "infra"}])
    err = fails(hr, world)
    assert isinstance(err, WaitingError)
    assert err.requeue_after == DEPENDENCY_REQUEUE
    assert (err.reason, err.message) == (
        c.DEPENDENCY_NOT_READY, f"unable to get '{NS}/database' dependency: "
                                'helmreleases.helm.toolkit.fluxcd.io "database" not found')
    assert world.writer.applied  # as helm-controller: the chart is set up meanwhile
    dependency(world, "database", ready="False")
    assert fails(hr, world).message == f"dependency '{NS}/database' is not ready"
    dependency(world, "database", generation=3, observed=2)
    assert fails(hr, world).message == f"dependency '{NS}/database' is not ready"
    dependency(world, "database")
    err = fails(hr, world)
    assert err.reason == c.DEPENDENCY_NOT_READY
    assert err.message.startswith("unable to get 'infra/cache' dependency")
    dependency(world, "cache", namespace="infra")
    prepared = prepare_release(hr, status(), world.env)
    assert prepared.dependencies == {(NS, "database"), ("infra", "cache")}


def test_a_dependency_cycle_is_named_while_the_release_waits(world: World) -> None:
    world.verified[(NS, CHART)] = MANIFEST
    hr = release(dependsOn=[{"name": "cache"}])
    dependency(world, "cache", ready="False")
    world.releases.items[(NS, "cache")]["spec"] = {"dependsOn": [{"name": "db",
                                                                  "namespace": "infra"}]}
    dependency(world, "db", namespace="infra", ready="False")
    assert fails(hr, world).message == f"dependency '{NS}/cache' is not ready"  # no cycle
    world.releases.items[("infra", "db")]["spec"] = {"dependsOn": [{"name": "podinfo",
                                                                    "namespace": NS}]}
    err = fails(hr, world)
    assert isinstance(err, WaitingError)
    assert err.reason == c.DEPENDENCY_NOT_READY
    assert err.message == (
        f"dependency '{NS}/cache' is not ready: dependsOn makes a cycle ({NS}/podinfo -> "
        f"{NS}/cache -> infra/db -> {NS}/podinfo), in which no release can ever be ready; "
        "remove one of its dependsOn entries")
    self_dependent = release(dependsOn=[{"name": "podinfo"}])
    dependency(world, "podinfo", ready="False")
    assert f"cycle ({NS}/podinfo -> {NS}/podinfo)" in fails(self_dependent, world).message


def test_values_are_composed_last_and_their_failures_name_the_reference(world: World) -> None:
    world.verified[(NS, CHART)] = MANIFEST
    hr = release(valuesFrom=[{"kind": "Secret", "name": "creds"}], values={"a": 1})
    err = fails(hr, world)
    assert err.reason == "ValuesError"
    assert f"'{NS}/creds'" in err.message
    world.secrets.items["creds"] = {"values.yaml": b"b: 2"}
    prepared = prepare_release(hr, status(), world.env)
    assert prepared.values.values == {"a": 1, "b": 2}
    assert prepared.values.secrets == {(NS, "creds")}


def test_refs_come_from_the_spec_alone() -> None:
    hr = release(valuesFrom=[{"kind": "Secret", "name": "s"}, {"kind": "ConfigMap", "name": "m"}],
                 dependsOn=[{"name": "db"}])
    assert release_refs(hr).secrets == {(NS, "s")}
    assert release_refs(hr).configmaps == {(NS, "m")}
    assert release_refs(hr).charts == {(NS, CHART)}
    assert release_refs(hr).dependencies == {(NS, "db")}


def test_the_chart_to_delete_with_the_release() -> None:
    assert release_chart_to_delete(release(), status(f"old/{CHART}")) == ("old", CHART)
    assert release_chart_to_delete(release(), status()) == (NS, CHART)
    assert release_chart_to_delete(release(suspend=True), status(f"{NS}/{CHART}")) is None
    ref = release(chartRef={"kind": "HelmChart", "name": "shared"})
    assert release_chart_to_delete(ref, status()) is None


def test_the_readme_names_every_refused_field() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    for field, _ in REFUSED_FIELDS:
        assert f"`{field.split(' ')[0]}`" in readme, field

"""Models: Flux's defaults, durations, version constraints, the implied HelmChart, status."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crdschema import validate

from chartguard.api import (
    HelmChart,
    HelmRelease,
    HelmRepository,
    InvalidSpecError,
    check_version_constraint,
    format_duration,
    implied_helmchart,
    parse_go_duration,
    parse_resource,
    thaw,
    verify_policy_digest,
)
from chartguard.api import conditions as c
from chartguard.api.durations import check_flux_duration
from chartguard.api.helmrelease import shorten_release_name
from chartguard.api.status import (
    Artifact,
    HelmChartStatus,
    HelmReleaseStatus,
    HelmRepositoryStatus,
    Snapshot,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("10m0s", 600), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5), ("0", 0),
    ("2h45m30.5s", 9930.5), ("-1m", -60), ("1us", 0.000001), ("300ms", 0.3),
])
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_go_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "10 minutes", "1d", "m", ".s", "--1s", "1h 30m"])
def test_go_durations_reject(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(("value", "text"), [
    (timedelta(minutes=10), "10m0s"), (timedelta(hours=1, minutes=30), "1h30m0s"),
    (timedelta(seconds=60), "1m0s"), (timedelta(0), "0s"), (timedelta(milliseconds=500), "500ms"),
    (timedelta(seconds=1.5), "1.5s"), (timedelta(hours=26), "26h0m0s"),
])
def test_durations_print_like_go(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_go_duration(text) == value


def test_flux_duration_pattern_is_stricter_than_go() -> None:
    assert parse_go_duration("1us") == timedelta(microseconds=1)
    with pytest.raises(ValueError, match="not a Go duration"):
        check_flux_duration("1us")
    with pytest.raises(ValueError, match=r"units \(ms, s, m\)"):
        check_flux_duration("1h", allow_hours=False)


@pytest.mark.parametrize("text", [
    "*", "5.*", "4.0.x", ">=4.0.0 <5.0.0", ">=6.1.6", "^1.2.3 || ~2.0", "1.2 - 1.4.5",
    ">1.0.0-0", "15.18.0", "v1.2.3", ">= 6.0.0", ">=1,<2", "~> 3.1", "!=1.0.0", "=<2",
    "1.2.3+build.1",
])
def test_version_constraints_accepted(text: str) -> None:
    assert check_version_constraint(text)


@pytest.mark.parametrize("text", ["", "  ", "latest", ">>1", "1.2.3foo", "1..2", "||", "01.2.3",
                                  "1 ||", "=>"])
def test_version_constraints_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="version constraint"):
        check_version_constraint(text)


def _release(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "podinfo", "namespace": "apps", "generation": 3},
            "spec": {"interval": "10m", "chart": {"spec": {
                "chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}},
                **spec}}


def test_release_defaults_are_flux_defaults() -> None:
    release = HelmRelease.from_object(_release())
    spec = release.spec
    assert (spec.timeout, spec.max_history, spec.persistent_client) == (timedelta(minutes=5), 5,
                                                                         True)
    assert (spec.install.crds, spec.upgrade.crds) == ("Create", "Skip")
    assert spec.upgrade.remediation.strategy == "rollback"
    assert spec.install.remediation.strategy == "uninstall"
    assert spec.uninstall.deletion_propagation == "background"
    assert spec.drift_detection_mode == "disabled"
    assert spec.chart is not None
    assert (spec.chart.spec.version, spec.chart.spec.reconcile_strategy) == ("*", "ChartVersion")
    assert (release.release_name, release.release_namespace, release.storage_namespace) == (
        "podinfo", "apps", "apps")
    assert release.metadata.generation == 3


def test_release_strategy_apply_and_chart_name_fields_parse_with_flux_defaults() -> None:
    spec = HelmRelease.from_object(_release()).spec
    assert (spec.install.strategy.name, spec.install.strategy.retry) == (
        "RemediateOnFailure", False)
    assert spec.upgrade.strategy.interval == timedelta(minutes=5)  # GetRetryInterval
    assert spec.install.server_side_apply is None  # Flux's default: server-side
    assert (spec.upgrade.server_side_apply, spec.rollback.server_side_apply) == ("auto", "auto")
    assert spec.upgrade.chart_name_change_strategy == "Reinstall"
    spec = HelmRelease.from_object(_release(
        install={"strategy": {"name": "RetryOnFailure", "retryInterval": "90s"},
                 "serverSideApply": False},
        upgrade={"strategy": {"name": "RetryOnFailure"}, "serverSideApply": "disabled",
                 "chartNameChangeStrategy": "InPlaceUpdate"},
        rollback={"serverSideApply": "enabled"},
        valuesFrom=[{"kind": "ConfigMap", "name": "v", "targetPath": "a.b",
                     "literal": True}])).spec
    assert (spec.install.strategy.retry, spec.install.strategy.interval) == (
        True, timedelta(seconds=90))
    assert (spec.upgrade.strategy.retry, spec.upgrade.strategy.interval) == (
        True, timedelta(minutes=5))
    assert spec.install.server_side_apply is False
    assert (spec.upgrade.server_side_apply, spec.rollback.server_side_apply) == (
        "disabled", "enabled")
    assert spec.upgrade.chart_name_change_strategy == "InPlaceUpdate"
    assert spec.values_from[0].literal


def test_release_name_composition_and_shortening_follow_flux() -> None:
    release = HelmRelease.from_object(_release(targetNamespace="monitoring"))
    assert release.release_name == "monitoring-podinfo"
    long_name = "a-very-lengthy-target-namespace-with-a-nice-object-name"
    # helm-controller docs: the first 12 hex of sha256(name) is 97af5d7f41f3
    assert shorten_release_name(long_name) == (
        "a-very-lengthy-target-namespace-with-a-n-97af5d7f41f3")
    assert len(shorten_release_name(long_name)) == 53
    assert shorten_release_name("short") == "short"


def test_repository_defaults_are_flux_defaults() -> None:
    repo = HelmRepository.from_object({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "r"}, "spec": {"url": "https://charts.example.com"}})
    assert (repo.spec.type, repo.spec.provider, repo.spec.interval, repo.spec.timeout) == (
        "default", "generic", timedelta(minutes=1), timedelta(seconds=60))
    assert repo.metadata.namespace == "default"
    assert not repo.spec.is_oci


def test_models_are_immutable() -> None:
    release = HelmRelease.from_object(_release(values={"replicaCount": 2, "list": [1, {"a": 1}]}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        release.spec.interval = timedelta(0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        release.spec.values["replicaCount"] = 3
    assert thaw(release.spec.values) == {"replicaCount": 2, "list": [1, {"a": 1}]}


def test_implied_helmchart_copies_template_and_extensions() -> None:
    body = _release()
    body["spec"]["chart"] = {
        "metadata": {"labels": {"team": "web"}, "annotations": {"note": "x"}},
        "spec": {"chart": "podinfo", "version": "6.5.*",
                 "sourceRef": {"kind": "HelmRepository", "name": "charts",
                               "namespace": "flux-system"},
                 "verify": {"provider": "cosign",
                            "matchOIDCIdentity": [{"issuer": "^https://token\\.actions\\.",
                                                   "subject": "podinfo"}],
                            "trustedRootSecretRef": {"name": "private-sigstore"}}}}
    release = HelmRelease.from_object(body)
    chart = implied_helmchart(release)
    obj = chart.to_object()
    assert chart.spec.verify == release.spec.chart.spec.verify  # type: ignore[union-attr]
    assert obj["metadata"] == {
        "name": "apps-podinfo", "namespace": "flux-system",
        "labels": {"team": "web", "helm.toolkit.fluxcd.io/name": "podinfo",
                   "helm.toolkit.fluxcd.io/namespace": "apps"},
        "annotations": {"note": "x"}}
    assert obj["spec"] == {
        "chart": "podinfo", "version": "6.5.*", "sourceRef": {"kind": "HelmRepository",
                                                              "name": "charts"},
        "interval": "10m0s", "reconcileStrategy": "ChartVersion",
        "verify": {"provider": "cosign",
                   "matchOIDCIdentity": [{"issuer": "^https://token\\.actions\\.",
                                          "subject": "podinfo"}],
                   "trustedRootSecretRef": {"name": "private-sigstore"}}}
    # the implied object is itself a valid HelmChart
    assert HelmChart.from_object(obj).spec == chart.spec
    verify = chart.spec.verify
    assert verify is not None
    # Go's MatchString is unanchored, so "podinfo" matches inside a longer subject
    matcher = verify.match_oidc_identity[0]
    assert matcher.matches("https://token.actions.githubusercontent.com",
                           "https://github.com/stefanprodan/podinfo/.github/workflows/release.yml")
    assert not matcher.matches("https://accounts.google.com", "podinfo")


def test_implied_helmchart_interval_falls_back_to_the_release() -> None:
    body = _release(interval="7m")
    body["spec"]["chart"]["spec"]["interval"] = "1m"
    assert implied_helmchart(HelmRelease.from_object(body)).spec.interval == timedelta(minutes=1)
    assert implied_helmchart(HelmRelease.from_object(_release(interval="7m"))).spec.interval == \
        timedelta(minutes=7)


def test_chart_ref_release_implies_no_helmchart() -> None:
    body = _release()
    del body["spec"]["chart"]
    body["spec"]["chartRef"] = {"kind": "HelmChart", "name": "shared", "namespace": "charts"}
    release = HelmRelease.from_object(body)
    assert release.spec.chart_ref is not None
    assert release.spec.chart_ref.namespace == "charts"
    with pytest.raises(ValueError, match="chartRef"):
        implied_helmchart(release)


def test_status_models_round_trip_and_omit_empty_fields() -> None:
    artifact = Artifact(path="helmchart/flux-system/flux-system-prometheus/prometheus-15.18.0.tgz",
                        url="http://chartguard/helmchart/x.tgz",
                        revision="15.18.0@sha256:" + "a" * 64, digest="sha256:" + "b" * 64,
                        last_update_time="2022-11-09T13:27:38Z", size=21000)
    status = HelmChartStatus(observed_generation=1, artifact=artifact,
                             observed_chart_name="prometheus",
                             conditions=({"type": "Ready", "status": "True"},))
    written = status.to_status()
    assert "url" not in written
    assert "observedValuesFiles" not in written
    assert HelmChartStatus.from_status(written) == status
    assert HelmChartStatus.from_status(None).observed_generation == -1
    snap = Snapshot(name="prometheus", namespace="monitoring", version=1, status="deployed",
                    chart_name="prometheus", chart_version="15.18.0",
                    config_digest="sha256:c", digest="sha256:d",
                    first_deployed="2022-11-09T13:27:38Z", last_deployed="2022-11-09T13:27:38Z")
    release = HelmReleaseStatus(observed_generation=1, history=(snap,),
                                helm_chart="flux-system/flux-system-prometheus",
                                last_applied_revision="15.18.0")
    assert HelmReleaseStatus.from_status(release.to_status()) == release
    assert release.to_status()["history"][0]["chartVersion"] == "15.18.0"


def test_snapshot_test_hooks_tell_untested_from_tested_without_hooks() -> None:
    """helm-controller's nil vs empty map: no testHooks, never tested; ``{}``, tested and
    the chart has no (selected) test hooks."""
    snap = Snapshot(name="app", namespace="apps", version=1, status="deployed",
                    chart_name="app", chart_version="1.0.0", config_digest="sha256:c",
                    digest="sha256:d", first_deployed="t", last_deployed="t")
    assert "testHooks" not in snap.to_status()
    assert Snapshot.from_status(snap.to_status()).test_hooks is None
    tested = dataclasses.replace(snap, test_hooks={})
    assert tested.to_status()["testHooks"] == {}
    assert Snapshot.from_status(tested.to_status()).test_hooks == {}


def test_parse_resource_dispatches_on_kind() -> None:
    assert isinstance(parse_resource(_release()), HelmRelease)
    with pytest.raises(InvalidSpecError, match="kind: unsupported value 'OCIRepository'"):
        parse_resource({"kind": "OCIRepository"})


def test_implied_helmchart_copies_source_kind_and_name_only_as_helm_controller() -> None:
    body = _release()
    body["spec"]["chart"]["spec"]["sourceRef"] = {
        "apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "HelmRepository",
        "name": "charts", "namespace": "flux-system"}
    body["spec"]["chart"]["spec"]["valuesFiles"] = ["values.yaml", "values-prod.yaml"]
    body["spec"]["chart"]["spec"]["reconcileStrategy"] = "Revision"
    body["spec"]["chart"]["spec"]["ignoreMissingValuesFiles"] = True
    chart = implied_helmchart(HelmRelease.from_object(body)).to_object()
    assert chart["spec"]["ignoreMissingValuesFiles"] is True
    assert chart["spec"]["sourceRef"] == {"kind": "HelmRepository", "name": "charts"}
    assert chart["spec"]["valuesFiles"] == ["values.yaml", "values-prod.yaml"]
    assert chart["spec"]["reconcileStrategy"] == "Revision"
    assert chart["metadata"]["namespace"] == "flux-system"


def _verify(**verify: Any) -> Any:
    body = _release()
    body["spec"]["chart"]["spec"]["verify"] = {"provider": "cosign", **verify}
    return HelmRelease.from_object(body).spec.chart.spec.verify  # type: ignore[union-attr]


KEYLESS = [{"issuer": "^https://token.actions.githubusercontent.com$", "subject": "^https://gh/a"},
           {"issuer": "^https://accounts.google.com$", "subject": "^me@example.com$"}]


def test_verify_policy_digest_is_stable_and_names_the_policy() -> None:
    keyless = _verify(matchOIDCIdentity=KEYLESS)
    # a fixed value: the digest must not change between processes or chartguard releases,
    # or every stored "verified under policy X" record would be invalidated on upgrade. It is
    # sha256 of the canonical JSON (checked with `printf '%s' ... | sha256sum`):
    # {"v":1,"verify":{"matchOIDCIdentity":[["^https://accounts.google.com$","^me@example.com$"],
    #  ["^https://token.actions.githubusercontent.com$","^https://gh/a"]],"provider":"cosign",
    #  "secretRef":null,"trustedRootSecretRef":null}}
    assert verify_policy_digest(keyless) == (
        "sha256:acd938234a385e83bea75a573ce2cec2267a3bb63aa1967110e80d0fa93de8fe")
    # matchers are "any one must match": their order and repetition are not policy
    assert verify_policy_digest(_verify(matchOIDCIdentity=[*KEYLESS[::-1], KEYLESS[0]])) == \
        verify_policy_digest(keyless)
    different = [
        verify_policy_digest(None),
        verify_policy_digest(_verify()),
        verify_policy_digest(_verify(secretRef={"name": "cosign-pub"})),
        verify_policy_digest(_verify(secretRef={"name": "cosign-pub-2"})),
        verify_policy_digest(_verify(matchOIDCIdentity=KEYLESS[:1])),
        verify_policy_digest(keyless),
        verify_policy_digest(_verify(matchOIDCIdentity=KEYLESS,
                                     trustedRootSecretRef={"name": "private-sigstore"})),
    ]
    assert len(set(different)) == len(different)


def test_verify_policy_digest_is_the_same_on_release_and_implied_chart() -> None:
    body = _release()
    body["spec"]["chart"]["spec"]["verify"] = {"provider": "cosign", "matchOIDCIdentity": KEYLESS}
    release = HelmRelease.from_object(body)
    chart = HelmChart.from_object(implied_helmchart(release).to_object())
    assert release.spec.chart is not None
    assert verify_policy_digest(chart.spec.verify) == verify_policy_digest(
        release.spec.chart.spec.verify)


def test_artifact_requires_what_fluxs_crd_requires() -> None:
    good = {"path": "helmchart/ns/name/c-1.0.0.tgz", "url": "http://x/c-1.0.0.tgz",
            "revision": "1.0.0@sha256:" + "a" * 64, "lastUpdateTime": "2022-11-09T13:27:38Z",
            "digest": "sha256:" + "b" * 64, "size": 10}
    artifact = Artifact.from_status(good)
    assert artifact is not None
    assert artifact.to_status() == good
    # an artifact stored without a digest (older Flux) is treated as absent: fetched again
    assert Artifact.from_status({k: v for k, v in good.items() if k != "digest"}) is None
    with pytest.raises(ValueError, match=r"status\.artifact\.digest: 'b\*64' is not"):
        Artifact(path="p", url="u", revision="r", last_update_time="t", digest="b*64")
    with pytest.raises(ValueError, match=r"status\.artifact: url must not be empty"):
        Artifact(path="p", url="", revision="r", last_update_time="t", digest="sha256:ab")


def test_merged_values_files_put_the_deprecated_file_first() -> None:
    chart = HelmChart.from_object({
        "apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "HelmChart",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"chart": "c", "interval": "1m", "sourceRef": {"kind": "HelmRepository",
                                                                "name": "r"},
                 "valuesFile": "base.yaml", "valuesFiles": ["a.yaml", "b.yaml"]}})
    assert chart.spec.merged_values_files == ("base.yaml", "a.yaml", "b.yaml")


NOW = datetime(2022, 11, 9, 13, 27, 38, tzinfo=UTC)
ARTIFACT = Artifact(path="helmchart/flux-system/flux-system-prometheus/prometheus-15.18.0.tgz",
                    url="http://chartguard.flux-system.svc/helmchart/x.tgz",
                    revision="15.18.0@sha256:" + "a" * 64, digest="sha256:" + "b" * 64,
                    last_update_time="2022-11-09T13:27:38Z", size=21000,
                    metadata={"org.opencontainers.image.source": "https://github.com/x"})


def _conditions(*types: str) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    for type_ in types:
        out = c.set_condition(out, type_, c.TRUE, c.SUCCEEDED, f"{type_} ok",
                              observed_generation=1, now=NOW)
    return tuple(out)


def test_status_models_round_trip_and_validate_against_the_crds(crds: dict[str, Any]) -> None:
    snap = Snapshot(name="prometheus", namespace="monitoring", version=2, status="deployed",
                    chart_name="prometheus", chart_version="15.18.0", config_digest="sha256:c",
                    digest="sha256:d", first_deployed="2022-11-09T13:27:38Z",
                    last_deployed="2022-11-09T13:30:00Z", app_version="2.40.0",
                    oci_digest="sha256:" + "e" * 64, action="upgrade",
                    test_hooks={"prometheus-test": {"lastStarted": "2022-11-09T13:30:01Z",
                                                    "lastCompleted": "2022-11-09T13:30:05Z",
                                                    "phase": "Succeeded"}})
    statuses: list[tuple[str, str, Any]] = [
        ("source.toolkit.fluxcd.io/v1", "HelmRepository", HelmRepositoryStatus(
            observed_generation=1, conditions=_conditions(c.READY), url="oci://ghcr.io/x",
            artifact=ARTIFACT, last_handled_reconcile_at="2022-11-09T13:27:00Z")),
        ("source.toolkit.fluxcd.io/v1", "HelmChart", HelmChartStatus(
            observed_generation=1, conditions=_conditions(c.ARTIFACT_IN_STORAGE,
                                                          c.SOURCE_VERIFIED, c.READY),
            artifact=ARTIFACT, url="http://chartguard/x.tgz", observed_chart_name="prometheus",
            observed_source_artifact_revision="sha256:f", observed_values_files=("v.yaml",),
            last_handled_reconcile_at="t")),
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease", HelmReleaseStatus(
            observed_generation=2, conditions=_conditions(c.RELEASED, c.READY),
            observed_post_renderers_digest="sha256:9", helm_chart="flux-system/x",
            storage_namespace="monitoring", history=(snap,), last_attempted_generation=2,
            last_attempted_revision="15.18.0", last_attempted_revision_digest="sha256:1",
            last_attempted_config_digest="sha256:2", last_attempted_release_action="upgrade",
            last_applied_revision="15.18.0", failures=1, install_failures=1,
            upgrade_failures=1, last_handled_reconcile_at="a", last_handled_force_at="b",
            last_handled_reset_at="c")),
    ]
    for api_version, kind, status in statuses:
        written = status.to_status()
        assert type(status).from_status(written) == status, kind
        # every field the model writes is declared by the CRD, with the CRD's types
        doc = {"apiVersion": api_version, "kind": kind,
               "metadata": {"name": "x", "namespace": "flux-system"},
               "spec": {"interval": "1m", "chart": "x",
                        "sourceRef": {"kind": "HelmRepository", "name": "x"}},
               "status": written}
        if kind == "HelmRepository":
            doc["spec"] = {"url": "oci://ghcr.io/x", "type": "oci"}
        if kind == "HelmRelease":
            doc["spec"] = {"interval": "1m", "chartRef": {"kind": "HelmChart", "name": "x"}}
        assert validate(crds, doc)[1] == [], kind


def test_go_only_identity_syntax_is_accepted_by_the_spec_and_matches_as_go() -> None:
    """`\\pL` and POSIX classes are Go (RE2) syntax that Python's re refuses."""
    verify = _verify(matchOIDCIdentity=[{"issuer": r"^https://\pL+\.example$",
                                         "subject": r"^[[:alpha:]]+@example\.com$"}])
    matcher = verify.match_oidc_identity[0]
    assert matcher.matches("https://héllo.example", "me@example.com")
    assert not matcher.matches("https://héllo.example", "me@example.com\n")

"""The HelmChart a HelmRelease implies, when it must be written, and when its artifact may be
handed to helm (helm-controller's words; chartguard's fail-closed rule on the verified digest)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from chartguard.api import HelmChart, HelmRelease, implied_helmchart
from chartguard.api import conditions as c
from chartguard.api.implied import OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, SHARDING_LABEL
from chartguard.reconcile.outcome import StepFailedError, WaitingError
from chartguard.reconcile.release_chart import (
    SOURCE_NOT_READY,
    chart_readiness,
    desired_helmchart_body,
    helmchart_needs_update,
)
from chartguard.store import ArtifactStore

NS = "flux-system"
MANIFEST = "sha256:" + "ab" * 32
OTHER_MANIFEST = "sha256:" + "cd" * 32
#: the blog's two yq-added verify blocks, and chartguard's keyless extensions
BLOG_KEYLESS = {"provider": "cosign"}
BLOG_KEY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
EXTENDED = {"provider": "cosign",
            "matchOIDCIdentity": [{"issuer": "^https://token.actions.githubusercontent.com$",
                                   "subject": "^https://github.com/stefanprodan/podinfo.*$"}],
            "trustedRootSecretRef": {"name": "private-sigstore"}}


def release(verify: dict[str, Any] | None = BLOG_KEY, *, api_version: str = "v2",
            version: str = "6.x", source_namespace: str = "",
            labels: dict[str, str] | None = None,
            release_labels: dict[str, str] | None = None) -> HelmRelease:
    source: dict[str, Any] = {"kind": "HelmRepository", "name": "podinfo"}
    if source_namespace:
        source["namespace"] = source_namespace
    spec: dict[str, Any] = {"chart": "podinfo", "version": version, "sourceRef": source,
                            "interval": "10m"}
    if verify is not None:
        spec["verify"] = verify
    chart: dict[str, Any] = {"spec": spec}
    if labels:
        chart["metadata"] = {"labels": labels, "annotations": {"team": "web"}}
    return HelmRelease.from_object({
        "apiVersion": f"helm.toolkit.fluxcd.io/{api_version}", "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "namespace": NS, "labels": release_labels or {}},
        "spec": {"interval": "5m", "targetNamespace": "podinfo", "chart": chart}})


@pytest.mark.parametrize("verify", [BLOG_KEYLESS, BLOG_KEY, EXTENDED, None],
                         ids=["blog-keyless", "blog-key", "oidc-identity+trusted-root", "none"])
@pytest.mark.parametrize("api_version", ["v2", "v2beta1"])
def test_desired_body_round_trips_to_the_implied_chart(verify: dict[str, Any] | None,
                                                       api_version: str) -> None:
    hr = release(verify, api_version=api_version, labels={"app": "podinfo"})
    body = desired_helmchart_body(hr)
    assert HelmChart.from_object(body) == implied_helmchart(hr)
    assert body["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert body["kind"] == "HelmChart"
    assert body["metadata"]["name"] == "flux-system-podinfo"
    assert body["metadata"]["labels"] == {"app": "podinfo", OWNER_NAME_LABEL: "podinfo",
                                          OWNER_NAMESPACE_LABEL: NS}
    assert body["metadata"]["annotations"] == {"team": "web"}
    if verify is None:
        assert "verify" not in body["spec"]
    else:  # the CRD's field names, every field kept
        assert body["spec"]["verify"] == verify


def test_desired_chart_lives_in_the_source_namespace() -> None:
    body = desired_helmchart_body(release(source_namespace="sources"))
    assert (body["metadata"]["namespace"], body["metadata"]["name"]) == (
        "sources", "flux-system-podinfo")
    assert body["spec"]["sourceRef"] == {"kind": "HelmRepository", "name": "podinfo"}


def test_the_implied_chart_carries_the_releases_sharding_label() -> None:
    """chartguard's addition (helm-controller copies only spec.chart.metadata.labels): beside
    Flux, `--selector sharding.fluxcd.io/key=chartguard` must see the chart its release
    implies, and Flux's `--watch-label-selector='!sharding.fluxcd.io/key'` must not."""
    hr = release(release_labels={SHARDING_LABEL: "chartguard", "team": "web"},
                 labels={"app": "podinfo"})
    body = desired_helmchart_body(hr)
    assert body["metadata"]["labels"] == {SHARDING_LABEL: "chartguard", "app": "podinfo",
                                          OWNER_NAME_LABEL: "podinfo", OWNER_NAMESPACE_LABEL: NS}
    # the release's other labels stay the release's, as with helm-controller
    assert "team" not in body["metadata"]["labels"]


def test_a_sharding_label_the_template_sets_wins_over_the_releases() -> None:
    """Flux's sharding guide puts the key in spec.chart.metadata.labels: that stays."""
    hr = release(release_labels={SHARDING_LABEL: "chartguard"},
                 labels={SHARDING_LABEL: "shard2"})
    assert desired_helmchart_body(hr)["metadata"]["labels"][SHARDING_LABEL] == "shard2"


def test_an_unsharded_release_implies_an_unsharded_chart() -> None:
    assert SHARDING_LABEL not in desired_helmchart_body(release())["metadata"]["labels"]


def test_a_stored_chart_without_the_releases_sharding_label_needs_update() -> None:
    """A chart written before the release was labelled (or by helm-controller) is relabelled."""
    unsharded = stored(desired_helmchart_body(release()))
    desired = desired_helmchart_body(release(release_labels={SHARDING_LABEL: "chartguard"}))
    assert helmchart_needs_update(unsharded, desired)
    assert not helmchart_needs_update(stored(desired), desired)


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the API server returns it: server fields, defaults, another's label."""
    out = copy.deepcopy(body)
    out["metadata"].update(uid="u1", resourceVersion="7", generation=3)
    out["metadata"].setdefault("labels", {})["kustomize.toolkit.fluxcd.io/name"] = "apps"
    out["spec"]["interval"] = "10m"
    out["spec"]["suspend"] = True  # `flux suspend source chart` is not undone
    out["status"] = {"observedGeneration": 3}
    return out


def test_a_stored_chart_equal_to_the_desired_one_needs_no_update() -> None:
    desired = desired_helmchart_body(release(EXTENDED, labels={"app": "podinfo"}))
    assert not helmchart_needs_update(stored(desired), desired)


@pytest.mark.parametrize("change", [
    lambda hr_body: hr_body["spec"].update(version="7.x"),
    lambda hr_body: hr_body["spec"].pop("verify"),
    lambda hr_body: hr_body["spec"]["verify"].update(secretRef={"name": "other"}),
    lambda hr_body: hr_body["spec"].update(interval="1m"),
    lambda hr_body: hr_body["spec"]["sourceRef"].update(name="other"),
    lambda hr_body: hr_body["metadata"]["labels"].update(app="other"),
    lambda hr_body: hr_body["metadata"]["labels"].pop(OWNER_NAME_LABEL),
    lambda hr_body: hr_body["metadata"].pop("annotations"),
], ids=["version", "verify-removed", "verify-key", "interval", "source", "label-value",
        "owner-label", "annotations"])
def test_a_stored_chart_that_differs_in_what_the_template_sets_needs_update(change: Any) -> None:
    desired = desired_helmchart_body(release(BLOG_KEY, labels={"app": "podinfo"}))
    current = stored(desired)
    change(current)
    assert helmchart_needs_update(current, desired)


def test_a_stored_chart_that_does_not_parse_needs_update() -> None:
    desired = desired_helmchart_body(release())
    current = stored(desired)
    current["spec"]["verify"] = {"provider": "notation"}
    assert helmchart_needs_update(current, desired)


# -- readiness -------------------------------------------------------------------------------

CHART_BYTES = b"podinfo-6.5.4.tgz bytes"
CHART_DIGEST = "sha256:" + hashlib.sha256(CHART_BYTES).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    s = ArtifactStore(tmp_path / "artifacts")
    assert s.put(CHART_BYTES) == CHART_DIGEST
    return s


def chart(*, verify: dict[str, Any] | None = BLOG_KEY, generation: int = 2,
          observed: int = 2, ready: tuple[str, str] | None = ("True", "pulled"),
          verified: tuple[str, str] | None = ("True", "verified signature of version 6.5.4"),
          stalled: str | None = None, artifact: bool = True,
          digest: str = CHART_DIGEST, revision: str = f"6.5.4@{MANIFEST}") -> dict[str, Any]:
    conditions = []
    if ready:
        conditions.append({"type": "Ready", "status": ready[0], "reason": "R",
                           "message": ready[1]})
    if verified:
        conditions.append({"type": "SourceVerified", "status": verified[0], "reason": "V",
                           "message": verified[1]})
    if stalled:
        conditions.append({"type": "Stalled", "status": "True", "reason": "S",
                           "message": stalled})
    status: dict[str, Any] = {"observedGeneration": observed, "conditions": conditions,
                              "observedChartName": "podinfo"}
    if artifact:
        status["artifact"] = {"path": "sha256/x.tgz", "url": "file:///x", "revision": revision,
                              "lastUpdateTime": "2026-01-01T00:00:00Z", "digest": digest}
    body = desired_helmchart_body(release(verify))
    body["metadata"]["generation"] = generation
    body["status"] = status
    return body


def waiting(body: dict[str, Any] | None, store: ArtifactStore,
            verified: str | None = MANIFEST) -> StepFailedError:
    with pytest.raises(StepFailedError) as info:
        chart_readiness(release(), body, store, verified)
    err = info.value
    assert (err.condition, err.status) == (c.READY, c.FALSE)
    assert not err.stalled
    return err


def test_a_verified_chart_in_the_store_is_ready(store: ArtifactStore) -> None:
    ready = chart_readiness(release(), chart(), store, MANIFEST)
    assert ready.file.digest == CHART_DIGEST
    assert ready.file.path == store.path(CHART_DIGEST)
    assert ready.file.path.read_bytes() == CHART_BYTES
    assert (ready.chart_name, ready.version, ready.revision, ready.oci_digest) == (
        "podinfo", "6.5.4", f"6.5.4@{MANIFEST}", MANIFEST)
    assert (ready.namespace, ready.name) == (NS, "flux-system-podinfo")


def test_a_missing_chart_is_retried(store: ArtifactStore) -> None:
    err = waiting(None, store)
    assert (err.reason, err.message) == (
        c.ARTIFACT_FAILED,
        "could not get Source object: HelmChart 'flux-system/flux-system-podinfo' not found")


def test_a_chart_behind_its_generation_is_waited_for(store: ArtifactStore) -> None:
    err = waiting(chart(generation=3, ready=("Unknown", "reconciling")), store)
    assert isinstance(err, WaitingError)
    assert (err.reason, err.message) == (
        SOURCE_NOT_READY, "HelmChart 'flux-system/flux-system-podinfo' is not ready: latest "
                          "generation of object has not been reconciled")
    err = waiting(chart(generation=3, ready=("False", "chart pull error: 404")), store)
    assert err.message.endswith("is not ready: chart pull error: 404")


def test_a_stalled_chart_shows_its_stalled_message(store: ArtifactStore) -> None:
    err = waiting(chart(stalled="invalid chart reference: bad name"), store)
    assert err.message == ("HelmChart 'flux-system/flux-system-podinfo' is not ready: "
                           "invalid chart reference: bad name")


def test_a_verification_failure_shows_the_charts_message(store: ArtifactStore) -> None:
    why = ("chart verification error: failed to verify the signature of 'podinfo' version "
           "'6.6.0' (sha256:…) using provider 'cosign': no signature matched")
    err = waiting(chart(verified=("False", why), ready=("False", why)), store)
    assert (err.reason, err.message) == (
        c.VERIFICATION_ERROR, f"HelmChart 'flux-system/flux-system-podinfo' is not ready: {why}")


@pytest.mark.parametrize("ready", [("False", "chart pull error: registry down"),
                                   ("Unknown", "reconciliation in progress")])
def test_a_chart_that_is_not_ready_shows_its_ready_message(store: ArtifactStore,
                                                            ready: tuple[str, str]) -> None:
    err = waiting(chart(ready=ready), store)
    assert (err.reason, err.message) == (
        SOURCE_NOT_READY, f"HelmChart 'flux-system/flux-system-podinfo' is not ready: {ready[1]}")


def test_a_chart_without_an_artifact_is_waited_for(store: ArtifactStore) -> None:
    err = waiting(chart(artifact=False), store)
    assert err.message == ("HelmChart 'flux-system/flux-system-podinfo' is not ready: "
                           "does not have an artifact")


def test_an_artifact_this_process_did_not_verify_is_not_installed(store: ArtifactStore) -> None:
    err = waiting(chart(), store, verified=None)
    assert (err.reason, err.message) == (
        SOURCE_NOT_READY, f"HelmChart 'flux-system/flux-system-podinfo' is not ready: its "
                          f"artifact {MANIFEST} has not been verified by this chartguard "
                          "process yet")


def test_an_artifact_other_than_the_verified_manifest_is_refused(store: ArtifactStore) -> None:
    err = waiting(chart(), store, verified=OTHER_MANIFEST)
    assert err.reason == c.VERIFICATION_ERROR
    assert f"its artifact {MANIFEST} is not the manifest this chartguard process verified " \
           f"({OTHER_MANIFEST})" in err.message
    err = waiting(chart(revision="6.5.4"), store, verified=MANIFEST)
    assert "names no manifest digest" in err.message


def test_a_chart_without_verify_needs_no_verified_digest(store: ArtifactStore) -> None:
    ready = chart_readiness(release(None), chart(verify=None, verified=None), store, None)
    assert ready.file.digest == CHART_DIGEST
    assert ready.oci_digest == MANIFEST


def test_a_chart_from_an_http_repository_installs_only_without_verify(
        store: ArtifactStore) -> None:
    # an HTTP repository's chart: revision is the version alone, nothing was verified
    http = chart(verify=None, verified=None, revision="6.5.4")
    ready = chart_readiness(release(None), http, store, None)
    assert (ready.file.digest, ready.version, ready.oci_digest) == (CHART_DIGEST, "6.5.4", "")
    # the same artifact under a chart that sets verify is never handed to helm, even if the
    # chart's conditions claim it was verified
    err = waiting(chart(revision="6.5.4"), store, verified=CHART_DIGEST)
    assert err.reason == c.VERIFICATION_ERROR
    assert "names no manifest digest" in err.message
    # a release that asks for verify does not take a chart whose verify was taken away
    err = waiting(chart(verify=None, verified=None, revision="6.5.4"), store, verified=None)
    assert "names no manifest digest" in err.message
    err = waiting(chart(verify=None, verified=None), store, verified=None)
    assert "has not been verified by this chartguard process yet" in err.message


PGP = {"provider": "pgp", "secretRef": {"name": "pgp-keys"}}


def test_an_http_repositorys_chart_verified_with_pgp_is_matched_by_its_archive_digest(
        store: ArtifactStore) -> None:
    # provider pgp verified the archive itself: its digest is what this process verified
    body = chart(verify=PGP, revision="6.5.4")
    ready = chart_readiness(release(PGP), body, store, CHART_DIGEST)
    assert (ready.file.digest, ready.version, ready.oci_digest) == (CHART_DIGEST, "6.5.4", "")
    # nothing verified yet, or another archive: not handed to helm
    with pytest.raises(StepFailedError) as info:
        chart_readiness(release(PGP), body, store, None)
    assert "has not been verified by this chartguard process yet" in info.value.message
    with pytest.raises(StepFailedError) as info:
        chart_readiness(release(PGP), body, store, "sha256:" + "ee" * 32)
    assert info.value.reason == c.VERIFICATION_ERROR
    # cosign on the same chart still needs a manifest digest
    with pytest.raises(StepFailedError) as info:
        chart_readiness(release(), chart(revision="6.5.4"), store, CHART_DIGEST)
    assert "names no manifest digest" in info.value.message


def test_an_artifact_missing_from_the_store_is_waited_for(store: ArtifactStore) -> None:
    absent = "sha256:" + "ee" * 32
    err = waiting(chart(digest=absent), store)
    assert isinstance(err, WaitingError)
    assert err.reason == c.ARTIFACT_FAILED
    assert err.message == (f"Source not ready: artifact {absent} of HelmChart "
                           "'flux-system/flux-system-podinfo' not in the local store yet")


def test_a_corrupted_store_file_is_not_handed_to_helm(store: ArtifactStore) -> None:
    store.path(CHART_DIGEST).write_bytes(b"tampered")
    fresh = ArtifactStore(store.root)  # a new process: nothing trusted yet
    err = waiting(chart(), fresh)
    assert "not in the local store yet" in err.message

"""flux's tables byte for byte (its own golden files), their cells, and the end of a wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chartguard.cli import _tables as t
from chartguard.cli._kinds import HELM_CHART, HELM_RELEASE, HELM_REPOSITORY
from chartguard.cli._wait import Verdict, handled, settled
from chartguard.cli.reconcile import rfc3339nano, success_message

# flux2 cmd/flux/testdata/helmrelease/get_helmrelease_from_git.golden and get/get.golden
FLUX_HR_GOLDEN = (
    "NAME \tREVISION\tSUSPENDED\tREADY\tMESSAGE" + " " * 69 + " \n"
    "thrfg\t6.3.5   \tFalse    \tTrue \tHelm install succeeded for release thrfg-1/thrfg.v1 "
    "with chart podinfo@6.3.5\t\n")
FLUX_GET_GOLDEN = (
    "NAME          \tREVISION          \tSUSPENDED\tREADY\tMESSAGE                              \n"
    "podinfo       \tmain@sha1:696f056d\tFalse    \tTrue \t"
    "Fetched revision: main@sha1:696f056d\t\n"
    "podinfo-shard1\tmain@sha1:696f056d\tFalse    \tTrue \t"
    "Fetched revision: main@sha1:696f056d\t\n")
SHA1 = "696f056df216eea4f9401adbee0ff744d4df390f"


def cond(type_: str, status: str, message: str = "", reason: str = "R",
         generation: int = 1) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation}


def obj(name: str, *, ns: str = "flux-system", spec: dict[str, Any] | None = None,
        generation: int = 1, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "generation": generation},
            "spec": spec or {}, "status": status}


def test_a_release_row_renders_as_fluxs_golden_file() -> None:
    release = obj("thrfg", conditions=[
        cond("Ready", "True", "Helm install succeeded for release thrfg-1/thrfg.v1 with chart "
                              "podinfo@6.3.5")], history=[{"chartVersion": "6.3.5"}])
    rows = [t.release_row(release, False)]
    assert t.render(t.headers(False), rows) == FLUX_HR_GOLDEN


def test_hex_digests_are_shortened_as_flux_shortens_them() -> None:
    rows = [[name, t.truncate_hex(f"main@sha1:{SHA1}"), "False", "True",
             t.truncate_hex(f"Fetched revision: main@sha1:{SHA1}")]
            for name in ("podinfo", "podinfo-shard1")]
    assert t.render(t.headers(False), rows) == FLUX_GET_GOLDEN
    # 40 to 128 hex digits, whole words only
    assert t.truncate_hex("sha256:" + "a" * 64 + " and " + "b" * 39) == (
        "sha256:aaaaaaaa and " + "b" * 39)


def test_all_namespaces_puts_the_namespace_first_and_wide_text_keeps_columns() -> None:
    repo = obj("charts", ns="team-a", spec={"type": "oci", "suspend": True},
               conditions=[cond("Ready", "False", "Secret 'creds' not found: créez-le 日本")])
    header, row = t.render(t.headers(True), [t.repository_row(repo, True)]).splitlines()
    assert header.split("\t")[0].rstrip() == "NAMESPACE"
    assert row.split("\t")[:5] == ["team-a   ", "charts", "        ", "True     ", "False"]
    message = "Secret 'creds' not found: créez-le 日本"
    assert row.split("\t")[5] == message
    # the MESSAGE header is padded to the message's display width (two columns per ideogram)
    assert len(header.split("\t")[-1]) == len(message) + 2 + 1
    # an oci HelmRepository Flux owns (no status): flux's fixed words
    assert t.repository_row(obj("flux", spec={"type": "oci"}), False)[2:] == [
        "False", "True", "Helm repository is Ready"]
    assert t.display_width("日本") == 4


def test_cells_from_the_cluster_cannot_break_lines_or_drive_the_terminal() -> None:
    text = t.render(["Name"], [["x\n\x1b[2Jy"]])
    assert text.count("\n") == 2
    assert "\x1b" not in text


def test_chart_and_release_cells() -> None:
    chart = obj("flux-system-nginx", conditions=[cond("Ready", "True", "pulled 'nginx' chart "
                                                                        "with version '0.1.0'")],
                artifact={"revision": "0.1.0@sha256:" + "c" * 64})
    # a chart's revision holds a version: not shortened, as in flux
    assert t.chart_row(chart, False) == ["flux-system-nginx", "0.1.0@sha256:" + "c" * 64,
                                         "False", "True", "pulled 'nginx' chart with version "
                                                          "'0.1.0'"]
    # no history yet: the last attempted revision; no Ready: flux's "waiting"
    fresh = obj("web", lastAttemptedRevision="1.2.3")
    assert t.release_row(fresh, False) == ["web", "1.2.3", "False", "False",
                                           "waiting to be reconciled"]


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
    (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (3 * 3600 + 120, "3h2m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (50 * 3600, "2d2h"),
    (9 * 86400, "9d"), (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y"),
])
def test_ages_are_kubectls_human_durations(seconds: int, text: str) -> None:
    assert t.human_duration(timedelta(seconds=seconds)) == text


def test_last_seen_counts_repeats_as_flux_events_does() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    once = {"firstTimestamp": "2024-05-01T11:59:15Z", "lastTimestamp": "2024-05-01T11:59:15Z",
            "count": 1}
    again = {"firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:59:50Z",
             "count": 3}
    assert t.last_seen(once, now) == "45s"
    assert t.last_seen(again, now) == "10s (x3 over 10m)"
    assert t.last_seen({}, now) == "<unknown>"
    event = {"metadata": {"namespace": "apps"}, "type": "Warning", "reason": "UpgradeFailed",
             "involvedObject": {"kind": "HelmRelease", "name": "web"}, "message": "boom", **once}
    assert t.event_row(event, now, True) == ["apps", "45s", "Warning", "UpgradeFailed",
                                             "HelmRelease/web", "boom"]


# --- when a wait is over ------------------------------------------------------------------------

def test_settled_needs_the_current_generation_and_a_known_ready() -> None:
    ready = [cond("Ready", "True", "ok", generation=2)]
    assert settled(obj("x", generation=2, observedGeneration=2, conditions=ready)) == Verdict(
        True, "ok")
    # the status is about the previous generation
    assert settled(obj("x", generation=3, observedGeneration=2, conditions=ready)) is None
    assert settled(obj("x", generation=2, observedGeneration=2,
                       conditions=[cond("Ready", "True", "ok", generation=1)])) is None
    # in progress, or Ready not known yet
    assert settled(obj("x", generation=2, observedGeneration=2, conditions=[
        *ready, cond("Reconciling", "True")])) is None
    assert settled(obj("x", generation=2, observedGeneration=2,
                       conditions=[cond("Ready", "Unknown", generation=2)])) is None
    assert settled(obj("x", generation=2)) is None
    # a failure that will not heal by waiting
    stalled = [cond("Ready", "False", "chart not found", generation=2),
               cond("Stalled", "True", "chart not found", generation=2)]
    assert settled(obj("x", generation=2, observedGeneration=2, conditions=stalled)) == Verdict(
        False, "chart not found")


def test_a_reconcile_request_is_handled_when_the_status_names_it() -> None:
    stamp = rfc3339nano(1_714_564_800_123_400_000)
    assert stamp == "2024-05-01T12:00:00.1234Z"
    assert rfc3339nano(1_714_564_800_000_000_000) == "2024-05-01T12:00:00Z"
    body = obj("x", observedGeneration=1, conditions=[cond("Ready", "True", "ok")],
               lastHandledReconcileAt="2024-05-01T11:00:00Z")
    assert handled(body, stamp) is None
    body["status"]["lastHandledReconcileAt"] = stamp
    assert handled(body, stamp) == Verdict(True, "ok")


def test_success_messages_are_fluxs() -> None:
    release = obj("web", history=[{"chartVersion": "0.2.0"}])
    chart = obj("c", artifact={"revision": "0.2.0@sha256:abc"})
    repo = obj("r", spec={"type": "oci"}, conditions=[cond("Ready", "True",
                                                           "Helm repository is ready")])
    assert success_message(HELM_RELEASE, release) == "applied revision 0.2.0"
    assert success_message(HELM_CHART, chart) == "fetched revision 0.2.0@sha256:abc"
    assert success_message(HELM_REPOSITORY, repo) == "Helm repository is ready"

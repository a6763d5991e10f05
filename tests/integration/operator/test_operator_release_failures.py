"""HelmReleases that fail, run by ``chartguard run``: retries and Stalled, remediation by
rollback and by uninstall, tests, a crash in the middle of an install, and Secret values in
helm's errors. Real helm 4 and kubectl; charts pushed by real helm and signed.

Failures are made the way helm meets them: a hook Pod that never completes (the emulator keeps
``restartPolicy: Always`` Pods Running; helm 4 waits for a hook Pod to finish) times out and
leaves a failed revision; a template that does not render fails before helm stores anything.
The expected words are helm-controller's (internal/reconcile: install.go, upgrade.go, test.go,
rollback_remediation.go, uninstall_remediation.go, unlock.go, atomic_release.go)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from operator_support import (
    EMULATOR_ONLY,
    Charts,
    Cluster,
    Operator,
    helmrelease,
    repository,
    secret,
    wait_for,
)
from test_operator_releases import KEY_BLOCK, wait_ready

from chartguard.helm.release import StoredRelease, decode_release_secret
from chartguard_testing import procs
from chartguard_testing.charts import PushedChart
from chartguard_testing.registry import Registry

REPO = "charts"


def hanging_pod(hook: str, name: str = "hook") -> bytes:
    """A hook Pod that never completes."""
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {{{{ .Release.Name }}}}-{name}
  annotations:
    helm.sh/hook: {hook}
spec:
  restartPolicy: Always
  containers:
  - name: wait
    image: busybox
""".encode()


def signed(charts: Charts, name: str, version: str,
           files: dict[str, bytes] | None = None) -> PushedChart:
    """``helm create`` + ``files``, pushed, signed with the key the release's verify names."""
    chart = charts.helm.make_chart(charts.registry, name, version, extra_files=files or {})
    charts.sign_with_key(chart, "cosign")
    return chart


def apply_release(cluster: Cluster, charts: Charts, registry: Registry, name: str,
                  version: str, **spec: Any) -> None:
    """The HelmRelease ``name`` of chart ``name`` (release name ``name``, in the test's
    namespace), its HelmRepository and the key Secret."""
    ns = cluster.ns
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository(REPO, ns, registry.oci()),
        helmrelease(name, ns, name, REPO, KEY_BLOCK, version=version, releaseName=name,
                    targetNamespace=ns, **spec))


def patch_spec(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "helmrelease", "-n", cluster.ns, name, "--type=merge", "-p",
                    json.dumps({"spec": spec}))


def cond(cluster: Cluster, name: str, type_: str) -> tuple[str, str, str] | None:
    found = cluster.condition("helmrelease", cluster.ns, name, type_)
    return (found["status"], found["reason"], found["message"]) if found else None


def cond_in(status: dict[str, Any], type_: str) -> tuple[str, str, str] | None:
    for found in status.get("conditions", []):
        if found["type"] == type_:
            return (found["status"], found["reason"], found["message"])
    return None


def stalled(cluster: Cluster, name: str) -> bool:
    found = cond(cluster, name, "Stalled")
    return found is not None and found[0] == "True"


def events(cluster: Cluster, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the HelmRelease's Events."""
    return [(e["type"], e["reason"], e["message"]) for e in cluster.events(cluster.ns)
            if e["involvedObject"].get("kind") == "HelmRelease"
            and e["involvedObject"].get("name") == name]


def reasons(cluster: Cluster, name: str) -> Counter[str]:
    return Counter(reason for _, reason, _ in events(cluster, name))


def records(cluster: Cluster, release: str) -> dict[int, StoredRelease]:
    """helm's release records, decoded: revision -> record."""
    out = cluster.kubectl("get", "secrets", "-n", cluster.ns, "-l",
                          f"owner=helm,name={release}", "-o", "json").stdout
    decoded = [decode_release_secret(s) for s in json.loads(out)["items"]]
    return {r.version: r for r in decoded}


def summary(cluster: Cluster, release: str) -> dict[int, tuple[str, str]]:
    """revision -> (status, chart version) of helm's records."""
    return {v: (r.status, r.chart_version) for v, r in records(cluster, release).items()}


@contextlib.contextmanager
def watching(cluster: Cluster, kind: str, name: str, out: Path
             ) -> Iterator[list[dict[str, Any]]]:
    """Every version of one object the API serves while the block runs (``kubectl get -w``),
    in order, in the yielded list once the block ends: states too brief to poll for."""
    proc = cluster.kubectl.popen("get", kind, "-n", cluster.ns, name, "-w", "-o", "json",
                                 out=out)
    seen: list[dict[str, Any]] = []
    try:
        yield seen
    finally:
        procs.stop(proc)
        text, at, decoder = out.read_text(), 0, json.JSONDecoder()
        while (at := len(text) - len(text[at:].lstrip())) < len(text):
            doc, at = decoder.raw_decode(text, at)
            seen.append(doc)


def request(cluster: Cluster, operator: Operator, name: str) -> None:
    """``flux reconcile``: requestedAt, and wait until the operator handled it."""
    stamp = cluster.request_reconcile("helmrelease", cluster.ns, name)
    wait_for(lambda: cluster.status("helmrelease", cluster.ns, name).get(
        "lastHandledReconcileAt") == stamp, "requestedAt handled", timeout=30,
        operator=operator)


# -- install failures ------------------------------------------------------------------------


@EMULATOR_ONLY
def test_a_failing_install_is_retried_then_stalled_with_helms_message(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    signed(charts, "hanging", "0.1.0", {"templates/hook.yaml": hanging_pod("pre-install")})
    apply_release(cluster, charts, registry, "hanging", "0.1.0",
                  install={"timeout": "1s", "remediation": {"retries": 2}})
    operator.start()
    wait_for(lambda: stalled(cluster, "hanging"), "Stalled", timeout=60, operator=operator)

    # three attempts (retries: 2), each failed revision uninstalled before the next
    assert cond(cluster, "hanging", "Stalled") == (
        "True", "RetriesExceeded", "Failed to install after 3 attempt(s)")
    failed = cond(cluster, "hanging", "Ready")
    assert failed is not None
    assert failed[:2] == ("False", "InstallFailed")
    assert failed[2].startswith(f"Helm install failed for release {ns}/hanging with chart "
                                "hanging@0.1.0: INSTALLATION FAILED: failed pre-install: ")
    assert "Pod/" + ns + "/hanging-hook not ready" in failed[2]  # helm's own words
    assert cond(cluster, "hanging", "Released") == failed
    assert cond(cluster, "hanging", "Reconciling") is None
    status = cluster.status("helmrelease", ns, "hanging")
    assert (status["installFailures"], status["failures"]) == (3, 3)
    assert status["observedGeneration"] == 1
    # the last failed revision stays (install remediation leaves the last failure alone)
    assert summary(cluster, "hanging") == {1: ("failed", "0.1.0")}
    (snapshot,) = status["history"]
    assert (snapshot["version"], snapshot["status"], snapshot["action"]) == (1, "failed",
                                                                             "install")
    counted = reasons(cluster, "hanging")
    assert (counted["InstallFailed"], counted["UninstallSucceeded"]) == (3, 2)
    assert ("Normal", "UninstallSucceeded",
            f"Helm uninstall remediation for release {ns}/hanging.v1 with chart hanging@0.1.0 "
            "succeeded") in events(cluster, "hanging")

    # stalled: `flux reconcile` runs no more helm, as with helm-controller
    request(cluster, operator, "hanging")
    assert stalled(cluster, "hanging")
    assert reasons(cluster, "hanging")["InstallFailed"] == 3
    assert cluster.status("helmrelease", ns, "hanging")["installFailures"] == 3


@EMULATOR_ONLY
def test_a_template_that_does_not_render_is_retried_without_counting_toward_remediation(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    """helm stored nothing, so there is nothing to remediate: helm-controller returns the
    error (retried with a backoff) and counts no install failure; retries never run out."""
    ns = cluster.ns
    signed(charts, "broken", "0.1.0", {"templates/bad.yaml": b"{{ .Values.nope.missing }}\n"})
    apply_release(cluster, charts, registry, "broken", "0.1.0",
                  install={"remediation": {"retries": 1}})
    operator.start()
    wait_for(lambda: cluster.status("helmrelease", ns, "broken").get("failures", 0) >= 3,
             "three failed installs", timeout=60, operator=operator)

    status = cluster.status("helmrelease", ns, "broken")
    assert status.get("installFailures", 0) == 0  # with counting, Stalled after the 2nd
    assert cond(cluster, "broken", "Stalled") is None
    failed = cond(cluster, "broken", "Ready")
    assert failed is not None
    assert failed[:2] == ("False", "InstallFailed")
    assert failed[2].startswith(f"Helm install failed for release {ns}/broken with chart "
                                "broken@0.1.0: INSTALLATION FAILED: broken/templates/bad.yaml")
    assert "nil pointer evaluating interface {}.missing" in failed[2]
    # still progressing: the install runs again
    assert cond(cluster, "broken", "Reconciling") == (
        "True", "Progressing", "Running 'install' action with timeout of 5m0s")
    assert records(cluster, "broken") == {}
    assert "history" not in status
    assert status["observedGeneration"] == -1  # never done with generation 1
    counted = reasons(cluster, "broken")
    assert counted["InstallFailed"] >= 3
    assert counted["UninstallSucceeded"] == 0  # no remediation of what was never stored


# -- upgrade remediation ---------------------------------------------------------------------


@EMULATOR_ONLY
def test_a_failing_upgrade_is_rolled_back_to_the_chart_that_ran(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    signed(charts, "app", "0.1.0")
    # 0.2.0 changes the Deployment, then its post-upgrade hook never completes
    signed(charts, "app", "0.2.0", {"templates/hook.yaml": hanging_pod("post-upgrade")})
    apply_release(cluster, charts, registry, "app", "0.1.0",
                  upgrade={"timeout": "1s",
                           "remediation": {"retries": 1, "strategy": "rollback"}})
    operator.start()
    wait_ready(cluster, operator, "app")
    patch_spec(cluster, "app", {"chart": {"spec": {"version": "0.2.0"}}})
    wait_for(lambda: stalled(cluster, "app"), "Stalled", timeout=60, operator=operator)

    # two upgrades (retries: 1), each rolled back; the last failure remediated too
    assert cond(cluster, "app", "Stalled") == (
        "True", "RetriesExceeded", "Failed to upgrade after 2 attempt(s)")
    rolled_back = (f"Helm rollback to previous release {ns}/app.v3 with chart app@0.1.0 "
                   "succeeded")
    assert cond(cluster, "app", "Remediated") == ("True", "RollbackSucceeded", rolled_back)
    assert cond(cluster, "app", "Ready") == ("False", "RollbackSucceeded", rolled_back)
    released = cond(cluster, "app", "Released")
    assert released is not None
    assert released[:2] == ("False", "UpgradeFailed")
    assert released[2].startswith(f"Helm upgrade failed for release {ns}/app with chart "
                                  "app@0.2.0: UPGRADE FAILED: post-upgrade hooks failed")
    assert summary(cluster, "app") == {
        1: ("superseded", "0.1.0"), 2: ("failed", "0.2.0"), 3: ("superseded", "0.1.0"),
        4: ("failed", "0.2.0"), 5: ("deployed", "0.1.0")}
    assert records(cluster, "app")[5].description == "Rollback to 3"
    status = cluster.status("helmrelease", ns, "app")
    assert status["upgradeFailures"] == 2
    assert [(s["version"], s["status"], s["action"]) for s in status["history"]] == [
        (5, "deployed", "rollback"), (4, "failed", "upgrade"), (3, "superseded", "rollback")]
    # the Deployment was moved to 0.2.0 by each upgrade and back by each rollback
    deploy = cluster.body("deployment", ns, "app")
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "app-0.1.0"
    assert deploy["metadata"]["generation"] == 5
    counted = reasons(cluster, "app")
    assert (counted["UpgradeFailed"], counted["RollbackSucceeded"]) == (2, 2)
    assert ("Normal", "RollbackSucceeded", f"Helm rollback to previous release {ns}/app.v1 "
            "with chart app@0.1.0 succeeded") in events(cluster, "app")


@EMULATOR_ONLY
def test_a_failing_upgrade_is_uninstalled_with_strategy_uninstall(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Path) -> None:
    """helm-controller's uninstall remediation: the failed release goes, then the next
    reconcile installs the chart afresh (here it installs: the hook is post-upgrade only)."""
    ns = cluster.ns
    signed(charts, "app", "0.1.0")
    signed(charts, "app", "0.2.0", {"templates/hook.yaml": hanging_pod("post-upgrade")})
    apply_release(cluster, charts, registry, "app", "0.1.0",
                  upgrade={"timeout": "1s",
                           "remediation": {"retries": 1, "strategy": "uninstall"}})
    operator.start()
    wait_ready(cluster, operator, "app")
    installed = f"Helm install succeeded for release {ns}/app.v1 with chart app@0.2.0"
    with watching(cluster, "helmrelease", "app", tmp_path / "watch.json") as seen:
        patch_spec(cluster, "app", {"chart": {"spec": {"version": "0.2.0"}}})
        wait_for(lambda: cond(cluster, "app", "Ready") == ("True", "InstallSucceeded",
                                                           installed),
                 "installed afresh", timeout=60, operator=operator)

    remediated = [doc["status"] for doc in seen
                  if cond_in(doc.get("status") or {}, "Remediated") is not None]
    assert remediated, "no version of the HelmRelease had Remediated"
    first = remediated[0]
    assert cond_in(first, "Remediated") == (
        "True", "UninstallSucceeded",
        f"Helm uninstall remediation for release {ns}/app.v2 with chart app@0.2.0 succeeded")
    upgrade_failed = cond_in(first, "Released")
    assert upgrade_failed is not None
    assert upgrade_failed[:2] == ("False", "UpgradeFailed")
    assert cond_in(first, "Ready") == upgrade_failed  # Ready keeps saying why
    assert [(s["version"], s["status"], s["action"]) for s in first["history"]] == [
        (2, "uninstalled", "uninstall-remediation"), (1, "deployed", "install")]
    assert first["upgradeFailures"] == 1

    # the old records went with the uninstall: v1 is the new install of 0.2.0
    assert summary(cluster, "app") == {1: ("deployed", "0.2.0")}
    assert records(cluster, "app")[1].description == "Install complete"
    assert cond(cluster, "app", "Remediated") is None  # an install starts afresh
    status = cluster.status("helmrelease", ns, "app")
    assert [(s["version"], s["chartVersion"]) for s in status["history"]] == [(1, "0.2.0")]
    counted = reasons(cluster, "app")
    assert (counted["UpgradeFailed"], counted["UninstallSucceeded"],
            counted["RollbackSucceeded"]) == (1, 1, 0)
    assert ("Normal", "InstallSucceeded", installed) in events(cluster, "app")


# -- tests -----------------------------------------------------------------------------------

SLOW_TEST = hanging_pod("test", "slow-test")


@EMULATOR_ONLY
def test_tests_run_after_install_and_their_success_makes_ready(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    signed(charts, "app", "0.1.0")  # helm create's test-connection Pod: Succeeded at once
    apply_release(cluster, charts, registry, "app", "0.1.0", test={"enable": True})
    operator.start()
    wait_ready(cluster, operator, "app")
    tested = (f"Helm test succeeded for release {ns}/app.v1 with chart app@0.1.0: 1 test hook "
              "completed successfully")
    assert cond(cluster, "app", "TestSuccess") == ("True", "TestSucceeded", tested)
    assert cond(cluster, "app", "Ready") == ("True", "TestSucceeded", tested)
    assert cond(cluster, "app", "Released") == (
        "True", "InstallSucceeded",
        f"Helm install succeeded for release {ns}/app.v1 with chart app@0.1.0")
    (snapshot,) = cluster.status("helmrelease", ns, "app")["history"]
    assert snapshot["testHooks"]["app-test-connection"]["phase"] == "Succeeded"
    assert records(cluster, "app")[1].test_hooks["app-test-connection"].phase == "Succeeded"
    assert ("Normal", "TestSucceeded", tested) in events(cluster, "app")


@EMULATOR_ONLY
def test_a_failing_test_is_remediated_as_an_install_failure(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    signed(charts, "app", "0.1.0", {"templates/tests/slow.yaml": SLOW_TEST})
    apply_release(cluster, charts, registry, "app", "0.1.0",
                  test={"enable": True, "timeout": "1s"},
                  install={"remediation": {"retries": 1}})
    operator.start()
    wait_for(lambda: stalled(cluster, "app"), "Stalled", timeout=60, operator=operator)

    assert cond(cluster, "app", "Stalled") == (
        "True", "RetriesExceeded", "Failed to install after 2 attempt(s)")
    failed = cond(cluster, "app", "TestSuccess")
    assert failed is not None
    assert failed[:2] == ("False", "TestFailed")
    assert failed[2].startswith(f"Helm test failed for release {ns}/app.v1 with chart "
                                "app@0.1.0: ")
    assert f"Pod/{ns}/app-slow-test not ready" in failed[2]
    assert cond(cluster, "app", "Ready") == failed
    assert cond(cluster, "app", "Released") == (
        "True", "InstallSucceeded",
        f"Helm install succeeded for release {ns}/app.v1 with chart app@0.1.0")
    status = cluster.status("helmrelease", ns, "app")
    assert status["installFailures"] == 2
    # installed, tested, uninstalled (remediation), installed and tested again
    assert summary(cluster, "app") == {1: ("deployed", "0.1.0")}
    assert records(cluster, "app")[1].test_hooks["app-slow-test"].phase == "Failed"
    assert status["history"][0]["testHooks"]["app-slow-test"]["phase"] == "Failed"
    counted = reasons(cluster, "app")
    assert (counted["InstallSucceeded"], counted["TestFailed"],
            counted["UninstallSucceeded"]) == (2, 2, 1)


@EMULATOR_ONLY
def test_a_failing_test_with_ignore_failures_leaves_the_release_ready(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    signed(charts, "app", "0.1.0", {"templates/tests/slow.yaml": SLOW_TEST})
    apply_release(cluster, charts, registry, "app", "0.1.0",
                  test={"enable": True, "timeout": "1s", "ignoreFailures": True},
                  install={"remediation": {"retries": 1}})
    operator.start()
    wait_for(lambda: (cond(cluster, "app", "TestSuccess") or ("",))[0] == "False",
             "TestSuccess False", timeout=60, operator=operator)
    wait_ready(cluster, operator, "app")
    installed = f"Helm install succeeded for release {ns}/app.v1 with chart app@0.1.0"
    assert cond(cluster, "app", "Ready") == ("True", "InstallSucceeded", installed)
    failed = cond(cluster, "app", "TestSuccess")
    assert failed is not None
    assert failed[:2] == ("False", "TestFailed")
    # not remediated, and not tested again on the next reconcile
    request(cluster, operator, "app")
    assert cond(cluster, "app", "Ready") == ("True", "InstallSucceeded", installed)
    assert cond(cluster, "app", "Stalled") is None
    status = cluster.status("helmrelease", ns, "app")
    assert status.get("installFailures", 0) == 0
    assert summary(cluster, "app") == {1: ("deployed", "0.1.0")}
    counted = reasons(cluster, "app")
    assert (counted["InstallSucceeded"], counted["TestFailed"],
            counted["UninstallSucceeded"]) == (1, 1, 0)


# -- a crash in the middle of an install -------------------------------------------------------

# a pre-install hook that never completes while .Values.hang is true: helm holds the release in
# pending-install until its timeout (5m by default)
GATE = b"""{{- if .Values.hang }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-gate
  annotations:
    helm.sh/hook: pre-install
spec:
  restartPolicy: Always
  containers:
  - name: wait
    image: busybox
{{- end }}
"""


def test_an_operator_killed_during_an_install_converges_after_a_restart(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator,
        tmp_path: Path) -> None:
    """Both targets: the unlock rewrites helm's record in a real API server too."""
    ns = cluster.ns
    signed(charts, "app", "0.1.0", {"templates/gate.yaml": GATE})
    apply_release(cluster, charts, registry, "app", "0.1.0", values={"hang": True},
                  install={"remediation": {"retries": 1}})
    operator.start(own_group=True)
    wait_for(lambda: summary(cluster, "app") == {1: ("pending-install", "0.1.0")},
             "helm's record pending-install", timeout=60, operator=operator)
    assert operator.proc is not None
    group = operator.proc.pid
    assert "helm" in procs.group_processes(group).values()  # helm is in the middle of it
    with watching(cluster, "secret", "sh.helm.release.v1.app.v1",
                  tmp_path / "record.json") as seen:
        operator.kill_group()
        # the operator and its helm, gone (helm a moment after the operator)
        procs.wait_until(lambda: procs.group_processes(group) == {}, timeout=10,
                         what="the operator's process group gone")
        assert summary(cluster, "app") == {1: ("pending-install", "0.1.0")}  # as left
        # the user lets the hook pass, and the operator comes back
        patch_spec(cluster, "app", {"values": {"hang": False}})
        operator.start()
        wait_ready(cluster, operator, "app")

    upgraded = f"Helm upgrade succeeded for release {ns}/app.v2 with chart app@0.1.0"
    assert cond(cluster, "app", "Ready") == ("True", "UpgradeSucceeded", upgraded)
    assert cond(cluster, "app", "Released") == ("True", "UpgradeSucceeded", upgraded)
    assert summary(cluster, "app") == {1: ("superseded", "0.1.0"), 2: ("deployed", "0.1.0")}
    unlocked = "Release unlocked from stale 'pending-install' state"
    assert records(cluster, "app")[1].description == unlocked
    # the stale record went pending-install -> failed (the unlock) -> superseded (the upgrade)
    states = [decode_release_secret(doc) for doc in seen]
    assert [(r.status, r.description) for r in states] == [
        ("pending-install", "Initial install underway"), ("failed", unlocked),
        ("superseded", unlocked)]
    assert ("Normal", "PendingRelease", f"Unlocked Helm release {ns}/app.v1 with chart "
            "app@0.1.0 in pending-install state") in events(cluster, "app")
    status = cluster.status("helmrelease", ns, "app")
    assert [(s["version"], s["status"]) for s in status["history"]] == [(2, "deployed")]
    assert status.get("installFailures", 0) == status.get("upgradeFailures", 0) == 0
    assert status["observedGeneration"] == 2


# -- Secret values -----------------------------------------------------------------------------

SECRET_VALUE = "hunter2-Zq9xK"


@EMULATOR_ONLY
def test_a_secret_value_helm_quotes_in_its_error_is_shown_nowhere(
        cluster: Cluster, charts: Charts, registry: Registry, operator: Operator) -> None:
    ns = cluster.ns
    check = b'{{ fail (printf "greeting %q is not allowed" .Values.greeting) }}\n'
    signed(charts, "app", "0.1.0", {"templates/check.yaml": check})
    cluster.kubectl.apply(secret("app-values", ns,
                                 {"values.yaml": f"greeting: {SECRET_VALUE}\n".encode()}))
    apply_release(cluster, charts, registry, "app", "0.1.0",
                  valuesFrom=[{"kind": "Secret", "name": "app-values"}])
    operator.start()
    wait_for(lambda: cluster.status("helmrelease", ns, "app").get("failures", 0) >= 2,
             "two failed installs", timeout=60, operator=operator)

    # helm's message still says what failed, and where
    failed = cond(cluster, "app", "Ready")
    assert failed is not None
    assert failed[:2] == ("False", "InstallFailed")
    assert failed[2].endswith("INSTALLATION FAILED: execution error at "
                              '(app/templates/check.yaml:1:3): greeting "[redacted]" is not '
                              "allowed")
    # ... but the Secret's value is nowhere: the object, the Events, the operator's log
    shown = {"HelmRelease": json.dumps(cluster.body("helmrelease", ns, "app")),
             "Events": json.dumps(cluster.events(ns)),
             "operator log": operator.output()}
    assert "[redacted]" in shown["Events"]
    assert "[redacted]" in shown["operator log"]
    for where, text in shown.items():
        assert SECRET_VALUE not in text, where

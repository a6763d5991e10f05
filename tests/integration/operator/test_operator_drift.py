"""``spec.driftDetection`` run by ``chartguard run`` with real helm 4: a live Deployment changed
with kubectl is reported (Drifted condition, DriftDetected Event), put back with mode
``enabled`` (read back with kubectl, no new helm revision), only reported with ``warn``, and
not counted at all when an ignore rule names the path; a deleted object is created again."""

from __future__ import annotations

import json
from typing import Any

from operator_support import Charts, Cluster, Operator, helmrelease, repository, secret, wait_for
from test_operator_release_failures import request
from test_operator_releases import KEY_BLOCK, release_secrets, wait_ready

from chartguard_testing.proxy import CountingProxy


def start(cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
          name: str, drift: dict[str, Any]) -> str:
    """A signed chart (``helm create``: ServiceAccount, Service, Deployment of 1 replica)
    released with ``driftDetection`` ``drift``; the Deployment's name."""
    ns = cluster.ns
    chart = charts.push(name, "0.1.0")
    charts.sign_with_key(chart, "cosign")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("charts", ns, proxy.oci()),
        helmrelease(name, ns, name, "charts", KEY_BLOCK, releaseName=name,
                    driftDetection=drift))
    operator.start()
    assert wait_ready(cluster, operator, name)["reason"] == "InstallSucceeded"
    # the install's reconcile looked at the cluster right after helm
    assert drifted(cluster, name)[:3] == ("False", "NoDriftDetected",
                                           "No drift detected against the cluster state")
    return name


def drifted(cluster: Cluster, name: str) -> tuple[str, str, str]:
    cond = cluster.condition("helmrelease", cluster.ns, name, "Drifted")
    return cond.get("status", ""), cond.get("reason", ""), cond.get("message", "")


def replicas(cluster: Cluster, name: str) -> int:
    found: int = cluster.body("deployment", cluster.ns, name)["spec"]["replicas"]
    return found


def scale(cluster: Cluster, name: str, count: int) -> None:
    cluster.kubectl("patch", "deployment", "-n", cluster.ns, name, "--type", "merge",
                    "-p", json.dumps({"spec": {"replicas": count}}))


def events(cluster: Cluster, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(cluster.ns)
            if e["involvedObject"]["name"] == name and e["reason"] == reason]


def wait_events(cluster: Cluster, operator: Operator, name: str, reason: str,
                count: int) -> list[dict[str, Any]]:
    """The ``reason`` Events once there are ``count`` (posted after the status is written)."""
    wait_for(lambda: len(events(cluster, name, reason)) >= count, f"{count} {reason} Event(s)",
             operator=operator)
    return events(cluster, name, reason)


def test_enabled_puts_a_scaled_deployment_back_without_a_helm_revision(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    name = start(cluster, charts, proxy, operator, "drift-on", {"mode": "enabled"})
    scale(cluster, name, 3)
    assert replicas(cluster, name) == 3
    request(cluster, operator, name)
    # corrected, and then looked at again: no drift left
    assert replicas(cluster, name) == 1
    assert drifted(cluster, name)[:2] == ("False", "NoDriftDetected")
    (detected,) = wait_events(cluster, operator, name, "DriftDetected", 1)
    assert detected["type"] == "Warning"
    assert detected["message"] == (
        f"Cluster state of release {ns}/{name}.v1 has drifted from the desired state:\n"
        f"Deployment/{ns}/{name} changed (0 additions, 1 changes, 0 removals): /spec/replicas")
    (corrected,) = wait_events(cluster, operator, name, "DriftCorrected", 1)
    assert corrected["type"] == "Normal"
    assert corrected["message"] == (f"Cluster state of release {ns}/{name}.v1 has been "
                                    f"corrected:\nDeployment/{ns}/{name} configured")
    assert release_secrets(cluster, ns, name) == {f"sh.helm.release.v1.{name}.v1": "deployed"}
    ready = cluster.condition("helmrelease", ns, name, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "InstallSucceeded")
    # a deleted object counts ("removed") and is created again
    cluster.kubectl("delete", "service", "-n", ns, name)
    request(cluster, operator, name)
    assert cluster.body("service", ns, name)["metadata"]["labels"][
        "app.kubernetes.io/managed-by"] == "Helm"
    assert sorted(e["message"].split(":\n", 1)[1]
                  for e in wait_events(cluster, operator, name, "DriftCorrected", 2)) == [
        f"Deployment/{ns}/{name} configured", f"Service/{ns}/{name} created"]
    assert sorted(e["message"].split(":\n", 1)[1]
                  for e in wait_events(cluster, operator, name, "DriftDetected", 2)) == [
        f"Deployment/{ns}/{name} changed (0 additions, 1 changes, 0 removals): /spec/replicas",
        f"Service/{ns}/{name} removed"]
    assert release_secrets(cluster, ns, name) == {f"sh.helm.release.v1.{name}.v1": "deployed"}


def test_warn_reports_a_changed_image_and_leaves_it(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    name = start(cluster, charts, proxy, operator, "drift-warn", {"mode": "warn"})
    image = cluster.body("deployment", ns, name)["spec"]["template"]["spec"]["containers"][0][
        "image"]
    cluster.kubectl("set", "image", "-n", ns, f"deployment/{name}", f"{name}=busybox:1.36")
    request(cluster, operator, name)
    status, reason, message = drifted(cluster, name)
    assert (status, reason) == ("True", "DriftDetected")
    assert message == (
        f"Cluster state of release {ns}/{name}.v1 has drifted from the desired state:\n"
        f"Deployment/{ns}/{name} changed (0 additions, 1 changes, 0 removals): "
        "/spec/template/spec/containers/0/image")
    assert [e["message"] for e in wait_events(cluster, operator, name, "DriftDetected", 1)
            ] == [message]
    assert events(cluster, name, "DriftCorrected") == []
    live = cluster.body("deployment", ns, name)["spec"]["template"]["spec"]["containers"][0]
    assert live["image"] == "busybox:1.36" != image
    # warn keeps the release Ready, as Flux does
    assert cluster.condition("helmrelease", ns, name, "Ready")["status"] == "True"


def test_an_ignore_rule_for_spec_replicas_makes_scaling_no_drift(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    name = start(cluster, charts, proxy, operator, "drift-ignore", {
        "mode": "enabled",
        "ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deploy.*"}},
                   # a rule whose target matches nothing ignores nothing
                   {"paths": ["/spec/template"], "target": {"kind": "StatefulSet"}}]})
    scale(cluster, name, 3)
    request(cluster, operator, name)
    assert drifted(cluster, name)[:2] == ("False", "NoDriftDetected")
    assert replicas(cluster, name) == 3
    assert events(cluster, name, "DriftDetected") == []
    # the same Deployment's other fields still count, and correcting them keeps the replicas
    cluster.kubectl("set", "image", "-n", ns, f"deployment/{name}", f"{name}=busybox:1.36")
    request(cluster, operator, name)
    (detected,) = wait_events(cluster, operator, name, "DriftDetected", 1)
    assert detected["message"].endswith(": /spec/template/spec/containers/0/image")
    wait_for(lambda: drifted(cluster, name)[:2] == ("False", "NoDriftDetected"),
             "drift corrected", operator=operator)
    live = cluster.body("deployment", ns, name)["spec"]
    assert live["template"]["spec"]["containers"][0]["image"] != "busybox:1.36"
    assert live["replicas"] == 3

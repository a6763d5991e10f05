"""A HelmRelease's life after its first install, run by ``chartguard run`` with real helm:
values and valuesFrom changes upgrade, an unchanged release costs no helm process, a new
verified version upgrades while an unsigned or tampered one leaves the release alone,
dependsOn orders installs, deletion uninstalls, and keyless charts install with an
operator-wide trusted root."""

from __future__ import annotations

import re
import shlex
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from operator_support import (
    EMULATOR_ONLY,
    ISSUER,
    Charts,
    Cluster,
    Operator,
    OperatorTarget,
    helmrelease,
    repository,
    secret,
    wait_for,
)
from test_operator_releases import KEY_BLOCK, ready, release_secrets

from chartguard_testing import tools
from chartguard_testing.charts import PushedChart
from chartguard_testing.proxy import CountingProxy


def configmap(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data}


def wait_message(cluster: Cluster, operator: Operator, name: str, message: str,
                 timeout: float = 60) -> dict[str, Any]:
    """Wait for the HelmRelease's Ready True with ``message`` (a revision's success)."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(ready(cluster, name))
        return (seen.get("status"), seen.get("message")) == ("True", message)

    wait_for(done, f"{name}: {message}", timeout=timeout, operator=operator)
    return seen


def succeeded(verb: str, ns: str, release: str, version: int, chart: str) -> str:
    """helm-controller's success message of a release action."""
    return f"Helm {verb} succeeded for release {ns}/{release}.v{version} with chart {chart}"


def condition(cluster: Cluster, kind: str, name: str, type_: str) -> dict[str, Any]:
    """``type_``'s condition of ``kind`` ``name``; {} while the object does not exist yet."""
    return cluster.condition(kind, cluster.ns, name, type_) if exists(
        cluster, kind, cluster.ns, name) else {}


def exists(cluster: Cluster, kind: str, namespace: str, name: str) -> bool:
    out = cluster.kubectl("get", kind, "-n", namespace, "--ignore-not-found", "-o", "name",
                          name).stdout
    return out.strip() != ""


def history(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.status("helmrelease", cluster.ns, name).get(
        "history", [])
    return found


def pod_template(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    template: dict[str, Any] = cluster.body("deployment", namespace, name)["spec"]["template"]
    return template


@EMULATOR_ONLY
def test_values_and_values_from_changes_upgrade_the_release(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    charts.sign_with_key(charts.push("nginx", "0.1.0"), "cosign")
    values_from = [{"kind": "Secret", "name": "nginx-values"},
                   {"kind": "ConfigMap", "name": "nginx-image", "valuesKey": "tag",
                    "targetPath": "image.tag"}]

    def release(replicas: int) -> dict[str, Any]:
        return helmrelease("nginx", ns, "nginx", "charts", KEY_BLOCK, valuesFrom=values_from,
                           values={"replicaCount": replicas})

    def values_secret(source: str) -> dict[str, Any]:
        return secret("nginx-values", ns,
                      {"values.yaml": f"podAnnotations:\n  source: {source}\n".encode()})

    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        values_secret("secret-v1"), configmap("nginx-image", ns, {"tag": "1.25.0"}),
        repository("charts", ns, proxy.oci()), release(1))
    operator.start()
    wait_message(cluster, operator, "nginx", succeeded("install", ns, "nginx", 1, "nginx@0.1.0"))
    template = pod_template(cluster, ns, "nginx")
    assert cluster.body("deployment", ns, "nginx")["spec"]["replicas"] == 1
    assert template["metadata"]["annotations"] == {"source": "secret-v1"}
    # the ConfigMap's key landed at its targetPath
    assert template["spec"]["containers"][0]["image"] == "nginx:1.25.0"

    # spec.values changes: a new generation, one upgrade
    cluster.kubectl.apply(release(3))
    message = succeeded("upgrade", ns, "nginx", 2, "nginx@0.1.0")
    cond = wait_message(cluster, operator, "nginx", message)
    assert cond["reason"] == "UpgradeSucceeded"
    released = cluster.condition("helmrelease", ns, "nginx", "Released")
    assert (released["status"], released["reason"], released["message"]) == (
        "True", "UpgradeSucceeded", message)
    assert cluster.body("deployment", ns, "nginx")["spec"]["replicas"] == 3
    assert release_secrets(cluster, ns, "nginx") == {
        "sh.helm.release.v1.nginx.v1": "superseded", "sh.helm.release.v1.nginx.v2": "deployed"}
    status = cluster.status("helmrelease", ns, "nginx")
    assert [(s["version"], s["status"]) for s in status["history"]] == [
        (2, "deployed"), (1, "superseded")]
    newest, first = status["history"]
    assert newest["configDigest"] == status["lastAttemptedConfigDigest"]
    assert newest["configDigest"] != first["configDigest"]
    assert status["lastAttemptedReleaseAction"] == "upgrade"
    assert status["observedGeneration"] == 2

    # the Secret named in valuesFrom changes: its watch upgrades at once (the interval is 10m
    # and nothing asks for a reconcile)
    cluster.kubectl.apply(values_secret("secret-v2"))
    wait_message(cluster, operator, "nginx", succeeded("upgrade", ns, "nginx", 3, "nginx@0.1.0"),
                 timeout=30)
    assert pod_template(cluster, ns, "nginx")["metadata"]["annotations"] == {
        "source": "secret-v2"}
    assert cluster.body("deployment", ns, "nginx")["spec"]["replicas"] == 3
    status = cluster.status("helmrelease", ns, "nginx")
    # history cut back to the previous good revision, as helm-controller keeps it
    assert [s["version"] for s in status["history"]] == [3, 2]
    assert "lastHandledReconcileAt" not in status
    assert status["observedGeneration"] == 2

    # so does the ConfigMap's
    cluster.kubectl.apply(configmap("nginx-image", ns, {"tag": "1.26.0"}))
    wait_message(cluster, operator, "nginx", succeeded("upgrade", ns, "nginx", 4, "nginx@0.1.0"),
                 timeout=30)
    container = pod_template(cluster, ns, "nginx")["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26.0"
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_an_unchanged_release_runs_no_helm_process_across_intervals(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        tmp_path: Path) -> None:
    ns = cluster.ns
    calls = tmp_path / "helm-calls"
    wrapper = tmp_path / "helm-counting"
    wrapper.write_text(f"#!/bin/sh\necho \"$1\" >> {shlex.quote(str(calls))}\n"
                       f"exec {shlex.quote(tools.helm())} \"$@\"\n")
    wrapper.chmod(0o755)
    charts.sign_with_key(charts.push("nginx", "0.1.0"), "cosign")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("charts", ns, proxy.oci()),
        # the chart template takes the release's interval: both are looked at every 2 s
        helmrelease("nginx", ns, "nginx", "charts", KEY_BLOCK, interval="2s"))
    operator.start(helm=str(wrapper))
    wait_message(cluster, operator, "nginx", succeeded("install", ns, "nginx", 1, "nginx@0.1.0"))
    after_install = calls.read_text().splitlines()
    assert after_install == ["install"], after_install  # the wrapper is what the operator runs

    # several intervals of the release and its chart: the chart resolves the range each time
    proxy.reset()
    wait_for(lambda: len(proxy.seen("/nginx/tags/list")) >= 3, "three chart intervals",
             timeout=30, operator=operator)
    # and a reconcile of the release that is certain to have run, through requestedAt
    stamp = cluster.request_reconcile("helmrelease", ns, "nginx")
    wait_for(lambda: cluster.status("helmrelease", ns, "nginx").get(
        "lastHandledReconcileAt") == stamp, "requestedAt handled", operator=operator)
    assert calls.read_text().splitlines() == after_install
    assert ready(cluster, "nginx")["message"] == succeeded("install", ns, "nginx", 1,
                                                           "nginx@0.1.0")
    assert release_secrets(cluster, ns, "nginx") == {"sh.helm.release.v1.nginx.v1": "deployed"}
    assert operator.stop() == 0


def test_a_new_signed_version_upgrades_and_unsigned_or_tampered_ones_leave_the_release(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    chart_name = f"{ns}-nginx"
    charts.sign_with_key(charts.push("nginx", "0.1.0"), "cosign")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("charts", ns, proxy.oci()),
        helmrelease("nginx", ns, "nginx", "charts", KEY_BLOCK, version=">=0.1.0"))
    operator.start()
    wait_message(cluster, operator, "nginx", succeeded("install", ns, "nginx", 1, "nginx@0.1.0"))

    signed = charts.push("nginx", "0.2.0")
    charts.sign_with_key(signed, "cosign")
    cluster.request_reconcile("helmchart", ns, chart_name)
    upgraded = succeeded("upgrade", ns, "nginx", 2, "nginx@0.2.0")
    wait_message(cluster, operator, "nginx", upgraded)
    deploy = cluster.body("deployment", ns, "nginx")
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "nginx-0.2.0"
    assert history(cluster, "nginx")[0]["ociDigest"] == signed.digest
    records = {"sh.helm.release.v1.nginx.v1": "superseded",
               "sh.helm.release.v1.nginx.v2": "deployed"}
    assert release_secrets(cluster, ns, "nginx") == records

    def refused(newer: PushedChart, why: str) -> None:
        """``newer`` is the highest in range but fails verification: the chart says why, the
        release says the chart's words, and helm is not run."""
        stamp = cluster.request_reconcile("helmchart", ns, chart_name)
        wait_for(lambda: cluster.status("helmchart", ns, chart_name).get(
            "lastHandledReconcileAt") == stamp, f"chart reconciled for {newer.version}",
            operator=operator)
        verified = cluster.condition("helmchart", ns, chart_name, "SourceVerified")
        assert (verified["status"], verified["reason"]) == ("False", "VerificationError")
        assert (f"failed to verify the signature of 'nginx' version '{newer.version}' "
                f"({newer.digest}) using provider 'cosign': ") in verified["message"]
        assert why in verified["message"]
        expected = f"HelmChart '{ns}/{chart_name}' is not ready: {verified['message']}"
        wait_for(lambda: ready(cluster, "nginx").get("message") == expected,
                 "the chart's message on the release", operator=operator)
        cond = ready(cluster, "nginx")
        assert (cond["status"], cond["reason"]) == ("False", "VerificationError")
        # the running release stays: no new revision, the verified chart's objects
        assert release_secrets(cluster, ns, "nginx") == records
        deploy = cluster.body("deployment", ns, "nginx")
        assert deploy["metadata"]["labels"]["helm.sh/chart"] == "nginx-0.2.0"
        released = cluster.condition("helmrelease", ns, "nginx", "Released")
        assert (released["status"], released["message"]) == ("True", upgraded)
        assert [s["chartVersion"] for s in history(cluster, "nginx")] == ["0.2.0", "0.1.0"]
        assert cluster.revision(ns, chart_name) == f"0.2.0@{signed.digest}"

    unsigned = charts.push("nginx", "0.3.0")
    refused(unsigned, f"no signature for {unsigned.digest}")
    tampered = charts.push("nginx", "0.4.0")
    # a valid signature by the trusted key, but of another manifest (0.2.0's)
    charts.sign_with_key(tampered, "cosign", digest=signed.digest)
    refused(tampered, f"signed payload is for {signed.digest}, not {tampered.digest}")
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_depends_on_installs_the_dependency_first(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    charts.sign_with_key(charts.push("alpha", "0.1.0"), "a")
    charts.sign_with_key(charts.push("beta", "0.1.0"), "b")
    a_key = secret("a-key", ns, {"cosign.pub": charts.key("a").public_pem})
    cluster.kubectl.apply(
        # a's key Secret is missing at first: its chart, and so a, waits
        secret("b-key", ns, {"cosign.pub": charts.key("b").public_pem}),
        repository("charts", ns, proxy.oci()),
        helmrelease("a", ns, "alpha", "charts",
                    {"provider": "cosign", "secretRef": {"name": "a-key"}}),
        helmrelease("b", ns, "beta", "charts",
                    {"provider": "cosign", "secretRef": {"name": "b-key"}},
                    dependsOn=[{"name": "a"}]))
    operator.start()
    # b's own chart is verified: only the dependency holds it back
    wait_for(lambda: condition(cluster, "helmchart", f"{ns}-b", "SourceVerified").get(
        "status") == "True", "b's chart verified", operator=operator)
    wait_for(lambda: ready(cluster, "b").get("reason") == "DependencyNotReady",
             "b waits for a", operator=operator)
    cond = ready(cluster, "b")
    assert (cond["status"], cond["message"]) == ("False", f"dependency '{ns}/a' is not ready")
    assert ready(cluster, "a")["status"] == "False"
    assert release_secrets(cluster, ns, "a") == release_secrets(cluster, ns, "b") == {}
    assert not exists(cluster, "deployment", ns, "b-beta")

    cluster.kubectl.apply(a_key)
    wait_message(cluster, operator, "b", succeeded("install", ns, "b", 1, "beta@0.1.0"))
    assert ready(cluster, "a")["message"] == succeeded("install", ns, "a", 1, "alpha@0.1.0")
    (a_rev,), (b_rev,) = history(cluster, "a"), history(cluster, "b")
    assert _time(b_rev["firstDeployed"]) >= _time(a_rev["lastDeployed"]), (a_rev, b_rev)
    assert exists(cluster, "deployment", ns, "b-beta")
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_deleting_a_release_uninstalls_it_and_removes_its_chart(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        kube: OperatorTarget, tmp_path: Path) -> None:
    ns = cluster.ns
    charts.sign_with_key(charts.push("nginx", "0.1.0"), "cosign")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("charts", ns, proxy.oci()),
        helmrelease("first", ns, "nginx", "charts", KEY_BLOCK),
        helmrelease("second", ns, "nginx", "charts", KEY_BLOCK))
    operator.start()
    for name in ("first", "second"):
        wait_message(cluster, operator, name, succeeded("install", ns, name, 1, "nginx@0.1.0"))
        assert exists(cluster, "deployment", ns, f"{name}-nginx")
        assert exists(cluster, "helmchart", ns, f"{ns}-{name}")

    cluster.kubectl("delete", "helmrelease", "-n", ns, "first", "--wait=false")
    wait_for(lambda: not exists(cluster, "helmrelease", ns, "first"),
             "first deleted (finalizer removed)", operator=operator)
    assert release_secrets(cluster, ns, "first") == {}
    assert not exists(cluster, "deployment", ns, "first-nginx")
    assert not exists(cluster, "helmchart", ns, f"{ns}-first")
    assert ("Normal", "UninstallSucceeded", succeeded("uninstall", ns, "first", 1, "nginx@0.1.0")
            ) in [(e["type"], e["reason"], e["message"]) for e in cluster.events(ns)
                  if e["involvedObject"]["name"] == "first"]

    # someone ran `helm uninstall` by hand; deleting the HelmRelease is still no error
    homes = {f"HELM_{kind}_HOME": str(tmp_path / "manual-helm" / kind.lower())
             for kind in ("CACHE", "CONFIG", "DATA")}
    subprocess.run([tools.helm(), "uninstall", "second", "--namespace", ns],
                   env={**kube.env, **homes}, check=True, capture_output=True, timeout=60)
    assert release_secrets(cluster, ns, "second") == {}

    def warnings(name: str) -> list[tuple[str, str, int]]:
        return sorted((e["reason"], e["message"], e.get("count", 1)) for e in cluster.events(ns)
                      if e["involvedObject"]["name"] == name and e["type"] == "Warning")

    before = warnings("second")  # the wait for the chart at the start
    cluster.kubectl("delete", "helmrelease", "-n", ns, "second", "--wait=false")
    wait_for(lambda: not exists(cluster, "helmrelease", ns, "second"),
             "second deleted although already uninstalled", operator=operator)
    assert not exists(cluster, "helmchart", ns, f"{ns}-second")
    assert warnings("second") == before, warnings("second")
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_keyless_charts_install_with_the_operators_trusted_root(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        tmp_path: Path) -> None:
    ns = cluster.ns
    root = tmp_path / "trusted_root.json"
    root.write_bytes(charts.sigstore.trusted_root_json())
    charts.sign_keyless(charts.push("prometheus", "15.18.0"))
    charts.sign_keyless(charts.push("podinfo", "6.0.0"))
    cluster.kubectl.apply(
        repository("charts", ns, proxy.oci(), api_version="v1beta2"),
        # the blog's keyless block as its yq edit adds it: no key, no trusted root named
        helmrelease("prometheus", ns, "prometheus", "charts", {"provider": "cosign"},
                    version="15.18.0", api_version="v2beta1"),
        # current Flux v2, with the signer's identity pinned
        helmrelease("podinfo", ns, "podinfo", "charts",
                    {"provider": "cosign",
                     "matchOIDCIdentity": [{"issuer": f"^{ISSUER}$",
                                            "subject": "^https://github.com/example/"}]},
                    version="6.x"))
    operator.start("--trusted-root", str(root))
    for name, chart in (("prometheus", "prometheus@15.18.0"), ("podinfo", "podinfo@6.0.0")):
        wait_message(cluster, operator, name, succeeded("install", ns, name, 1, chart))
        verified = cluster.condition("helmchart", ns, f"{ns}-{name}", "SourceVerified")
        assert (verified["status"], verified["message"]) == (
            "True", f"verified signature of version {chart.split('@')[1]}")
        assert release_secrets(cluster, ns, name) == {f"sh.helm.release.v1.{name}.v1": "deployed"}
        assert exists(cluster, "deployment", ns, name)
    assert operator.stop() == 0


def _time(stamp: str) -> datetime:
    """helm's RFC 3339 time (Go's, nanoseconds cut to microseconds)."""
    found = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    assert found is not None, stamp
    head, frac, zone = found.groups()
    return datetime.fromisoformat(
        f"{head}.{((frac or '') + '000000')[:6]}{'+00:00' if zone == 'Z' else zone}")

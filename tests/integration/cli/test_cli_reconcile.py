"""``chartguard reconcile``, ``suspend``/``resume`` and ``events`` against ``chartguard run`` on
the emulator: the annotations Flux's controllers read, the waits, and flux's progress lines."""

from __future__ import annotations

import json

from cli_support import Chartguard
from operator_support import Charts, Cluster, Operator, secret

from chartguard_testing.proxy import CountingProxy

KEY_FLAGS = ("--verify-provider", "cosign", "--verify-secret-ref", "cosign-pub")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.rstrip("\t \n").split("\t")]


def release_secrets(cluster: Cluster, namespace: str, release: str) -> dict[str, str]:
    out = cluster.kubectl("get", "secrets", "-n", namespace, "-l",
                          f"owner=helm,name={release}", "-o", "json").stdout
    return {s["metadata"]["name"]: s["metadata"]["labels"]["status"]
            for s in json.loads(out)["items"]}


def installed(cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
              chartguard: Chartguard) -> None:
    """nginx 0.1.0, key-signed, installed by a release created with the CLI (10m intervals:
    nothing but the commands below makes chartguard look again)."""
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    cluster.kubectl.apply(secret("cosign-pub", cluster.ns,
                                 {"cosign.pub": charts.key("cosign").public_pem}))
    operator.start()
    source = chartguard("create", "source", "helm", "charts", f"--url={proxy.oci()}",
                        "--insecure", "--interval=10m")
    assert source.code == 0, source.err
    release = chartguard("create", "hr", "nginx", "--source=HelmRepository/charts",
                         "--chart=nginx", "--interval=10m", "--target-namespace=default",
                         "--release-name=nginx", *KEY_FLAGS)
    assert release.code == 0, release.err
    assert release.lines == [
        "✚ generating HelmRelease", "► applying HelmRelease", "✔ HelmRelease created",
        "◎ waiting for HelmRelease reconciliation", "✔ HelmRelease nginx is ready",
        "✔ applied revision 0.1.0"]


def test_reconcile_with_source_returns_once_the_new_signed_version_is_installed(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        chartguard: Chartguard) -> None:
    ns = cluster.ns
    installed(cluster, charts, proxy, operator, chartguard)
    newer = charts.push("nginx", "0.2.0")
    charts.sign_with_key(newer, "cosign")

    result = chartguard("reconcile", "helmrelease", "nginx", "--with-source")
    assert result.code == 0, result.err
    assert result.lines == [
        f"► annotating HelmRepository charts in {ns} namespace",
        "✔ HelmRepository annotated",
        "◎ waiting for HelmRepository reconciliation",
        "✔ Helm repository is ready",
        f"► annotating HelmChart {ns}-nginx in {ns} namespace",
        "✔ HelmChart annotated",
        "◎ waiting for HelmChart reconciliation",
        f"✔ fetched revision 0.2.0@{newer.digest}",
        f"► annotating HelmRelease nginx in {ns} namespace",
        "✔ HelmRelease annotated",
        "◎ waiting for HelmRelease reconciliation",
        "✔ applied revision 0.2.0"]
    # when the command returns, the new version is installed and Ready: nothing to wait for
    assert cells(chartguard("get", "hr").out.splitlines()[1]) == [
        "nginx", "0.2.0", "False", "True",
        "Helm upgrade succeeded for release default/nginx.v2 with chart nginx@0.2.0"]
    assert release_secrets(cluster, "default", "nginx")["sh.helm.release.v1.nginx.v2"] == (
        "deployed")
    body = cluster.body("helmrelease", ns, "nginx")
    assert body["status"]["lastHandledReconcileAt"] == body["metadata"]["annotations"][
        "reconcile.fluxcd.io/requestedAt"]

    # --force --reset: Flux's two request annotations, equal to requestedAt; a forced upgrade
    forced = chartguard("reconcile", "hr", "nginx", "--force", "--reset")
    assert forced.code == 0, forced.err
    assert forced.lines[-1] == "✔ applied revision 0.2.0"
    body = cluster.body("helmrelease", ns, "nginx")
    annotations = body["metadata"]["annotations"]
    stamp = annotations["reconcile.fluxcd.io/requestedAt"]
    assert annotations["reconcile.fluxcd.io/forceAt"] == stamp
    assert annotations["reconcile.fluxcd.io/resetAt"] == stamp
    assert (body["status"]["lastHandledForceAt"], body["status"]["lastHandledResetAt"]) == (
        stamp, stamp)
    assert release_secrets(cluster, "default", "nginx")["sh.helm.release.v1.nginx.v3"] == (
        "deployed")

    # a newer version nobody signed: the chart's reconcile fails and says why; the release
    # keeps the verified one
    charts.push("nginx", "0.3.0")
    refused = chartguard("reconcile", "source", "chart", f"{ns}-nginx", "--timeout", "30s")
    assert refused.code == 1
    assert refused.lines[-1].startswith(
        "✗ HelmChart reconciliation failed: chart verification error: failed to verify the "
        "signature of 'nginx' version '0.3.0'"), refused.err
    assert "no signature for sha256:" in refused.lines[-1]
    # the release still runs 0.2.0 (REVISION) and says why it is not Ready
    row = cells(chartguard("get", "hr").out.splitlines()[1])
    assert row[:4] == ["nginx", "0.2.0", "False", "False"]
    assert row[4].startswith(f"HelmChart '{ns}/{ns}-nginx' is not ready: chart verification")
    assert release_secrets(cluster, "default", "nginx") == {
        f"sh.helm.release.v1.nginx.v{n}": s for n, s in ((1, "superseded"), (2, "superseded"),
                                                         (3, "deployed"))}
    warnings = chartguard("events", "--types", "Warning")
    assert warnings.code == 0, warnings.err
    header, *rows = warnings.out.splitlines()
    assert cells(header) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows
    assert {cells(r)[1] for r in rows} == {"Warning"}
    assert f"HelmChart/{ns}-nginx" in {cells(r)[3] for r in rows}

    # --for HelmRelease/NAME: the release's events and those of its chart and repository
    for_release = chartguard("events", "--for", "HelmRelease/nginx")
    objects = {cells(r)[3] for r in for_release.out.splitlines()[1:]}
    assert {"HelmRelease/nginx", f"HelmChart/{ns}-nginx"} <= objects
    reasons = {(cells(r)[3], cells(r)[2]) for r in for_release.out.splitlines()[1:]}
    assert ("HelmRelease/nginx", "UpgradeSucceeded") in reasons
    assert not {o for o in objects if o.startswith("HelmRelease/") and o != "HelmRelease/nginx"}
    everywhere = chartguard("events", "-A").out.splitlines()
    assert cells(everywhere[0])[:2] == ["NAMESPACE", "LAST SEEN"]


def test_suspend_and_resume_as_flux_does_and_a_suspended_object_is_not_reconciled(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        chartguard: Chartguard) -> None:
    ns = cluster.ns
    installed(cluster, charts, proxy, operator, chartguard)
    suspended = chartguard("suspend", "hr", "nginx")
    assert (suspended.code, suspended.lines) == (0, [
        f"► suspending helmrelease nginx in {ns} namespace", "✔ helmrelease suspended"])
    assert cluster.body("helmrelease", ns, "nginx")["spec"]["suspend"] is True
    assert cells(chartguard("get", "hr").out.splitlines()[1])[2] == "True"
    refused = chartguard("reconcile", "helmrelease", "nginx")
    assert (refused.code, refused.lines) == (1, [
        f"✗ HelmRelease {ns}/nginx is suspended: resume it first (chartguard resume "
        f"helmrelease nginx -n {ns})"])

    resumed = chartguard("resume", "helmrelease", "nginx")
    assert resumed.code == 0, resumed.err
    assert resumed.lines == [
        f"► resuming helmrelease nginx in {ns} namespace", "✔ helmrelease resumed",
        "◎ waiting for HelmRelease reconciliation",
        "✔ HelmRelease nginx reconciliation completed", "✔ applied revision 0.1.0"]
    body = cluster.body("helmrelease", ns, "nginx")
    assert "suspend" not in body["spec"]
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]

    for kind, name, ready_line in (("chart", f"{ns}-nginx", "✔ fetched revision 0.1.0@"),
                                   ("helm", "charts", "✔ Helm repository is ready")):
        assert chartguard("suspend", "source", kind, name).lines[-1] == (
            f"✔ source {kind} suspended")
        resumed = chartguard("resume", "source", kind, name)
        assert resumed.code == 0, resumed.err
        assert resumed.lines[-1].startswith(ready_line), resumed.err

    missing = chartguard("suspend", "hr", "nope")
    assert (missing.code, missing.lines) == (1, [f"✗ HelmRelease nope not found in {ns} "
                                                 "namespace"])
    missing = chartguard("reconcile", "hr", "nope")
    assert (missing.code, missing.lines) == (1, [f"✗ HelmRelease {ns}/nope not found"])

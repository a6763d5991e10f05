"""The blog's flow with ``chartguard create … --export`` instead of ``flux create`` + ``yq``:
the exported YAML applied with real kubectl reconciles on the emulator as the blog's file does,
and ``chartguard get`` prints the blog's tables with the revisions that were installed."""

from __future__ import annotations

import json

import yaml
from cli_support import Chartguard
from operator_support import ISSUER, Charts, Cluster, Operator, secret, wait_for

from chartguard_testing.proxy import CountingProxy


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.rstrip("\t \n").split("\t")]


def ready(cluster: Cluster, kind: str, name: str) -> dict[str, object]:
    return cluster.condition(kind, cluster.ns, name, "Ready")


def test_exported_key_based_release_applied_with_kubectl_installs_and_get_prints_it(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        chartguard: Chartguard) -> None:
    ns = cluster.ns
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    cluster.kubectl.apply(secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}))
    # the blog's two commands (its `$USER-charts` repository; a plain-HTTP test registry)
    source = chartguard("create", "source", "helm", "developer-guy-charts",
                        f"--url={proxy.oci()}", "--interval=10m", "--insecure", "--export")
    release = chartguard("create", "helmrelease", "nginx",
                         "--source=HelmRepository/developer-guy-charts", "--chart=nginx",
                         "--interval=10m", "--release-name", "nginx",
                         "--target-namespace=default", "--verify-provider", "cosign",
                         "--verify-secret-ref", "cosign-pub", "--export")
    assert (source.code, release.code) == (0, 0), source.err + release.err
    assert yaml.safe_load(release.out)["spec"]["chart"]["spec"]["verify"] == {
        "provider": "cosign", "secretRef": {"name": "cosign-pub"}}
    cluster.kubectl("apply", "-f", "-", stdin=source.out + release.out)
    operator.start()
    wait_for(lambda: ready(cluster, "helmrelease", "nginx").get("status") == "True",
             "HelmRelease nginx Ready", timeout=90, operator=operator)
    deploy = cluster.body("deployment", "default", "nginx")
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "nginx-0.1.0"
    verified = cluster.condition("helmchart", ns, f"{ns}-nginx", "SourceVerified")
    assert (verified["status"], verified["message"]) == (
        "True", "verified signature of version 0.1.0")

    # `flux get sources helm` / `flux get helmreleases` as in the blog
    repos = chartguard("get", "sources", "helm")
    assert repos.code == 0, repos.err
    header, row = repos.out.splitlines()
    assert cells(header) == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert cells(row) == ["developer-guy-charts", "", "False", "True",
                          "Helm repository is ready"]
    # flux's layout: every cell padded to its column's width, then a tab
    assert [len(c) for c in header.split("\t")[:4]] == [len(c) for c in row.split("\t")[:4]]
    releases = chartguard("get", "helmreleases")
    assert releases.code == 0, releases.err
    header, row = releases.out.splitlines()
    assert cells(header) == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert cells(row) == ["nginx", "0.1.0", "False", "True",
                          "Helm install succeeded for release default/nginx.v1 with chart "
                          "nginx@0.1.0"]
    # flux's column layout: cells padded to the widest, separated by tabs
    chart_rows = chartguard("get", "sources", "chart").out.splitlines()
    assert cells(chart_rows[1])[:4] == [f"{ns}-nginx", f"0.1.0@{nginx.digest}", "False",
                                        "True"]
    # -A puts the namespace first; `hr` is the alias; -o json gives the objects
    everywhere = chartguard("get", "hr", "-A").out.splitlines()
    assert cells(everywhere[0])[:2] == ["NAMESPACE", "NAME"]
    assert cells(everywhere[1])[:3] == [ns, "nginx", "0.1.0"]
    as_json = json.loads(chartguard("get", "helmrelease", "nginx", "-o", "json").out)
    assert as_json["status"]["history"][0]["chartVersion"] == "0.1.0"
    assert "managedFields" not in as_json["metadata"]
    listed = yaml.safe_load(chartguard("get", "sources", "helm", "-o", "yaml").out)
    assert (listed["kind"], [i["metadata"]["name"] for i in listed["items"]]) == (
        "List", ["developer-guy-charts"])
    # nothing there: flux's failure, exit 1
    missing = chartguard("get", "hr", "-n", "default")
    assert (missing.code, missing.out) == (1, "")
    assert missing.err == '✗ no HelmRelease objects found in "default" namespace\n'
    assert chartguard("get", "hr", "other").err == (
        f"✗ HelmRelease object 'other' not found in \"{ns}\" namespace\n")


def test_keyless_release_from_identity_flags_applied_with_kubectl_installs(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        chartguard: Chartguard) -> None:
    ns = cluster.ns
    prometheus = charts.push("prometheus", "15.18.0")
    charts.sign_keyless(prometheus)
    cluster.kubectl.apply(secret("sigstore-root", ns,
                                 {"trusted_root.json": charts.sigstore.trusted_root_json()}))
    operator.start()
    # without --export: applied, then awaited, with flux's lines
    source = chartguard("create", "source", "helm", "prometheus-community",
                        f"--url={proxy.oci()}", "--interval=10m", "--insecure")
    assert source.code == 0, source.err
    assert source.lines == [
        "✚ generating HelmRepository source", "► applying HelmRepository source",
        "✔ source created", "◎ waiting for HelmRepository source reconciliation",
        "✔ HelmRepository source reconciliation completed"]
    # the blog's keyless release, the signer named (and the test Sigstore's trusted root)
    release = chartguard("create", "helmrelease", "prometheus",
                         "--source=HelmRepository/prometheus-community", "--chart=prometheus",
                         "--interval=10m", "--release-name", "prometheus",
                         "--target-namespace=monitoring", "--create-target-namespace",
                         "--verify-provider", "cosign", "--verify-oidc-issuer", f"^{ISSUER}$",
                         "--verify-oidc-subject", "^https://github.com/example/",
                         "--verify-trusted-root-secret-ref", "sigstore-root", "--export")
    assert (release.code, release.err) == (0, "")
    cluster.kubectl("apply", "-f", "-", stdin=release.out)
    wait_for(lambda: ready(cluster, "helmrelease", "prometheus").get("status") == "True",
             "HelmRelease prometheus Ready", timeout=90, operator=operator)
    assert ready(cluster, "helmrelease", "prometheus")["message"] == (
        "Helm install succeeded for release monitoring/prometheus.v1 with chart "
        "prometheus@15.18.0")
    assert cluster.body("deployment", "monitoring", "prometheus")["metadata"]["labels"][
        "helm.sh/chart"] == "prometheus-15.18.0"
    verified = cluster.condition("helmchart", ns, f"{ns}-prometheus", "SourceVerified")
    assert (verified["status"], verified["message"]) == (
        "True", "verified signature of version 15.18.0")
    verify = cluster.body("helmchart", ns, f"{ns}-prometheus")["spec"]["verify"]
    assert verify["matchOIDCIdentity"] == [{"issuer": f"^{ISSUER}$",
                                            "subject": "^https://github.com/example/"}]
    # applying again updates in place (flux's upsert) and still waits for Ready
    again = chartguard("create", "source", "helm", "prometheus-community",
                       f"--url={proxy.oci()}", "--interval=5m", "--insecure")
    assert again.code == 0, again.err
    assert "✔ source updated" in again.lines
    assert cluster.body("helmrepository", ns, "prometheus-community")["spec"]["interval"] == "5m0s"

    # an identity the signature does not have: the release never gets the chart
    wrong = chartguard("create", "helmrelease", "other", "--source",
                       "HelmRepository/prometheus-community", "--chart=prometheus",
                       "--verify-oidc-issuer", f"^{ISSUER}$", "--verify-oidc-subject",
                       "^https://github.com/someone-else/", "--verify-trusted-root-secret-ref",
                       "sigstore-root", "--timeout", "15s")
    assert wrong.code == 1
    # the wait ends at --timeout with what the release says, which names the mismatch
    assert wrong.lines[-1].startswith(
        f"✗ HelmRelease {ns}/other: not reconciled within 15s (Ready False: "), wrong.err
    assert "not matched by ^https://github.com/someone-else/" in wrong.lines[-1]

"""Attestation requirements (``verify.attestations``, a chartguard extension) run by
``chartguard run``: charts signed and attested by REAL cosign (v2 legacy ``.att`` and v2
``--new-bundle-format`` referrers, with a key, offline), installed by real helm only when the
SLSA provenance meets the CEL policy; a chart whose attestation does not meet it is refused
naming the predicate type and the release stays on the last verified chart (fail closed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from operator_support import (
    EMULATOR_ONLY,
    Charts,
    Cluster,
    Operator,
    helmchart,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard_testing.charts import PushedChart
from chartguard_testing.cosign_cli import CosignCLI, CosignKeys
from chartguard_testing.proxy import CountingProxy

SLSA = "https://slsa.dev/provenance/v1"
BUILDER = "https://github.com/org/charts/.github/workflows/release.yml@refs/heads/main"
POLICY = ('predicate.buildDefinition.buildType.startsWith("https://actions.github.io/") && '
          f'predicate.runDetails.builder.id == "{BUILDER}"')


def provenance(builder: str = BUILDER) -> dict[str, Any]:
    return {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                                "externalParameters": {}},
            "runDetails": {"builder": {"id": builder}}}


def sign_and_attest(cosign: CosignCLI, keys: CosignKeys, chart: PushedChart, tmp: Path, *,
                    bundle: bool, builder: str = BUILDER) -> None:
    image = f"{chart.repository}@{chart.digest}"
    cosign.sign(image, keys, bundle=False)
    predicate = tmp / f"provenance-{chart.version}.json"
    predicate.write_text(json.dumps(provenance(builder)))
    cosign.attest(image, keys, predicate, SLSA, bundle=bundle)


def verify_block(policy: str = POLICY) -> dict[str, Any]:
    return {"provider": "cosign", "secretRef": {"name": "cosign-pub"},
            "attestations": [{"predicateType": SLSA, "policy": policy}]}


def condition(cluster: Cluster, kind: str, name: str, type_: str) -> dict[str, Any]:
    return cluster.condition(kind, cluster.ns, name, type_)


def releases(cluster: Cluster, name: str) -> dict[str, str]:
    out = cluster.kubectl("get", "secrets", "-n", cluster.ns, "-l",
                          f"owner=helm,name={name}", "-o", "json").stdout
    return {s["metadata"]["name"]: s["metadata"]["labels"]["status"]
            for s in json.loads(out)["items"]}


def test_release_installs_only_charts_whose_provenance_meets_the_policy(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        tmp_path: Path) -> None:
    ns = cluster.ns
    cosign = CosignCLI(tmp_path / "cosign")
    keys = cosign.generate_key_pair("release")
    first = charts.push("app", "0.1.0")
    sign_and_attest(cosign, keys, first, tmp_path, bundle=False)  # legacy .att
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": keys.public.read_bytes()}),
        repository("charts", ns, proxy.oci()),
        helmrelease("app", ns, "app", "charts", verify_block(), releaseName="app",
                    targetNamespace=ns))
    operator.start()
    wait_for(lambda: condition(cluster, "helmrelease", "app", "Ready").get("status") == "True",
             "app installed", timeout=120, operator=operator)
    implied = f"{ns}-app"
    verified = condition(cluster, "helmchart", implied, "SourceVerified")
    assert (verified["status"], verified["message"]) == (
        "True", f"verified signature of version 0.1.0 and attestations {SLSA}")
    # the implied HelmChart carries the requirement as the release wrote it (the real API
    # server keeps it: the CRDs declare it)
    spec = cluster.body("helmchart", ns, implied)["spec"]
    assert spec["verify"]["attestations"] == [{"predicateType": SLSA, "policy": POLICY}]
    assert releases(cluster, "app") == {"sh.helm.release.v1.app.v1": "deployed"}

    # 0.2.0: signed by the same key, provenance from another branch's workflow (bundle form)
    second = charts.push("app", "0.2.0")
    sign_and_attest(cosign, keys, second, tmp_path, bundle=True,
                    builder=BUILDER.replace("refs/heads/main", "refs/heads/dev"))
    cluster.request_reconcile("helmchart", ns, implied)
    wait_for(lambda: condition(cluster, "helmchart", implied, "SourceVerified").get(
        "status") == "False", "0.2.0 refused", timeout=90, operator=operator)
    refused = condition(cluster, "helmchart", implied, "SourceVerified")
    assert refused["reason"] == "VerificationError"
    assert f"failed to verify the attestations of 'app' version '0.2.0' ({second.digest})" \
        in refused["message"]
    assert f"attestation {SLSA} not met: 1 attestation of that type, none meets it" \
        in refused["message"]
    assert "is false" in refused["message"]
    # fail closed: the release says the chart's words, helm is not run, the last verified
    # chart stays and the release stays on it
    expected = f"HelmChart '{ns}/{implied}' is not ready: {refused['message']}"
    wait_for(lambda: condition(cluster, "helmrelease", "app", "Ready").get(
        "message") == expected, "the chart's message on the release", operator=operator)
    assert condition(cluster, "helmrelease", "app", "Ready")["reason"] == "VerificationError"
    assert cluster.revision(ns, implied) == f"0.1.0@{first.digest}"
    assert releases(cluster, "app") == {"sh.helm.release.v1.app.v1": "deployed"}
    assert condition(cluster, "helmrelease", "app", "Released")["status"] == "True"
    assert [s["chartVersion"] for s in cluster.status("helmrelease", ns, "app")["history"]] \
        == ["0.1.0"]
    deploy = cluster.body("deployment", ns, "app")
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "app-0.1.0"
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_invalid_attestation_policy_stalls_naming_its_field(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        tmp_path: Path) -> None:
    ns = cluster.ns
    cosign = CosignCLI(tmp_path / "cosign")
    keys = cosign.generate_key_pair("release")
    chart = charts.push("app", "0.1.0")
    sign_and_attest(cosign, keys, chart, tmp_path, bundle=False)
    bad = 'predicate.runDetails.builder.id == "x" &&'
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": keys.public.read_bytes()}),
        repository("charts", ns, proxy.oci()),
        helmchart("chart", ns, "app", "0.1.0", "charts", verify_block(bad)),
        helmrelease("rel", ns, "app", "charts", verify_block(bad), releaseName="rel",
                    targetNamespace=ns))
    operator.start()
    wait_for(lambda: condition(cluster, "helmchart", "chart", "Stalled").get("status") == "True",
             "chart stalled", timeout=90, operator=operator)
    stalled = condition(cluster, "helmchart", "chart", "Stalled")
    assert stalled["reason"] == "InvalidCELExpression"
    assert stalled["message"].startswith(
        "invalid spec: spec.verify.attestations[0].policy: failed to parse the CEL expression")
    assert cluster.revision(ns, "chart") == ""  # nothing fetched or stored
    wait_for(lambda: condition(cluster, "helmrelease", "rel", "Stalled").get("status") == "True",
             "release stalled", timeout=90, operator=operator)
    ready = condition(cluster, "helmrelease", "rel", "Ready")
    assert ready["reason"] == "InvalidCELExpression"
    assert "spec.chart.spec.verify.attestations[0].policy: failed to parse the CEL " \
        "expression" in ready["message"]
    assert releases(cluster, "rel") == {}
    assert operator.stop() == 0

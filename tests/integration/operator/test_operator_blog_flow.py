"""The blog's flow run by ``chartguard run``: manifests applied with real kubectl, charts pushed
by real helm, signatures from the test signer, the SourceVerified line read back as the blog
reads it."""

from __future__ import annotations

import json
from pathlib import Path

from operator_support import (
    ISSUER,
    Charts,
    Cluster,
    Operator,
    helmchart,
    repository,
    secret,
    wait_for,
)

from chartguard_testing.proxy import CountingProxy

SEED_KEYS = {"lastTransitionTime", "message", "observedGeneration", "reason", "status", "type"}


def seed_read_back(cluster: Cluster, name: str) -> str:
    """The blog's command, verbatim but for the chart's name."""
    return cluster.kubectl(
        "get", "helmcharts", "-n", cluster.ns, f"flux-system-{name}",
        '-ojsonpath={.status.conditions[?(@.type=="SourceVerified")]}').stdout


def test_blog_v1beta2_and_current_v1_manifests_reconcile_to_the_blogs_condition(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    prometheus = charts.push("prometheus", "15.18.0")
    charts.sign_keyless(prometheus)
    root = charts.sigstore.trusted_root_json()
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        secret("sigstore-root", ns, {"trusted_root.json": root}),
        # the blog's v1beta2 HelmRepository and the chart its HelmRelease implies
        repository("developer-guy-charts", ns, proxy.oci(), api_version="v1beta2"),
        helmchart("flux-system-nginx", ns, "nginx", "*", "developer-guy-charts",
                  {"provider": "cosign", "secretRef": {"name": "cosign-pub"}},
                  api_version="v1beta2"),
        # current Flux's v1, keyless with an identity (and a private Sigstore's root)
        repository("prometheus-community", ns, proxy.oci()),
        helmchart("flux-system-prometheus", ns, "prometheus", "15.18.0",
                  "prometheus-community",
                  {"provider": "cosign", "trustedRootSecretRef": {"name": "sigstore-root"},
                   "matchOIDCIdentity": [{"issuer": f"^{ISSUER}$",
                                          "subject": "^https://github.com/example/"}]}))
    operator.start()
    for name, version in (("nginx", "0.1.0"), ("prometheus", "15.18.0")):
        wait_for(lambda n=name: seed_read_back(cluster, n) != "",  # type: ignore[misc]
                 f"SourceVerified of {name}", operator=operator)
        got = json.loads(seed_read_back(cluster, name))
        assert set(got) == SEED_KEYS
        assert (got["status"], got["reason"], got["message"], got["observedGeneration"]) == (
            "True", "Succeeded", f"verified signature of version {version}", 1)

    status = cluster.status("helmchart", ns, "flux-system-nginx")
    artifact = status["artifact"]
    assert artifact["revision"] == f"0.1.0@{nginx.digest}"
    assert artifact["digest"] == charts.layer_digest(nginx)
    assert artifact["path"] == f"sha256/{artifact['digest'][7:]}.tgz"
    stored = operator.artifacts / artifact["path"]
    assert stored.read_bytes() == Path(nginx.package).read_bytes()  # what helm packaged
    assert status["observedChartName"] == "nginx"
    ready = cluster.condition("helmchart", ns, "flux-system-nginx", "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True", "ChartPullSucceeded", "pulled 'nginx' chart with version '0.1.0'")
    in_storage = cluster.condition("helmchart", ns, "flux-system-nginx", "ArtifactInStorage")
    assert in_storage["message"] == "pulled 'nginx' chart with version '0.1.0'"

    # the repository reads as in the blog's `flux get sources helm`
    wait_for(lambda: cluster.condition("helmrepository", ns, "developer-guy-charts",
                                       "Ready").get("message") == "Helm repository is ready",
             "HelmRepository Ready", operator=operator)

    # the only marks on users' objects: Flux's finalizer; status holds Flux's fields only
    body = cluster.body("helmchart", ns, "flux-system-nginx")
    assert body["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    assert not [a for a in body["metadata"].get("annotations", {})
                if "kopf" in a or "chartguard" in a]
    assert set(body["status"]) <= {"observedGeneration", "conditions", "artifact", "url",
                                   "observedChartName", "lastHandledReconcileAt"}

    # Events as Flux emits them
    reasons = {(e["involvedObject"]["name"], e["reason"], e["type"])
               for e in cluster.events(ns)}
    assert ("flux-system-nginx", "ChartPullSucceeded", "Normal") in reasons

    # a spec the API server let through but chartguard cannot use: Stalled, saying which field
    broken = helmchart("broken", ns, "nginx", "not a version!", "developer-guy-charts", None)
    cluster.kubectl.apply(broken)
    wait_for(lambda: cluster.condition("helmchart", ns, "broken", "Stalled").get(
        "reason") == "InvalidSpec", "invalid spec stalled", operator=operator)
    assert "spec.version" in cluster.condition("helmchart", ns, "broken", "Ready")["message"]

    # deleting the chart: our finalizer goes, the object goes
    cluster.kubectl("delete", "helmchart", "-n", ns, "flux-system-nginx", "--timeout=30s")
    assert operator.stop() == 0

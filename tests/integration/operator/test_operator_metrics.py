"""``chartguard run --metrics-port``: ``/metrics`` scraped after real reconciles shows the
counters moved: reconciles by kind and result, verifications by format, reused
verifications, every registry exchange (as many as the registry's proxy saw) and its bytes, the
helm install, the store, and the objects by Ready."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from operator_support import (
    EMULATOR_ONLY,
    ISSUER,
    Charts,
    Cluster,
    Operator,
    helmchart,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard_testing import procs
from chartguard_testing.proxy import CountingProxy
from chartguard_testing.scrape import scrape

KEY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
REQUESTS = "chartguard_registry_requests_total"


def ready(cluster: Cluster, kind: str, name: str) -> str:
    return str(cluster.condition(kind, cluster.ns, name, "Ready").get("status", ""))


@EMULATOR_ONLY
def test_metrics_scraped_after_reconciles_show_what_the_operator_did(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    podinfo = charts.push("podinfo", "6.5.0")
    charts.sign_with_key(podinfo, "cosign")
    bundled = charts.push("bundled", "1.0.0")
    charts.sign_bundle(bundled)
    charts.push("unsigned", "1.0.0")
    nginx = charts.push("nginx", "0.1.0")
    charts.sign_with_key(nginx, "cosign")
    keyless = {"provider": "cosign", "trustedRootSecretRef": {"name": "sigstore-root"},
               "matchOIDCIdentity": [{"issuer": f"^{ISSUER}$", "subject": ".*"}]}
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        secret("sigstore-root", ns, {"trusted_root.json": charts.sigstore.trusted_root_json()}),
        repository("charts", ns, proxy.oci()),
        helmchart("podinfo", ns, "podinfo", "6.5.0", "charts", KEY),
        helmchart("bundled", ns, "bundled", "1.0.0", "charts", keyless),
        helmchart("unsigned", ns, "unsigned", "1.0.0", "charts", KEY),
        helmrelease("nginx", ns, "nginx", "charts", KEY, releaseName="nginx",
                    targetNamespace=ns))
    port = procs.free_port()
    operator.start("--metrics-port", str(port), "--metrics-address", "127.0.0.1")
    url = f"http://127.0.0.1:{port}/metrics"
    for kind, name, status in (("helmchart", "podinfo", "True"), ("helmchart", "bundled", "True"),
                               ("helmchart", "unsigned", "False"),
                               ("helmrelease", "nginx", "True")):
        wait_for(lambda k=kind, n=name, s=status: ready(cluster, k, n) == s,  # type: ignore[misc]
                 f"{kind} {name} Ready={status}", timeout=90, operator=operator)
    # once more, on request: the digest was verified before, so it is not verified again
    stamp = cluster.request_reconcile("helmchart", ns, "podinfo")
    wait_for(lambda: cluster.status("helmchart", ns, "podinfo").get(
        "lastHandledReconcileAt") == stamp, "requestedAt handled", operator=operator)
    # every exchange the registry's proxy saw is counted, once the last answer is in
    wait_for(lambda: scrape(url).total(REQUESTS) == len(proxy.requests) > 0,
             "registry requests counted", operator=operator)
    m = scrape(url)

    reconciles = "chartguard_reconcile_duration_seconds_count"
    assert m.total(reconciles, kind="HelmChart", result="success") >= 4  # 3 + the request
    assert m.total(reconciles, kind="HelmChart", result="failure") >= 1  # unsigned
    assert m.total(reconciles, kind="HelmRelease", result="success") >= 1
    # its first pass made its HelmChart and waited for it: waiting, not failing
    assert m.total(reconciles, kind="HelmRelease", result="waiting") >= 1
    assert m.total(reconciles, kind="HelmRelease", result="failure") == 0
    assert m.total(reconciles, kind="HelmRepository", result="success") >= 1
    flux = "gotk_reconcile_duration_seconds_count"
    assert m.total(flux, kind="HelmChart", namespace=ns, name="podinfo") >= 2
    assert m.total(flux, kind="HelmRelease", namespace=ns, name="nginx") >= 1

    verifications = "chartguard_verifications_total"
    # podinfo and the release's chart (nginx) by key; bundled as a keyless bundle
    assert m.total(verifications, outcome="verified", format="legacy_key") == 2
    assert m.total(verifications, outcome="verified", format="bundle_keyless") == 1
    assert m.total(verifications, outcome="unsigned") >= 1
    assert m.total(verifications, outcome="verified", format="legacy_keyless") == 0
    assert m.total("chartguard_verification_cache_hits_total") >= 1

    assert m.total(REQUESTS, outcome="answered", code="2xx") > 0
    assert m.total(REQUESTS, outcome="unreachable") == 0
    stored = sorted((operator.artifacts / "sha256").glob("*.tgz"))
    sizes = sum(path.stat().st_size for path in stored)
    assert m.total("chartguard_registry_downloaded_bytes_total", code="2xx") > sizes

    assert m.total("chartguard_helm_command_duration_seconds_count", action="install") == 1
    assert m.total("chartguard_helm_command_failures_total") == 0

    assert len(stored) == 3  # podinfo, bundled, nginx: never the unsigned one
    assert m.total("chartguard_store_artifacts") == 3
    assert m.total("chartguard_store_bytes") == sizes

    objects = "chartguard_objects"
    # podinfo, bundled and the release's own HelmChart; the unsigned one is not Ready
    assert m.total(objects, kind="HelmChart", ready="True") == 3
    assert m.total(objects, kind="HelmChart", ready="False") == 1
    assert m.total(objects, kind="HelmRelease", ready="True") == 1
    assert m.total(objects, kind="HelmRepository", ready="True") == 1
    assert m.total(objects) == 6

    assert operator.stop() == 0
    with pytest.raises(urllib.error.URLError):  # the endpoint went with the process
        urllib.request.urlopen(url, timeout=2)


@EMULATOR_ONLY
def test_a_metrics_port_in_use_stops_the_start_with_a_clear_message(
        operator: Operator) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        operator.start("--metrics-port", str(port), "--metrics-address", "127.0.0.1")
        assert operator.proc is not None
        assert operator.proc.wait(timeout=30) == 1
    output = operator.output()
    assert f"chartguard run: cannot serve metrics on 127.0.0.1:{port} (" in output
    assert "choose a free port (--metrics-port)" in output
    assert "Traceback" not in output


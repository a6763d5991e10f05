"""Time and restarts: intervals pick up new tags, unchanged charts cost one resolve, a SIGKILL
and restart changes nothing users see, a rotated key is checked at once."""

from __future__ import annotations

import shutil
import time

from operator_support import (
    EMULATOR_ONLY,
    Charts,
    Cluster,
    Operator,
    helmchart,
    repository,
    secret,
    wait_for,
)

from chartguard_testing.charts import PushedChart
from chartguard_testing.proxy import CountingProxy

KEY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}


def _verified(cluster: Cluster, operator: Operator, name: str, status: str = "True") -> None:
    ns = cluster.ns
    wait_for(lambda: cluster.condition("helmchart", ns, name, "SourceVerified").get(
        "status") == status, f"{name} SourceVerified={status}", operator=operator)


def _one_verified_chart(cluster: Cluster, charts: Charts, proxy: CountingProxy,
                        operator: Operator, name: str, version: str, key: str,
                        ) -> PushedChart:
    """``name`` 1.0.0 signed by ``key``, its Secret, repository and HelmChart (interval 10m,
    ``version`` as the spec's constraint), the operator started, SourceVerified=True."""
    ns = cluster.ns
    chart = charts.push(name, "1.0.0")
    charts.sign_with_key(chart, key)
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key(key).public_pem}),
        repository("charts", ns, proxy.oci()),
        helmchart(name, ns, name, version, "charts", KEY))
    operator.start()
    _verified(cluster, operator, name)
    return chart


@EMULATOR_ONLY
def test_new_tag_in_range_after_the_interval_and_unchanged_digest_costs_one_resolve(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    for name in ("ranged", "pinned"):
        charts.sign_with_key(charts.push(name, "1.0.0"), "good")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("good").public_pem}),
        repository("charts", ns, proxy.oci()),
        helmchart("ranged", ns, "ranged", "1.x", "charts", KEY, interval="2s"),
        helmchart("pinned", ns, "pinned", "1.0.0", "charts", KEY, interval="1s"))
    operator.start()
    for name in ("ranged", "pinned"):
        _verified(cluster, operator, name)

    newer = charts.push("ranged", "1.2.0")
    charts.sign_with_key(newer, "good")
    wait_for(lambda: cluster.revision(ns, "ranged") == f"1.2.0@{newer.digest}",
             "1.2.0 picked up by the interval alone", timeout=30, operator=operator)

    proxy.reset()
    time.sleep(4.5)
    seen = proxy.seen("/pinned/")
    # about one interval each (1 s, +5% jitter): only the resolve, a HEAD of the tag
    assert 3 <= len(seen) <= 5, seen
    assert set(seen) == {("HEAD", "/v2/charts/pinned/manifests/1.0.0")}
    assert operator.stop() == 0


def test_sigkill_and_restart_rebuild_the_store_without_touching_any_status(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    chart = _one_verified_chart(cluster, charts, proxy, operator, "steady", "1.0.0", "good")
    wait_for(lambda: bool(cluster.status("helmrepository", ns, "charts")), "repository status",
             operator=operator)
    before = {kind: cluster.body(kind, ns, name)
              for kind, name in (("helmchart", "steady"), ("helmrepository", "charts"))}
    stored = operator.artifacts / before["helmchart"]["status"]["artifact"]["path"]
    assert stored.is_file()

    operator.kill()
    shutil.rmtree(operator.artifacts)  # a new pod: an empty volume
    proxy.reset()
    operator.start()
    wait_for(stored.is_file, "store rebuilt by digest", operator=operator)
    assert ("GET", f"/v2/charts/steady/manifests/{chart.digest}") in proxy.requests
    assert any(path.endswith(".sig") for _, path in proxy.requests)  # verified again
    time.sleep(1.0)
    for kind, name in (("helmchart", "steady"), ("helmrepository", "charts")):
        after = cluster.body(kind, ns, name)
        assert after["status"] == before[kind]["status"], kind  # no flap, not even a time
        assert after["metadata"]["resourceVersion"] == before[kind]["metadata"][
            "resourceVersion"], kind  # not a single write
    assert operator.stop() == 0


def test_rotating_the_key_in_the_secret_verifies_again_at_once(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    chart = _one_verified_chart(cluster, charts, proxy, operator, "rotated", "1.0.0", "old")
    revision = cluster.revision(ns, "rotated")

    # the old key is revoked: only the new one is trusted, and the chart is not signed by it
    cluster.kubectl.apply(secret("cosign-pub", ns, {"cosign.pub": charts.key("new").public_pem}))
    _verified(cluster, operator, "rotated", "False")
    cond = cluster.condition("helmchart", ns, "rotated", "SourceVerified")
    assert "signature does not match" in cond["message"]
    assert cluster.revision(ns, "rotated") == revision

    # re-signed with the new key: True again (the retry after the failure finds it)
    charts.sign_with_key(chart, "new")
    _verified(cluster, operator, "rotated")
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_repository_changes_reach_their_charts_at_once_and_suspend_stops_everything(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    _one_verified_chart(cluster, charts, proxy, operator, "moving", ">=1.0.0", "good")

    # the repository moves to a path without the chart: its chart notices without waiting
    cluster.kubectl("patch", "helmrepository", "-n", ns, "charts", "--type=merge",
                    "-p", f'{{"spec":{{"url":"{proxy.oci("elsewhere")}"}}}}')
    wait_for(lambda: cluster.condition("helmchart", ns, "moving", "FetchFailed").get(
        "status") == "True", "chart follows its repository", operator=operator)
    cluster.kubectl("patch", "helmrepository", "-n", ns, "charts", "--type=merge",
                    "-p", f'{{"spec":{{"url":"{proxy.oci()}"}}}}')
    wait_for(lambda: cluster.condition("helmchart", ns, "moving", "Ready").get(
        "status") == "True", "chart back with its repository", operator=operator)

    # suspended: neither a new version nor a requested reconcile is acted on
    cluster.kubectl("patch", "helmchart", "-n", ns, "moving", "--type=merge",
                    "-p", '{"spec":{"suspend":true}}')
    newer = charts.push("moving", "1.1.0")
    charts.sign_with_key(newer, "good")
    time.sleep(1.0)
    stamp = cluster.request_reconcile("helmchart", ns, "moving")
    time.sleep(2.0)
    assert cluster.revision(ns, "moving").startswith("1.0.0@")
    assert cluster.status("helmchart", ns, "moving").get("lastHandledReconcileAt") != stamp
    cluster.kubectl("patch", "helmchart", "-n", ns, "moving", "--type=merge",
                    "-p", '{"spec":{"suspend":false}}')
    wait_for(lambda: cluster.revision(ns, "moving") == f"1.1.0@{newer.digest}",
             "resumed: the new version", operator=operator)
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_store_files_nobody_refers_to_are_collected(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    for name in ("kept", "dropped"):
        charts.sign_with_key(charts.push(name, "1.0.0"), "good")
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("good").public_pem}),
        repository("charts", ns, proxy.oci()),
        *(helmchart(n, ns, n, "1.0.0", "charts", KEY) for n in ("kept", "dropped")))
    operator.start("--gc-interval", "1")
    for name in ("kept", "dropped"):
        _verified(cluster, operator, name)
    files = {name: operator.artifacts / cluster.status("helmchart", ns, name)["artifact"]["path"]
             for name in ("kept", "dropped")}
    cluster.kubectl("delete", "helmchart", "-n", ns, "dropped", "--timeout=30s")
    wait_for(lambda: not files["dropped"].exists(), "unreferenced file removed",
             operator=operator)
    time.sleep(1.5)  # another pass
    assert files["kept"].is_file()
    assert operator.stop() == 0

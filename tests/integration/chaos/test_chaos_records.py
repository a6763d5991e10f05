"""The chaos table's measure holds on helm's real release records: a release installed by the
operator from a signed chart is found verified, one installed by hand from another chart is not."""

from __future__ import annotations

from chaos_support import helm_records
from operator_support import Charts, Cluster, Operator, helmrelease, repository, secret, wait_for

from chartguard_testing.chaos import unverified_installs
from chartguard_testing.charts import HelmEnv


def test_helm_records_of_the_operators_install_match_the_signed_archive(
        cluster: Cluster, charts: Charts, operator: Operator, helm_env: HelmEnv) -> None:
    ns = cluster.ns
    pushed = charts.push("app", "1.0.0")
    charts.sign_with_key(pushed, "good")
    verify = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("good").public_pem}),
        repository("charts", ns, charts.registry.oci()),
        helmrelease("app", ns, "app", "charts", version="1.0.0", verify=verify))
    operator.start()
    wait_for(lambda: cluster.condition("helmrelease", ns, "app", "Ready").get("status")
             == "True", "release ready", operator=operator)
    records = helm_records(cluster)
    assert len(records) == 1
    assert unverified_installs(records, [pushed.package.read_bytes()]) == []
    other = charts.push("app", "1.0.1")  # never signed, installed by hand
    helm_env.run("upgrade", "app", str(other.package), "-n", ns,
                 "--kubeconfig", str(cluster.kubectl.api.kubeconfig))
    records = helm_records(cluster)
    assert unverified_installs(records, [pushed.package.read_bytes()]) == ["app (app@1.0.1) rev 2"]

"""Every way a newer chart can be wrong: a False condition that says why, the previous verified
artifact and its file kept, nothing new stored, no traceback (the fixture greps the log)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from operator_support import (
    EMULATOR_ONLY,
    ISSUER,
    Charts,
    Cluster,
    Operator,
    helmchart,
    repository,
    secret,
    wait_for,
)

from chartguard_testing.charts import HelmEnv
from chartguard_testing.proxy import CountingProxy
from chartguard_testing.registry import Registry

KEY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}


def _ready(cluster: Cluster, operator: Operator, *names: str) -> dict[str, str]:
    ns = cluster.ns
    for name in names:
        wait_for(lambda n=name: cluster.condition(  # type: ignore[misc]
            "helmchart", ns, n, "Ready").get("status") == "True", f"{name} ready",
            operator=operator)
    return {name: cluster.revision(ns, name) for name in names}


def _failed(cluster: Cluster, operator: Operator, name: str, type_: str,
            status: str) -> dict[str, Any]:
    ns = cluster.ns
    wait_for(lambda: cluster.condition("helmchart", ns, name, type_).get("status") == status,
             f"{name}: {type_}={status}", operator=operator)
    return cluster.condition("helmchart", ns, name, type_)


def test_each_bad_new_version_is_refused_saying_why_and_the_last_good_one_stays(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator,
        registry: Registry) -> None:
    ns = cluster.ns
    keyed = ("tampered", "copied", "wrongkey", "unsigned", "nosecret")
    first = {}
    for name in keyed:
        first[name] = charts.push(name, "1.0.0")
        charts.sign_with_key(first[name], "good")
    first["wrongid"] = charts.push("wrongid", "1.0.0")
    charts.sign_keyless(first["wrongid"])
    identity = {"provider": "cosign", "trustedRootSecretRef": {"name": "sigstore-root"},
                "matchOIDCIdentity": [{"issuer": f"^{ISSUER}$",
                                       "subject": "^https://github.com/example/"}]}
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("good").public_pem}),
        secret("other-pub", ns, {"cosign.pub": charts.key("good").public_pem}),
        secret("sigstore-root", ns, {"trusted_root.json": charts.sigstore.trusted_root_json()}),
        repository("charts", ns, proxy.oci()),
        *(helmchart(n, ns, n, ">=1.0.0", "charts", KEY) for n in keyed[:-1]),
        helmchart("nosecret", ns, "nosecret", ">=1.0.0", "charts",
                  {"provider": "cosign", "secretRef": {"name": "other-pub"}}),
        helmchart("wrongid", ns, "wrongid", ">=1.0.0", "charts", identity))
    operator.start()
    good = _ready(cluster, operator, *keyed, "wrongid")
    stored = {p.name for p in (operator.artifacts / "sha256").iterdir()}

    new = {name: charts.push(name, "1.1.0") for name in ("tampered", "copied", "wrongkey",
                                                         "unsigned", "wrongid")}
    charts.sign_with_key(new["tampered"], "good")
    layer = registry.blob_path(charts.layer_digest(new["tampered"]))
    layer.write_bytes(layer.read_bytes()[:-8] + b"tampered")
    charts.sign_with_key(new["copied"], "good", digest=first["copied"].digest)
    charts.sign_with_key(new["wrongkey"], "attacker")
    charts.sign_keyless(new["wrongid"], identity="https://github.com/evil/charts/x@main")
    cluster.kubectl("delete", "secret", "-n", ns, "other-pub")
    stamps = {n: cluster.request_reconcile("helmchart", ns, n)
              for n in ("tampered", "copied", "wrongkey", "unsigned", "wrongid")}

    why = {
        "tampered": ("FetchFailed", "True", "altered or corrupted"),
        "copied": ("SourceVerified", "False", first["copied"].digest),
        "wrongkey": ("SourceVerified", "False", "signature does not match"),
        "unsigned": ("SourceVerified", "False", f"no signature for {new['unsigned'].digest}"),
        "wrongid": ("SourceVerified", "False", "not matched by ^https://github.com/example/"),
        "nosecret": ("SourceVerified", "False", f"secret '{ns}/other-pub' not found"),
    }
    for name, (type_, status, words) in why.items():
        cond = _failed(cluster, operator, name, type_, status)
        assert words in cond["message"], (name, cond)
        ready = cluster.condition("helmchart", ns, name, "Ready")
        assert ready["status"] == "False", (name, ready)
        assert ready["message"] == cond["message"]
        assert cluster.revision(ns, name) == good[name], name  # the last good one stays
        if name in stamps:
            assert cluster.status("helmchart", ns, name)["lastHandledReconcileAt"] == (
                stamps[name])
    for name in ("copied", "wrongkey", "unsigned", "wrongid"):
        assert "version '1.1.0'" in cluster.condition("helmchart", ns, name,
                                                      "SourceVerified")["message"]
    assert {p.name for p in (operator.artifacts / "sha256").iterdir()} == stored
    for name, revision in good.items():  # the files of the kept artifacts are there
        artifact = cluster.status("helmchart", ns, name)["artifact"]
        assert (operator.artifacts / artifact["path"]).is_file(), (name, revision)
    warnings = {e["involvedObject"]["name"] for e in cluster.events(ns)
                if e["type"] == "Warning"}
    assert set(why) <= warnings

    # the registry goes away: FetchFailed saying so, the artifact stays
    proxy.down = True
    cluster.request_reconcile("helmchart", ns, "unsigned")
    wait_for(lambda: cluster.condition("helmchart", ns, "unsigned", "FetchFailed").get(
        "status") == "True", "registry down noticed", operator=operator)
    cond = cluster.condition("helmchart", ns, "unsigned", "FetchFailed")
    assert cond["reason"] == "ChartPullError"
    assert "registry" in cond["message"].lower()
    assert cluster.revision(ns, "unsigned") == good["unsigned"]
    # retries against a dead registry in flight: SIGTERM still ends it within seconds
    cluster.request_reconcile("helmchart", ns, "copied")
    started = time.monotonic()
    assert operator.stop() == 0
    assert time.monotonic() - started < 5


@EMULATOR_ONLY
def test_bad_password_is_an_authentication_failure_and_no_secret_is_ever_shown(
        cluster: Cluster, auth_registry: Registry, helm_env: HelmEnv, charts: Charts,
        operator: Operator, tmp_path: Path) -> None:
    ns = cluster.ns
    private = Charts(auth_registry, helm_env, charts.sigstore)
    chart = private.push("private", "1.0.0")
    private.sign_with_key(chart, "good")
    assert auth_registry.password is not None
    wrong = "Wr0ng-pa55word-for-test"
    pem_line = private.key("good").public_pem.decode().splitlines()[1]
    cluster.kubectl.apply(
        secret("creds", ns, {"username": b"chartguard",
                             "password": auth_registry.password.encode()}),
        secret("cosign-pub", ns, {"cosign.pub": private.key("good").public_pem}),
        repository("private", ns, auth_registry.oci(), secretRef={"name": "creds"}),
        helmchart("private", ns, "private", "1.0.0", "private", KEY))
    operator.start()
    good = _ready(cluster, operator, "private")["private"]
    wait_for(lambda: cluster.condition("helmrepository", ns, "private", "Ready").get(
        "status") == "True", "repository ready", operator=operator)

    # the password changes in the Secret: the chart looks again at once, and is refused
    cluster.kubectl.apply(secret("creds", ns, {"username": b"chartguard",
                                               "password": wrong.encode()}))
    cond = _failed(cluster, operator, "private", "FetchFailed", "True")
    assert cond["reason"] == "AuthenticationFailed"
    assert cluster.revision(ns, "private") == good
    # a missing credentials Secret: the repository says so
    cluster.kubectl("delete", "secret", "-n", ns, "creds")
    wait_for(lambda: "not found" in cluster.condition("helmrepository", ns, "private",
                                                       "Ready").get("message", ""),
             "repository names the missing Secret", operator=operator)
    assert operator.stop() == 0

    shown = operator.output() + cluster.kubectl("get", "events", "-A", "-o", "yaml").stdout
    shown += cluster.kubectl("get", "helmcharts,helmrepositories", "-A", "-o", "yaml").stdout
    for material in (auth_registry.password, wrong, pem_line):
        assert material not in shown

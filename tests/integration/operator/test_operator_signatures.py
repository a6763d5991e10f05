"""Every signature kind the blog's users meet, verified by the running operator."""

from __future__ import annotations

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

from chartguard_testing.proxy import CountingProxy


@EMULATOR_ONLY
def test_three_keys_with_the_match_last_keyless_with_and_without_identity_and_a_bundle(
        cluster: Cluster, charts: Charts, proxy: CountingProxy, operator: Operator) -> None:
    ns = cluster.ns
    keyed = charts.push("keyed", "1.0.0")
    charts.sign_with_key(keyed, "z-release")
    anyone = charts.push("anyone", "2.0.0")
    charts.sign_keyless(anyone, identity="someone@example.org", issuer="https://idp.example.org")
    bundled = charts.push("bundled", "3.0.0")
    charts.sign_bundle(bundled)
    root = {"trustedRootSecretRef": {"name": "sigstore-root"}}
    identity = {"matchOIDCIdentity": [{"issuer": f"^{ISSUER}$", "subject": ".*"}]}
    cluster.kubectl.apply(
        # sorted by name, the key that verifies is tried last
        secret("cosign-keys", ns, {"a-old.pub": charts.key("a-old").public_pem,
                                   "b-backup.pub": charts.key("b-backup").public_pem,
                                   "z-release.pub": charts.key("z-release").public_pem}),
        secret("sigstore-root", ns, {"trusted_root.json": charts.sigstore.trusted_root_json()}),
        repository("charts", ns, proxy.oci()),
        helmchart("keyed", ns, "keyed", "1.0.0", "charts",
                  {"provider": "cosign", "secretRef": {"name": "cosign-keys"}}),
        helmchart("anyone", ns, "anyone", "2.0.0", "charts", {"provider": "cosign", **root}),
        helmchart("bundled", ns, "bundled", "3.0.0", "charts",
                  {"provider": "cosign", **root, **identity}))
    operator.start()
    for name, version in (("keyed", "1.0.0"), ("anyone", "2.0.0"), ("bundled", "3.0.0")):
        wait_for(lambda n=name: cluster.condition(  # type: ignore[misc]
            "helmchart", ns, n, "SourceVerified").get("status") == "True",
            f"{name} verified", operator=operator)
        cond = cluster.condition("helmchart", ns, name, "SourceVerified")
        assert cond["message"] == f"verified signature of version {version}"

    # keyless without matchOIDCIdentity: accepted, as Flux accepts it, and said loudly
    def warning() -> list[str]:
        return [e["message"] for e in cluster.events(ns)
                if e["involvedObject"]["name"] == "anyone" and e["type"] == "Warning"]
    wait_for(lambda: bool(warning()), "identity warning", operator=operator)
    assert "any signer identity was accepted" in warning()[0]
    assert "someone@example.org" in warning()[0]
    assert operator.stop() == 0

    # --require-keyless-identity turns the same chart into a failure naming what to add
    operator.start("--require-keyless-identity")
    cluster.request_reconcile("helmchart", ns, "anyone")
    wait_for(lambda: cluster.condition("helmchart", ns, "anyone", "SourceVerified").get(
        "status") == "False", "keyless without identity refused", operator=operator)
    cond = cluster.condition("helmchart", ns, "anyone", "SourceVerified")
    assert cond["reason"] == "VerificationError"
    assert "needs at least one identity" in cond["message"]
    assert cluster.revision(ns, "anyone") == f"2.0.0@{anyone.digest}"  # kept
    for name in ("keyed", "bundled"):  # policies with keys or identities are unaffected
        assert cluster.condition("helmchart", ns, name, "SourceVerified")["status"] == "True"

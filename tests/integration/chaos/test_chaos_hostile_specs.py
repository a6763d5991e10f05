"""Hostile specs (issue 12, item 4): identity expressions built to backtrack, Perl syntax Go
refuses, Go syntax Python refuses, a dependsOn cycle, valuesFrom pointing at nothing.

Each starts from the release ``app`` installed from a good signed 1.0.0 (helm a recording
wrapper) and shows the condition, that no helm install, upgrade or rollback ran when none
should, and that the artifact and release stayed.

The ReDoS cases sign 1.0.1 keylessly with a subject (or issuer) of ``https://…`` and 1,000
``a`` then ``!``, against ``(a+)+$``: Python's ``re`` would try about 2^1000 ways before
saying no (about a second at 22 characters on this machine, doubling with each more);
finishing at all shows the match is linear. The match time printed in the row is measured on
the product's own matcher (:class:`chartguard.identity.IdentityMatcher`, what the verifier
runs) with the same expression and value; the reconcile time, from the request to the
refusal, is shown beside it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_support import KEY, RELEASE, install_good
from operator_support import (
    ISSUER,
    Charts,
    Cluster,
    Operator,
    helmrelease,
    secret,
    wait_for,
)

from chartguard.identity import IdentityMatcher
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs
from chartguard_testing.chaos import unverified_installs
from chartguard_testing.charts import PushedChart

GITHUB = "https://github.com/example/"
LONG = 1_000  # characters of 'a': Python's re would need ~2**LONG steps


def _keyless(issuer: str, subject: str) -> dict[str, Any]:
    return {"provider": "cosign", "trustedRootSecretRef": {"name": "sigstore-root"},
            "matchOIDCIdentity": [{"issuer": issuer, "subject": subject}]}


def _values_object(kind: str, ns: str, data: dict[str, str]) -> dict[str, Any]:
    if kind == "Secret":
        return secret("vals", ns, {k: v.encode() for k, v in data.items()})
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "vals", "namespace": ns}, "data": data}


def _root(charts: Charts, ns: str) -> dict[str, Any]:
    return secret("sigstore-root", ns, {"trusted_root.json": charts.sigstore.trusted_root_json()})


#: field -> (issuer expression, subject expression, good (issuer, subject), hostile ones)
REDOS: dict[str, tuple[str, str, tuple[str, str], tuple[str, str]]] = {
    "subject": (f"^{re.escape(ISSUER)}$", f"^{re.escape(GITHUB)}(a+)+$",
                (ISSUER, GITHUB + "aaaa"), (ISSUER, GITHUB + "a" * LONG + "!")),
    "issuer": ("^https://(a+)+$", f"^{re.escape(GITHUB)}",
               ("https://aaaa", GITHUB + "charts"), ("https://" + "a" * LONG + "!",
                                                     GITHUB + "charts")),
}


@pytest.mark.chaos
@pytest.mark.parametrize("field", list(REDOS))
def test_an_identity_expression_that_backtracks_costs_linear_time(
        field: str, cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    issuer_re, subject_re, good, hostile = REDOS[field]

    def sign_good(chart: PushedChart) -> None:
        charts.sign_bundle(chart, identity=good[1], issuer=good[0])

    installed = install_good(cluster, charts, operator, tmp_path,
                             verify=_keyless(issuer_re, subject_re), sign=sign_good,
                             extra=(_root(charts, cluster.ns),))
    new = charts.push("app", "1.0.1")
    bundle = cs.sign_bundle_keyless(charts.sigstore, new.digest, hostile[1], hostile[0])
    rs.push_bundle(charts.registry, new.repository, new.digest, bundle)
    started = time.perf_counter()
    cond = installed.chart_condition("SourceVerified", "False", "not matched by",
                                     installed.look_again())
    reconcile = time.perf_counter() - started
    assert cond["reason"] == "VerificationError"
    assert (subject_re if field == "subject" else issuer_re) in cond["message"]
    installed.no_helm_run()

    matcher = IdentityMatcher(issuer=issuer_re, subject=subject_re)
    started = time.perf_counter()
    assert not matcher.matches(*hostile)
    match_ms = (time.perf_counter() - started) * 1000
    assert matcher.matches(*good)
    chaos_row("spec", f"ReDoS (a+)+$ on a {LONG:,}-char {field}",
              f"not matched: RE2 match {match_ms:.2f} ms (re: ~2^{LONG} steps); "
              f"refused in {reconcile:.1f} s",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


@pytest.mark.chaos
def test_go_only_syntax_is_accepted_as_go_accepts_it(
        cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    """``\\pL``, ``[[:alnum:]]`` and ``\\z`` are Go's; Python's re refuses ``\\pL``."""
    subject = (r"^https://github\.com/\pL+/[[:alnum:]]+/\.github/workflows/release\.yaml"
               r"@refs/heads/main\z")
    issuer = r"^https://token\.actions\.githubusercontent\.com\z"
    with pytest.raises(re.error):
        re.compile(subject)
    installed = install_good(cluster, charts, operator, tmp_path,
                             verify=_keyless(issuer, subject), sign=charts.sign_bundle,
                             extra=(_root(charts, cluster.ns),))
    verified = cluster.condition("helmchart", cluster.ns, installed.chart, "SourceVerified")
    assert verified["status"] == "True", verified
    chaos_row("spec", r"Go-only syntax \pL [[:alnum:]] \z",
              "accepted as Go does; keyless signature verified, 1.0.0 installed",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


#: case -> (field, expression, RE2's words)
PERL: dict[str, tuple[str, str, str]] = {
    "backreference": ("subject", r"^https://github\.com/(\w+)/\1$",
                      r"invalid escape sequence: \1"),
    "lookahead": ("issuer", r"^(?=https://)https://token\.actions\.githubusercontent\.com$",
                  "invalid perl operator: (?="),
    "lookbehind": ("subject", r"(?<=https://)github\.com/example/",
                   "invalid perl operator: (?<="),
}


@pytest.mark.chaos
@pytest.mark.parametrize("case", list(PERL))
def test_perl_only_syntax_go_refuses_is_refused_naming_the_field(
        case: str, cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    field, expression, words = PERL[case]
    ns = cluster.ns
    good = {"issuer": f"^{re.escape(ISSUER)}$", "subject": f"^{re.escape(GITHUB)}"}
    installed = install_good(cluster, charts, operator, tmp_path,
                             verify=_keyless(good["issuer"], good["subject"]),
                             sign=charts.sign_bundle, extra=(_root(charts, ns),))
    bad = {**good, field: expression}
    cluster.kubectl.apply(helmrelease(RELEASE, ns, "app", "charts",
                                      _keyless(bad["issuer"], bad["subject"]),
                                      version=">=1.0.0"))
    cond = installed.release_condition("InvalidSpec", words)
    path = f"spec.chart.spec.verify.matchOIDCIdentity[0].{field}"
    assert path in cond["message"]
    assert cluster.condition("helmrelease", ns, RELEASE, "Stalled")["status"] == "True"
    installed.no_helm_run()
    chaos_row("spec", f"Perl-only {case} in {field}",
              f"InvalidSpec, Stalled: ...[0].{field}: '{words}'",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


@pytest.mark.chaos
def test_a_depends_on_cycle_is_named_and_runs_no_helm(
        cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    """``web`` and ``db`` created together, each depending on the other: both wait, naming the
    cycle, and helm is not run for them; nothing hangs (the operator keeps answering), and the
    installed ``app`` is untouched.

    (A pair that was already Ready and is then made to depend on each other is not a
    deterministic case, in Flux or here: a reconcile may read the other release from its cache
    before its new generation arrives, see it Ready, and go on, after which the other sees it
    Ready too. Neither hangs; the cycle only blocks releases that were not both Ready.)"""
    ns = cluster.ns
    installed = install_good(cluster, charts, operator, tmp_path)
    started = time.perf_counter()
    cluster.kubectl.apply(
        helmrelease("web", ns, "app", "charts", KEY, version=">=1.0.0",
                    dependsOn=[{"name": "db"}]),
        helmrelease("db", ns, "app", "charts", KEY, version=">=1.0.0",
                    dependsOn=[{"name": "web"}]))
    cycle = {"web": f"{ns}/web -> {ns}/db -> {ns}/web",
             "db": f"{ns}/db -> {ns}/web -> {ns}/db"}
    for name, words in cycle.items():
        cond = installed.release_condition("DependencyNotReady", f"cycle ({words})", name=name)
        assert cond["status"] == "False"
    took = time.perf_counter() - started
    # still answering: a requested reconcile of each is handled
    for name in cycle:
        stamp = cluster.request_reconcile("helmrelease", ns, name)
        wait_for(lambda n=name, s=stamp: cluster.status(  # type: ignore[misc]
            "helmrelease", ns, n).get("lastHandledReconcileAt") == s,
            f"{name} handles requestedAt", timeout=30, operator=operator)
    installed.no_helm_run()
    records = installed.records()
    assert sorted((r["name"], r["version"]) for r in records) == [("app", 1)]
    chaos_row("spec", "dependsOn cycle web -> db -> web",
              f"DependencyNotReady naming the cycle in {took:.1f} s; no helm run",
              unverified=unverified_installs(records, installed.signed_archives),
              lost=installed.lost())


#: case -> (valuesFrom entry, what is created, Ready reason, words); "nothing" names nothing
VALUES_FROM: dict[str, tuple[dict[str, Any], dict[str, Any] | None, str, str]] = {
    "absent Secret": (
        {"kind": "Secret", "name": "nothing"}, None, "ValuesError",
        "could not resolve Secret chart values reference '{ns}/nothing' with key "
        "'values.yaml': secrets \"nothing\" not found"),
    "absent Secret (optional)": (
        {"kind": "Secret", "name": "nothing", "optional": True}, None, "", ""),
    "absent key": (
        {"kind": "Secret", "name": "vals", "valuesKey": "absent.yaml"},
        {"kind": "Secret"}, "ValuesError",
        "could not resolve Secret chart values reference '{ns}/vals' with key "
        "'absent.yaml': key not found"),
    "absent ConfigMap key (opt.)": (
        {"kind": "ConfigMap", "name": "vals", "valuesKey": "absent.yaml", "optional": True},
        {"kind": "ConfigMap"}, "", ""),
}


@pytest.mark.chaos
@pytest.mark.parametrize("case", list(VALUES_FROM))
def test_values_from_pointing_at_nothing_is_refused_or_skipped_as_flux_does(
        case: str, cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    ns = cluster.ns
    entry, created, reason, words = VALUES_FROM[case]
    installed = install_good(cluster, charts, operator, tmp_path)
    if created is not None:
        cluster.kubectl.apply(_values_object(created["kind"], ns,
                                             {"values.yaml": "replicaCount: 1\n"}))
    cluster.kubectl.apply(helmrelease(RELEASE, ns, "app", "charts", KEY, version=">=1.0.0",
                                      valuesFrom=[entry]))
    generation = cluster.body("helmrelease", ns, RELEASE)["metadata"]["generation"]
    if reason:
        cond = installed.release_condition(reason, words.format(ns=ns))
        assert cond["status"] == "False"
        did = f"{reason}: {'key not found' if 'key' in case else 'not found'}; no helm run"
    else:
        wait_for(lambda: cluster.status("helmrelease", ns, RELEASE).get(
            "observedGeneration") == generation, "the new generation handled",
            timeout=30, operator=operator)
        cond = cluster.condition("helmrelease", ns, RELEASE, "Ready")
        assert cond["status"] == "True", cond
        did = "skipped as Flux does; values unchanged, so no helm run"
    installed.no_helm_run()
    chaos_row("spec", f"valuesFrom: {case}", did,
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


HUNDRED = "[" + ",".join(["0"] * 100) + "]"
NINETY_NINE = "[" + ",".join(["0"] * 99) + "]"
#: case -> (readyExpr, the limit's words): each would cost the operator gigabytes or minutes
CEL_BOMBS: dict[str, tuple[str, str]] = {
    "memory": (f"{HUNDRED}.map(x, {HUNDRED}.map(y, dep.metadata.annotations.pad + 'a'))"
               ".size() == 100", "memory"),
    # 9,801 regular expressions of 8,001 characters compiled and matched against 100 kB:
    # ~30 s on a quiet machine, within the iteration budget (a fixed small pattern was matched
    # 9,801 times in 1.6 s there, under the 5 s deadline: RE2 is linear and fast)
    "time": (f"{NINETY_NINE}.all(x, {NINETY_NINE}.all(y, !dep.metadata.annotations.pad.matches("
             "dep.metadata.annotations.pad.substring(0, 8000) + 'z')))", "did not finish within"),
    "iterations": (f"{HUNDRED}.all(x, {HUNDRED}.all(y, {HUNDRED}.all(z, true)))",
                   "Iteration budget exceeded"),
}


@pytest.mark.chaos
@pytest.mark.parametrize("case", list(CEL_BOMBS))
def test_a_ready_expr_built_to_exhaust_the_operator_is_stopped_by_the_cel_sandbox(
        case: str, cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    """``db`` carries a large annotation; ``app`` is made to depend on it with a readyExpr
    that would build gigabytes, run for minutes or loop 10^6 times over it: the sandbox's
    memory cap, deadline or the runtime's iteration budget stops it, ``app`` waits naming the
    limit, helm does not run, and the operator keeps answering."""
    ns = cluster.ns
    db = helmrelease("db", ns, "app", "charts", KEY, version=">=1.0.0")
    # 100 kB, twice with kubectl's last-applied copy: within the API's 256 KiB of annotations
    db["metadata"]["annotations"] = {"pad": "x" * 100_000}
    installed = install_good(cluster, charts, operator, tmp_path, extra=(db,))
    expr, words = CEL_BOMBS[case]
    started = time.perf_counter()
    cluster.kubectl.apply(helmrelease(RELEASE, ns, "app", "charts", KEY, version=">=1.0.0",
                                      dependsOn=[{"name": "db", "readyExpr": expr}]))
    cond = installed.release_condition("DependencyNotReady", words, timeout=60)
    took = time.perf_counter() - started
    assert cond["status"] == "False"
    assert cond["message"].startswith(f"dependency '{ns}/db': ")
    stamp = cluster.request_reconcile("helmrelease", ns, "db")
    wait_for(lambda: cluster.status("helmrelease", ns, "db").get(
        "lastHandledReconcileAt") == stamp, "db handles requestedAt", timeout=30,
        operator=operator)
    installed.no_helm_run()
    chaos_row("spec", f"CEL readyExpr exhausting {case}",
              f"DependencyNotReady '{words}' in {took:.1f} s; no helm run",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())

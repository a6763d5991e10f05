"""Secrets never leak: registry passwords (a dockerconfigjson Secret, right and wrong, its
``auth`` field and an ``identitytoken``), a password written into a HelmRepository's URL, a
bearer token a registry's token server hands out (and that registry echoing it back in its
errors, as a hostile or buggy one does), a cosign key Secret, and a Secret's value that helm
quotes in its errors (a template's ``fail`` at install, a pre-delete hook at uninstall) are
looked for in everything the operator wrote: its log, every Event, the status of every
HelmRepository, HelmChart and HelmRelease, and its /metrics text. Each in its raw form, and
base64'd, and as ``user:secret`` base64'd (a Basic header, a docker ``auth``), and URL-escaped.
"""

from __future__ import annotations

import base64
import json
import secrets as random_secrets
import threading
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from chaos_support import helm_records
from operator_support import (
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
from chartguard_testing.chaos import NONE, unverified_installs
from chartguard_testing.charts import HelmEnv
from chartguard_testing.faults import Answer, FaultServer
from chartguard_testing.registry import Registry

USER = "chartguard"
VERIFY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
# helm quotes a values Secret's greeting when the template fails at install
FAILING = b'{{ fail (printf "greeting %q is not allowed" .Values.greeting) }}\n'
# a pre-delete hook of a kind named by the Secret's value: installs (hooks are built only when
# they run), and helm's uninstall fails naming the kind ("no matches for kind ...")
PRE_DELETE = b"""apiVersion: v1
kind: {{ .Values.kind }}
metadata:
  name: {{ .Release.Name }}-goodbye
  annotations:
    helm.sh/hook: pre-delete
"""


class TokenRegistry:
    """A registry behind a token server: ``/v2/...`` asks for a bearer token (401 with a
    ``Bearer realm`` challenge), ``/token`` hands out ``token``, and once asked again the
    registry answers 500 quoting the token and the password it was given back (what a
    hostile or debugging registry does)."""

    def __init__(self, token: str, password: str) -> None:
        self.token = token
        self.password = password
        self.asked: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.server = FaultServer(self.route)
        self.host = self.server.host

    def route(self, method: str, path: str) -> Answer:
        if path.startswith("/token"):
            return Answer(200, json.dumps({"token": self.token,
                                           "access_token": self.token}).encode(),
                          {"Content-Type": "application/json"})
        with self._lock:
            self.asked[path] += 1
            first = self.asked[path] % 2 == 1
        if first:
            realm = f'Bearer realm="http://{self.host}/token",service="fault-registry"'
            return Answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
                          {"WWW-Authenticate": realm, "Content-Type": "application/json"})
        body = {"errors": [{"code": "DENIED", "message": (
            f"token Bearer {self.token} not valid here; Authorization: Bearer {self.token}; "
            f"password={self.password}; raw {self.token} {self.password}")}]}
        return Answer(500, json.dumps(body).encode(), {"Content-Type": "application/json"})


@pytest.fixture
def token_registry() -> Iterator[TokenRegistry]:
    reg = TokenRegistry("tok-" + random_secrets.token_hex(12),
                        "tokpass-" + random_secrets.token_hex(6))
    yield reg
    reg.server.close()


def dockerconfig(host: str, entry: dict[str, str]) -> dict[str, Any]:
    config = json.dumps({"auths": {host: entry}})
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "", "namespace": ""}, "stringData": {".dockerconfigjson": config}}


def named(obj: dict[str, Any], name: str, ns: str) -> dict[str, Any]:
    obj["metadata"] = {"name": name, "namespace": ns}
    return obj


def forms(value: str) -> set[str]:
    """How a secret could be written down: as is, base64'd (also as ``user:value``, a Basic
    header or a docker ``auth``), URL-escaped, JSON-escaped."""
    out = {value, base64.b64encode(value.encode()).decode(),
           base64.b64encode(f"{USER}:{value}".encode()).decode(),
           urllib.parse.quote(value, safe=""), json.dumps(value)[1:-1]}
    return {f for f in out if len(f) >= 6}


def cond(cluster: Cluster, kind: str, name: str, type_: str = "Ready") -> dict[str, Any]:
    return cluster.condition(kind, cluster.ns, name, type_)


@pytest.mark.chaos
def test_no_secret_reaches_logs_events_status_or_metrics(
        cluster: Cluster, charts: Charts, auth_registry: Registry, helm_env: HelmEnv,
        token_registry: TokenRegistry, operator: Operator, chaos_row: Any) -> None:
    ns = cluster.ns
    assert auth_registry.password is not None
    password = auth_registry.password
    wrong = "Wr0ng-" + random_secrets.token_hex(8)
    url_password = "urlP4ss-" + random_secrets.token_hex(6)
    identity_token = "idtok-" + random_secrets.token_hex(10)
    value = "hunter2-" + random_secrets.token_hex(6)
    kind_value = "Hunter" + random_secrets.token_hex(6)  # a valid kind name, never a real one

    private = Charts(auth_registry, helm_env, charts.sigstore)
    failing = private.helm.make_chart(auth_registry, "failing", "1.0.0",
                                      extra_files={"templates/check.yaml": FAILING})
    leaving = private.helm.make_chart(auth_registry, "leaving", "1.0.0",
                                      extra_files={"templates/goodbye.yaml": PRE_DELETE})
    for chart in (failing, leaving):
        private.sign_with_key(chart, "cosign")
    key = private.key("cosign")
    host = auth_registry.host
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    url = urllib.parse.urlsplit(auth_registry.oci())
    in_url = url._replace(netloc=f"{USER}:{url_password}@{url.netloc}").geturl()
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": key.public_pem}),
        named(dockerconfig(host, {"auth": auth}), "regcred", ns),
        named(dockerconfig(host, {"username": USER, "password": wrong}), "regcred-wrong", ns),
        named(dockerconfig(host, {"identitytoken": identity_token}), "regcred-idtoken", ns),
        named(dockerconfig(token_registry.host, {"username": USER,
                                                 "password": token_registry.password}),
              "regcred-token", ns),
        secret("app-values", ns, {"values.yaml": f"greeting: {value}\nkind: {kind_value}\n"
                                  .encode()}),
        repository("private", ns, auth_registry.oci(), secretRef={"name": "regcred"}),
        repository("wrong", ns, auth_registry.oci(), secretRef={"name": "regcred-wrong"}),
        repository("idtoken", ns, auth_registry.oci(), secretRef={"name": "regcred-idtoken"}),
        repository("inurl", ns, in_url),
        repository("tokened", ns, f"oci://{token_registry.host}/charts",
                   secretRef={"name": "regcred-token"}),
        *(helmchart(repo, ns, "leaving", "1.0.0", repo, VERIFY)
          for repo in ("wrong", "idtoken", "inurl", "tokened")),
        helmrelease("failing", ns, "failing", "private", VERIFY, version="1.0.0",
                    valuesFrom=[{"kind": "Secret", "name": "app-values"}]),
        helmrelease("leaving", ns, "leaving", "private", VERIFY, version="1.0.0",
                    valuesFrom=[{"kind": "Secret", "name": "app-values"}]))
    port = procs.free_port()
    operator.start("--metrics-port", str(port), "--metrics-address", "127.0.0.1")

    # every failure path has happened, and said so
    wait_for(lambda: cond(cluster, "helmrelease", "leaving").get("status") == "True",
             "the release with the pre-delete hook installed", timeout=90, operator=operator)
    seen_failure: dict[str, Any] = {}

    def install_failed() -> bool:
        # the failure as it is written: a retry may already run again when the test reads on
        found = cond(cluster, "helmrelease", "failing")
        if found.get("reason") == "InstallFailed":
            seen_failure.update(found)
        return bool(seen_failure)

    wait_for(install_failed, "the failing install", timeout=90, operator=operator)
    cluster.kubectl("delete", "helmrelease", "-n", ns, "leaving", "--wait=false")
    wait_for(lambda: cond(cluster, "helmrelease", "leaving", "Released").get("reason")
             == "UninstallFailed", "the failing uninstall", timeout=90, operator=operator)
    for name in ("wrong", "idtoken", "inurl", "tokened"):
        wait_for(lambda n=name: cond(cluster, "helmchart", n).get("status") == "False",  # type: ignore[misc]
                 f"HelmChart {name} refused", timeout=60, operator=operator)
    assert token_registry.asked, "the token registry was never asked"
    wait_for(lambda: any(p.startswith("/token") for _, p in token_registry.server.requests),
             "the token fetched", timeout=30, operator=operator)
    failures = {name: cond(cluster, "helmchart", name) for name in
                ("wrong", "idtoken", "inurl", "tokened")}
    failures["failing"] = seen_failure
    failures["leaving"] = cond(cluster, "helmrelease", "leaving", "Released")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    records = helm_records(cluster)
    leaving_deployed = any(r["name"] == "leaving" and r["info"]["status"] in (
        "deployed", "uninstalling") for r in records)
    assert operator.stop() == 0

    # everything the operator wrote
    statuses = {}
    for kind in ("helmrepositories", "helmcharts", "helmreleases"):
        out = cluster.kubectl("get", kind, "-n", ns, "-o", "json").stdout
        for item in json.loads(out)["items"]:
            statuses[f"{kind}/{item['metadata']['name']}"] = json.dumps(item.get("status"))
    channels = {"operator log": operator.output(),
                "Events": json.dumps(cluster.events(ns)),
                "metrics": metrics, **{f"status of {k}": v for k, v in statuses.items()}}
    material = {"registry password": password, "wrong password": wrong,
                "password in URL": url_password, "identitytoken": identity_token,
                "bearer token": token_registry.token,
                "token registry password": token_registry.password,
                "values Secret value": value, "values Secret value (hook kind)": kind_value}
    pem = key.public_pem.decode().splitlines()[1:-1]
    material["cosign key Secret"] = "".join(pem)[:40]
    leaks = [f"{what} in {where}" for what, secret_value in material.items()
             for where, text in channels.items()
             if any(form in text for form in forms(secret_value))]
    unverified = unverified_installs(records, [failing.package.read_bytes(),
                                               leaving.package.read_bytes()])
    lost = NONE if not leaks and leaving_deployed else "; ".join(
        leaks + ([] if leaving_deployed else ["the release left after a failed uninstall"]))
    did = (f"{len(material)} secrets x {len(channels)} channels (log, Events, "
           f"{len(statuses)} statuses, /metrics): {len(leaks)} leaks; refused: "
           + ", ".join(f"{n} {c.get('reason')}" for n, c in failures.items()))
    print(did)
    print(json.dumps(failures, indent=1))
    chaos_row("secrets", "passwords, tokens, URL password, Secret values in helm errors", did,
              unverified=unverified, lost=lost)
    # helm's words still got through, the secrets in them taken out
    assert "greeting \"[redacted]\" is not allowed" in failures["failing"]["message"]
    assert "no matches for kind \"[redacted]\"" in failures["leaving"]["message"]
    assert failures["wrong"]["reason"] == "AuthenticationFailed", failures["wrong"]
    assert failures["inurl"]["reason"] == "URLInvalid", failures["inurl"]
    assert "[redacted]@" in failures["inurl"]["message"]

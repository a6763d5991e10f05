"""Support for the operator tests: ``chartguard run`` as a process, charts pushed by real helm
and signed by the test signer, and kubectl reads the tests repeat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chartguard_testing import cosign_signer as cs
from chartguard_testing import procs, tools
from chartguard_testing import registry_signer as rs
from chartguard_testing.apiserver.kubectl import Kubectl, KubeTarget
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.controlplane import ApiError, ControlPlane
from chartguard_testing.registry import Registry
from chartguard_testing.sigstore_local import LocalSigstore

SOURCE = "source.toolkit.fluxcd.io"
# the operator tests run on both targets (the ``kube`` fixture); these run on the emulator
# only, to keep CI's time: what they check is the operator's own logic (signature kinds,
# intervals, registry auth, repository changes, garbage collection), not the API server's
EMULATOR_ONLY = pytest.mark.parametrize("kube", ["emulator"], indirect=True)
IDENTITY = "https://github.com/example/charts/.github/workflows/release.yaml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class OperatorTarget:
    """A KubeTarget for the operator tests: the emulator or the real control plane, and the
    namespace the test's objects live in."""

    kind: str  # "emulator" or "real"
    api: KubeTarget
    namespace: str
    clusterwide: bool = False  # on the real control plane too (the RBAC tests)

    @property
    def kubeconfig(self) -> Path:
        return self.api.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        """os.environ as it is now (tests set CHARTGUARD_* with monkeypatch), the API's own."""
        return self.api.env

    @property
    def scope(self) -> tuple[str, ...]:
        """What the operator watches: everything on the emulator (one per test); on the
        shared real control plane only this test's namespace, so no test sees another's."""
        if self.kind == "real" and not self.clusterwide:
            return ("--namespace", self.namespace)
        if self.kind == "real":
            # cluster-wide on a shared control plane: only this test's labelled objects, so the
            # operator never acts on (or in) another test's, possibly terminating, namespace
            return ("--all-namespaces", "--selector", f"{TEST_LABEL}={self.namespace}")
        return ("--all-namespaces",)


#: marks a test's objects for a cluster-wide operator on the shared real control plane
TEST_LABEL = "chartguard.test/namespace"


@dataclass
class Operator:
    """``chartguard run`` as a subprocess against ``api``; stopped by PID."""

    api: OperatorTarget
    workdir: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "operator.log"
        self.artifacts = self.workdir / "artifacts"

    def start(self, *extra: str, helm: str | None = None, own_group: bool = False) -> Operator:
        """Run ``chartguard run``; ``helm``: another helm binary (a test's counting wrapper);
        ``own_group``: in a new session, so :meth:`kill_group` kills the helm processes it
        started too (the operator's children share its process group)."""
        env = {**self.api.env, "CHARTGUARD_ARTIFACT_DIR": str(self.artifacts),
               "CHARTGUARD_HELM": helm or tools.helm(), "CHARTGUARD_KUBECTL": tools.kubectl(),
               "CHARTGUARD_HELM_HOME": str(self.workdir / "helm-home")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chartguard", "run", *self.api.scope,
                 "--concurrency", "4", *self.args, *extra],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=own_group)
        return self

    def stop(self) -> int:
        assert self.proc is not None
        procs.stop(self.proc, grace=10)
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def kill_group(self) -> None:
        """SIGKILL the operator and every process of its group (started with
        ``own_group=True``): a crash that leaves helm no moment to record anything."""
        assert self.proc is not None
        assert os.getpgid(self.proc.pid) == self.proc.pid, "not started with own_group=True"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60,
             operator: Operator | None = None) -> None:
    try:
        procs.wait_until(check, timeout=timeout, what=what,
                         proc=operator.proc if operator is not None else None)
    except (TimeoutError, RuntimeError) as err:
        log = operator.output()[-6000:] if operator is not None else ""
        raise AssertionError(f"{err}\n--- operator log (tail) ---\n{log}") from None


@dataclass
class Charts:
    """Charts pushed by real helm into ``registry`` and signed the way cosign signs."""

    registry: Registry
    helm: HelmEnv
    sigstore: LocalSigstore
    keys: dict[str, cs.KeyPair] = field(default_factory=dict)

    def key(self, name: str) -> cs.KeyPair:
        return self.keys.setdefault(name, cs.generate_key_pair())

    def push(self, name: str, version: str) -> PushedChart:
        return self.helm.make_chart(self.registry, name, version)

    def sign_with_key(self, chart: PushedChart, key: str, digest: str | None = None) -> None:
        """A key signature of ``digest`` (default the chart's) stored under the chart's tag."""
        payload = cs.simple_signing_payload(chart.repository, digest or chart.digest)
        sig = cs.sign_legacy_with_key(self.key(key), payload)
        rs.push_legacy_signature(self.registry, chart.repository, chart.digest, [sig])

    def sign_keyless(self, chart: PushedChart, identity: str = IDENTITY,
                     issuer: str = ISSUER) -> None:
        payload = cs.simple_signing_payload(chart.repository, chart.digest)
        sig = cs.sign_legacy_keyless(self.sigstore, payload, identity, issuer)
        rs.push_legacy_signature(self.registry, chart.repository, chart.digest, [sig])

    def sign_bundle(self, chart: PushedChart, identity: str = IDENTITY,
                    issuer: str = ISSUER) -> None:
        bundle = cs.sign_bundle_keyless(self.sigstore, chart.digest, identity, issuer)
        rs.push_bundle(self.registry, chart.repository, chart.digest, bundle)

    def layer_digest(self, chart: PushedChart) -> str:
        writer = rs.RegistryWriter(self.registry)
        manifest = writer.get_manifest(rs.repository_path(chart.repository), chart.digest)
        assert manifest is not None
        layers = json.loads(manifest.data)["layers"]
        digest: str = layers[0]["digest"]
        return digest


def repository(name: str, namespace: str, url: str, api_version: str = "v1",
               **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{SOURCE}/{api_version}", "kind": "HelmRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "oci", "interval": "10m0s", "url": url, "insecure": True, **spec}}


def helmchart(name: str, namespace: str, chart: str, version: str, repo: str,
              verify: dict[str, Any] | None, api_version: str = "v1",
              interval: str = "10m0s") -> dict[str, Any]:
    spec: dict[str, Any] = {"chart": chart, "version": version, "interval": interval,
                            "reconcileStrategy": "ChartVersion",
                            "sourceRef": {"kind": "HelmRepository", "name": repo}}
    if verify is not None:
        spec["verify"] = verify
    return {"apiVersion": f"{SOURCE}/{api_version}", "kind": "HelmChart",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


HELM = "helm.toolkit.fluxcd.io"


def helmrelease(name: str, namespace: str, chart: str, repo: str,
                verify: dict[str, Any] | None, *, version: str = "*",
                api_version: str = "v2", interval: str = "10m0s",
                **spec: Any) -> dict[str, Any]:
    """A HelmRelease as ``flux create helmrelease --export`` writes it (plus ``verify`` as the
    blog's yq edit adds it, first in ``spec.chart.spec``)."""
    chart_spec: dict[str, Any] = {}
    if verify is not None:
        chart_spec["verify"] = verify
    chart_spec.update({"chart": chart, "version": version, "reconcileStrategy": "ChartVersion",
                       "sourceRef": {"kind": "HelmRepository", "name": repo}})
    return {"apiVersion": f"{HELM}/{api_version}", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"chart": {"spec": chart_spec}, "interval": interval, **spec}}


def secret(name: str, namespace: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name,
                                                              "namespace": namespace},
            "type": "Opaque",
            "stringData": {k: v.decode() for k, v in data.items()}}


class Cluster:
    """Real kubectl on the test's API, with reads the tests repeat; ``ns`` is the namespace
    the test works in (``flux-system`` on the emulator)."""

    def __init__(self, kubectl: Kubectl, ns: str) -> None:
        self.kubectl = kubectl
        self.ns = ns

    def status(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        out = self.kubectl("get", kind, "-n", namespace, name, "-o", "json").stdout
        body: dict[str, Any] = json.loads(out)
        return body.get("status") or {}

    def body(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        out = self.kubectl("get", kind, "-n", namespace, name, "-o", "json").stdout
        doc: dict[str, Any] = json.loads(out)
        return doc

    def condition(self, kind: str, namespace: str, name: str, type_: str) -> dict[str, Any]:
        for cond in self.status(kind, namespace, name).get("conditions", []):
            if cond.get("type") == type_:
                return dict(cond)
        return {}

    def revision(self, namespace: str, name: str) -> str:
        artifact = self.status("helmchart", namespace, name).get("artifact") or {}
        return str(artifact.get("revision", ""))

    def request_reconcile(self, kind: str, namespace: str, name: str) -> str:
        stamp = str(time.time_ns())
        self.kubectl("annotate", "--overwrite", kind, "-n", namespace, name,
                     f"reconcile.fluxcd.io/requestedAt={stamp}")
        return stamp

    def events(self, namespace: str) -> list[dict[str, Any]]:
        out = self.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items


def release_finalizers(plane: ControlPlane, namespace: str) -> None:
    """Drop Flux's finalizer from what a stopped operator leaves behind, so the namespace's
    deletion is not held up by objects nobody will finalize."""
    for group, plural in ((f"{SOURCE}/v1", "helmcharts"), (f"{SOURCE}/v1", "helmrepositories"),
                          (f"{HELM}/v2", "helmreleases")):
        path = f"/apis/{group}/namespaces/{namespace}/{plural}"
        for item in plane.request("GET", path)["items"]:
            if item["metadata"].get("finalizers"):
                try:
                    plane.request("PATCH", f"{path}/{item['metadata']['name']}",
                                  {"metadata": {"finalizers": None}},
                                  content_type="application/merge-patch+json")
                except ApiError as err:
                    if err.code != 404:
                        raise

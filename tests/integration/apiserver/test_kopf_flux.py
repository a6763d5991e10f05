"""The operator's traffic: kopf watching the three Flux CRDs (crds/) cluster-wide at once,
status merge patches on /status, its finalizer added and removed by merge patches, Events
posted; then the seed's own read-back of SourceVerified with real kubectl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kopf
import yaml
from kopf.testing import KopfRunner

from chartguard_testing import procs, tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.apiserver.kubectl import Kubectl
from chartguard_testing.charts import HelmEnv

CRDS = Path(tools.REPO_ROOT) / "crds"
SOURCE, HELM = "source.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


def _verified(generation: int, version: str) -> dict[str, Any]:
    return {"type": "SourceVerified", "status": "True", "reason": "Succeeded",
            "observedGeneration": generation, "lastTransitionTime": "2022-11-09T13:27:38Z",
            "message": f"verified signature of version {version}"}


def _flux_operator(kubeconfig: Path) -> tuple[kopf.OperatorRegistry, list[str]]:
    """Handlers on all three kinds: each writes its status; HelmChart has a delete handler,
    so kopf keeps its finalizer on every HelmChart."""
    registry = kopf.OperatorRegistry()
    seen: list[str] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        config = yaml.safe_load(kubeconfig.read_text())
        return kopf.ConnectionInfo(server=config["clusters"][0]["cluster"]["server"],
                                   token=config["users"][0]["user"]["token"])

    @kopf.on.create(SOURCE, "v1", "helmrepositories", registry=registry)
    def repository(patch: Any, **_: Any) -> None:
        patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Ok"}]

    @kopf.on.create(SOURCE, "v1", "helmcharts", registry=registry)
    @kopf.on.update(SOURCE, "v1", "helmcharts", registry=registry)
    def chart(body: Any, spec: Any, meta: Any, patch: Any, **_: Any) -> None:
        patch.status["conditions"] = [_verified(meta["generation"], spec["version"])]
        kopf.info(body, reason="Verified", message=f"version {spec['version']}")

    @kopf.on.delete(SOURCE, "v1", "helmcharts", registry=registry)
    def chart_gone(name: str, **_: Any) -> None:
        seen.append(f"deleted {name}")

    @kopf.on.create(HELM, "v2", "helmreleases", registry=registry)
    def release(patch: Any, **_: Any) -> None:
        patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Ok"}]

    return registry, seen


REPOSITORY = {"apiVersion": f"{SOURCE}/v1", "kind": "HelmRepository",
              "metadata": {"name": "prometheus-community", "namespace": "flux-system"},
              "spec": {"type": "oci", "interval": "10m",
                       "url": "oci://ghcr.io/prometheus-community/charts"}}
CHART = {"apiVersion": f"{SOURCE}/v1", "kind": "HelmChart",
         "metadata": {"name": "flux-system-prometheus", "namespace": "flux-system"},
         "spec": {"chart": "prometheus", "version": "15.18.0", "interval": "10m",
                  "sourceRef": {"kind": "HelmRepository", "name": "prometheus-community"},
                  "verify": {"provider": "cosign"}}}
RELEASE: dict[str, Any] = {
    "apiVersion": f"{HELM}/v2", "kind": "HelmRelease",
    "metadata": {"name": "prometheus", "namespace": "apps"},
    "spec": {"interval": "10m", "chart": {"spec": {
        "chart": "prometheus", "version": "15.18.0",
        "sourceRef": {"kind": "HelmRepository", "name": "prometheus-community",
                      "namespace": "flux-system"}}}}}
# the seed's read-back command, verbatim
SEED_READ_BACK = ("get", "helmcharts", "-n", "flux-system", "flux-system-prometheus",
                  '-ojsonpath={.status.conditions[?(@.type=="SourceVerified")]}')


def _settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 30
    settings.watching.reconnect_backoff = 0.1
    settings.queueing.idle_timeout = 1.0
    settings.queueing.exit_timeout = 1.0
    return settings


def test_kopf_on_the_flux_crds_and_the_seed_read_back(kube_api: KubeAPI,
                                                      tmp_path: Path) -> None:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    kubectl("apply", "-f", str(CRDS))
    for crd in ("helmrepositories." + SOURCE, "helmcharts." + SOURCE, "helmreleases." + HELM):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=10s")
    kubectl("create", "namespace", "flux-system")
    kubectl("create", "namespace", "apps")
    registry, seen = _flux_operator(kube_api.kubeconfig)
    with KopfRunner(["run", "--standalone", "--all-namespaces"], registry=registry,
                    settings=_settings(), timeout=30) as runner:
        kubectl.apply(REPOSITORY, CHART, RELEASE)

        def read_back() -> str:
            return kubectl(*SEED_READ_BACK).stdout
        procs.wait_until(lambda: read_back() != "", timeout=30, what="SourceVerified")
        assert json.loads(read_back()) == _verified(1, "15.18.0")
        for kind, ns, name in (("helmrepository", "flux-system", "prometheus-community"),
                               ("helmrelease", "apps", "prometheus")):
            procs.wait_until(lambda: kubectl("-n", ns, "get", kind, name, "-o",  # noqa: B023
                                             "jsonpath={.status.conditions[0].type}",
                                             ).stdout == "Ready",
                             timeout=30, what=f"{kind} status")
        # kopf put its finalizer on (a merge patch of metadata.finalizers)
        finalizers = kubectl("-n", "flux-system", "get", "hc", "flux-system-prometheus",
                             "-o", "jsonpath={.metadata.finalizers}").stdout
        assert json.loads(finalizers) == [FINALIZER]

        # an update: the status follows the new generation; status writes do not bump it
        kubectl("-n", "flux-system", "patch", "hc", "flux-system-prometheus", "--type=merge",
                "-p", '{"spec":{"version":"15.18.1"}}')
        procs.wait_until(lambda: json.loads(read_back() or "{}") == _verified(2, "15.18.1"),
                         timeout=30, what="SourceVerified of generation 2")
        assert kubectl("-n", "flux-system", "get", "hc", "flux-system-prometheus", "-o",
                       "jsonpath={.metadata.generation}").stdout == "2"

        # delete: held by kopf's finalizer until its delete handler ran and removed it
        kubectl("-n", "flux-system", "delete", "hc", "flux-system-prometheus",
                "--timeout=30s")
        assert seen == ["deleted flux-system-prometheus"]
        assert kubectl(*SEED_READ_BACK, check=False).returncode == 1

        # kopf.info() posted core v1 Events about the HelmChart (in the background)
        def reasons() -> list[str]:
            out = kubectl("-n", "flux-system", "get", "events", "-o", "json").stdout
            return [e["reason"] for e in json.loads(out)["items"]
                    if e["involvedObject"]["kind"] == "HelmChart"]
        procs.wait_until(lambda: reasons().count("Verified") == 2, timeout=30,
                         what="the Events kopf posts")
    # nothing the emulator answered made kopf complain (errors, retries, unknown resources);
    # KopfRunner's own thread always warns that it cannot install signal handlers
    complaints = [line for line in runner.output.splitlines()
                  if ("ERROR" in line or "WARNING" in line) and "OS signals" not in line]
    assert not complaints, runner.output
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None


def test_events_k8s_io_v1_events_are_stored(kube_api: KubeAPI, tmp_path: Path) -> None:
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    event = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
             "metadata": {"generateName": "hc.", "namespace": "default"},
             "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Verified",
             "action": "Verify", "type": "Normal", "note": "verified signature",
             "reportingController": "chartguard", "reportingInstance": "chartguard-0",
             "regarding": {"apiVersion": f"{SOURCE}/v1", "kind": "HelmChart",
                           "name": "c", "namespace": "default"}}
    name = kubectl("create", "-f", "-", "-o", "name", stdin=json.dumps(event)).stdout.strip()
    assert name.startswith("event.events.k8s.io/hc.")
    got = kubectl("get", "events.v1.events.k8s.io", "-o",
                  "jsonpath={.items[*].note}").stdout
    assert got == "verified signature"


def test_kopf_handlers_running_helm_upgrades_on_the_same_emulator(
        kube_api: KubeAPI, helm_env: HelmEnv, tmp_path: Path) -> None:
    """What the operator does: a HelmRelease handler runs real helm (install, then upgrade,
    with --wait) as a subprocess while kopf's own watches stay open on the same server."""
    kubectl = Kubectl(tools.kubectl(), kube_api, tmp_path)
    kubectl("apply", "-f", str(CRDS))
    chart = helm_env.create("demo", "0.1.0")
    registry, _ = _flux_operator(kube_api.kubeconfig)
    k = ["--kubeconfig", str(kube_api.kubeconfig)]

    @kopf.on.create(HELM, "v2", "helmreleases", registry=registry)
    @kopf.on.update(HELM, "v2", "helmreleases", registry=registry)
    def release(spec: Any, name: str, namespace: str | None, patch: Any, **_: Any) -> None:
        assert namespace is not None
        replicas = str(spec["values"]["replicaCount"])
        helm_env.run("upgrade", "--install", name, str(chart), "--namespace", namespace,
                     "--set", f"replicaCount={replicas}", "--wait", "--timeout", "30s", *k)
        history = json.loads(helm_env.run("history", name, "--namespace", namespace,
                                          "-o", "json", *k).stdout)
        patch.status["lastAttemptedRevision"] = str(history[-1]["revision"])

    def revision() -> str:
        return kubectl("get", "helmrelease", "web", "-o",
                       "jsonpath={.status.lastAttemptedRevision}").stdout

    hr = {**RELEASE, "metadata": {"name": "web", "namespace": "default"},
          "spec": {**RELEASE["spec"], "values": {"replicaCount": 1}}}
    with KopfRunner(["run", "--standalone", "--all-namespaces"], registry=registry,
                    settings=_settings(), timeout=60) as runner:
        kubectl.apply(hr)
        procs.wait_until(lambda: revision() == "1", timeout=60, what="helm install")
        kubectl("patch", "helmrelease", "web", "--type=merge",
                "-p", '{"spec":{"values":{"replicaCount":2}}}')
        procs.wait_until(lambda: revision() == "2", timeout=60, what="helm upgrade")
        assert kubectl("get", "deploy", "web-demo", "-o",
                       "jsonpath={.status.readyReplicas}").stdout == "2"
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None

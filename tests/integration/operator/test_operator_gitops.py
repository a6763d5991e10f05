"""chartguard in a GitOps cluster, on the real control plane.

Beside Flux: Flux's own source-controller v1.9.5 and helm-controller v1.6.4 (``make
flux-controllers``) run with ``--watch-label-selector='!sharding.fluxcd.io/key'`` and
chartguard with ``--selector sharding.fluxcd.io/key=chartguard`` on the same namespace; who
wrote each object is read from the API server's own record (``metadata.managedFields``, one
entry per field manager and subresource), the finalizer and ``status.artifact.url``.

With Argo CD: Argo CD is not run; what it does to these objects is. It applies the blog's
manifests from Git with kubectl's apply (its default sync: client-side apply; with
``ServerSideApply=true``: server-side apply as field manager ``argocd-controller``), and a
sync, or its server-side diff, repeats that apply. The test applies the same way, lets
chartguard reconcile, then re-applies and diffs: nothing conflicts, nothing differs, nothing
chartguard wrote is undone, and the conditions Argo CD's built-in health checks for Flux's
kinds read are there.

Real control plane only: managedFields and apply conflicts are the API server's bookkeeping,
which the emulator does not keep (see the emulator's README section).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import (
    Charts,
    Cluster,
    Operator,
    OperatorTarget,
    helmrelease,
    repository,
    secret,
    wait_for,
)

from chartguard_testing import flux
from chartguard_testing.apiserver.kubectl import Kubectl

REAL_ONLY = pytest.mark.parametrize(
    "kube", [pytest.param("real", marks=pytest.mark.xdist_group("controlplane"))],
    indirect=True)
SHARD = flux.SHARD
KEY_BLOCK = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
FINALIZER = "finalizers.fluxcd.io"
ARGO_MANAGER = "argocd-controller"  # the field manager of Argo CD's server-side apply
SEED = (Path(__file__).resolve().parents[2] / "data" / "flux"
        / "seed-export-v0.36-nginx-verify-key.yaml")


def writers(body: dict[str, Any]) -> dict[str, set[str]]:
    """Field manager -> the subresources it wrote ("" for the object, "status"), from the API
    server's managedFields; the test's own kubectl writes are left out."""
    out: dict[str, set[str]] = {}
    for entry in body["metadata"].get("managedFields") or []:
        manager = entry["manager"]
        if not manager.startswith("kubectl"):
            out.setdefault(manager, set()).add(entry.get("subresource", ""))
    return out


def recorded(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    """The object with its managedFields (kubectl leaves them out unless asked)."""
    out = cluster.kubectl("get", kind, "-n", cluster.ns, name, "-o", "json",
                          "--show-managed-fields").stdout
    body: dict[str, Any] = json.loads(out)
    return body


def condition(body: dict[str, Any], type_: str) -> str:
    for cond in (body.get("status") or {}).get("conditions", []):
        if cond.get("type") == type_:
            return str(cond.get("status"))
    return ""


def release_records(cluster: Cluster, release: str) -> dict[str, str]:
    out = cluster.kubectl("get", "secrets", "-n", cluster.ns, "-l",
                          f"owner=helm,name={release}", "-o", "json").stdout
    return {s["metadata"]["name"]: s["metadata"]["labels"]["status"]
            for s in json.loads(out)["items"]}


def install_flux_crds(kubectl: Kubectl) -> None:
    """The source kinds chartguard does not serve, which Flux's controllers watch (cluster
    scope: applied server-side, idempotent, shared by every test of this control plane)."""
    crds = str(flux.source_crds())
    kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)


# -- beside Flux -------------------------------------------------------------------------------

@REAL_ONLY
def test_beside_flux_each_side_writes_only_the_objects_of_its_shard(
        kube: OperatorTarget, cluster: Cluster, kubectl: Kubectl, charts: Charts,
        operator: Operator, tmp_path: Path) -> None:
    for name in (flux.SOURCE_CONTROLLER, flux.HELM_CONTROLLER):
        flux.find(name)  # not built: fails naming `make flux-controllers`
    install_flux_crds(kubectl)
    ns = cluster.ns
    chart = charts.push("nginx", "0.1.0")
    charts.sign_with_key(chart, "cosign")
    ours = {SHARD: "chartguard"}
    cg_repo = repository("cg-charts", ns, charts.registry.oci())
    cg_repo["metadata"]["labels"] = ours
    # the label on the HelmRelease only: chartguard copies it onto the HelmChart it implies
    cg_release = helmrelease("cg-app", ns, "nginx", "cg-charts", KEY_BLOCK,
                             releaseName="cg-app", targetNamespace=ns)
    cg_release["metadata"]["labels"] = ours
    kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}),
        repository("flux-charts", ns, charts.registry.oci()),
        helmrelease("flux-app", ns, "nginx", "flux-charts", KEY_BLOCK,
                    releaseName="flux-app", targetNamespace=ns),
        cg_repo, cg_release)
    unsharded = f"--watch-label-selector=!{SHARD}"
    with flux.run_controller(flux.SOURCE_CONTROLLER, kube.api, ns, tmp_path / "flux",
                             unsharded) as source, \
            flux.run_controller(flux.HELM_CONTROLLER, kube.api, ns, tmp_path / "flux",
                                unsharded) as helm:
        operator.start("--selector", f"{SHARD}=chartguard")

        def both_ready() -> bool:
            return all(condition(cluster.body("helmrelease", ns, name), "Ready") == "True"
                       for name in ("cg-app", "flux-app"))

        try:
            wait_for(both_ready, "both HelmReleases Ready", timeout=180, operator=operator)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- helm-controller ---\n{helm.output()[-3000:]}"
                                 f"\n--- source-controller ---\n{source.output()[-3000:]}"
                                 ) from None
        flux_logs = source.output() + helm.output()
    body = {(kind, name): recorded(cluster, kind, name) for kind, name in (
        ("helmrepository", "cg-charts"), ("helmchart", f"{ns}-cg-app"),
        ("helmrelease", "cg-app"), ("helmrepository", "flux-charts"),
        ("helmchart", f"{ns}-flux-app"), ("helmrelease", "flux-app"))}

    # chartguard's shard: every write is chartguard's (status and its finalizer; the chart
    # the release implies it created), none is Flux's
    assert writers(body["helmrepository", "cg-charts"]) == {"chartguard": {"", "status"}}
    assert writers(body["helmchart", f"{ns}-cg-app"]) == {"chartguard": {"", "status"}}
    assert writers(body["helmrelease", "cg-app"]) == {"chartguard": {"", "status"}}
    cg_chart = body["helmchart", f"{ns}-cg-app"]
    assert cg_chart["metadata"]["labels"][SHARD] == "chartguard"
    assert cg_chart["metadata"]["finalizers"] == [FINALIZER]
    assert cg_chart["status"]["artifact"]["url"].startswith("file://")
    assert condition(cg_chart, "SourceVerified") == "True"

    # Flux's: written by source-controller and helm-controller only
    flux_chart = body["helmchart", f"{ns}-flux-app"]
    assert SHARD not in flux_chart["metadata"].get("labels", {})
    assert writers(flux_chart) == {"helm-controller": {""},
                                   "source-controller": {"", "status"}}
    assert flux_chart["status"]["artifact"]["url"].startswith(
        f"http://{source.storage_address}/")
    assert condition(flux_chart, "SourceVerified") == "True"
    assert set(writers(body["helmrelease", "flux-app"])) == {"helm-controller"}
    # current Flux writes nothing on an oci HelmRepository; chartguard must not either
    assert "chartguard" not in writers(body["helmrepository", "flux-charts"])

    # both charts installed, each by its own side; neither side even logged the other's
    assert release_records(cluster, "cg-app") == {"sh.helm.release.v1.cg-app.v1": "deployed"}
    assert release_records(cluster, "flux-app") == {
        "sh.helm.release.v1.flux-app.v1": "deployed"}
    assert "cg-app" not in flux_logs
    assert "cg-charts" not in flux_logs
    assert "flux-app" not in operator.output()


# -- with Argo CD --------------------------------------------------------------------------

def git_checkout(directory: Path, namespace: str, url: str) -> Path:
    """The blog's manifests (the seed's `flux create ... --export` + yq verify block) as a Git
    checkout holds them, set to this test's namespace and registry."""
    directory.mkdir()
    for doc in yaml.safe_load_all(SEED.read_text()):
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "HelmRepository":
            doc["spec"].update(url=url, insecure=True)
        else:
            doc["spec"]["targetNamespace"] = namespace
        (directory / f"{doc['kind'].lower()}.yaml").write_text(yaml.safe_dump(doc))
    return directory


def sync_argv(mode: str, checkout: Path) -> list[str]:
    """What an Argo CD sync runs for ``checkout``: kubectl's apply, client- or server-side."""
    if mode == "server-side":
        return ["apply", "--server-side", f"--field-manager={ARGO_MANAGER}", "-f",
                str(checkout)]
    return ["apply", "-f", str(checkout)]


def diff(kubectl: Kubectl, mode: str, checkout: Path) -> subprocess.CompletedProcess[str]:
    flags = ["--server-side", f"--field-manager={ARGO_MANAGER}"] if mode == "server-side" \
        else []
    return kubectl("diff", *flags, "-f", str(checkout), check=False)


def argo_health(body: dict[str, Any]) -> str:
    """The rule of Argo CD's built-in health checks for Flux's kinds (its
    resource_customizations for helm.toolkit.fluxcd.io and source.toolkit.fluxcd.io),
    restated: Healthy when Ready and a second condition are True (Released on a
    HelmRelease, ArtifactInStorage on a HelmChart); an oci HelmRepository is always Healthy."""
    if body["kind"] == "HelmRepository" and body["spec"].get("type") == "oci":
        return "Healthy"
    second = "Released" if body["kind"] == "HelmRelease" else "ArtifactInStorage"
    if condition(body, "Ready") == "True" and condition(body, second) == "True":
        return "Healthy"
    return "Progressing" if condition(body, "Ready") == "Unknown" else "Degraded"


@REAL_ONLY
@pytest.mark.parametrize("mode", ["client-side", "server-side"])
def test_argo_cd_syncs_of_the_blogs_manifests_never_fight_chartguard(
        mode: str, cluster: Cluster, kubectl: Kubectl, charts: Charts, operator: Operator,
        tmp_path: Path) -> None:
    ns = cluster.ns
    chart = charts.push("nginx", "0.1.0")
    charts.sign_with_key(chart, "cosign")
    # the Secret does not come from Git (a sealed or external secret in practice)
    kubectl.apply(secret("cosign-pub", ns, {"cosign.pub": charts.key("cosign").public_pem}))
    checkout = git_checkout(tmp_path / "git", ns, charts.registry.oci())
    kubectl(*sync_argv(mode, checkout))
    operator.start()  # chartguard alone serves the Flux kinds: no selector

    def ready() -> bool:
        return condition(cluster.body("helmrelease", ns, "nginx"), "Ready") == "True"

    wait_for(ready, "HelmRelease nginx Ready", timeout=120, operator=operator)
    before = {kind: recorded(cluster, kind, name) for kind, name in (
        ("helmrelease", "nginx"), ("helmrepository", "developer-guy-charts"),
        ("helmchart", f"{ns}-nginx"))}
    assert {kind: argo_health(b) for kind, b in before.items()} == dict.fromkeys(
        before, "Healthy")

    # what chartguard wrote on the objects from Git: its finalizer and status, nothing else
    for kind in ("helmrelease", "helmrepository"):
        mine = [e for e in before[kind]["metadata"]["managedFields"]
                if e["manager"] == "chartguard"]
        for entry in mine:
            fields = set(entry["fieldsV1"])
            assert fields == ({"f:status"} if entry.get("subresource") == "status"
                              else {"f:metadata"}), (kind, entry)
            if entry.get("subresource") != "status":
                assert entry["fieldsV1"]["f:metadata"] == {"f:finalizers": {
                    ".": {}, f'v:"{FINALIZER}"': {}}}

    # Argo CD's diff shows the app in sync; its next syncs change nothing chartguard wrote
    first = diff(kubectl, mode, checkout)
    assert first.returncode == 0, first.stdout + first.stderr
    for _ in range(2):
        again = kubectl(*sync_argv(mode, checkout))
        assert "conflict" not in (again.stdout + again.stderr).lower()
    after = cluster.body("helmrelease", ns, "nginx")
    assert after["metadata"]["finalizers"] == [FINALIZER]
    assert after["metadata"]["generation"] == before["helmrelease"]["metadata"]["generation"]
    assert after["status"] == before["helmrelease"]["status"]
    assert release_records(cluster, "nginx") == {"sh.helm.release.v1.nginx.v1": "deployed"}

    # a commit to Git reaches the cluster through the next sync, and chartguard follows it
    manifest = checkout / "helmrelease.yaml"
    doc = yaml.safe_load(manifest.read_text())
    doc["spec"]["values"] = {"replicaCount": 2}
    manifest.write_text(yaml.safe_dump(doc))
    kubectl(*sync_argv(mode, checkout))

    def upgraded() -> bool:
        body = cluster.body("helmrelease", ns, "nginx")
        return (body["status"].get("observedGeneration") == body["metadata"]["generation"]
                and condition(body, "Ready") == "True")

    wait_for(upgraded, "HelmRelease nginx upgraded", timeout=120, operator=operator)
    assert release_records(cluster, "nginx") == {"sh.helm.release.v1.nginx.v1": "superseded",
                                                 "sh.helm.release.v1.nginx.v2": "deployed"}
    assert cluster.body("deployment", ns, "nginx")["spec"]["replicas"] == 2
    settled = diff(kubectl, mode, checkout)
    assert settled.returncode == 0, settled.stdout + settled.stderr

    # Argo CD's prune deletes the HelmRelease: chartguard's finalizer uninstalls first
    kubectl("delete", "-f", str(manifest), "--timeout=90s")
    assert release_records(cluster, "nginx") == {}

"""``verify.provider: pgp`` (a chartguard extension): Helm's own provenance, verified by the
running operator, from an OCI registry and from an HTTP repository.

Charts are signed by the real ``helm package --sign`` with keys the real ``gpg`` made (a
GNUPGHOME per test), pushed by the real ``helm push`` (which stores the ``.prov`` as a layer of
the chart's manifest) or indexed by the real ``helm repo index``, and installed by real helm 4.
A provenance that does not verify keeps the last verified chart, and the release stays on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from operator_support import (
    EMULATOR_ONLY,
    SOURCE,
    Cluster,
    Operator,
    helmrelease,
    repository,
    wait_for,
)

from chartguard_testing.apiserver.kubectl import KubectlError
from chartguard_testing.charts import HelmEnv
from chartguard_testing.helmrepo_server import run_helm_repository
from chartguard_testing.pgp_signer import PGPKey, package_signed
from chartguard_testing.registry import Registry

PGP_KEYS = {"provider": "pgp", "secretRef": {"name": "pgp-keys"}}


def binary_secret(name: str, namespace: str, data: dict[str, bytes]) -> dict[str, Any]:
    """A Secret with ``data`` (base64): a binary keyring is not UTF-8."""
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace}, "type": "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def chart_name(cluster: Cluster, release: str) -> str:
    return f"{cluster.ns}-{release}"


def wait_verified(cluster: Cluster, operator: Operator, chart: str, status: str,
                  timeout: float = 90) -> dict[str, Any]:
    ns = cluster.ns

    def done() -> bool:
        try:
            cond = cluster.condition("helmchart", ns, chart, "SourceVerified")
        except KubectlError as err:
            if "NotFound" not in str(err):  # the release's HelmChart is not there at first
                raise
            return False
        return cond.get("status") == status
    wait_for(done, f"HelmChart {chart} SourceVerified={status}", timeout=timeout,
             operator=operator)
    return cluster.condition("helmchart", ns, chart, "SourceVerified")


def wait_installed(cluster: Cluster, operator: Operator, release: str,
                   version: str) -> dict[str, Any]:
    ns = cluster.ns

    def done() -> bool:
        cond = cluster.condition("helmrelease", ns, release, "Ready")
        return cond.get("status") == "True" and f"@{version}" in cond.get("message", "")
    wait_for(done, f"HelmRelease {release} Ready with {version}", timeout=120,
             operator=operator)
    return cluster.condition("helmrelease", ns, release, "Ready")


def installed_version(cluster: Cluster, release: str) -> str:
    """The chart version of the release's last history entry (helm's record)."""
    history = cluster.status("helmrelease", cluster.ns, release).get("history") or [{}]
    return str(history[0].get("chartVersion", ""))


@EMULATOR_ONLY
def test_oci_chart_with_its_provenance_layer_installs_and_a_tampered_one_keeps_the_release(
        cluster: Cluster, registry: Registry, helm_env: HelmEnv, operator: Operator,
        tmp_path: Path, pgp_keys: Callable[..., PGPKey]) -> None:
    ns = cluster.ns
    key = pgp_keys()
    archive = package_signed(helm_env, helm_env.create("podinfo", "1.0.0"), key,
                             tmp_path / "v1")
    digest = helm_env.push(archive, registry)
    # helm push stored the .prov as a layer of the chart's manifest
    manifest = json.loads(registry.blob_path(digest).read_bytes())
    assert sorted(layer["mediaType"] for layer in manifest["layers"]) == [
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        "application/vnd.cncf.helm.chart.provenance.v1.prov"]
    cluster.kubectl.apply(
        binary_secret("pgp-keys", ns, {"signer.gpg": key.public}),
        repository("charts", ns, registry.oci("charts")),
        helmrelease("podinfo", ns, "podinfo", "charts", PGP_KEYS, version="*",
                    releaseName="podinfo", targetNamespace=ns))
    operator.start()
    ready = wait_installed(cluster, operator, "podinfo", "1.0.0")
    assert ready["reason"] == "InstallSucceeded"
    chart = chart_name(cluster, "podinfo")
    verified = cluster.condition("helmchart", ns, chart, "SourceVerified")
    assert verified["status"] == "True"
    assert verified["message"] == "verified signature of version 1.0.0"
    # what was stored (and installed) is exactly the archive helm packaged and signed
    artifact = cluster.status("helmchart", ns, chart)["artifact"]
    assert artifact["revision"] == f"1.0.0@{digest}"
    assert artifact["digest"] == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()

    # 1.1.0 with a byte of its signed text changed before the push: refused, 1.0.0 stays
    archive2 = package_signed(helm_env, helm_env.create("podinfo", "1.1.0"), key,
                              tmp_path / "v2")
    prov = Path(str(archive2) + ".prov")
    prov.write_bytes(prov.read_bytes().replace(b"version: 1.1.0", b"version: 1.1.1", 1))
    digest2 = helm_env.push(archive2, registry)
    cluster.request_reconcile("helmchart", ns, chart)
    failed = wait_verified(cluster, operator, chart, "False")
    assert failed["reason"] == "VerificationError"
    assert failed["message"].startswith(
        "chart verification error: failed to verify the signature of 'podinfo' version "
        f"'1.1.0' ({digest2}) using provider 'pgp': ")
    assert "BAD signature" in failed["message"]
    assert cluster.revision(ns, chart) == f"1.0.0@{digest}"  # the last verified artifact
    assert installed_version(cluster, "podinfo") == "1.0.0"

    # 1.2.0 pushed without a provenance: refused, saying how to publish one
    plain = helm_env.package(helm_env.create("podinfo", "1.2.0"))
    digest3 = helm_env.push(plain, registry)
    cluster.request_reconcile("helmchart", ns, chart)

    def no_provenance() -> bool:
        return f"({digest3})" in cluster.condition("helmchart", ns, chart,
                                                   "SourceVerified").get("message", "")
    wait_for(no_provenance, "1.2.0 refused", operator=operator)
    message = cluster.condition("helmchart", ns, chart, "SourceVerified")["message"]
    assert "no provenance (.prov) for podinfo-1.2.0.tgz" in message
    assert "helm package --sign" in message
    assert cluster.revision(ns, chart) == f"1.0.0@{digest}"
    assert installed_version(cluster, "podinfo") == "1.0.0"
    assert operator.stop() == 0


@EMULATOR_ONLY
def test_http_repository_chart_with_its_prov_file_installs_and_another_key_is_refused(
        cluster: Cluster, helm_env: HelmEnv, operator: Operator, tmp_path: Path,
        pgp_keys: Callable[..., PGPKey]) -> None:
    ns = cluster.ns
    key = pgp_keys()
    stranger = pgp_keys(name="Someone Else")
    root = tmp_path / "repo"
    archive = package_signed(helm_env, helm_env.create("podinfo", "1.0.0"), key, root)
    helm_env.run("repo", "index", str(root))
    with run_helm_repository(root, workdir=tmp_path / "server", tls=False) as server:
        cluster.kubectl.apply(
            # an armored keyring this time, beside an unrelated key of the Secret
            binary_secret("pgp-keys", ns, {"signer.asc": key.armored,
                                           "README": b"keys of the chart signers"}),
            {"apiVersion": f"{SOURCE}/v1", "kind": "HelmRepository",
             "metadata": {"name": "charts", "namespace": ns},
             "spec": {"interval": "10m0s", "url": server.url}},
            helmrelease("podinfo", ns, "podinfo", "charts", PGP_KEYS, version="*",
                        releaseName="podinfo", targetNamespace=ns))
        operator.start()
        ready = wait_installed(cluster, operator, "podinfo", "1.0.0")
        assert ready["reason"] == "InstallSucceeded"
        chart = chart_name(cluster, "podinfo")
        verified = cluster.condition("helmchart", ns, chart, "SourceVerified")
        assert verified["message"] == "verified signature of version 1.0.0"
        # the .prov was fetched beside the archive, as `helm pull --verify` does
        assert server.requests("podinfo-1.0.0.tgz.prov", 200)
        artifact = cluster.status("helmchart", ns, chart)["artifact"]
        assert artifact["digest"] == "sha256:" + hashlib.sha256(
            archive.read_bytes()).hexdigest()

        # 1.1.0 signed by a key the Secret does not hold: refused, 1.0.0 stays installed
        package_signed(helm_env, helm_env.create("podinfo", "1.1.0"), stranger, root)
        helm_env.run("repo", "index", str(root))
        cluster.request_reconcile("helmrepository", ns, "charts")
        failed = wait_verified(cluster, operator, chart, "False")
        assert failed["reason"] == "VerificationError"
        assert "version '1.1.0'" in failed["message"]
        assert "using provider 'pgp'" in failed["message"]
        assert f"signed by key {stranger.fingerprint[-16:]}, which is not in the keyring" in \
            failed["message"]
        assert cluster.revision(ns, chart) == "1.0.0"
        assert installed_version(cluster, "podinfo") == "1.0.0"

        # the stranger's key added to the Secret: the keyring's fingerprint changed, so the
        # chart is verified again, and 1.1.0 installs
        cluster.kubectl.apply(binary_secret("pgp-keys", ns, {
            "signer.asc": key.armored, "stranger.gpg": stranger.public}))
        wait_installed(cluster, operator, "podinfo", "1.1.0")
        assert cluster.condition("helmchart", ns, chart, "SourceVerified")["message"] == \
            "verified signature of version 1.1.0"

        # a 1.2.0 whose .prov is missing: refused naming where it was looked for
        package_signed(helm_env, helm_env.create("podinfo", "1.2.0"), key, root)
        Path(root / "podinfo-1.2.0.tgz.prov").unlink()
        helm_env.run("repo", "index", str(root))
        cluster.request_reconcile("helmrepository", ns, "charts")

        def missing() -> bool:
            return "podinfo-1.2.0.tgz.prov answered 404" in cluster.condition(
                "helmchart", ns, chart, "SourceVerified").get("message", "")
        wait_for(missing, "1.2.0 refused", operator=operator)
        assert cluster.revision(ns, chart) == "1.1.0"
        assert installed_version(cluster, "podinfo") == "1.1.0"

        # a 1.3.0 archive changed after signing (a byte of its gzip header: it still unpacks)
        # and indexed again, so the index's digest matches it: only the signed sha256 tells
        signed = package_signed(helm_env, helm_env.create("podinfo", "1.3.0"), key, root)
        data = bytearray(signed.read_bytes())
        data[4] ^= 0x01
        signed.write_bytes(bytes(data))
        helm_env.run("repo", "index", str(root))
        cluster.request_reconcile("helmrepository", ns, "charts")

        def tampered() -> bool:
            return "version '1.3.0'" in cluster.condition(
                "helmchart", ns, chart, "SourceVerified").get("message", "")
        wait_for(tampered, "1.3.0 refused", operator=operator)
        message = cluster.condition("helmchart", ns, chart, "SourceVerified")["message"]
        assert "the archive podinfo-1.3.0.tgz has sha256" in message
        assert "but the signed provenance says sha256:" in message
        assert cluster.revision(ns, chart) == "1.1.0"
        assert installed_version(cluster, "podinfo") == "1.1.0"
        assert operator.stop() == 0
    shutil.rmtree(root, ignore_errors=True)

"""HTTP(S) Helm repositories (HelmRepository ``type: default``) served by ``chartguard run``.

The repository is a directory ``helm package`` and ``helm repo index`` made, served over TLS
with a CA made for the test (``chartguard_testing.helmrepo_server``), which records every
request: the tests count what the operator asked for and see where credentials went. Releases
are installed by real helm 4 from the stored archive; everything is read back with kubectl.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_support import (
    EMULATOR_ONLY,
    SOURCE,
    Cluster,
    Operator,
    OperatorTarget,
    helmchart,
    helmrelease,
    secret,
    wait_for,
)

from chartguard_testing import procs
from chartguard_testing.apiserver.kubectl import KubectlError
from chartguard_testing.charts import HelmEnv
from chartguard_testing.helmrepo_server import (
    HelmRepoServer,
    build_repository,
    make_client_certificate,
    run_helm_repository,
)
from chartguard_testing.scrape import scrape

USER, PASSWORD = "chartguard", "s3cret-Pa55"
INDEX_FETCHES = "chartguard_helm_index_fetches_total"


def http_repository(name: str, namespace: str, url: str, **spec: Any) -> dict[str, Any]:
    """A HelmRepository as ``flux create source helm`` writes it for an HTTP repository."""
    return {"apiVersion": f"{SOURCE}/v1", "kind": "HelmRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"interval": "10m0s", "url": url, **spec}}


def ca_secret(name: str, ns: str, server: HelmRepoServer, **extra: bytes) -> dict[str, Any]:
    assert server.tls is not None
    return secret(name, ns, {"ca.crt": server.tls.ca_pem(), **extra})


def auth_repository(name: str, ns: str, server: HelmRepoServer) -> list[dict[str, Any]]:
    """The repository behind basic auth with its CA: Secrets ``auth`` and ``ca``, and it."""
    return [secret("auth", ns, {"username": USER.encode(), "password": PASSWORD.encode()}),
            ca_secret("ca", ns, server),
            http_repository(name, ns, server.url, secretRef={"name": "auth"},
                            certSecretRef={"name": "ca"})]


def condition(cluster: Cluster, kind: str, name: str, type_: str = "Ready") -> dict[str, Any]:
    try:
        return cluster.condition(kind, cluster.ns, name, type_)
    except KubectlError as err:
        if "NotFound" not in str(err):  # a release's HelmChart is not there at first
            raise
        return {}


def wait_condition(cluster: Cluster, operator: Operator, kind: str, name: str, status: str,
                   type_: str = "Ready", reason: str | None = None,
                   timeout: float = 60) -> dict[str, Any]:
    def done() -> bool:
        cond = condition(cluster, kind, name, type_)
        return cond.get("status") == status and (reason is None or cond.get("reason") == reason)

    wait_for(done, f"{kind} {name} {type_}={status} {reason or ''}", timeout=timeout,
             operator=operator)
    return condition(cluster, kind, name, type_)


@pytest.fixture
def repo_dir(helm_env: HelmEnv, tmp_path: Path) -> Path:
    """podinfo 0.1.0, 0.2.0 and 0.3.0-rc.1 packaged and indexed (relative URLs) by helm."""
    root = tmp_path / "repo"
    build_repository(helm_env, root, [("podinfo", "0.1.0"), ("podinfo", "0.2.0"),
                                      ("podinfo", "0.3.0-rc.1")])
    return root


@pytest.fixture
def server(repo_dir: Path, tmp_path: Path) -> Iterator[HelmRepoServer]:
    with run_helm_repository(repo_dir, workdir=tmp_path / "server",
                             auth=(USER, PASSWORD)) as srv:
        yield srv


def test_basic_auth_repository_installs_a_release_and_shows_the_index_revision(
        cluster: Cluster, kube: OperatorTarget, server: HelmRepoServer, repo_dir: Path,
        operator: Operator) -> None:
    ns = cluster.ns
    index_digest = "sha256:" + hashlib.sha256((repo_dir / "index.yaml").read_bytes()).hexdigest()
    cluster.kubectl.apply(
        *auth_repository("podinfo", ns, server),
        helmrelease("podinfo", ns, "podinfo", "podinfo", None, version="*",
                    releaseName="podinfo", targetNamespace=ns))
    operator.start()
    cond = wait_condition(cluster, operator, "helmrelease", "podinfo", "True", timeout=90)
    assert cond["reason"] == "InstallSucceeded"
    # "*" is the latest stable version: 0.3.0-rc.1 is a prerelease
    assert cond["message"] == (f"Helm install succeeded for release {ns}/podinfo.v1 with chart "
                               "podinfo@0.2.0")
    repo = cluster.status("helmrepository", ns, "podinfo")
    artifact = repo["artifact"]
    assert artifact["revision"] == artifact["digest"] == index_digest
    assert artifact["size"] == (repo_dir / "index.yaml").stat().st_size
    assert artifact["path"] == f"sha256/{index_digest[7:]}.yaml"
    assert repo["url"] == artifact["url"]
    assert artifact["url"].endswith(artifact["path"])
    ready = condition(cluster, "helmrepository", "podinfo")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True", "Succeeded", f"stored artifact: revision '{index_digest}'")
    stored = condition(cluster, "helmrepository", "podinfo", "ArtifactInStorage")
    assert stored["message"] == ready["message"]
    chart = cluster.status("helmchart", ns, f"{ns}-podinfo")
    tgz = (repo_dir / "podinfo-0.2.0.tgz").read_bytes()
    assert chart["artifact"]["revision"] == "0.2.0"
    assert chart["artifact"]["digest"] == "sha256:" + hashlib.sha256(tgz).hexdigest()
    assert chart["observedSourceArtifactRevision"] == index_digest
    assert chart["observedChartName"] == "podinfo"
    assert not any(c["type"] == "SourceVerified" for c in chart["conditions"])
    # credentials went with every request (the chart's URL is relative: the same origin)
    assert server.hits
    assert all(hit.authorized for hit in server.hits)
    # `kubectl get helmrepositories`: Flux's printer columns, the revision in Ready's message
    header, row = cluster.kubectl("get", "helmrepositories", "-n", ns).stdout.splitlines()
    assert header.split()[:4] == ["NAME", "URL", "AGE", "READY"], header
    assert row.split()[1] == server.url, row
    assert row.endswith(f"revision '{index_digest}'"), row
    # `chartguard get sources helm`: flux's table, the revision shortened as flux does
    out = subprocess.run([sys.executable, "-m", "chartguard", "get", "sources", "helm", "-n",
                          ns], env=kube.env, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"], out
    assert lines[1].split()[:4] == ["podinfo", index_digest[:15], "False", "True"], out
    assert "NewArtifact" in {e["reason"] for e in cluster.events(ns)}


@EMULATOR_ONLY
def test_an_unchanged_index_is_neither_parsed_nor_its_chart_downloaded_again(
        cluster: Cluster, server: HelmRepoServer, operator: Operator) -> None:
    ns = cluster.ns
    cluster.kubectl.apply(
        *auth_repository("podinfo", ns, server),
        helmchart("podinfo", ns, "podinfo", "0.1.0", "podinfo", None))
    port = procs.free_port()
    operator.start("--metrics-port", str(port), "--metrics-address", "127.0.0.1")
    wait_condition(cluster, operator, "helmchart", "podinfo", "True")
    for _ in range(3):
        for kind in ("helmrepository", "helmchart"):
            stamp = cluster.request_reconcile(kind, ns, "podinfo")
            wait_for(lambda k=kind, s=stamp: cluster.status(  # type: ignore[misc]
                k, ns, "podinfo").get("lastHandledReconcileAt") == s,
                f"{kind} reconcile request handled", operator=operator)
    # the first fetch was whole; every later one conditional, answered 304 Not Modified
    index = server.requests("index.yaml")
    assert [hit.status for hit in index] == [200, 304, 304, 304], index
    assert all(hit.conditional for hit in index[1:])
    assert len(server.requests("podinfo-0.1.0.tgz")) == 1
    m = scrape(f"http://127.0.0.1:{port}/metrics")
    assert m.total(INDEX_FETCHES, result="parsed") == 1
    assert m.total(INDEX_FETCHES, result="not_modified") == 3
    assert condition(cluster, "helmchart", "podinfo")["status"] == "True"


@EMULATOR_ONLY
def test_without_etags_the_same_digest_is_not_parsed_again(
        cluster: Cluster, repo_dir: Path, tmp_path: Path, operator: Operator) -> None:
    ns = cluster.ns
    with run_helm_repository(repo_dir, workdir=tmp_path / "plain", tls=False,
                             etags=False) as plain:
        cluster.kubectl.apply(
            http_repository("podinfo", ns, plain.url),
            helmchart("podinfo", ns, "podinfo", "~0.1", "podinfo", None))
        port = procs.free_port()
        operator.start("--metrics-port", str(port), "--metrics-address", "127.0.0.1")
        wait_condition(cluster, operator, "helmchart", "podinfo", "True")
        stamp = cluster.request_reconcile("helmrepository", ns, "podinfo")
        wait_for(lambda: cluster.status("helmrepository", ns, "podinfo").get(
            "lastHandledReconcileAt") == stamp, "reconcile request handled", operator=operator)
        assert [hit.status for hit in plain.requests("index.yaml")] == [200, 200]
        m = scrape(f"http://127.0.0.1:{port}/metrics")
        assert m.total(INDEX_FETCHES, result="parsed") == 1
        assert m.total(INDEX_FETCHES, result="unchanged") == 1
        assert cluster.revision(ns, "podinfo") == "0.1.0"


@EMULATOR_ONLY
def test_a_wrong_password_is_authentication_failed_until_the_secret_is_fixed(
        cluster: Cluster, server: HelmRepoServer, operator: Operator) -> None:
    ns = cluster.ns
    cluster.kubectl.apply(
        secret("auth", ns, {"username": USER.encode(), "password": b"wrong"}),
        ca_secret("ca", ns, server),
        http_repository("podinfo", ns, server.url, secretRef={"name": "auth"},
                        certSecretRef={"name": "ca"}))
    operator.start()
    cond = wait_condition(cluster, operator, "helmrepository", "podinfo", "False",
                          reason="AuthenticationFailed")
    assert cond["message"].startswith(
        f"failed to fetch Helm repository index: failed to fetch {server.url}/index.yaml : "
        "401 Unauthorized"), cond
    assert "wrong" not in cond["message"]
    assert PASSWORD not in cond["message"]
    fetch = condition(cluster, "helmrepository", "podinfo", "FetchFailed")
    assert (fetch["status"], fetch["reason"]) == ("True", "AuthenticationFailed")
    cluster.kubectl.apply(
        secret("auth", ns, {"username": USER.encode(), "password": PASSWORD.encode()}))
    wait_condition(cluster, operator, "helmrepository", "podinfo", "True")
    assert condition(cluster, "helmrepository", "podinfo", "FetchFailed") == {}
    assert "wrong" not in operator.output()


@EMULATOR_ONLY
def test_a_private_ca_and_a_required_client_certificate(
        cluster: Cluster, repo_dir: Path, tmp_path: Path, operator: Operator) -> None:
    ns = cluster.ns
    from chartguard_testing.registry import make_tls

    tls = make_tls(tmp_path / "mtls")
    cert, key = make_client_certificate(tls, tmp_path / "client")
    with run_helm_repository(repo_dir, workdir=tmp_path / "m", tls_files=tls,
                             client_ca=tls.ca_cert) as mtls:
        cluster.kubectl.apply(
            http_repository("untrusted", ns, mtls.url),
            secret("ca-only", ns, {"ca.crt": tls.ca_pem()}),
            http_repository("no-client-cert", ns, mtls.url, certSecretRef={"name": "ca-only"}),
            secret("mtls", ns, {"ca.crt": tls.ca_pem(), "tls.crt": cert.read_bytes(),
                                "tls.key": key.read_bytes()}),
            http_repository("podinfo", ns, mtls.url, certSecretRef={"name": "mtls"}),
            helmchart("podinfo", ns, "podinfo", "0.2.0", "podinfo", None))
        operator.start()
        # no CA: the server's certificate is not trusted
        untrusted = wait_condition(cluster, operator, "helmrepository", "untrusted", "False",
                                   reason="AuthenticationFailed")
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted["message"], untrusted
        assert "spec.certSecretRef" in untrusted["message"]
        # the CA but no client certificate: the handshake is refused
        wait_condition(cluster, operator, "helmrepository", "no-client-cert", "False",
                       reason="AuthenticationFailed")
        wait_condition(cluster, operator, "helmchart", "podinfo", "True")
        assert cluster.revision(ns, "podinfo") == "0.2.0"
        assert mtls.requests("podinfo-0.2.0.tgz", 200)


@EMULATOR_ONLY
def test_a_chart_whose_bytes_do_not_match_the_index_digest_is_refused(
        cluster: Cluster, helm_env: HelmEnv, repo_dir: Path, tmp_path: Path,
        server: HelmRepoServer, operator: Operator) -> None:
    ns = cluster.ns
    # another podinfo 0.2.0 (other bytes) where the index points: its digest is the old one
    # (helm packages reproducibly: the same chart made in the same second is the same bytes,
    # so the other one differs in a file)
    source = helm_env.create("podinfo", "0.2.0", extra_files={"templates/NOTES.txt": b"other\n"})
    other = helm_env.package(source).read_bytes()
    assert other != (repo_dir / "podinfo-0.2.0.tgz").read_bytes()
    (repo_dir / "podinfo-0.2.0.tgz").write_bytes(other)
    cluster.kubectl.apply(
        *auth_repository("podinfo", ns, server),
        helmrelease("podinfo", ns, "podinfo", "podinfo", None, version="0.2.0",
                    releaseName="podinfo", targetNamespace=ns))
    operator.start()
    fetch = wait_condition(cluster, operator, "helmchart", f"{ns}-podinfo", "True",
                           type_="FetchFailed", reason="ChartPullError")
    assert "digest mismatch" in fetch["message"], fetch
    assert "artifact" not in cluster.status("helmchart", ns, f"{ns}-podinfo")
    release = wait_condition(cluster, operator, "helmrelease", "podinfo", "False")
    assert release["reason"] == "SourceNotReady"
    out = cluster.kubectl("get", "secrets", "-n", ns, "-l", "owner=helm", "-o", "name").stdout
    assert out.strip() == ""  # helm installed nothing


@EMULATOR_ONLY
def test_absolute_chart_urls_get_credentials_only_with_pass_credentials(
        cluster: Cluster, helm_env: HelmEnv, tmp_path: Path, server: HelmRepoServer,
        operator: Operator) -> None:
    ns = cluster.ns
    assert server.tls is not None
    # the archives live on a second server (another port: another origin) that wants the same
    # credentials; the index on the first names them by absolute URL
    files = tmp_path / "files"
    with run_helm_repository(files, workdir=tmp_path / "files-server", base="files",
                             auth=(USER, PASSWORD), tls_files=server.tls) as second:
        build_repository(helm_env, files, [("podinfo", "0.1.0")], url=second.url)
        index_dir = tmp_path / "index-only"
        index_dir.mkdir()
        (index_dir / "index.yaml").write_bytes((files / "index.yaml").read_bytes())
        with run_helm_repository(index_dir, workdir=tmp_path / "index-server",
                                 auth=(USER, PASSWORD), tls_files=server.tls) as first:
            cluster.kubectl.apply(
                secret("auth", ns, {"username": USER.encode(), "password": PASSWORD.encode()}),
                ca_secret("ca", ns, server),
                http_repository("kept", ns, first.url, secretRef={"name": "auth"},
                                certSecretRef={"name": "ca"}),
                http_repository("passed", ns, first.url, secretRef={"name": "auth"},
                                certSecretRef={"name": "ca"}, passCredentials=True),
                helmchart("kept", ns, "podinfo", "0.1.0", "kept", None),
                helmchart("passed", ns, "podinfo", "0.1.0", "passed", None))
            operator.start()
            kept = wait_condition(cluster, operator, "helmchart", "kept", "True",
                                  type_="FetchFailed", reason="AuthenticationFailed")
            assert kept["message"].startswith(
                "failed to authenticate with the Helm repository: chart pull error: failed to "
                f"download chart for remote reference: failed to fetch {second.url}/"
                "podinfo-0.1.0.tgz : 401 Unauthorized"), kept
            assert "spec.passCredentials: true" in kept["message"]
            wait_condition(cluster, operator, "helmchart", "passed", "True")
            assert cluster.revision(ns, "passed") == "0.1.0"
            hits = second.requests("podinfo-0.1.0.tgz")
            # without passCredentials the second host never saw them; with it, it did
            assert {(h.authorized, h.status) for h in hits} == {(False, 401), (True, 200)}
            assert all(h.authorized for h in first.hits)


@EMULATOR_ONLY
def test_verify_on_a_chart_of_an_http_repository_is_refused_as_flux_refuses_it(
        cluster: Cluster, server: HelmRepoServer, operator: Operator) -> None:
    ns = cluster.ns
    cluster.kubectl.apply(
        secret("auth", ns, {"username": USER.encode(), "password": PASSWORD.encode()}),
        ca_secret("ca", ns, server),
        secret("cosign-pub", ns, {"cosign.pub": b"unused"}),
        http_repository("podinfo", ns, server.url, secretRef={"name": "auth"},
                        certSecretRef={"name": "ca"}),
        helmrelease("podinfo", ns, "podinfo", "podinfo",
                    {"provider": "cosign", "secretRef": {"name": "cosign-pub"}},
                    releaseName="podinfo", targetNamespace=ns))
    operator.start()
    name = f"{ns}-podinfo"
    verified = wait_condition(cluster, operator, "helmchart", name, "False",
                              type_="SourceVerified", reason="VerificationError")
    assert verified["message"].startswith("chart verification error: not implemented: "), verified
    build = condition(cluster, "helmchart", name, "BuildFailed")
    assert (build["status"], build["reason"]) == ("True", "ChartVerificationError")
    release = wait_condition(cluster, operator, "helmrelease", "podinfo", "False")
    assert "chart verification error: not implemented" in release["message"]
    assert not [h for h in server.hits if h.path.endswith(".tgz")]  # nothing downloaded
    out = cluster.kubectl("get", "secrets", "-n", ns, "-l", "owner=helm", "-o", "name").stdout
    assert out.strip() == ""


@EMULATOR_ONLY
def test_a_hostile_index_is_refused_and_the_last_one_stays(
        cluster: Cluster, repo_dir: Path, tmp_path: Path, operator: Operator) -> None:
    ns = cluster.ns
    with run_helm_repository(repo_dir, workdir=tmp_path / "plain", tls=False) as plain:
        cluster.kubectl.apply(
            http_repository("podinfo", ns, plain.url),
            helmchart("podinfo", ns, "podinfo", "0.2.0", "podinfo", None))
        operator.start()
        wait_condition(cluster, operator, "helmchart", "podinfo", "True")
        before = cluster.status("helmrepository", ns, "podinfo")["artifact"]
        # a "billion laughs" index: a few hundred bytes expanding to 10**12 values
        lines = ["apiVersion: v1", 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
        lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 12)]
        (repo_dir / "index.yaml").write_text("\n".join(lines) + "\n")
        cluster.request_reconcile("helmrepository", ns, "podinfo")
        cond = wait_condition(cluster, operator, "helmrepository", "podinfo", "False",
                              reason="IndexationFailed")
        assert "expands to more than 5,000,000 values" in cond["message"], cond
        assert cluster.status("helmrepository", ns, "podinfo")["artifact"] == before
        assert condition(cluster, "helmchart", "podinfo")["status"] == "True"
        assert cluster.revision(ns, "podinfo") == "0.2.0"


@EMULATOR_ONLY
def test_a_new_version_in_the_index_upgrades_the_release(
        cluster: Cluster, helm_env: HelmEnv, repo_dir: Path, server: HelmRepoServer,
        operator: Operator) -> None:
    ns = cluster.ns
    cluster.kubectl.apply(
        *auth_repository("podinfo", ns, server),
        helmrelease("podinfo", ns, "podinfo", "podinfo", None, version="*",
                    releaseName="podinfo", targetNamespace=ns))
    operator.start()
    wait_condition(cluster, operator, "helmrelease", "podinfo", "True", timeout=90)
    # 0.4.0 published: packaged and the index written again by helm
    build_repository(helm_env, repo_dir, [("podinfo", "0.4.0")])
    cluster.request_reconcile("helmrepository", ns, "podinfo")  # its interval is 10m
    # the new index re-queues the chart (no request of its own), which re-queues the release
    cond = wait_condition(cluster, operator, "helmrelease", "podinfo", "True",
                          reason="UpgradeSucceeded", timeout=90)
    assert cond["message"] == (f"Helm upgrade succeeded for release {ns}/podinfo.v2 with chart "
                               "podinfo@0.4.0")
    assert cluster.revision(ns, f"{ns}-podinfo") == "0.4.0"
    assert len(server.requests("podinfo-0.4.0.tgz")) == 1
    assert len(server.requests("podinfo-0.2.0.tgz")) == 1

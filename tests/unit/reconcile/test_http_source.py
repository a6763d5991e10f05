"""An HTTP HelmRepository's reconcile, and a HelmChart of it, against an HTTP repository
answered from memory (the client's transport seam): what is stored, what Ready says, and
what is not done again for an unchanged index."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from chartguard.api import HelmChart, HelmRepository
from chartguard.api import conditions as c
from chartguard.api.status import HelmChartStatus, HelmRepositoryStatus
from chartguard.oci import HelmRepositoryClient
from chartguard.oci.transport import Request
from chartguard.reconcile.helmchart import ChartEnv, reconcile_helmchart
from chartguard.reconcile.helmrepository import reconcile_helmrepository
from chartguard.reconcile.http_source import HTTPConnection, HTTPSources
from chartguard.reconcile.seams import SecretNotFoundError
from chartguard.store import ArtifactStore
from chartguard_testing.memory_registry import FakeClock, MockResponse, MockTransport, chart_archive

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URL = "https://charts.example.com/stable"
ARCHIVE = chart_archive("demo", "1.0.0")
PASSWORD = "pa55-word"


def index_yaml(digest: str | None = None) -> bytes:
    digest = digest or hashlib.sha256(ARCHIVE).hexdigest()
    return yaml.safe_dump({"apiVersion": "v1", "entries": {"demo": [
        {"name": "demo", "version": "1.0.0", "urls": ["demo-1.0.0.tgz"], "digest": digest}]}}
    ).encode()


class Repo:
    """The repository's files; ETags only when ``etags``."""

    def __init__(self, etags: bool = True) -> None:
        self.files = {"index.yaml": index_yaml(), "demo-1.0.0.tgz": ARCHIVE}
        self.etags = etags
        self.transport = MockTransport(self.handle)

    def handle(self, request: Request) -> MockResponse:
        name = request.url.rsplit("/", 1)[1]
        data = self.files.get(name)
        if data is None:
            return MockResponse(404)
        tag = '"' + hashlib.sha256(data).hexdigest() + '"'
        if self.etags and request.headers.get("If-None-Match") == tag:
            return MockResponse(304)
        return MockResponse(200, data, headers={"ETag": tag} if self.etags else {})

    def gets(self, name: str) -> int:
        return sum(1 for r in self.transport.requests if r.url.endswith(f"/{name}"))


class Secrets:
    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        if name != "auth":
            raise SecretNotFoundError(name)
        return {"username": b"user", "password": PASSWORD.encode()}


class Objects:
    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], Mapping[str, object]] = {}

    def get(self, namespace: str, name: str) -> Mapping[str, object] | None:
        return self.bodies.get((namespace, name))


def sources(tmp_path: Path, repo: Repo) -> HTTPSources:
    clock = FakeClock()

    def factory(conn: HTTPConnection) -> HelmRepositoryClient:
        return HelmRepositoryClient(conn.url, credentials=conn.credentials,
                                    transport=repo.transport, clock=clock, sleep=clock.sleep)

    return HTTPSources(ArtifactStore(tmp_path, suffix=".yaml"), client_factory=factory)


def repository(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "stable", "namespace": "default", "generation": 1},
            "spec": {"url": URL, "interval": "10m", "secretRef": {"name": "auth"}, **spec}}


def reconcile(body: dict[str, Any], status: HelmRepositoryStatus, http: HTTPSources) -> Any:
    return reconcile_helmrepository(HelmRepository.from_object(body), status, Secrets(),
                                    now=NOW, http=http, artifact_url_base="http://store/")


def ready(conditions: Any) -> tuple[str, str, str]:
    cond = c.get_condition(conditions, c.READY)
    assert cond is not None
    return cond["status"], cond["reason"], cond["message"]


@pytest.mark.parametrize("etags", [True, False])
def test_the_index_is_stored_once_and_an_unchanged_one_not_parsed_again(
        tmp_path: Path, etags: bool) -> None:
    repo = Repo(etags=etags)
    http = sources(tmp_path, repo)
    first = reconcile(repository(), HelmRepositoryStatus(), http)
    digest = "sha256:" + hashlib.sha256(repo.files["index.yaml"]).hexdigest()
    art = first.status.artifact
    assert art is not None
    assert (art.revision, art.digest, art.size) == (digest, digest, len(repo.files["index.yaml"]))
    assert art.url == f"http://store/sha256/{digest[7:]}.yaml" == first.status.url
    assert ready(first.status.conditions) == ("True", "Succeeded",
                                              f"stored artifact: revision '{digest}'")
    assert [e.reason for e in first.events] == ["NewArtifact"]
    assert first.events[0].annotations["source.toolkit.fluxcd.io/revision"] == digest
    assert http.store.read(digest) == repo.files["index.yaml"]
    second = reconcile(repository(), first.status, http)
    assert second.actions == (("not-modified",) if etags else ("unchanged",))
    assert http.parses == 1
    assert second.status.artifact == art
    assert not second.events
    assert PASSWORD not in repr(second.status.to_status())


def test_a_broken_index_keeps_the_last_one(tmp_path: Path) -> None:
    repo = Repo(etags=False)
    http = sources(tmp_path, repo)
    good = reconcile(repository(), HelmRepositoryStatus(), http)
    repo.files["index.yaml"] = b"entries: {}\n"  # no apiVersion
    bad = reconcile(repository(), good.status, http)
    assert bad.status.artifact == good.status.artifact
    status, reason, message = ready(bad.status.conditions)
    assert (status, reason) == ("False", "IndexationFailed")
    assert message.startswith("failed to load Helm repository from index YAML: the index of "
                              "HelmRepository default/stable has no apiVersion")
    assert bad.failure is not None
    assert not bad.failure.stalled


def test_a_missing_secret_is_authentication_failed(tmp_path: Path) -> None:
    out = reconcile(repository(secretRef={"name": "gone"}), HelmRepositoryStatus(),
                    sources(tmp_path, Repo()))
    assert ready(out.status.conditions) == (
        "False", "AuthenticationFailed", "failed to get authentication secret 'default/gone': "
        "not found; create it or fix the reference")


def chart_body(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": "demo", "namespace": "default", "generation": 1},
            "spec": {"chart": "demo", "version": "*", "interval": "10m",
                     "sourceRef": {"kind": "HelmRepository", "name": "stable"}, **spec}}


def chart_env(tmp_path: Path, repo: Repo) -> tuple[ChartEnv, Objects, HTTPSources]:
    http = sources(tmp_path / "indexes", repo)
    objects = Objects()
    env = ChartEnv(secrets=Secrets(), repositories=objects,
                   registries=None,  # type: ignore[arg-type]
                   verifiers=None,  # type: ignore[arg-type]
                   verified=None,  # type: ignore[arg-type]
                   store=ArtifactStore(tmp_path / "charts"), http=http,
                   artifact_url_base="http://store/", now=lambda: NOW)
    return env, objects, http


def test_a_chart_waits_for_the_index_then_is_downloaded_once(tmp_path: Path) -> None:
    repo = Repo()
    env, objects, http = chart_env(tmp_path, repo)
    body = repository()
    objects.bodies[("default", "stable")] = body
    chart = HelmChart.from_object(chart_body())
    waiting = reconcile_helmchart(chart, HelmChartStatus(), env)
    assert waiting.failure is not None
    assert (waiting.failure.reason, waiting.failure.message) == (
        "NoSourceArtifact", "no artifact available for HelmRepository source 'stable'")
    stored = reconcile(body, HelmRepositoryStatus(), http)
    objects.bodies[("default", "stable")] = {**body, "status": stored.status.to_status()}
    first = reconcile_helmchart(chart, HelmChartStatus(), env)
    assert first.failure is None
    art = first.status.artifact
    assert art is not None
    assert (art.revision, art.digest) == ("1.0.0", "sha256:" + hashlib.sha256(ARCHIVE).hexdigest())
    assert ready(first.status.conditions) == ("True", "ChartPullSucceeded",
                                              "pulled 'demo' chart with version '1.0.0'")
    assert first.status.observed_source_artifact_revision == stored.status.artifact.revision  # type: ignore[union-attr]
    again = reconcile_helmchart(chart, first.status, env, verified_before=first.verified)
    assert again.actions == ("unchanged",)
    assert repo.gets("demo-1.0.0.tgz") == 1
    assert http.parses == 1


def test_verify_is_refused_and_nothing_is_downloaded(tmp_path: Path) -> None:
    repo = Repo()
    env, objects, http = chart_env(tmp_path, repo)
    stored = reconcile(repository(), HelmRepositoryStatus(), http)
    objects.bodies[("default", "stable")] = {**repository(), "status": stored.status.to_status()}
    chart = HelmChart.from_object(chart_body(verify={"provider": "cosign"}))
    out = reconcile_helmchart(chart, HelmChartStatus(), env)
    assert out.failure is not None
    assert out.failure.stalled
    verified = c.get_condition(out.status.conditions, c.SOURCE_VERIFIED)
    assert verified is not None
    assert (verified["status"], verified["reason"]) == ("False", "VerificationError")
    assert verified["message"].startswith("chart verification error: not implemented: ")
    build = c.get_condition(out.status.conditions, c.BUILD_FAILED)
    assert build is not None
    assert build["reason"] == "ChartVerificationError"
    assert out.status.artifact is None
    assert repo.gets("demo-1.0.0.tgz") == 0


def test_a_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    repo = Repo()
    repo.files["index.yaml"] = index_yaml("0" * 64)
    env, objects, http = chart_env(tmp_path, repo)
    stored = reconcile(repository(), HelmRepositoryStatus(), http)
    objects.bodies[("default", "stable")] = {**repository(), "status": stored.status.to_status()}
    out = reconcile_helmchart(HelmChart.from_object(chart_body()), HelmChartStatus(), env)
    assert out.failure is not None
    assert out.failure.reason == "ChartPullError"
    assert "digest mismatch" in out.failure.message
    assert out.status.artifact is None
    assert not env.store.digests()

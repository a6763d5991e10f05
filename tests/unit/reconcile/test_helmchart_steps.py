"""The HelmChart steps without processes: a fake registry, real keys and real verification."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chartguard import cel, metrics
from chartguard.api import HelmChart
from chartguard.api import conditions as c
from chartguard.api.status import HelmChartStatus
from chartguard.oci import (
    ChartArtifact,
    ChartReference,
    RegistryCredentials,
    RegistryUnreachableError,
    ResolvedChart,
    SignatureArtifacts,
    SignatureLayer,
    TLSConfig,
)
from chartguard.reconcile import helmchart
from chartguard.reconcile.helmchart import ChartEnv, ChartResult, Verified, reconcile_helmchart
from chartguard.reconcile.seams import SecretNotFoundError, SecretUnreadableError
from chartguard.reconcile.shared import Verifiers
from chartguard.store import ArtifactStore
from chartguard.verify import VerifiedCache
from chartguard_testing import cosign_signer as cs
from chartguard_testing.scrape import Samples

NS = "flux-system"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
REPO = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": NS},
        "spec": {"type": "oci", "url": "oci://registry.example.com/charts", "interval": "5m"}}


def chart_object(version: str = "1.x", generation: int = 1,
                 verify: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": "demo", "namespace": NS, "generation": generation},
            "spec": {"chart": "demo", "version": version, "interval": "10m",
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                     "verify": verify if verify is not None else {
                         "provider": "cosign", "secretRef": {"name": "cosign-pub"}}}}


@dataclass
class FakeRegistry:
    """Versions -> charts, each signed or not; records every call."""

    charts: dict[str, ChartArtifact] = field(default_factory=dict)
    signatures: dict[str, tuple[SignatureLayer, ...]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False
    #: digest -> the layers of its ``.att`` manifest
    attestations: dict[str, tuple[SignatureLayer, ...]] = field(default_factory=dict)

    def push(self, version: str, key: cs.KeyPair | None) -> ChartArtifact:
        layer = f"chart demo {version}".encode()
        digest = "sha256:" + hashlib.sha256(f"manifest {version}".encode()).hexdigest()
        art = ChartArtifact(name="demo", version=version, digest=digest, manifest=b"{}",
                            config=b"{}", layer=layer)
        self.charts[version] = art
        if key is not None:
            sig = cs.sign_legacy_with_key(
                key, cs.simple_signing_payload("registry.example.com/charts/demo", digest))
            self.signatures[digest] = (SignatureLayer(
                sig.payload, "application/vnd.dev.cosign.simplesigning.v1+json",
                dict(sig.annotations), "tag sig layer 0"),)
        return art

    def _up(self) -> None:
        if self.down:
            raise RegistryUnreachableError("registry.example.com: connection refused")

    def resolve(self, ref: ChartReference, version: str = "*") -> ResolvedChart:
        self.calls.append("resolve")
        self._up()
        newest = max(self.charts, key=lambda v: tuple(int(p) for p in v.split(".")))
        art = self.charts[newest]
        return ResolvedChart(version=newest, tag=newest, digest=art.digest)

    def fetch_chart(self, ref: ChartReference, digest: str, *,
                    version: str | None = None) -> ChartArtifact:
        self.calls.append("fetch")
        self._up()
        return next(a for a in self.charts.values() if a.digest == digest)

    def find_signatures(self, ref: ChartReference, digest: str, *,
                        attestations: bool = False) -> SignatureArtifacts:
        self.calls.append("signatures")
        self._up()
        return SignatureArtifacts(digest=digest, legacy=self.signatures.get(digest, ()),
                                  looked_at=("tag sha256-….sig",),
                                  attestations=self.attestations.get(digest, ())
                                  if attestations else ())


@dataclass
class World:
    registry: FakeRegistry
    secrets: dict[tuple[str, str], dict[str, bytes]]
    repos: dict[tuple[str, str], Mapping[str, Any]]
    env: ChartEnv


class _Secrets:
    def __init__(self, world: dict[tuple[str, str], dict[str, bytes]]) -> None:
        self.world = world

    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        if name == "forbidden":
            raise SecretUnreadableError("403 Forbidden")
        try:
            return self.world[(namespace, name)]
        except KeyError:
            raise SecretNotFoundError(name) from None


class _Repos:
    def __init__(self, world: dict[tuple[str, str], Mapping[str, Any]]) -> None:
        self.world = world

    def get(self, namespace: str, name: str) -> Mapping[str, object] | None:
        return self.world.get((namespace, name))


class _OneRegistry:
    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry

    def client(self, key: str, *, plain_http: bool, credentials: RegistryCredentials | None,
               tls: TLSConfig | None) -> FakeRegistry:
        return self.registry


@pytest.fixture
def world(tmp_path: Path) -> World:
    registry = FakeRegistry()
    secrets: dict[tuple[str, str], dict[str, bytes]] = {}
    repos: dict[tuple[str, str], Mapping[str, Any]] = {(NS, "charts"): REPO}
    env = ChartEnv(secrets=_Secrets(secrets), repositories=_Repos(repos),
                   registries=_OneRegistry(registry), verifiers=Verifiers(),
                   verified=VerifiedCache(), store=ArtifactStore(tmp_path / "store"),
                   artifact_url_base="http://chartguard.flux-system.svc", now=lambda: NOW)
    return World(registry, secrets, repos, env)


def run(world: World, status: HelmChartStatus, *, before: Verified | None = None,
        obj: dict[str, Any] | None = None) -> ChartResult:
    chart = HelmChart.from_object(obj or chart_object())
    return reconcile_helmchart(chart, status, world.env, verified_before=before)


def cond(result: ChartResult, type_: str) -> Mapping[str, Any] | None:
    return c.get_condition(result.status.conditions, type_)


def test_signed_chart_is_verified_stored_and_reported_as_flux_does(world: World) -> None:
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    art = world.registry.push("1.0.0", key)
    result = run(world, HelmChartStatus())
    assert result.failure is None
    assert cond(result, "SourceVerified") == {
        "type": "SourceVerified", "status": "True", "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "Succeeded",
        "message": "verified signature of version 1.0.0"}
    ready = cond(result, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True", "ChartPullSucceeded", "pulled 'demo' chart with version '1.0.0'")
    artifact = result.status.artifact
    assert artifact is not None
    assert artifact.revision == f"1.0.0@{art.digest}"
    assert artifact.digest == "sha256:" + hashlib.sha256(art.layer).hexdigest()
    assert world.env.store.read(artifact.digest) == art.layer
    assert artifact.url == "http://chartguard.flux-system.svc/" + artifact.path
    assert result.status.observed_generation == 1
    assert result.status.observed_chart_name == "demo"
    assert [e.reason for e in result.events] == ["ChartPullSucceeded"]
    assert result.secrets == {(NS, "cosign-pub")}
    assert world.registry.calls == ["resolve", "signatures", "fetch"]


def test_unchanged_digest_and_policy_cost_only_the_resolve(world: World) -> None:
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    world.registry.push("1.0.0", key)
    first = run(world, HelmChartStatus())
    world.registry.calls.clear()
    second = run(world, first.status, before=first.verified)
    assert world.registry.calls == ["resolve"]
    assert second.status == first.status
    assert second.events == ()
    assert second.actions == ("unchanged",)


def test_rotated_key_reverifies_without_downloading_the_chart_again(world: World) -> None:
    old, new = cs.generate_key_pair(), cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": old.public_pem}
    world.registry.push("1.0.0", old)
    first = run(world, HelmChartStatus())
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": new.public_pem}
    world.registry.calls.clear()
    second = run(world, first.status, before=first.verified)
    assert world.registry.calls == ["resolve", "signatures"]
    verified = cond(second, "SourceVerified")
    assert verified is not None
    assert verified["status"] == "False"
    assert "signature does not match" in verified["message"]
    assert second.status.artifact == first.status.artifact  # kept, file too
    assert second.verified is None


def test_unsigned_new_version_keeps_the_previous_artifact(world: World) -> None:
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    world.registry.push("1.0.0", key)
    first = run(world, HelmChartStatus())
    new = world.registry.push("1.1.0", None)
    files = world.env.store.digests()
    second = run(world, first.status, before=first.verified)
    assert second.status.artifact == first.status.artifact
    assert world.env.store.digests() == files  # nothing new stored
    verified, ready, build = (cond(second, t) for t in ("SourceVerified", "Ready",
                                                          "BuildFailed"))
    assert verified is not None
    assert ready is not None
    assert build is not None
    assert (verified["status"], verified["reason"]) == ("False", "VerificationError")
    assert f"no signature for {new.digest}" in verified["message"]
    assert "version '1.1.0'" in verified["message"]
    assert (ready["status"], ready["reason"]) == ("False", "VerificationError")
    assert build["reason"] == "ChartVerificationError"
    outdated = cond(second, "ArtifactOutdated")
    assert outdated is not None
    assert outdated["message"] == "new 'demo' chart with version '1.1.0'"
    assert "fetch" not in world.registry.calls[3:]  # refused before any download
    assert [e.type for e in second.events] == ["Warning"]


def test_missing_key_secret_is_a_verification_error_naming_it(world: World) -> None:
    world.registry.push("1.0.0", cs.generate_key_pair())
    result = run(world, HelmChartStatus())
    verified = cond(result, "SourceVerified")
    assert verified is not None
    assert verified["message"] == ("failed to verify the signature using provider 'cosign': "
                                   "secret 'flux-system/cosign-pub' not found")
    assert result.status.artifact is None
    assert result.requeue_after is not None  # retried: the Secret may be created


def test_a_key_secret_the_api_refuses_is_a_verification_error_saying_why(
        world: World) -> None:
    world.registry.push("1.0.0", cs.generate_key_pair())
    obj = chart_object()
    obj["spec"]["verify"]["secretRef"]["name"] = "forbidden"
    result = run(world, HelmChartStatus(), obj=obj)
    verified = cond(result, "SourceVerified")
    assert verified is not None
    assert verified["message"] == ("failed to verify the signature using provider 'cosign': "
                                   "secret 'flux-system/forbidden' could not be read: "
                                   "403 Forbidden")
    assert result.status.artifact is None
    assert result.failure is not None
    assert not result.failure.stalled  # retried


def test_registry_down_is_fetch_failed_and_generation_not_observed(world: World) -> None:
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    world.registry.push("1.0.0", key)
    first = run(world, HelmChartStatus())
    world.registry.down = True
    second = run(world, first.status, before=first.verified,
                 obj=chart_object(generation=2))
    failed = cond(second, "FetchFailed")
    assert failed is not None
    assert failed["reason"] == "ChartPullError"
    assert "connection refused" in failed["message"]
    assert second.status.observed_generation == 1
    assert second.status.artifact == first.status.artifact
    # SourceVerified of the stored artifact still holds; Ready says what is wrong now
    ready = cond(second, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "ChartPullError")
    world.registry.down = False
    third = run(world, second.status, before=second.verified, obj=chart_object(generation=2))
    assert cond(third, "FetchFailed") is None
    assert third.status.observed_generation == 2
    assert [e.reason for e in third.events] == ["ChartPullSucceeded"]  # recovery noted


def test_unsupported_sources_stall_without_pretending(world: World) -> None:
    git = chart_object(verify={})
    del git["spec"]["verify"]
    git["spec"]["sourceRef"] = {"kind": "GitRepository", "name": "repo"}
    result = run(world, HelmChartStatus(), obj=git)
    stalled = cond(result, "Stalled")
    assert stalled is not None
    assert "not served by chartguard yet" in stalled["message"]
    assert result.requeue_after is None
    world.repos[(NS, "charts")] = {**REPO, "spec": {"url": "https://charts.example.com",
                                                    "interval": "5m"}}
    result = run(world, HelmChartStatus())
    stalled = cond(result, "Stalled")
    assert stalled is not None
    assert "type 'default'" in stalled["message"]
    assert "not served by chartguard yet" in stalled["message"]
    ready = cond(result, "Ready")
    assert ready is not None
    assert ready["status"] == "False"


def test_missing_store_file_is_fetched_and_verified_again_without_status_change(
        world: World) -> None:
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    world.registry.push("1.0.0", key)
    first = run(world, HelmChartStatus())
    assert first.status.artifact is not None
    world.env.store.path(first.status.artifact.digest).unlink()
    world.registry.calls.clear()
    # a new process: nothing verified before, an empty VerifiedCache
    fresh = ChartEnv(**{**world.env.__dict__, "verified": VerifiedCache()})
    world.env = fresh
    again = run(world, first.status)
    assert world.registry.calls == ["resolve", "signatures", "fetch"]
    assert again.status == first.status
    assert again.events == ()
    assert world.env.store.has(first.status.artifact.digest)


def test_verifications_and_reused_verifications_are_counted_for_metrics(world: World) -> None:
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    world.registry.push("1.0.0", key)

    def counting(step: Callable[[], object]) -> Samples:
        before = Samples.parse(metrics.exposition())
        step()
        return Samples.parse(metrics.exposition()).since(before)

    verifications, hits, misses = ("chartguard_verifications_total",
                                   "chartguard_verification_cache_hits_total",
                                   "chartguard_verification_cache_misses_total")
    first: list[ChartResult] = []
    moved = counting(lambda: first.append(run(world, HelmChartStatus())))
    assert moved.total(verifications, outcome="verified", format="legacy_key") == 1
    assert (moved.total(hits), moved.total(misses)) == (0, 1)
    # the same object again: verified before, nothing done
    moved = counting(lambda: run(world, first[0].status, before=first[0].verified))
    assert moved.total(verifications) == 0
    assert (moved.total(hits), moved.total(misses)) == (1, 0)
    # another object of the same digest and policy: the process-wide cache answers
    world.registry.calls.clear()
    moved = counting(lambda: run(world, HelmChartStatus()))
    assert world.registry.calls == ["resolve", "fetch"]  # no signatures read
    assert moved.total(verifications) == 0
    assert (moved.total(hits), moved.total(misses)) == (1, 0)
    # a new unsigned version, then a key that did not sign
    world.registry.push("1.1.0", None)
    moved = counting(lambda: run(world, first[0].status, before=first[0].verified))
    assert moved.total(verifications, outcome="unsigned", format="none") == 1
    assert moved.total(verifications) == 1
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": cs.generate_key_pair().public_pem}
    world.registry.push("1.2.0", key)
    moved = counting(lambda: run(world, first[0].status, before=first[0].verified))
    assert moved.total(verifications, outcome="failed", format="none") == 1
    assert moved.total(misses) == 1
    # no spec.verify: no verification and no cache to ask
    unverified = chart_object()
    del unverified["spec"]["verify"]
    moved = counting(lambda: run(world, HelmChartStatus(), obj=unverified))
    assert moved.total(verifications) + moved.total(hits) + moved.total(misses) == 0


def test_a_new_process_binds_the_stored_file_to_the_digest_it_verified_again(
        world: World) -> None:
    """status.artifact.digest is not trusted to name the file of a verified manifest: a new
    process fetches the manifest's layer and hashes it before the stored file stands for it,
    so a status pointing at another chart's file in the store is put right."""
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    world.registry.push("1.0.0", key)
    first = run(world, HelmChartStatus())
    assert first.status.artifact is not None
    other = world.env.store.put(b"another verified chart, stored here too")
    forged = HelmChartStatus(**{**first.status.__dict__, "artifact": type(
        first.status.artifact)(**{**first.status.artifact.__dict__, "digest": other})})
    world.env = ChartEnv(**{**world.env.__dict__, "verified": VerifiedCache()})
    world.registry.calls.clear()
    again = run(world, forged)  # nothing verified before: a new process
    assert world.registry.calls == ["resolve", "signatures", "fetch"]
    assert again.status.artifact is not None
    assert again.status.artifact.digest == first.status.artifact.digest
    assert again.verified is not None
    assert again.verified.artifact == first.status.artifact.digest
    # the same process, next interval, trusts what it bound itself: no download
    world.registry.calls.clear()
    steady = run(world, again.status, before=again.verified)
    assert world.registry.calls == ["resolve"]
    assert steady.verified is not None
    assert steady.verified.artifact == first.status.artifact.digest
    # a status changed under the running process is not what it bound: fetched and put right
    world.registry.calls.clear()
    fixed = run(world, forged, before=steady.verified)
    assert world.registry.calls == ["resolve", "fetch"]
    assert fixed.status.artifact is not None
    assert fixed.status.artifact.digest == first.status.artifact.digest


def test_values_files_are_refused_naming_the_field_before_any_registry_call(
        world: World) -> None:
    """Merging values files would package another chart than the signed one: Stalled."""
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    world.registry.push("1.0.0", key)
    obj = chart_object()
    obj["spec"]["valuesFiles"] = ["values-prod.yaml"]
    result = run(world, HelmChartStatus(), obj=obj)
    assert world.registry.calls == []
    stalled = cond(result, "Stalled")
    assert stalled is not None
    assert stalled["reason"] == "ValuesFilesError"
    assert stalled["message"].startswith("spec.valuesFiles (and valuesFile) are not supported")
    assert result.status.artifact is None
    assert result.requeue_after is None


# -- attestation requirements ----------------------------------------------------------------

SLSA = "https://slsa.dev/provenance/v1"


def _attested(world: World) -> tuple[cs.KeyPair, dict[str, Any]]:
    """A signed chart with SLSA provenance; the HelmChart requires it with a CEL policy."""
    key = cs.generate_key_pair()
    world.secrets[(NS, "cosign-pub")] = {"cosign.pub": key.public_pem}
    art = world.registry.push("1.0.0", key)
    _attest(world, key, art.digest)
    return key, chart_object(verify={
        "provider": "cosign", "secretRef": {"name": "cosign-pub"},
        "attestations": [{"predicateType": SLSA, "policy": "predicate.builder == 'main'"}]})


def _attest(world: World, key: cs.KeyPair, digest: str) -> None:
    layer = cs.attestation_layer_with_key(key, digest, SLSA, {"builder": "main"},
                                          source="tag att layer 0")
    world.registry.attestations[digest] = (SignatureLayer(
        layer.payload, "application/vnd.dsse.envelope.v1+json", dict(layer.annotations),
        layer.source),)


def test_a_busy_cel_sandbox_keeps_an_unchanged_verified_chart_verified(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy compile fails for a sandbox reason (busy, restarted, deadline): the verdict of
    an unchanged, verified chart stays; a chart that must be verified again fails, transient."""
    key, obj = _attested(world)
    # a unit test starts no sandbox: the policy compiles and holds (the real sandbox:
    # tests/integration/verify/test_attestation_policies.py)
    monkeypatch.setattr(helmchart, "check_attestation_policy", lambda policy: None)
    monkeypatch.setattr(cel, "evaluate_boolean", lambda *args, **kwargs: True)
    first = run(world, HelmChartStatus(), obj=obj)
    assert first.failure is None, first.failure
    assert first.verified is not None

    def busy(policy: str) -> None:
        raise cel.EvaluationError("the CEL sandbox was busy with other expressions for 10s")

    monkeypatch.setattr(helmchart, "check_attestation_policy", busy)
    second = run(world, first.status, before=first.verified, obj=obj)
    assert second.failure is None, second.failure
    assert second.verified == first.verified
    assert second.actions == ("unchanged",)
    verified, ready = cond(second, "SourceVerified"), cond(second, "Ready")
    assert verified is not None
    assert verified["status"] == "True"
    assert ready is not None
    assert ready["status"] == "True"

    # a new version must be verified: not without its policy (transient, the old one stays)
    newer = world.registry.push("1.1.0", key)
    _attest(world, key, newer.digest)
    third = run(world, second.status, before=second.verified, obj=obj)
    assert third.failure is not None
    assert not third.failure.stalled
    verified = cond(third, "SourceVerified")
    assert verified is not None
    assert verified["status"] == "False"
    assert verified["reason"] == "VerificationError"
    assert "spec.verify.attestations[0].policy could not be compiled" in verified["message"]
    assert "the CEL sandbox was busy" in verified["message"]
    assert third.status.artifact == first.status.artifact
    assert third.verified is None
    assert "signatures" not in world.registry.calls[-2:]

"""The HelmChart steps with ``verify.provider: pgp``, without processes: a fake registry whose
charts carry a provenance layer, and :func:`verify_provenance` replaced by a stand-in (the real
``gpgv`` runs in tests/integration/verify/test_pgp_provenance.py and the operator tests).

What is pinned here: the chart is fetched once, with its provenance, and the bytes that were
verified are the bytes stored; an unchanged digest under an unchanged keyring costs only the
resolve; another keyring verifies again; a failure keeps the last artifact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chartguard.api import HelmChart
from chartguard.api import conditions as c
from chartguard.api.status import HelmChartStatus
from chartguard.oci import (
    ChartArtifact,
    ChartReference,
    RegistryCredentials,
    ResolvedChart,
    SignatureArtifacts,
    TLSConfig,
)
from chartguard.reconcile import helmchart
from chartguard.reconcile.helmchart import ChartEnv, ChartResult, Verified, reconcile_helmchart
from chartguard.reconcile.seams import SecretNotFoundError
from chartguard.reconcile.shared import Verifiers
from chartguard.store import ArtifactStore
from chartguard.verify import VerificationFailedError, VerifiedCache
from chartguard.verify.pgp import PGPKeyring, ProvenanceResult

NS = "flux-system"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
REPO = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": NS},
        "spec": {"type": "oci", "url": "oci://registry.example.com/charts", "interval": "5m"}}
PGP = {"provider": "pgp", "secretRef": {"name": "pgp-keys"}}


def public_key_packet(seed: bytes) -> bytes:
    """An old-format OpenPGP public-key packet (tag 6, v4): enough for the keyring reader,
    which takes fingerprints from the packets; the stand-in verifier never uses the key."""
    body = b"\x04" + b"\x00\x00\x00\x01" + b"\x01" + b"\x00\x08" + seed[:1] + b"\x00\x08\x03"
    return bytes([0x80 | (6 << 2), len(body)]) + body


def chart_object(generation: int = 1) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": "demo", "namespace": NS, "generation": generation},
            "spec": {"chart": "demo", "version": "*", "interval": "10m", "verify": PGP,
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}


def provenance_for(layer: bytes, file_name: str) -> bytes:
    """What the stand-in verifier accepts: the file name and sha256 of the archive."""
    return f"signed {file_name} sha256:{hashlib.sha256(layer).hexdigest()}".encode()


@dataclass
class FakeRegistry:
    charts: dict[str, ChartArtifact] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def push(self, version: str, provenance: bytes | str | None = "good") -> ChartArtifact:
        layer = f"chart demo {version}".encode()
        prov = (provenance_for(layer, f"demo-{version}.tgz") if provenance == "good"
                else provenance if not isinstance(provenance, str) else None)
        digest = "sha256:" + hashlib.sha256(f"manifest {version}".encode()).hexdigest()
        art = ChartArtifact(name="demo", version=version, digest=digest, manifest=b"{}",
                            config=b"{}", layer=layer, provenance=prov)
        self.charts[version] = art
        return art

    def resolve(self, ref: ChartReference, version: str = "*") -> ResolvedChart:
        self.calls.append("resolve")
        newest = max(self.charts, key=lambda v: tuple(int(p) for p in v.split(".")))
        return ResolvedChart(version=newest, tag=newest, digest=self.charts[newest].digest)

    def fetch_chart(self, ref: ChartReference, digest: str, *, provenance: bool = False,
                    version: str | None = None) -> ChartArtifact:
        self.calls.append("fetch+prov" if provenance else "fetch")
        art = next(a for a in self.charts.values() if a.digest == digest)
        return art if provenance else ChartArtifact(
            name=art.name, version=art.version, digest=art.digest, manifest=art.manifest,
            config=art.config, layer=art.layer)

    def find_signatures(self, ref: ChartReference, digest: str) -> SignatureArtifacts:
        raise AssertionError("provider pgp never looks for cosign signatures")


class _Secrets:
    def __init__(self, world: dict[tuple[str, str], dict[str, bytes]]) -> None:
        self.world = world

    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        try:
            return self.world[(namespace, name)]
        except KeyError:
            raise SecretNotFoundError(name) from None


class _Repos:
    def get(self, namespace: str, name: str) -> Mapping[str, object] | None:
        return REPO if (namespace, name) == (NS, "charts") else None


class _OneRegistry:
    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry

    def client(self, key: str, *, plain_http: bool, credentials: RegistryCredentials | None,
               tls: TLSConfig | None) -> FakeRegistry:
        return self.registry


@dataclass
class World:
    registry: FakeRegistry
    secrets: dict[tuple[str, str], dict[str, bytes]]
    env: ChartEnv
    verified: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    registry = FakeRegistry()
    secrets = {(NS, "pgp-keys"): {"signer.gpg": public_key_packet(b"a")}}
    env = ChartEnv(secrets=_Secrets(secrets), repositories=_Repos(),
                   registries=_OneRegistry(registry), verifiers=Verifiers(),
                   verified=VerifiedCache(), store=ArtifactStore(tmp_path / "store"),
                   now=lambda: NOW)
    w = World(registry, secrets, env)

    def verify(keyring: PGPKeyring, provenance: bytes, chart: bytes,
               file_name: str) -> ProvenanceResult:
        digest = "sha256:" + hashlib.sha256(chart).hexdigest()
        w.verified.append((file_name, chart))
        if provenance != provenance_for(chart, file_name):
            raise VerificationFailedError(digest, ("the provenance's signature does not "
                                                   "verify (BAD signature)",))
        return ProvenanceResult(file=file_name, digest=digest, key=keyring.keys[0],
                                signer="Signer <s@example.com>", name="demo", version="")
    monkeypatch.setattr(helmchart, "verify_provenance", verify)
    return w


def run(world: World, status: HelmChartStatus, before: Verified | None = None) -> ChartResult:
    return reconcile_helmchart(HelmChart.from_object(chart_object()), status, world.env,
                               verified_before=before)


def cond(result: ChartResult, type_: str) -> Mapping[str, Any]:
    found = c.get_condition(result.status.conditions, type_)
    assert found is not None, type_
    return found


def test_the_chart_is_fetched_once_with_its_provenance_and_the_verified_bytes_are_stored(
        world: World) -> None:
    art = world.registry.push("1.0.0")
    result = run(world, HelmChartStatus())
    assert result.failure is None, result.failure
    assert world.registry.calls == ["resolve", "fetch+prov"]
    assert world.verified == [("demo-1.0.0.tgz", art.layer)]
    artifact = result.status.artifact
    assert artifact is not None
    assert artifact.revision == f"1.0.0@{art.digest}"
    assert world.env.store.read(artifact.digest) == art.layer
    verified = cond(result, "SourceVerified")
    assert (verified["status"], verified["message"]) == (
        "True", "verified signature of version 1.0.0")
    assert result.verified is not None
    assert result.verified.digest == art.digest
    assert result.verified.artifact == artifact.digest
    assert result.verified.policy.startswith("pgp:sha256:")
    assert result.secrets == {(NS, "pgp-keys")}


def test_unchanged_digest_and_keyring_cost_only_the_resolve_and_another_key_verifies_again(
        world: World) -> None:
    world.registry.push("1.0.0")
    first = run(world, HelmChartStatus())
    world.registry.calls.clear()
    second = run(world, first.status, first.verified)
    assert world.registry.calls == ["resolve"]
    assert second.actions == ("unchanged",)
    assert second.status == first.status
    # a key added to the Secret: another keyring fingerprint, verified again
    world.secrets[(NS, "pgp-keys")]["other.gpg"] = public_key_packet(b"b")
    world.registry.calls.clear()
    third = run(world, second.status, second.verified)
    assert world.registry.calls == ["resolve", "fetch+prov"]
    assert third.verified is not None
    assert first.verified is not None
    assert third.verified.policy != first.verified.policy
    assert third.status.artifact == first.status.artifact


@pytest.mark.parametrize(("provenance", "words"), [
    (b"signed demo-1.1.0.tgz sha256:" + b"0" * 64, "BAD signature"),
    (None, "no provenance (.prov) for demo-1.1.0.tgz (no provenance layer in manifest"),
], ids=["bad", "missing"])
def test_a_provenance_that_fails_keeps_the_last_verified_artifact(
        world: World, provenance: bytes | None, words: str) -> None:
    world.registry.push("1.0.0")
    first = run(world, HelmChartStatus())
    files = world.env.store.digests()
    new = world.registry.push("1.1.0", provenance)
    second = run(world, first.status, first.verified)
    assert second.status.artifact == first.status.artifact
    assert world.env.store.digests() == files  # nothing new stored
    assert second.verified is None
    verified = cond(second, "SourceVerified")
    assert (verified["status"], verified["reason"]) == ("False", "VerificationError")
    assert verified["message"].startswith(
        "chart verification error: failed to verify the signature of 'demo' version "
        f"'1.1.0' ({new.digest}) using provider 'pgp': ")
    assert words in verified["message"]
    assert cond(second, "BuildFailed")["reason"] == "ChartVerificationError"
    assert cond(second, "ArtifactOutdated")["message"] == \
        "new 'demo' chart with version '1.1.0'"


@pytest.mark.parametrize(("data", "words"), [
    ({"cosign.pub": b"-----BEGIN PUBLIC KEY-----"},
     "has no *.gpg (gpg --export KEYID) or *.asc"),
    ({"signer.gpg": b"not a key"}, "key signer.gpg: not an OpenPGP keyring"),
    (None, "secret 'flux-system/pgp-keys' not found"),
], ids=["no-keys", "garbage", "no-secret"])
def test_a_keyring_secret_that_cannot_be_used_is_a_verification_error_naming_it(
        world: World, data: dict[str, bytes] | None, words: str) -> None:
    world.registry.push("1.0.0")
    if data is None:
        del world.secrets[(NS, "pgp-keys")]
    else:
        world.secrets[(NS, "pgp-keys")] = data
    result = run(world, HelmChartStatus())
    verified = cond(result, "SourceVerified")
    assert verified["status"] == "False"
    assert verified["message"].startswith(
        "failed to verify the signature using provider 'pgp': ")
    assert words in verified["message"]
    assert result.status.artifact is None
    assert world.registry.calls == []  # refused before the registry is asked

"""An in-memory helm for release reconcile tests: helm's storage as helm keeps it, every call
recorded, any action made to fail on demand (with or without writing to storage)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chartguard.api.helmrelease import HelmRelease
from chartguard.api.status import HelmReleaseStatus
from chartguard.helm.errors import HelmError
from chartguard.helm.release import StoredRelease, TestHook
from chartguard.helm.runner import ChartFile
from chartguard.reconcile.release_inputs import ComposedValues, ReadyChart

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
T = "2025-03-01T12:00:00Z"


def digest_of(values: Mapping[str, Any]) -> str:
    data = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def values(data: Mapping[str, Any] | None = None) -> ComposedValues:
    data = dict(data or {})
    return ComposedValues(values=data, digest=digest_of(data))


@dataclass(frozen=True)
class ChartMeta:
    name: str
    version: str
    app_version: str


CHARTS: dict[str, ChartMeta] = {}


def chart(version: str = "1.0.0", *, name: str = "app", oci: str = "a",
          app_version: str = "v1") -> ReadyChart:
    """A verified chart; ``oci`` names its manifest digest (one letter, repeated)."""
    oci_digest = "sha256:" + oci * 64
    file_digest = "sha256:" + hashlib.sha256(f"{name}{version}{oci}".encode()).hexdigest()
    CHARTS[file_digest] = ChartMeta(name, version, app_version)
    return ReadyChart(file=ChartFile(Path(f"/store/{file_digest}.tgz"), file_digest),
                      chart_name=name, version=version, revision=f"{version}@{oci_digest}",
                      oci_digest=oci_digest, namespace="apps", name=f"apps-{name}")


def release(spec: Mapping[str, Any] | None = None, *, generation: int = 1,
            name: str = "app", namespace: str = "apps") -> HelmRelease:
    body = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "spec": {"interval": "10m", "chart": {"spec": {
            "chart": "app", "version": "1.x",
            "sourceRef": {"kind": "HelmRepository", "name": "repo"}}},
            **(spec or {})},
    }
    return HelmRelease.from_object(body)


@dataclass
class Failure:
    message: str
    storage_changed: bool
    times: int  # -1: always


@dataclass
class FakeHelm:
    """HelmActions and ReleaseStorage over one dict of release records."""

    records: dict[tuple[str, str], dict[int, StoredRelease]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    #: the chart's test hooks, by name
    hooks: tuple[str, ...] = ()
    #: a test hook that fails when tests run
    failing_hook: str = ""
    values_seen: list[Mapping[str, Any]] = field(default_factory=list)
    reads: int = 0

    # -- test control --------------------------------------------------------------------

    def fail(self, action: str, message: str = "boom", *, storage_changed: bool = True,
             times: int = -1) -> None:
        self.failures[action] = Failure(message, storage_changed, times)

    def heal(self, action: str) -> None:
        self.failures.pop(action, None)

    def put(self, rel: StoredRelease) -> StoredRelease:
        self.records.setdefault((rel.namespace, rel.name), {})[rel.version] = _sealed(rel)
        return self.records[(rel.namespace, rel.name)][rel.version]

    def actions(self) -> list[str]:
        return [a for a, _ in self.calls]

    def _failing(self, action: str) -> Failure | None:
        failure = self.failures.get(action)
        if failure is None:
            return None
        if failure.times > 0:
            failure.times -= 1
            if failure.times == 0:
                del self.failures[action]
        return failure

    # -- ReleaseStorage ------------------------------------------------------------------

    def history(self, namespace: str, name: str) -> list[StoredRelease]:
        self.reads += 1
        revs = self.records.get((namespace, name), {})
        return sorted(revs.values(), key=lambda r: r.version, reverse=True)

    # -- HelmActions ---------------------------------------------------------------------

    def install(self, release: HelmRelease, chart: ChartFile, values: Mapping[str, Any], *,
                description: str = "") -> StoredRelease:
        self.calls.append(("install", release.release_name))
        self.values_seen.append(values)
        live = self.history(release.release_namespace, release.release_name)
        if live and live[0].status != "uninstalled":
            raise HelmError("install", "cannot re-use a name that is still in use",
                            storage_changed=False)
        return self._release("install", release, chart, values, live)

    def upgrade(self, release: HelmRelease, chart: ChartFile, values: Mapping[str, Any], *,
                description: str = "") -> StoredRelease:
        self.calls.append(("upgrade", release.release_name))
        self.values_seen.append(values)
        live = self.history(release.release_namespace, release.release_name)
        if not live:
            raise HelmError("upgrade", "has no deployed releases", storage_changed=False)
        return self._release("upgrade", release, chart, values, live)

    def _release(self, action: str, release: HelmRelease, chart: ChartFile,
                 values: Mapping[str, Any], live: list[StoredRelease]) -> StoredRelease:
        failure = self._failing(action)
        if failure is not None and not failure.storage_changed:
            raise HelmError(action, failure.message, storage_changed=False)
        meta = CHARTS[chart.digest]
        version = live[0].version + 1 if live else 1
        if failure is None:
            # helm supersedes the deployed revision, or a failed newest one when none is
            deployed = [old for old in live if old.status == "deployed"] or [
                old for old in live[:1] if old.status == "failed"]
            for old in deployed:
                self.put(replace(old, status="superseded"))
        new = self.put(StoredRelease(
            name=release.release_name, namespace=release.release_namespace, version=version,
            status="failed" if failure else "deployed", chart_name=meta.name,
            chart_version=meta.version, app_version=meta.app_version,
            config_digest=digest_of(values), digest="", first_deployed=T, last_deployed=T,
            description=f"{action} {'failed' if failure else 'complete'}",
            test_hooks={n: TestHook() for n in self.hooks}))
        if failure is not None:
            raise HelmError(action, failure.message, storage_changed=True)
        return new

    def test(self, release: HelmRelease) -> StoredRelease:
        self.calls.append(("test", release.release_name))
        failure = self._failing("test")
        if failure is not None and not failure.storage_changed:
            raise HelmError("test", failure.message, storage_changed=False)
        cur = self.history(release.release_namespace, release.release_name)[0]
        hooks = {}
        failed = False
        for name in sorted(self.hooks):
            if failed:
                hooks[name] = cur.test_hooks.get(name, TestHook())
                continue
            failed = name == self.failing_hook
            hooks[name] = TestHook(T, T, "Failed" if failed else "Succeeded")
        tested = self.put(replace(cur, test_hooks=hooks))
        if failed or failure is not None:
            raise HelmError("test", f"1 error occurred: test {self.failing_hook} failed",
                            storage_changed=True)
        return tested

    def rollback(self, release: HelmRelease, version: int) -> StoredRelease:
        self.calls.append(("rollback", release.release_name))
        failure = self._failing("rollback")
        if failure is not None and not failure.storage_changed:
            raise HelmError("rollback", failure.message, storage_changed=False)
        live = self.history(release.release_namespace, release.release_name)
        target = next(r for r in live if r.version == version)
        for old in live:
            if old.status in ("deployed", "failed") and failure is None:
                self.put(replace(old, status="superseded"))
        new = self.put(replace(target, version=live[0].version + 1,
                               status="failed" if failure else "deployed",
                               description=f"Rollback to {version}",
                               test_hooks={n: TestHook() for n in self.hooks}))
        if failure is not None:
            raise HelmError("rollback", failure.message, storage_changed=True)
        return new

    def uninstall(self, release: HelmRelease) -> None:
        self.calls.append(("uninstall", release.release_name))
        key = (release.release_namespace, release.release_name)
        failure = self._failing("uninstall")
        if failure is not None and not failure.storage_changed:
            raise HelmError("uninstall", failure.message, storage_changed=False)
        live = self.history(*key)
        if not live:
            return
        if failure is not None:
            self.put(replace(live[0], status="uninstalling"))
            raise HelmError("uninstall", failure.message, storage_changed=True)
        if release.spec.uninstall.keep_history:
            self.put(replace(live[0], status="uninstalled", deleted=T))
        else:
            del self.records[key]

    def identity(self, release: HelmRelease) -> str:
        name = release.spec.service_account_name
        return f"system:serviceaccount:{release.metadata.namespace}:{name}" if name else ""

    def unlock(self, release: HelmRelease, version: int, *, description: str) -> StoredRelease:
        self.calls.append(("unlock", release.release_name))
        failure = self._failing("unlock")
        if failure is not None:
            raise HelmError("unlock", failure.message, storage_changed=False)
        cur = self.records[(release.release_namespace, release.release_name)][version]
        return self.put(replace(cur, status="failed", description=description))


def _sealed(rel: StoredRelease) -> StoredRelease:
    """The record with its digest: any change to it is a different digest."""
    body = repr(replace(rel, digest="", test_hooks={}))
    return replace(rel, digest="sha256:" + hashlib.sha256(body.encode()).hexdigest())


class Progress:
    """``on_progress``: every status written before a helm run."""

    def __init__(self) -> None:
        self.seen: list[HelmReleaseStatus] = []

    def __call__(self, status: HelmReleaseStatus) -> None:
        self.seen.append(status)


def later(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)

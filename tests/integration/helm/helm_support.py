"""Test equipment for the helm runner's tests: kubectl on the emulator, a ReleaseStorage over
helm's Secrets (real kubectl, ``-l owner=helm,name=<release>``, chartguard's decoder), charts made
by real helm, HelmRelease documents."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from typing import Any

import yaml

from chartguard.api import HelmRelease
from chartguard.helm.release import StoredRelease, decode_release_secret, failed_release_secret
from chartguard.helm.runner import ChartFile
from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.charts import HelmEnv


@dataclass
class Kube:
    """kubectl bound to one emulator."""

    api: KubeAPI

    def __call__(self, *args: str) -> str:
        proc = subprocess.run([tools.kubectl(), "--kubeconfig", str(self.api.kubeconfig), *args],
                              env=self.api.env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def replace(self, body: dict[str, Any]) -> None:
        proc = subprocess.run([tools.kubectl(), "--kubeconfig", str(self.api.kubeconfig),
                               "replace", "-f", "-"], input=json.dumps(body),
                              env=self.api.env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, f"kubectl replace: {proc.stderr}"

    def items(self, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
        out = self("get", kind, "-n", namespace, *selector, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items


@dataclass
class KubectlReleaseStorage:
    kube: Kube

    def history(self, namespace: str, name: str) -> list[StoredRelease]:
        secrets = self.kube.items("secrets", namespace, "-l", f"owner=helm,name={name}")
        releases = [decode_release_secret(secret) for secret in secrets]
        return sorted(releases, key=lambda release: release.version, reverse=True)

    def mark_failed(self, namespace: str, name: str, version: int, description: str, *,
                    as_user: str = "") -> StoredRelease:
        secret = f"sh.helm.release.v1.{name}.v{version}"
        body = next(s for s in self.kube.items("secrets", namespace, "-l",
                                               f"owner=helm,name={name}")
                    if s["metadata"]["name"] == secret)
        new = failed_release_secret(body, description)
        self.kube.replace(new)
        return decode_release_secret(new)


def chart_file(helm_env: HelmEnv, name: str = "demo", version: str = "0.1.0", *,
               app_version: str | None = None,
               files: dict[str, bytes] | None = None) -> ChartFile:
    """``helm create`` (with ``files`` added) + ``helm package``, and the package's digest."""
    package = helm_env.package(helm_env.create(name, version, app_version=app_version,
                                               extra_files=files))
    return ChartFile(package, "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest())


def helm_release(spec: str = "", name: str = "demo") -> HelmRelease:
    doc = yaml.safe_load(f"""
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {{name: {name}, namespace: flux-system}}
        spec:
          interval: 5m
          timeout: 1m
          chart:
            spec:
              chart: demo
              sourceRef: {{kind: HelmRepository, name: charts}}
    """)
    doc["spec"].update(yaml.safe_load(spec) or {})
    return HelmRelease.from_object(doc)

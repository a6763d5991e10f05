"""Regenerate what is derived from crds/ and the deploy chart:

- deploy/chart/chartguard/files/crds/: byte-for-byte copies of crds/ (the chart's CRD templates
  render them; helm cannot read files outside the chart);
- deploy/manifests/chartguard.yaml: the chart rendered with its defaults (release ``chartguard``
  in namespace ``chartguard-system``, plus that Namespace), for ``kubectl apply -f``.

    .venv/bin/python scripts/render_manifests.py          # rewrite both
    .venv/bin/python scripts/render_manifests.py --check  # exit 1 when either is out of date

tests/integration/deploy/test_deploy_chart.py fails while either is out of date.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from chartguard_testing import tools

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"
CHART = REPO / "deploy" / "chart" / "chartguard"
CHART_CRDS = CHART / "files" / "crds"
MANIFEST = REPO / "deploy" / "manifests" / "chartguard.yaml"
RELEASE = "chartguard"
NAMESPACE = "chartguard-system"

HEADER = f"""\
# chartguard, installed with plain manifests: `kubectl apply -f chartguard.yaml`. Generated, do
# not edit: the deploy chart (deploy/chart/chartguard) rendered with its default values as
# release {RELEASE} in namespace {NAMESPACE} (`make manifests`). For other values (watched
# namespaces, replicas, image) render the chart yourself with `helm template`.
---
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/name: chartguard
    app.kubernetes.io/instance: {RELEASE}
"""


def render_chart(*flags: str) -> str:
    """``helm template`` of the chart (helm's homes private and removed after)."""
    with tempfile.TemporaryDirectory(prefix="chartguard-helm-") as home:
        env = {**os.environ, **{f"HELM_{k}_HOME": str(Path(home) / k.lower())
                                for k in ("CONFIG", "CACHE", "DATA")}}
        out = subprocess.run([tools.helm(), "template", RELEASE, str(CHART), "-n", NAMESPACE,
                              *flags], capture_output=True, text=True, env=env, timeout=120,
                             check=False)
    if out.returncode != 0:
        raise SystemExit(f"helm template failed: {out.stderr.strip()}")
    return out.stdout


def manifest() -> str:
    return HEADER + render_chart()


def crd_copies_differ() -> list[str]:
    """Names of crds/ files whose copy in the chart is missing or differs, and stray copies."""
    sources = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    return sorted(name for name in sources.keys() | copies.keys()
                  if sources.get(name) != copies.get(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when anything is stale")
    args = parser.parse_args()
    if args.check:
        stale = [f"{CHART_CRDS.relative_to(REPO)}/{n}" for n in crd_copies_differ()]
        if not MANIFEST.exists() or MANIFEST.read_text() != manifest():
            stale.append(str(MANIFEST.relative_to(REPO)))
        for path in stale:
            print(f"{path} is out of date: run `make manifests`", file=sys.stderr)
        return 1 if stale else 0
    shutil.rmtree(CHART_CRDS, ignore_errors=True)
    CHART_CRDS.mkdir(parents=True)
    for source in sorted(CRDS.glob("*.yaml")):
        shutil.copyfile(source, CHART_CRDS / source.name)
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(manifest())
    print(f"wrote {CHART_CRDS.relative_to(REPO)}/ and {MANIFEST.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The spec's version-constraint parser against real helm's (a process: an integration test)."""

from __future__ import annotations

import json
from pathlib import Path

from chartguard_testing.charts import HelmEnv
from constraint_cases import CORPUS, GRAMMAR, STRICTER_THAN_HELM, api_accepts


def test_real_helm_parses_exactly_what_we_parse(helm_env: HelmEnv, tmp_path: Path) -> None:
    """Helm's own Masterminds build is the oracle: a chart's ``kubeVersion`` goes through
    ``semver.NewConstraint``. ``C || >=0.0.0-0`` admits every Kubernetes version when ``C``
    parses and fails the whole constraint when it does not, so ``helm template`` tells which.
    Helm's Chart.yaml loader first turns every Unicode space into ' ' (``sanitizeString``), which
    ``--version`` does not do, so our side of the comparison gets the same treatment."""
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    cases = [*CORPUS, *(text for text, _ in GRAMMAR)]
    disagreements, helm_only = [], []
    for text in dict.fromkeys(cases):
        (chart / "Chart.yaml").write_text(
            "apiVersion: v2\nname: probe\nversion: 0.1.0\n"
            f"kubeVersion: {json.dumps(text + ' || >=0.0.0-0')}\n")
        helm = helm_env.run("template", str(chart), check=False)
        if helm.returncode != 0:
            assert "incompatible with Kubernetes" in helm.stderr, helm.stderr
        ours = api_accepts("".join(" " if ch.isspace() else ch for ch in text))
        if (helm.returncode == 0) != ours:
            (helm_only if text in STRICTER_THAN_HELM else disagreements).append(text)
    assert disagreements == []
    assert sorted(helm_only) == sorted(STRICTER_THAN_HELM)  # the one known, deliberate gap

"""A chart's CRDs from ``helm template --include-crds`` output: the documents of crds/ files
only (of the chart and the subcharts helm kept), CRDs only, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from chartguard.api import HelmRelease
from chartguard.helm.args import template_crds_args
from chartguard.helm.crds import CRDError, chart_crds

RENDERED = """---
# Source: app/crds/a.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: as.example.com}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: bs.example.com}
---
# Source: app/charts/sub/crds/c.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: cs.example.com}
---
# Source: app/crds/not-a-crd.yaml
apiVersion: v1
kind: ConfigMap
metadata: {name: stray}
---
# Source: app/templates/crd.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: templated.example.com}
---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
"""


def test_only_the_crds_of_crds_files_in_order() -> None:
    names = [doc["metadata"]["name"] for doc in chart_crds(RENDERED)]
    assert names == ["as.example.com", "bs.example.com", "cs.example.com"]


def test_no_crds_is_an_empty_list() -> None:
    assert chart_crds("---\n# Source: app/templates/x.yaml\nkind: Service\n") == []


def test_a_broken_crd_file_is_an_error_naming_it() -> None:
    with pytest.raises(CRDError, match=r"app/crds/a.yaml is not valid YAML at line"):
        chart_crds("---\n# Source: app/crds/a.yaml\nkind: [\n")


def test_a_crd_with_yaml_aliases_is_refused_before_it_expands() -> None:
    """550 bytes of nested aliases serialise to tens of megabytes (two levels more: GBs)."""
    bomb = ["---", "# Source: app/crds/bomb.yaml", "apiVersion: apiextensions.k8s.io/v1",
            "kind: CustomResourceDefinition", "metadata: {name: bombs.example.com}",
            "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(CRDError, match=r"app/crds/bomb.yaml is not valid YAML .*alias"):
        chart_crds("\n".join(bomb) + "\n")


def test_template_command_line() -> None:
    release = HelmRelease.from_object({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": {"interval": "5m", "chartRef": {"kind": "HelmChart", "name": "app"}}})
    assert template_crds_args(release, Path("/w/chart.tgz"), Path("/w/values.json")) == [
        "template", "--namespace", "apps", "--include-crds", "--values", "/w/values.json",
        "--", "app", "/w/chart.tgz"]

"""chartguard.helm.health without the CEL sandbox: when the health checks run (Flux: only for
an action that waits with the poller strategy) and which objects of a manifest they read."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chartguard.api import HelmRelease
from chartguard.helm import health

BASE = """
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: app, namespace: apps}
spec:
  interval: 5m
  chartRef: {kind: HelmChart, name: app}
  healthCheckExprs:
  - {apiVersion: example.com/v1, kind: Database, current: "status.ready"}
"""


def release(extra: str = "") -> HelmRelease:
    doc: dict[str, Any] = yaml.safe_load(BASE)
    doc["spec"].update(yaml.safe_load(extra) or {})
    return HelmRelease.from_object(doc)


@pytest.mark.parametrize(("extra", "runs"), [
    ("", {"install": True, "upgrade": True, "rollback": True, "test": False,
          "uninstall": False}),
    ("waitStrategy: {name: poller}", {"install": True, "upgrade": True, "rollback": True}),
    # Flux: "evaluated only when ... DisableWait is false, and the 'poller' WaitStrategy"
    ("waitStrategy: {name: legacy}", {"install": False, "upgrade": False, "rollback": False}),
    ("install: {disableWait: true}", {"install": False, "upgrade": True, "rollback": True}),
    ("upgrade: {disableWait: true}", {"install": True, "upgrade": False, "rollback": True}),
    ("rollback: {disableWait: true}", {"install": True, "upgrade": True, "rollback": False}),
    ("healthCheckExprs: []", {"install": False, "upgrade": False, "rollback": False}),
])
def test_health_checks_run_only_for_actions_that_wait_with_the_poller(
        extra: str, runs: dict[str, bool]) -> None:
    hr = release(extra)
    assert {action: health.applies(hr, action) for action in runs} == runs


def test_manifest_objects_skip_what_names_no_object_and_are_capped() -> None:
    manifest = "---\n# comment only\n---\n- a list\n---\napiVersion: v1\nkind: Service\n---\n" + \
        "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"
                for i in range(health.MAX_OBJECTS + 5))
    objects = health.manifest_objects(manifest, "apps")
    assert len(objects) == health.MAX_OBJECTS
    assert str(objects[0]) == "ConfigMap/apps/c0"


def test_a_manifest_that_is_not_yaml_is_a_health_check_error() -> None:
    with pytest.raises(health.HealthCheckError, match="the release manifest cannot be read"):
        health.manifest_objects("a: [", "apps")


@pytest.mark.parametrize(("api_version", "kind", "expected"), [
    ("v1", "ConfigMap", ("", "ConfigMap")),
    ("apps/v1", "Deployment", ("apps", "Deployment")),
    ("example.com/v1alpha1", "", ("example.com", "")),
])
def test_group_kind_drops_the_version(api_version: str, kind: str,
                                      expected: tuple[str, str]) -> None:
    assert health.group_kind(api_version, kind) == expected

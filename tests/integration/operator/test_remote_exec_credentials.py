"""The remote cluster's client with an exec plugin (allowed by --insecure-kubeconfig-exec):
the Python client of helm's storage gets the plugin's token, as client-go would; a plugin that
fails is a ClusterConnectError naming no output of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chartguard.operator.clusters import client_configuration
from chartguard.reconcile.kubeconfig import ClusterConnectError, KubeConfigOptions, sanitize

CREDENTIAL = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
              "status": {"token": "exec-token-0123456789"}}


def kubeconfig(command: Path) -> bytes:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": str(command),
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}).encode()


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plugin"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_the_exec_plugins_token_is_used(tmp_path: Path) -> None:
    plugin = script(tmp_path, f"echo '{json.dumps(CREDENTIAL)}'")
    config = sanitize(kubeconfig(plugin), KubeConfigOptions(insecure_exec=True))
    work = tmp_path / "work"
    work.mkdir()
    settings = client_configuration(config, work)
    assert settings.api_key == {"authorization": "Bearer exec-token-0123456789"}


def test_a_failing_exec_plugin_is_a_connect_error(tmp_path: Path) -> None:
    plugin = script(tmp_path, "echo secret-output-xyz >&2; exit 3")
    config = sanitize(kubeconfig(plugin), KubeConfigOptions(insecure_exec=True))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ClusterConnectError) as caught:
        client_configuration(config, work)
    assert "exec plugin failed" in str(caught.value)
    assert "secret-output-xyz" not in str(caught.value)

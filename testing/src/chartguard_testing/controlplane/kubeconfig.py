"""Kubeconfig files for the control plane's components and its users."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, *, server: str, ca: Path, user: str,
                     cert: Path | None = None, key: Path | None = None,
                     token: str | None = None, namespace: str | None = None) -> Path:
    """A one-context kubeconfig with the CA and credentials embedded (no file references,
    so it can be copied anywhere)."""
    creds: dict[str, str] = {}
    if cert is not None and key is not None:
        creds = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    if token is not None:
        creds["token"] = token
    context: dict[str, str] = {"cluster": "chartguard", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "chartguard",
                      "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path

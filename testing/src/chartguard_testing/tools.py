"""Where the real binaries are: ``.tools/`` (``make tools``) first, then PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# testing/src/chartguard_testing/tools.py -> repository root
REPO_ROOT = Path(__file__).resolve().parents[3]
TOOLS_DIR = Path(os.environ.get("CHARTGUARD_TOOLS_DIR", REPO_ROOT / ".tools"))


class ToolMissingError(RuntimeError):
    """A binary the tests need is not installed; ``make tools`` installs it."""


def find_tool(name: str) -> str:
    """Absolute path of ``name``: ``$CHARTGUARD_<NAME>``, then ``.tools/``, then PATH."""
    override = os.environ.get(f"CHARTGUARD_{name.upper().replace('-', '_')}")
    if override:
        return override
    local = TOOLS_DIR / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissingError(f"{name} not found in {TOOLS_DIR} or on PATH: run `make tools`")


def helm() -> str:
    return find_tool("helm")


def kubectl() -> str:
    return find_tool("kubectl")


def docker_registry() -> str:
    return find_tool("docker-registry")


def htpasswd() -> str:
    return find_tool("htpasswd")


def helm3() -> str:
    """helm v3.17 (``make tools``), for checking both helm major versions."""
    return find_tool("helm3")

"""A manifest as a registry or layout stored it, and the one way its bytes are hashed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

__all__ = ["Manifest", "sha256_digest"]


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``: how OCI names content."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry stored it: raw bytes (hashed), media type, parsed JSON."""

    raw: bytes
    media_type: str
    digest: str
    data: dict[str, Any]

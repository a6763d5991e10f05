"""Constants and helpers of the verification tests (imported by name: tests are not a package)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from chartguard.verify import LegacySignature

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "cosign-real"
ISSUER = "https://accounts.example.com"
IDENTITY = "signer@example.com"
REPOSITORY = "127.0.0.1:5000/charts/podinfo"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# Two chart digests: the one being verified and another chart's (for copied signatures).
DIGEST = digest_of(b"chart manifest podinfo 6.5.0")
OTHER_DIGEST = digest_of(b"chart manifest other 1.0.0")


def real_legacy(folder: str) -> LegacySignature:
    base = REAL / folder
    return LegacySignature(
        payload=(base / "payload.json").read_bytes(),
        annotations=json.loads((base / "annotations.json").read_text()),
        source=f"{folder} layer 0",
    )

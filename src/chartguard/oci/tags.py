"""The tags cosign and OCI 1.1 clients derive from a digest: one rule, used by every reader.

- ``sha256-<hex>.sig``: cosign's legacy signature manifest of that digest;
- ``sha256-<hex>.att``: cosign's legacy attestation manifest (``cosign attest``);
- ``sha256-<hex>``: the referrers tag schema (OCI distribution 1.1) listing its referrers, for
  registries without the referrers API.
"""

from __future__ import annotations

import re

from chartguard.digest import is_digest
from chartguard.oci.errors import InvalidReferenceError

__all__ = ["ATTACHED_TAG", "attestation_tag", "is_attached_tag", "referrers_tag",
           "signature_tag"]

#: cosign's attached-artifact tags (``.sig``, ``.att``, ``.sbom``) and the referrers tag
ATTACHED_TAG = re.compile(r"sha256-[0-9a-f]{64}(?:\.[a-z]+)?")


def referrers_tag(digest: str) -> str:
    """``sha256-<hex>``: the tag whose index lists the referrers of ``digest``."""
    if not is_digest(digest):
        raise InvalidReferenceError(
            f"{digest!r} is not a sha256 digest (sha256:<64 hex>): no tag can be derived")
    return digest.replace(":", "-", 1)


def signature_tag(digest: str) -> str:
    """``sha256-<hex>.sig``: the tag of cosign's legacy signature manifest of ``digest``."""
    return referrers_tag(digest) + ".sig"


def attestation_tag(digest: str) -> str:
    """``sha256-<hex>.att``: the tag of cosign's legacy attestation manifest of ``digest``."""
    return referrers_tag(digest) + ".att"


def is_attached_tag(tag: str) -> bool:
    """Whether ``tag`` names something attached to a digest (a signature, attestation ...)."""
    return ATTACHED_TAG.fullmatch(tag) is not None

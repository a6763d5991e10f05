"""What the verifier is handed (bytes from the registry) and what it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from chartguard.untrusted import escape

# Annotation names cosign writes on a `.sig` manifest's layers.
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# The in-toto predicate type of an image *signature* in a bundle (`cosign sign`, cosign v3).
# Anything else (SBOM, provenance, vulnerability scan, `cosign attest --type custom`) is an
# attestation about the image, not an approval of it, and is refused unless the policy lists it.
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"


@dataclass(frozen=True)
class LegacySignature:
    """One layer of a cosign `.sig` manifest: the layer's raw bytes and its annotations.

    `source` says where it came from (e.g. `tag sha256-….sig layer 1`) for messages.
    """

    payload: bytes = field(repr=False)
    annotations: Mapping[str, str] = field(repr=False)
    source: str


@dataclass(frozen=True)
class BundleCandidate:
    """A Sigstore bundle JSON (cosign's new format), with where it came from."""

    data: bytes = field(repr=False)
    source: str


@dataclass(frozen=True)
class VerificationResult:
    """What was verified: the digest, the format and the key or identity that signed it."""

    digest: str
    format: Literal["legacy", "bundle"]
    key: str | None = None
    identity: tuple[str, str] | None = None
    rekor_log_index: int | None = None
    identity_unchecked: bool = False
    source: str = ""

    def summary(self) -> str:
        """One line for logs, conditions and the CLI (what came from outside, escaped)."""
        if self.key is not None:
            signer = f"key {escape(self.key)}"
        elif self.identity is not None:
            signer = f"identity {escape(self.identity[1])} (issuer {escape(self.identity[0])})"
        else:  # pragma: no cover - every result has a key or an identity
            signer = "unknown signer"
        parts = [f"verified {self.digest}: {self.format} signature by {signer}"]
        if self.source:
            parts.append(f"from {escape(self.source)}")
        if self.rekor_log_index is not None:
            parts.append(f"Rekor log index {self.rekor_log_index}")
        if self.identity_unchecked:
            parts.append("WARNING: no identity policy, any Fulcio identity accepted")
        return "; ".join(parts)

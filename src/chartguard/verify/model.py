"""What the verifier is handed (bytes from the registry) and what it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chartguard.api.verification import SIGNATURE_PREDICATE_TYPE
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
COSIGN_SIGN_PREDICATE = SIGNATURE_PREDICATE_TYPE


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

    @property
    def signer(self) -> str:
        """``key <name>`` or ``identity <subject> (issuer <issuer>)``, escaped."""
        if self.key is not None:
            return f"key {escape(self.key)}"
        if self.identity is not None:
            return f"identity {escape(self.identity[1])} (issuer {escape(self.identity[0])})"
        return "unknown signer"  # pragma: no cover - every result has a key or an identity

    def summary(self) -> str:
        """One line for logs, conditions and the CLI (what came from outside, escaped)."""
        parts = [f"verified {self.digest}: {self.format} signature by {self.signer}"]
        if self.source:
            parts.append(f"from {escape(self.source)}")
        if self.rekor_log_index is not None:
            parts.append(f"Rekor log index {self.rekor_log_index}")
        if self.identity_unchecked:
            parts.append("WARNING: no identity policy, any Fulcio identity accepted")
        return "; ".join(parts)


#: the media type of a legacy ``.att`` layer (a DSSE envelope)
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"


@dataclass(frozen=True)
class AttestationRequirement:
    """An attestation the chart must carry (a chartguard extension of ``verify``).

    Met by at least one attestation whose in-toto subject is the chart's digest, signed under
    the same signer policy as the signature, of ``predicate_type``, for which the CEL
    expression ``policy`` is true (``predicate``, ``predicateType`` and ``subject`` bound);
    an empty policy: such an attestation existing is enough. The expression is evaluated by
    the caller (``chartguard.reconcile.verification``), not by this package.
    """

    predicate_type: str
    policy: str = ""

    def describe(self) -> str:
        return self.predicate_type + (f" with policy '{escape(self.policy, 300)}'"
                                      if self.policy else "")


@dataclass(frozen=True)
class VerifiedAttestation:
    """An attestation whose signer, subject and type were verified, with its statement
    (outside data: escape what is shown)."""

    predicate_type: str
    result: VerificationResult
    statement: Mapping[str, Any] = field(repr=False)
    #: sha256 (hex) of the statement's bytes: the same statement replayed in another layer or
    #: referrer is the same attestation
    payload_sha256: str = ""


@dataclass(frozen=True)
class AttestationCandidates:
    """What :meth:`chartguard.verify.Verifier.attestations` found for each wanted type:
    the attestations that verified and, one line each, why the others did not."""

    verified: tuple[VerifiedAttestation, ...] = ()
    failures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: candidates passed over as copies of one already tried (the same bytes) or verified
    #: (the same statement)
    duplicates: int = 0

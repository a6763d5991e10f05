"""chartguard.verify: cosign signature verification on bytes handed to it.

It never talks to a registry (that is chartguard.oci); it gets the layers of a `.sig`
manifest and the Sigstore bundles found for one digest and says whether any verifies:

    verifier = Verifier(VerificationPolicy(keys=public_keys_from_secret(secret.data)))
    result = verifier.verify(digest, legacy=[LegacySignature(...)], bundles=[...])

sigstore and cryptography stay inside this package; their exceptions become failure reasons.
"""

from chartguard.identity import IdentityMatcher
from chartguard.verify.cache import VerifiedCache
from chartguard.verify.errors import (
    InvalidKeyError,
    InvalidPolicyError,
    InvalidTrustRootError,
    NoSignatureError,
    VerificationError,
    VerificationFailedError,
)
from chartguard.verify.keys import PublicKey, public_keys_from_pem, public_keys_from_secret
from chartguard.verify.model import (
    BUNDLE_MEDIA_TYPE,
    COSIGN_SIGN_PREDICATE,
    DSSE_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    AttestationCandidates,
    AttestationRequirement,
    BundleCandidate,
    LegacySignature,
    VerificationResult,
    VerifiedAttestation,
)
from chartguard.verify.policy import OIDCIdentity, VerificationPolicy
from chartguard.verify.trust import TrustRoot
from chartguard.verify.verifier import Verifier

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "COSIGN_SIGN_PREDICATE",
    "DSSE_MEDIA_TYPE",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "AttestationCandidates",
    "AttestationRequirement",
    "BundleCandidate",
    "IdentityMatcher",
    "InvalidKeyError",
    "InvalidPolicyError",
    "InvalidTrustRootError",
    "LegacySignature",
    "NoSignatureError",
    "OIDCIdentity",
    "PublicKey",
    "TrustRoot",
    "VerificationError",
    "VerificationFailedError",
    "VerificationPolicy",
    "VerificationResult",
    "VerifiedAttestation",
    "VerifiedCache",
    "Verifier",
    "public_keys_from_pem",
    "public_keys_from_secret",
]

"""chartguard.oci: Helm charts and their signatures in OCI registries.

- :mod:`.reference`   ``oci://host[:port]/path`` + chart name -> :class:`ChartReference`
- :mod:`.versions`    Helm/Flux version selection (Masterminds semver constraints)
- :mod:`.credentials` credentials and TLS material from Secret data (never ~/.docker)
- :mod:`.client`      :class:`RegistryClient`: resolve, fetch by digest, checked and capped
- :mod:`.signatures`  legacy ``.sig`` tag and OCI 1.1 referrers of a digest
- :mod:`.layout`      the same signatures read from an OCI image layout on disk
- :mod:`.errors`      the exception tree (base :class:`OCIError`)

oras is used underneath (``._transport``) and never leaves this package.
"""

from chartguard.oci.client import (
    ChartArtifact,
    Limits,
    Manifest,
    RegistryClient,
    ResolvedChart,
    sha256_digest,
)
from chartguard.oci.credentials import (
    RegistryCredentials,
    TLSConfig,
    credentials_from_secret,
    tls_from_secret,
)
from chartguard.oci.errors import (
    AuthenticationError,
    BlobNotFoundError,
    CredentialsError,
    DigestMismatchError,
    InvalidConstraintError,
    InvalidReferenceError,
    ManifestNotFoundError,
    OCIError,
    RegistryResponseError,
    RegistryUnreachableError,
    SizeLimitExceededError,
    TLSVerificationError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
)
from chartguard.oci.layout import LayoutError, LocalImage, read_layout_signatures
from chartguard.oci.mediatypes import (
    BUNDLE_ARTIFACT_TYPE,
    COSIGN_BUNDLE_ANNOTATION,
    COSIGN_CERTIFICATE_ANNOTATION,
    COSIGN_CHAIN_ANNOTATION,
    COSIGN_SIGNATURE_ANNOTATION,
    COSIGN_SIGNATURE_LAYER,
    HELM_CHART_LAYER,
    HELM_CONFIG,
    HELM_LEGACY_CHART_LAYER,
    HELM_PROVENANCE_LAYER,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
)
from chartguard.oci.reference import ChartReference
from chartguard.oci.signatures import Referrer, SignatureArtifacts, SignatureLayer
from chartguard.oci.versions import is_exact_version, select_version, tag_for_version

__all__ = [
    "BUNDLE_ARTIFACT_TYPE",
    "COSIGN_BUNDLE_ANNOTATION",
    "COSIGN_CERTIFICATE_ANNOTATION",
    "COSIGN_CHAIN_ANNOTATION",
    "COSIGN_SIGNATURE_ANNOTATION",
    "COSIGN_SIGNATURE_LAYER",
    "HELM_CHART_LAYER",
    "HELM_CONFIG",
    "HELM_LEGACY_CHART_LAYER",
    "HELM_PROVENANCE_LAYER",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "AuthenticationError",
    "BlobNotFoundError",
    "ChartArtifact",
    "ChartReference",
    "CredentialsError",
    "DigestMismatchError",
    "InvalidConstraintError",
    "InvalidReferenceError",
    "LayoutError",
    "Limits",
    "LocalImage",
    "Manifest",
    "ManifestNotFoundError",
    "OCIError",
    "Referrer",
    "RegistryClient",
    "RegistryCredentials",
    "RegistryResponseError",
    "RegistryUnreachableError",
    "ResolvedChart",
    "SignatureArtifacts",
    "SignatureLayer",
    "SizeLimitExceededError",
    "TLSConfig",
    "TLSVerificationError",
    "UnsupportedMediaTypeError",
    "VersionNotFoundError",
    "credentials_from_secret",
    "is_exact_version",
    "read_layout_signatures",
    "select_version",
    "sha256_digest",
    "tag_for_version",
    "tls_from_secret",
]

"""chartguard.oci: Helm charts and their signatures in OCI registries.

- :mod:`.reference`   ``oci://host[:port]/path`` + chart name -> :class:`ChartReference`
- :mod:`.versions`    Helm/Flux version selection (Masterminds semver constraints)
- :mod:`.credentials` credentials and TLS material from Secret data (never ~/.docker)
- :mod:`.client`      :class:`RegistryClient`: resolve, fetch by digest, checked, capped, timed
- :mod:`.holds`       :class:`HostHolds`: registry hosts that asked (Retry-After) to wait
- :mod:`.transport`   the client's HTTP seam (one exchange) and the operation :class:`Deadline`
- :mod:`.limits`      :class:`Limits`: every size and count cap, for registries and layouts
- :mod:`.tags`        the ``sha256-<hex>.sig`` / ``sha256-<hex>`` tags derived from a digest
- :mod:`.manifest`    :class:`Manifest` and :func:`sha256_digest`
- :mod:`.signatures`  legacy ``.sig`` tag and OCI 1.1 referrers of a digest
- :mod:`.layout`      the same signatures read from an OCI image layout on disk
- :mod:`.helmindex`   a Helm repository's ``index.yaml``, bounded, and version selection in it
- :mod:`.httprepo`    :class:`HelmRepositoryClient`: an HTTP(S) Helm repository (``type: default``)
- :mod:`.errors`      the exception tree (base :class:`OCIError`) and the :class:`Hint` s
                      callers turn into their own words

requests is used underneath (``._requests_transport``) and never leaves this package.
"""

from chartguard.oci.client import ChartArtifact, RegistryClient, ResolvedChart
from chartguard.oci.credentials import (
    RegistryCredentials,
    TLSConfig,
    credentials_from_secret,
    tls_from_secret,
)
from chartguard.oci.errors import (
    AuthenticationError,
    BlobNotFoundError,
    ChartContentError,
    ConnectionBrokenError,
    CredentialsError,
    DeadlineExceededError,
    DigestMismatchError,
    Hint,
    InvalidConstraintError,
    InvalidReferenceError,
    ManifestNotFoundError,
    OCIError,
    RateLimitedError,
    RegistryResponseError,
    RegistryServerError,
    RegistryUnreachableError,
    SizeLimitExceededError,
    TLSVerificationError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
)
from chartguard.oci.helmindex import (
    MAX_INDEX_BYTES,
    HelmIndex,
    IndexEntry,
    InvalidIndexError,
    parse_index,
    select_entry,
)
from chartguard.oci.holds import Hold, HostHolds
from chartguard.oci.httprepo import (
    ChartDownload,
    HelmRepositoryClient,
    IndexDownload,
    repository_auth,
)
from chartguard.oci.layout import LayoutError, LocalImage, read_layout_signatures
from chartguard.oci.limits import Limits
from chartguard.oci.manifest import Manifest, sha256_digest
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
from chartguard.oci.tags import is_attached_tag, referrers_tag, signature_tag
from chartguard.oci.transport import Deadline, Request, Response, Transport, TransportError
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
    "MAX_INDEX_BYTES",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "AuthenticationError",
    "BlobNotFoundError",
    "ChartArtifact",
    "ChartContentError",
    "ChartDownload",
    "ChartReference",
    "ConnectionBrokenError",
    "CredentialsError",
    "Deadline",
    "DeadlineExceededError",
    "DigestMismatchError",
    "HelmIndex",
    "HelmRepositoryClient",
    "Hint",
    "Hold",
    "HostHolds",
    "IndexDownload",
    "IndexEntry",
    "InvalidConstraintError",
    "InvalidIndexError",
    "InvalidReferenceError",
    "LayoutError",
    "Limits",
    "LocalImage",
    "Manifest",
    "ManifestNotFoundError",
    "OCIError",
    "RateLimitedError",
    "Referrer",
    "RegistryClient",
    "RegistryCredentials",
    "RegistryResponseError",
    "RegistryServerError",
    "RegistryUnreachableError",
    "Request",
    "ResolvedChart",
    "Response",
    "SignatureArtifacts",
    "SignatureLayer",
    "SizeLimitExceededError",
    "TLSConfig",
    "TLSVerificationError",
    "Transport",
    "TransportError",
    "UnsupportedMediaTypeError",
    "VersionNotFoundError",
    "credentials_from_secret",
    "is_attached_tag",
    "is_exact_version",
    "parse_index",
    "read_layout_signatures",
    "referrers_tag",
    "repository_auth",
    "select_entry",
    "select_version",
    "sha256_digest",
    "signature_tag",
    "tag_for_version",
    "tls_from_secret",
]

"""The errors of :mod:`chartguard.oci`: one base, each kind saying what to fix.

Exception tree::

    OCIError                         base; ``retryable`` tells the caller whether to try again
    ├── InvalidReferenceError        not ``oci://host[:port]/path`` + chart name (fix the spec)
    ├── InvalidConstraintError       the version is not a Helm semver constraint (fix the spec)
    ├── CredentialsError             a credentials/TLS Secret is malformed (fix the Secret)
    ├── VersionNotFoundError         no tag matches the version or constraint
    ├── ManifestNotFoundError        no manifest for that tag or digest
    ├── BlobNotFoundError            a manifest names a blob the registry does not have
    ├── AuthenticationError          the registry refused the credentials (or needs some)
    ├── RegistryUnreachableError     connection refused/timed out, or 5xx after the retries
    │   ├── RegistryServerError      5xx/429 for one request, still after the retries
    │   ├── RateLimitedError         429/503 asking (Retry-After) for a longer wait than fits
    │   ├── ConnectionBrokenError    the connection broke while a body was read
    │   └── DeadlineExceededError    the operation did not finish within its total deadline
    ├── TLSVerificationError         the registry's certificate is not trusted / handshake failed
    ├── RegistryResponseError        the registry answered something the protocol does not allow
    ├── DigestMismatchError          bytes whose sha256 is not the digest they were asked by
    ├── SizeLimitExceededError       a manifest or blob is larger than the configured cap
    └── UnsupportedMediaTypeError    not a Helm chart manifest (or an unknown layer type)

Messages name the reference or digest and never contain credentials. They say what is wrong in
the registry's terms and never name a command-line flag or a spec field: the caller (CLI or
operator) reads :attr:`OCIError.hints` and adds its own words (``--ca-file`` or
``certSecretRef``).
"""

from __future__ import annotations

import enum


class Hint(enum.Enum):
    """A setting of the caller that may fix the error; the caller names it in its own terms."""

    #: the registry's certificate is not trusted: give the CA that signed it
    CA_CERTIFICATE = "ca-certificate"
    #: the registry wants a TLS client certificate (and its key)
    CLIENT_CERTIFICATE = "client-certificate"
    #: the registry may not serve TLS at all: use plain HTTP
    USE_PLAIN_HTTP = "use-plain-http"
    #: the registry serves HTTPS: stop using plain HTTP
    USE_TLS = "use-tls"
    #: the registry needs credentials, or refused the ones given
    CREDENTIALS = "credentials"
    #: the operation ran out of time: a longer deadline may help
    DEADLINE = "deadline"


class OCIError(Exception):
    """Base of every error raised by :mod:`chartguard.oci`."""

    #: True when the same call may succeed later without any change to the spec.
    retryable: bool = False

    def __init__(self, message: str, *, hints: tuple[Hint, ...] = ()) -> None:
        super().__init__(message)
        #: settings of the caller that may fix this, most likely first
        self.hints = hints


class InvalidReferenceError(OCIError):
    """The repository URL or chart name is not a valid OCI reference."""


class InvalidConstraintError(OCIError):
    """The version is neither an exact semver version nor a semver constraint."""


class CredentialsError(OCIError):
    """A Secret meant to hold registry credentials or TLS material cannot be used."""


class VersionNotFoundError(OCIError):
    """No tag of the chart satisfies the requested version."""

    retryable = True  # the version may be pushed later


class ManifestNotFoundError(OCIError):
    """The registry has no manifest for the tag or digest."""

    retryable = True


class BlobNotFoundError(OCIError):
    """The registry has no blob for a digest a manifest names."""

    retryable = True


class AuthenticationError(OCIError):
    """The registry refused the request for lack of (valid) credentials."""


class RegistryUnreachableError(OCIError):
    """The registry could not be reached, or kept failing, within the bounded retries."""

    retryable = True


class RegistryServerError(RegistryUnreachableError):
    """The registry kept answering 5xx (or 429) for one request, retries included."""


class RateLimitedError(RegistryUnreachableError):
    """The registry answered 429 (or 503) asking, with ``Retry-After``, for a longer wait than
    one operation can afford: reported at once, tried again later by the caller.

    ``retry_after`` is the wait the registry asked for, in seconds.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConnectionBrokenError(RegistryUnreachableError):
    """The connection broke (reset, closed early) while an answer's body was read."""


class DeadlineExceededError(RegistryUnreachableError):
    """A registry operation (with its retries, redirects and token exchange) ran out of time.

    ``deadline`` is the operation's total budget in seconds.
    """

    def __init__(self, message: str, *, deadline: float) -> None:
        super().__init__(message, hints=(Hint.DEADLINE,))
        self.deadline = deadline


class TLSVerificationError(OCIError):
    """The TLS handshake failed: the certificate is not trusted by the configured CA."""


class RegistryResponseError(OCIError):
    """The registry answered in a way the distribution protocol does not allow."""

    retryable = True


class DigestMismatchError(OCIError):
    """Downloaded bytes do not hash to the digest they were requested by."""


class SizeLimitExceededError(OCIError):
    """A manifest or blob is larger than the configured limit."""


class UnsupportedMediaTypeError(OCIError):
    """The manifest or one of its parts is not what a Helm chart is made of."""


class ChartContentError(OCIError):
    """The chart archive is not what its manifest says it is (its Chart.yaml names another
    chart or version than the Helm config, or there is no readable Chart.yaml)."""

"""The exceptions of :mod:`chartguard.verify`.

::

    VerificationError                 base: anything this package refuses
    +-- InvalidKeyError               a public key (PEM) cannot be used; names the key
    +-- InvalidTrustRootError         a trusted_root.json cannot be used
    +-- InvalidPolicyError            a policy cannot be built (bad regular expression, ...)
    +-- VerificationFailedError       signatures were tried and none verified (one line each)
        +-- NoSignatureError          there was nothing to try

Exceptions of sigstore, cryptography and the JSON parser never leave this package: each
one becomes the failure reason of the signature it was raised for.
"""

from __future__ import annotations


class VerificationError(Exception):
    """Base of every error raised by chartguard.verify."""


class InvalidKeyError(VerificationError):
    """A public key cannot be loaded; the message names the key and says why."""


class InvalidTrustRootError(VerificationError):
    """A Sigstore trusted root cannot be loaded; the message says what is wrong."""


class InvalidPolicyError(VerificationError):
    """A verification policy cannot be built; the message names the bad entry."""


class VerificationFailedError(VerificationError):
    """No signature verified `digest`; `failures` holds one reason per signature tried."""

    def __init__(self, digest: str, failures: tuple[str, ...]) -> None:
        self.digest = digest
        self.failures = failures
        super().__init__(self._message())

    def _message(self) -> str:
        # One line per signature tried: the caller decides how to frame them.
        return "\n".join(self.failures) or f"no valid signature for {self.digest}"


class NoSignatureError(VerificationFailedError):
    """No signature at all was handed over for `digest` (callers append where they looked)."""

    def __init__(self, digest: str) -> None:
        super().__init__(digest, ())

    def _message(self) -> str:
        return f"no signature for {self.digest}"

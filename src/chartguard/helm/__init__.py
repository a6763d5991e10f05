"""chartguard.helm: the helm binary, and helm's release storage as data.

The only package that starts helm processes. Argument lists are built by pure functions from the
API models (:mod:`.args`); :class:`Helm` runs them with a private HELM_*_HOME, values in a
temporary file, the chart re-hashed against the digest that was verified, and a bounded number of
processes at once; :mod:`.release` decodes helm's release records (the Secrets helm's storage
driver writes) into :class:`StoredRelease`, which is how the reconciler learns a release's state
without starting helm. :mod:`.errors` says what a failure means (did helm's storage change?).
:func:`encode_document` is go-yaml v2's emitter (helm-controller's and flux's YAML) for documents.
"""

from chartguard.helm._goyaml import KeyOrder, encode_document
from chartguard.helm.args import unsupported
from chartguard.helm.errors import ChartDigestMismatchError, HelmError
from chartguard.helm.release import (
    ReleaseDecodeError,
    ReleaseStorage,
    StoredRelease,
    TestHook,
    decode_release_secret,
    newest,
    release_from_json,
    values_digest,
)
from chartguard.helm.runner import ChartFile, Helm

__all__ = [
    "ChartDigestMismatchError",
    "ChartFile",
    "Helm",
    "HelmError",
    "KeyOrder",
    "ReleaseDecodeError",
    "ReleaseStorage",
    "StoredRelease",
    "TestHook",
    "decode_release_secret",
    "encode_document",
    "newest",
    "release_from_json",
    "unsupported",
    "values_digest",
]

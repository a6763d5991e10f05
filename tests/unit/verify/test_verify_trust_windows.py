"""Trust-root validity windows: a retired Fulcio CA, Rekor key or CT log key proves nothing.

sigstore's bundle verifier accepts every CA and log key of the trust root whatever its
`validFor` says; chartguard judges the windows at the Rekor integrated time on both paths, so a
signature fails or passes the same as a legacy `.sig` layer and as a bundle.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from verify_helpers import DIGEST, IDENTITY, ISSUER, REPOSITORY

from chartguard.verify import (
    BundleCandidate,
    OIDCIdentity,
    TrustRoot,
    VerificationFailedError,
    VerificationPolicy,
    VerificationResult,
    Verifier,
)
from chartguard_testing.cosign_signer import (
    sign_bundle_keyless,
    sign_legacy_keyless,
    simple_signing_payload,
)
from chartguard_testing.sigstore_local import LocalSigstore

Format = Literal["legacy", "bundle"]
Piece = Literal["certificateAuthorities", "tlogs", "ctlogs"]
FORMATS: tuple[Format, ...] = ("legacy", "bundle")


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _root(sigstore: LocalSigstore, piece: Piece | None, start: datetime | None = None,
          end: datetime | None = None) -> TrustRoot:
    """The local trusted root with the window of one piece (its only entry) replaced."""
    document = json.loads(sigstore.trusted_root_json())
    if piece is not None:
        window = {"start": _stamp(start or sigstore.valid_from)}
        if end is not None:
            window["end"] = _stamp(end)
        entry = document[piece][0]
        (entry if piece == "certificateAuthorities" else entry["publicKey"])["validFor"] = window
    return TrustRoot.from_json(json.dumps(document).encode(), name="windowed root")


def _verify(sigstore: LocalSigstore, root: TrustRoot, fmt: Format) -> VerificationResult:
    """A fresh keyless signature of DIGEST, made now, in the given format."""
    policy = VerificationPolicy(identities=(OIDCIdentity(f"^{ISSUER}$", f"^{IDENTITY}$"),),
                                trust_root=root)
    if fmt == "legacy":
        sig = sign_legacy_keyless(sigstore, simple_signing_payload(REPOSITORY, DIGEST),
                                  source="sig")
        return Verifier(policy).verify(DIGEST, [sig], [])
    bundle = BundleCandidate(sign_bundle_keyless(sigstore, DIGEST), "sig")
    return Verifier(policy).verify(DIGEST, [], [bundle])


def _failure(sigstore: LocalSigstore, root: TrustRoot, fmt: Format) -> str:
    with pytest.raises(VerificationFailedError) as err:
        _verify(sigstore, root, fmt)
    (line,) = err.value.failures
    return line


RETIRED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
LATER = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_within_every_window_both_formats_verify(local_sigstore: LocalSigstore,
                                                 fmt: Format) -> None:
    for piece in ("certificateAuthorities", "tlogs", "ctlogs"):
        current = _root(local_sigstore, piece, end=LATER)  # ends later: still valid now
        assert _verify(local_sigstore, current, fmt).format == fmt


# What each retired piece of the trust root makes a signature fail with, in either format.
RETIRED_REASONS: dict[Piece, str] = {
    "certificateAuthorities":
        "sig: the Fulcio CA of windowed root that issued the certificate was not valid at ",
    "tlogs":
        "sig: Rekor log https://rekor.chartguard.test key was not valid at the integrated time ",
    "ctlogs": "sig: the certificate transparency log ",
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("piece", list(RETIRED_REASONS), ids=["retired-fulcio-ca",
                                                              "retired-rekor-key",
                                                              "retired-ct-log-key"])
def test_a_signature_under_a_retired_trust_root_piece_fails_in_both_formats(
    local_sigstore: LocalSigstore, piece: Piece, fmt: Format
) -> None:
    root = _root(local_sigstore, piece, end=RETIRED)
    assert _failure(local_sigstore, root, fmt).startswith(RETIRED_REASONS[piece])


def test_a_retired_ct_log_beside_a_current_one_is_not_used(
    local_sigstore: LocalSigstore,
) -> None:
    """The SCT's log is retired; another log, current, did not sign it: the SCT proves nothing."""
    from dataclasses import replace

    from cryptography.hazmat.primitives.asymmetric import ec

    other = replace(local_sigstore, ct_key=ec.generate_private_key(ec.SECP256R1()))
    document = json.loads(local_sigstore.trusted_root_json())
    current_ct = json.loads(other.trusted_root_json())["ctlogs"][0]
    document["ctlogs"][0]["publicKey"]["validFor"]["end"] = _stamp(RETIRED)
    document["ctlogs"].append(current_ct)
    root = TrustRoot.from_json(json.dumps(document).encode(), name="windowed root")
    expected = (f"sig: the certificate transparency log {local_sigstore.ct_log_id.hex()[:16]} "
                "that signed the SCT was not valid at ")
    for fmt in FORMATS:
        failure = _failure(local_sigstore, root, fmt)
        assert failure.startswith(expected)
        assert failure.endswith(" in windowed root")


def test_a_retired_intermediate_fails_though_its_root_is_in_a_current_ca(
    local_sigstore: LocalSigstore,
) -> None:
    """A rotation that keeps the root: the old intermediate's CA retired, the root listed again
    in a current CA. The CA that issued the certificate decides, not any CA on the chain."""
    document = json.loads(local_sigstore.trusted_root_json())
    retired = document["certificateAuthorities"][0]
    retired["validFor"]["end"] = _stamp(RETIRED)
    current = json.loads(json.dumps(retired))
    current["validFor"] = {"start": retired["validFor"]["start"]}
    current["certChain"]["certificates"] = current["certChain"]["certificates"][1:]  # root only
    document["certificateAuthorities"].append(current)
    root = TrustRoot.from_json(json.dumps(document).encode(), name="windowed root")
    for fmt in FORMATS:
        assert "the Fulcio CA of windowed root that issued the certificate was not valid" in \
            _failure(local_sigstore, root, fmt)


def test_a_bundle_without_an_integrated_time_is_refused_not_waved_through(
    local_sigstore: LocalSigstore, local_root: TrustRoot
) -> None:
    """A TSA-timed bundle (no inclusion promise) reaches this check only after sigstore verified
    it, which needs a timestamp authority the local Sigstore lacks: the check is called as is."""
    from sigstore.models import Bundle

    from chartguard.verify import _bundle
    from chartguard.verify._common import Rejected
    from chartguard.verify._fulcio import FulcioChecker

    bundle = Bundle.from_json(sign_bundle_keyless(local_sigstore, DIGEST))
    with pytest.raises(Rejected, match="timed by a timestamp authority only"):
        _bundle._check_windows(None, bundle, local_root, FulcioChecker(local_root))

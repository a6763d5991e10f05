"""The verifier: built once per policy, then asked about one digest at a time."""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sigstore.errors import Error as SigstoreError
from sigstore.verify import Verifier as SigstoreVerifier

from chartguard.digest import DIGEST as DIGEST_RE
from chartguard.untrusted import escape
from chartguard.verify import _attest, _bundle, _legacy
from chartguard.verify._common import Rejected
from chartguard.verify._fulcio import FulcioChecker
from chartguard.verify.errors import (
    InvalidTrustRootError,
    NoSignatureError,
    VerificationError,
    VerificationFailedError,
)
from chartguard.verify.model import (
    AttestationCandidates,
    BundleCandidate,
    LegacySignature,
    VerificationResult,
    VerifiedAttestation,
)
from chartguard.verify.policy import VerificationPolicy
from chartguard.verify.trust import TrustRoot

_log = logging.getLogger(__name__)
# Longer reasons are cut: a failure line quotes at most a few outside values of 200 characters.
_MAX_REASON = 2000


class Verifier:
    """Verifies cosign signatures of one digest against one policy; fails closed.

    Construction loads the trust material (and sigstore's verifier for keyless policies), so
    build it once and reuse it: each `verify` then costs only the signature checks.
    """

    def __init__(self, policy: VerificationPolicy) -> None:
        self.policy = policy
        # Key-based policies still check a layer's Rekor SET when its log is known; the
        # production root serves when none is given.
        self._trust_root = policy.trust_root or TrustRoot.production()
        self._keyless: _KeylessMaterial | None = None
        if policy.keyless:
            if not self._trust_root.ct_logs:  # sigstore's verifier would refuse it less clearly
                raise InvalidTrustRootError(
                    f"{self._trust_root.name} has no certificate transparency log: it cannot "
                    "verify keyless signatures"
                )
            try:
                self._keyless = _KeylessMaterial(
                    FulcioChecker(self._trust_root),
                    SigstoreVerifier(trusted_root=self._trust_root.sigstore_root),
                )
            except (SigstoreError, ValueError) as exc:
                raise InvalidTrustRootError(
                    f"{self._trust_root.name} cannot verify keyless signatures: {escape(exc)}"
                ) from None

    @property
    def trust_root(self) -> TrustRoot:
        return self._trust_root

    def verify(
        self,
        digest: str,
        legacy: Sequence[LegacySignature],
        bundles: Sequence[BundleCandidate],
    ) -> VerificationResult:
        """The first signature that verifies, or VerificationFailedError with every reason."""
        if not DIGEST_RE.fullmatch(digest):
            raise VerificationError(f"{digest!r} is not a sha256 manifest digest (sha256:<hex>)")
        if not legacy and not bundles:
            raise NoSignatureError(digest)
        failures: list[str] = []
        for sig in legacy:
            outcome = self._attempt(sig.source, partial(self._legacy, sig, digest))
            if isinstance(outcome, VerificationResult):
                return outcome
            failures.extend(outcome)
        for candidate in bundles:
            outcome = self._attempt(candidate.source, partial(self._bundle, candidate, digest))
            if isinstance(outcome, VerificationResult):
                return outcome
            failures.extend(outcome)
        raise VerificationFailedError(digest, tuple(failures))

    def attestations(
        self,
        digest: str,
        legacy: Sequence[LegacySignature],
        bundles: Sequence[BundleCandidate],
        predicate_types: Sequence[str],
    ) -> AttestationCandidates:
        """Every attestation of one of ``predicate_types`` for ``digest``, verified as a
        signature is (same keys, identities and trust root; subject ``digest``), each
        statement once.

        ``legacy``: the layers of the ``.att`` manifest (DSSE envelopes); ``bundles``: every
        bundle referrer (signatures among them are passed over: their predicate type is not
        asked for). A candidate is routed by the type it claims before verification, then
        verified for that type only; the reasons of those that failed are kept per type (an
        ``.att`` layer whose type cannot be read, under ``""``). Copies are not verified again:
        a candidate whose bytes were tried already, or whose statement (payload sha256)
        verified already, is only counted (``duplicates``) -- anyone who may push can replay
        one signed attestation into every layer and referrer. A copy of a statement that did
        not verify is still tried (its signature may be the one that holds).
        """
        if not DIGEST_RE.fullmatch(digest):
            raise VerificationError(f"{digest!r} is not a sha256 manifest digest (sha256:<hex>)")
        wanted = frozenset(predicate_types)
        verified: list[VerifiedAttestation] = []
        failures: dict[str, list[str]] = {}
        tried: set[bytes] = set()
        statements: set[str] = set()
        duplicates = 0

        def copy(candidate: bytes) -> bool:
            """These exact bytes were seen already (counted, not tried again)."""
            nonlocal duplicates
            identity = hashlib.sha256(candidate).digest()
            if identity in tried:
                duplicates += 1
                return True
            tried.add(identity)
            return False

        def attempt(source: str, peeked: _attest.Peeked,
                    check: Callable[[tuple[str, ...]],
                                    tuple[VerificationResult, dict[str, Any]]]) -> None:
            nonlocal duplicates
            kind = peeked.kind
            if kind is None or kind not in wanted:
                return
            if peeked.payload_sha256 in statements:
                duplicates += 1
                return
            found: list[tuple[VerificationResult, dict[str, Any]]] = []
            outcome = self._attempt(source, lambda: _keep(found, check((kind,))))
            if isinstance(outcome, VerificationResult) and found:
                assert peeked.payload_sha256 is not None  # a statement was read
                statements.add(peeked.payload_sha256)
                verified.append(VerifiedAttestation(kind, found[0][0], found[0][1],
                                                    peeked.payload_sha256))
            elif not isinstance(outcome, VerificationResult):
                failures.setdefault(kind, []).extend(outcome)

        for layer in legacy:
            # the same bytes with other annotations (a Rekor bundle) are another candidate
            annotations = json.dumps(sorted(layer.annotations.items())).encode()
            if copy(layer.payload + b"\0" + annotations):
                continue
            peeked = _attest.peek(layer.payload)
            if peeked.kind is None:  # an .att layer holds attestations only: say why unread
                failures.setdefault("", []).append(
                    f"{escape(layer.source)}: not read as an in-toto attestation: "
                    f"{escape(peeked.problem, limit=_MAX_REASON)}")
                continue
            attempt(layer.source, peeked, partial(self._legacy_attestation, layer, digest))
        for candidate in bundles:
            if not copy(candidate.data):
                attempt(candidate.source, _attest.peek(candidate.data, bundle=True),
                        partial(self._bundle_attestation, candidate, digest))
        return AttestationCandidates(
            verified=tuple(verified),
            failures={kind: tuple(lines) for kind, lines in failures.items()},
            duplicates=duplicates)

    def _legacy_attestation(self, layer: LegacySignature, digest: str,
                            kinds: tuple[str, ...]) -> tuple[VerificationResult, dict[str, Any]]:
        if self._keyless is None:
            return _attest.verify_with_keys(layer, digest, self.policy.keys, self._trust_root,
                                            kinds)
        return _attest.verify_keyless(layer, digest, self.policy.identities, self._trust_root,
                                      self._keyless.fulcio, kinds)

    def _bundle_attestation(self, candidate: BundleCandidate, digest: str,
                            kinds: tuple[str, ...]) -> tuple[VerificationResult, dict[str, Any]]:
        if self._keyless is None:
            return _bundle.key_statement(candidate, digest, self.policy.keys,
                                         self._trust_root, kinds, what="attestation")
        return _bundle.keyless_statement(candidate, digest, self.policy.identities,
                                         self._keyless.sigstore, self._keyless.fulcio,
                                         self._trust_root, kinds, what="attestation")

    @staticmethod
    def _attempt(
        source: str, check: Callable[[], VerificationResult]
    ) -> VerificationResult | tuple[str, ...]:
        try:
            return check()
        except Rejected as exc:
            # each reason escapes what it quotes; this guard keeps every failure one line even
            # if one did not (escaping is idempotent on escaped text)
            return tuple(escape(line, limit=_MAX_REASON) for line in exc.lines)
        except Exception as exc:  # fail closed: a library surprise rejects this signature only
            where = traceback.extract_tb(exc.__traceback__)[-1]
            # no traceback in the log: its message could carry the signature's text unescaped
            _log.warning("verifying %s raised %s at %s:%s: %s", escape(source),
                         type(exc).__name__, where.filename, where.lineno, escape(exc))
            return (f"{escape(source)}: could not be verified "
                    f"({type(exc).__name__}: {escape(exc)})",)

    def _legacy(self, sig: LegacySignature, digest: str) -> VerificationResult:
        if self._keyless is None:
            return _legacy.verify_with_keys(sig, digest, self.policy.keys, self._trust_root)
        return _legacy.verify_keyless(
            sig, digest, self.policy.identities, self._trust_root, self._keyless.fulcio
        )

    def _bundle(self, candidate: BundleCandidate, digest: str) -> VerificationResult:
        if self._keyless is None:
            return _bundle.verify_with_keys(
                candidate,
                digest,
                self.policy.keys,
                self._trust_root,
                self.policy.bundle_predicate_types,
            )
        return _bundle.verify_keyless(
            candidate,
            digest,
            self.policy.identities,
            self._keyless.sigstore,
            self._keyless.fulcio,
            self._trust_root,
            self.policy.bundle_predicate_types,
        )


def _keep(found: list[tuple[VerificationResult, dict[str, Any]]],
          outcome: tuple[VerificationResult, dict[str, Any]]) -> VerificationResult:
    found.append(outcome)
    return outcome[0]


@dataclass(frozen=True)
class _KeylessMaterial:
    """What a keyless policy needs, built once: our Fulcio checks and sigstore's verifier."""

    fulcio: FulcioChecker
    sigstore: SigstoreVerifier

"""Verify tests' support: charts pushed by real helm, signed by the test signer, stored
the way cosign stores them.

A :class:`Signing` ties one test's registry, chart and local Sigstore together and knows the
three ways of checking it: the library path (``RegistryClient`` + ``verify_artifacts``),
``chartguard verify`` against the registry, and ``chartguard verify --local-image`` against
a layout copied from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chartguard.cli import main
from chartguard.oci import ChartReference, RegistryClient, SignatureArtifacts
from chartguard.reconcile.verification import build_policy, verify_artifacts
from chartguard.verify import (
    LegacySignature,
    VerificationFailedError,
    VerificationResult,
    Verifier,
)
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.registry import Registry
from chartguard_testing.sigstore_local import LocalSigstore

IDENTITY = "signer@example.com"
ISSUER = "https://accounts.example.com"


@dataclass(frozen=True)
class Policy:
    """A verification policy as command-line inputs (the library gets the same inputs)."""

    keys: tuple[Path, ...] = ()
    identity: tuple[str, str] | None = None  # (issuer regexp, subject regexp)
    trusted_root: Path | None = None

    def flags(self) -> list[str]:
        out: list[str] = []
        for key in self.keys:
            out += ["--key", str(key)]
        if self.identity:
            out += ["--certificate-oidc-issuer-regexp", self.identity[0],
                    "--certificate-identity-regexp", self.identity[1]]
        if self.trusted_root:
            out += ["--trusted-root", str(self.trusted_root)]
        return out

    def verifier(self) -> Verifier:
        return Verifier(build_policy(key_files=self.keys,
                                     identities=[self.identity] if self.identity else [],
                                     trusted_root=self.trusted_root))


@dataclass
class Outcome:
    """What one way of verifying said: exit code and all text it printed (or raised)."""

    code: int
    text: str
    result: VerificationResult | None = None
    digest: str = ""  # the digest the library's result or error is about


@dataclass
class Signing:
    registry: Registry
    helm: HelmEnv
    sigstore: LocalSigstore
    tmp: Path
    chart: PushedChart
    _other: PushedChart | None = None
    keys: dict[str, cs.KeyPair] = field(default_factory=dict)

    # -- making signatures ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.chart.url}/{self.chart.name}"

    def other(self) -> PushedChart:
        """A second chart in the same registry (signatures copied from it must fail)."""
        if self._other is None:
            self._other = self.helm.make_chart(self.registry, "other", "9.9.9")
        return self._other

    def key(self, name: str, kind: cs.KeyKind = "ecdsa-p256") -> Path:
        """A key pair named ``name``; its public half written to ``keys/<name>``."""
        pair = self.keys.get(name) or cs.generate_key_pair(kind)
        self.keys[name] = pair
        path = self.tmp / "keys" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(pair.public_pem)
        return path

    def payload(self, digest: str | None = None, **kw: str) -> bytes:
        return cs.simple_signing_payload(self.chart.repository, digest or self.chart.digest,
                                         **kw)

    def push_legacy(self, *layers: LegacySignature, digest: str | None = None) -> None:
        rs.push_legacy_signature(self.registry, self.chart.repository,
                                 digest or self.chart.digest, layers)

    def push_bundle(self, bundle: bytes, *, subject: PushedChart | None = None) -> None:
        """Store a bundle under this chart's referrers tag (its subject: ``subject``'s)."""
        rs.push_bundle(self.registry, self.chart.repository, self.chart.digest, bundle,
                       subject_digest=subject.digest if subject else None,
                       subject_repository=subject.repository if subject else None)

    def trusted_root(self) -> Path:
        path = self.tmp / "trusted_root.json"
        path.write_bytes(self.sigstore.trusted_root_json())
        return path

    def keyless_policy(self, issuer: str = ISSUER, subject: str = IDENTITY) -> Policy:
        return Policy(identity=(f"^{issuer}$", f"^{subject}$"),
                      trusted_root=self.trusted_root())

    # -- checking them ----------------------------------------------------------------------

    def artifacts(self) -> SignatureArtifacts:
        with RegistryClient(plain_http=True) as client:
            ref = ChartReference.parse_chart_url(self.url)
            digest = client.resolve(ref, self.chart.version).digest
            assert digest == self.chart.digest  # what helm pushed is what is verified
            return client.find_signatures(ref, digest)

    def via_library(self, policy: Policy) -> Outcome:
        try:
            result = verify_artifacts(policy.verifier(), self.artifacts())
        except VerificationFailedError as err:
            return Outcome(1, str(err), digest=err.digest)
        return Outcome(0, result.summary(), result, digest=result.digest)

    def via_cli(self, policy: Policy, capsys: pytest.CaptureFixture[str]) -> Outcome:
        code = main(["verify", self.url, "--version", self.chart.version, "--plain-http",
                     *policy.flags()])
        out = capsys.readouterr()
        return Outcome(code, out.out + out.err)

    def layout(self, **kw: object) -> Path:
        return rs.copy_to_layout(self.registry, self.chart.repository, self.chart.digest,
                                 self.tmp / "layout", tag=self.chart.version, **kw)  # type: ignore[arg-type]

    def via_layout(self, policy: Policy, capsys: pytest.CaptureFixture[str]) -> Outcome:
        code = main(["verify", "--local-image", str(self.layout()), *policy.flags()])
        out = capsys.readouterr()
        return Outcome(code, out.out + out.err)

"""Real cosign (v2 and v3, built by ``make tools``) signs charts that real helm pushed to our
registry; ``chartguard verify`` (the command, text and ``--output json``) and the library path
(``RegistryClient`` + ``chartguard.reconcile.verification``) must conclude what
``cosign verify`` concludes.

The AGREEMENT matrix (``CASES``): for every case both tools can express, each cosign that can
read the signature's format and every chartguard path must all accept or all refuse. Each row
is recorded (``record_property("cosign_agreement", ...)``) and the table is printed at the end
of the run (tests/conftest.py). Where the tools legitimately differ, a test says so by name
(``test_difference_*``) and asserts both sides.

Nothing here reaches the network: cosign runs with a private home and a proxy that refuses
everything but 127.0.0.1 (chartguard_testing.cosign_cli), keys are throwaway.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from cosign_tamper import (
    copy_bundles,
    copy_legacy_signature,
    flip_bundle_signature,
    flip_legacy_signature,
    swap_legacy_payload_digest,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chartguard.cli import main
from chartguard.oci import ChartReference, RegistryClient
from chartguard.reconcile.verification import build_policy, verify_artifacts
from chartguard.verify import VerificationError, Verifier
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.cosign_cli import (
    COSIGN_V2_TOOL,
    COSIGN_V3_TOOL,
    CosignCLI,
    CosignKeys,
    Result,
)
from chartguard_testing.registry import Registry
from chartguard_testing.registry_signer import RegistryWriter, repository_path, sig_tag

REVIEW_TYPE = "https://chartguard.example/chart-review/v1"
Signer = Literal["v2-legacy", "v2-bundle", "v3-bundle", "v3-legacy", "v2-attest",
                 "v2-attest-bundle", "v3-attest", "none"]
KeyKind = Literal["ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-3072", "ed25519"]
# which signature format each signer writes: "legacy" (.sig), "bundle" (referrer), an
# attestation, or nothing
FORMAT: dict[Signer, str] = {
    "v2-legacy": "legacy", "v3-legacy": "legacy", "v2-bundle": "bundle",
    "v3-bundle": "bundle", "v2-attest": "attestation", "v2-attest-bundle": "attestation",
    "v3-attest": "attestation", "none": "none",
}
# how `cosign verify` is told to look for what each signer wrote: --new-bundle-format=
NEW_BUNDLE_FORMAT: dict[Signer, tuple[bool | None, ...]] = {
    "v2-legacy": (False,), "v3-legacy": (False,), "v2-bundle": (True,), "v3-bundle": (True,),
    "v2-attest": (False,), "v2-attest-bundle": (True,), "v3-attest": (True,),
    "none": (False, True),
}


def private_pem(kind: KeyKind) -> bytes:
    """An unencrypted PKCS#8 private key of ``kind``, for ``cosign import-key-pair``."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ecdsa-p384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind == "ecdsa-p521":
        key = ec.generate_private_key(ec.SECP521R1())
    elif kind == "rsa-3072":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Verdict:
    """One verifier's conclusion on one case."""

    who: str
    accepted: bool
    detail: str


@dataclass
class Bench:
    """One test's registry, a chart helm pushed there, and cosign v2/v3 homes of its own."""

    registry: Registry
    helm: HelmEnv
    tmp: Path
    capsys: pytest.CaptureFixture[str]
    chart: PushedChart
    _cosign: dict[str, CosignCLI] = field(default_factory=dict)
    _second: PushedChart | None = None

    def cosign(self, tool: str) -> CosignCLI:
        if tool not in self._cosign:
            self._cosign[tool] = CosignCLI(self.tmp / tool, tool)
        return self._cosign[tool]

    @property
    def v2(self) -> CosignCLI:
        return self.cosign(COSIGN_V2_TOOL)

    @property
    def v3(self) -> CosignCLI:
        return self.cosign(COSIGN_V3_TOOL)

    def by_digest(self, chart: PushedChart | None = None) -> str:
        """``host/charts/name@sha256:...``: what cosign signs."""
        chart = chart or self.chart
        return f"{chart.repository}@{chart.digest}"

    @property
    def by_tag(self) -> str:
        """``host/charts/name:version``: what both tools verify (each resolves the tag)."""
        return f"{self.chart.repository}:{self.chart.version}"

    def second_version(self) -> PushedChart:
        """Another version of the same chart, same repository (a different digest)."""
        if self._second is None:
            self._second = self.helm.make_chart(self.registry, self.chart.name, "2.0.0")
        return self._second

    def predicate(self) -> Path:
        path = self.tmp / "review.json"
        path.write_text(json.dumps({"reviewer": "release-team", "approved": True}))
        return path

    def keys(self, kind: KeyKind, name: str) -> CosignKeys:
        """A cosign key pair: P-256 from ``cosign generate-key-pair``, others imported."""
        if kind == "ecdsa-p256":
            return self.v2.generate_key_pair(name)
        return self.v2.import_key_pair(private_pem(kind), name)

    def sign(self, signer: Signer, keys: CosignKeys, chart: PushedChart | None = None) -> None:
        image = self.by_digest(chart)
        if signer == "v2-legacy":
            self.v2.sign(image, keys, bundle=False)
        elif signer == "v2-bundle":
            self.v2.sign(image, keys, bundle=True)
        elif signer == "v3-bundle":
            self.v3.sign(image, keys)  # v3's default: the new bundle format
        elif signer == "v3-legacy":
            self.v3.sign(image, keys, bundle=False)
        elif signer == "v2-attest":
            self.v2.attest(image, keys, self.predicate(), REVIEW_TYPE, bundle=False)
        elif signer == "v2-attest-bundle":
            self.v2.attest(image, keys, self.predicate(), REVIEW_TYPE, bundle=True)
        elif signer == "v3-attest":
            self.v3.attest(image, keys, self.predicate(), REVIEW_TYPE)
        else:
            assert signer == "none"

    # -- the verifiers -------------------------------------------------------------------------

    def cosign_verdicts(self, formats: tuple[bool | None, ...], pub: Path,
                        extra: tuple[str, ...] = ()) -> list[Verdict]:
        """``cosign verify`` by cosign v2 and v3, each with ``--new-bundle-format`` set to each
        of ``formats`` in turn (None: cosign's default); accepted when any run accepts, as
        chartguard reads both formats at once."""
        out = []
        for cli in (self.v2, self.v3):
            runs = [cli.verify(self.by_tag, pub, bundle=fmt, extra=extra) for fmt in formats]
            ok = next((r for r in runs if r.ok), None)
            out.append(_verdict(f"cosign {cli.version_text}", ok or runs[-1]))
        return out

    def chartguard_cli(self, pub: Path, *extra: str, output: str = "text") -> Verdict:
        code = main(["verify", f"{self.chart.url}/{self.chart.name}", "--version",
                     self.chart.version, "--plain-http", "--key", str(pub), *extra,
                     "--output", output])
        out = self.capsys.readouterr()
        if output == "json":
            doc = json.loads(out.out)
            assert doc["verified"] is (code == 0), out.out
            if code == 0:
                assert doc["digest"] == self.chart.digest
            return Verdict("chartguard verify --output json", code == 0,
                           json.dumps(doc.get("failures") or doc.get("source")))
        assert code in (0, 1), f"usage error: {out.err}"
        return Verdict("chartguard verify", code == 0, (out.out + out.err).strip())

    def chartguard_library(self, pub: Path, predicate_types: tuple[str, ...] = ()) -> Verdict:
        verifier = Verifier(build_policy(key_files=[pub],
                                         bundle_predicate_types=predicate_types))
        with RegistryClient(plain_http=True) as client:
            ref = ChartReference.parse_chart_url(f"{self.chart.url}/{self.chart.name}")
            digest = client.resolve(ref, self.chart.version).digest
            try:
                result = verify_artifacts(verifier, client.find_signatures(ref, digest))
            except VerificationError as err:
                return Verdict("chartguard library", False, str(err))
        assert result.digest == digest
        return Verdict("chartguard library", True, result.summary())

    def chartguard_verdicts(self, pub: Path, *extra: str) -> list[Verdict]:
        types = tuple(extra[i + 1] for i, flag in enumerate(extra)
                      if flag == "--bundle-predicate-type")
        return [self.chartguard_cli(pub, *extra), self.chartguard_cli(pub, *extra, output="json"),
                self.chartguard_library(pub, types)]


def _verdict(who: str, res: Result) -> Verdict:
    return Verdict(who, res.ok, res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "")


@pytest.fixture
def bench(registry: Registry, helm_env: HelmEnv, tmp_path: Path,
          capsys: pytest.CaptureFixture[str]) -> Bench:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    return Bench(registry, helm_env, tmp_path, capsys, chart)


# --- the agreement matrix -------------------------------------------------------------------

def _flip_signature(b: Bench) -> None:
    if _stored_legacy(b):
        flip_legacy_signature(b.registry, b.chart.repository, b.chart.digest)
    else:
        flip_bundle_signature(b.registry, b.chart.repository, b.chart.digest)


def _stored_legacy(b: Bench) -> bool:
    writer = RegistryWriter(b.registry)
    return writer.get_manifest(repository_path(b.chart.repository),
                               sig_tag(b.chart.digest)) is not None


def _swap_payload(b: Bench) -> None:
    swap_legacy_payload_digest(b.registry, b.chart.repository, b.chart.digest,
                               b.second_version().digest)


def _repush(b: Bench) -> None:
    """The tag is pushed again with other content after signing: the signature is for the
    old digest, and both tools resolve the tag to the new one."""
    src = b.helm.create(b.chart.name, b.chart.version, extra_files={"templates/x.txt": b"x"})
    digest = b.helm.push(b.helm.package(src), b.registry)
    assert digest != b.chart.digest
    b.chart = PushedChart(b.chart.name, b.chart.version, digest, b.chart.package,
                          b.chart.repository, b.chart.url)


@dataclass(frozen=True)
class Case:
    name: str
    signer: Signer
    accepted: bool
    key: KeyKind = "ecdsa-p256"
    wrong_key: bool = False
    mutation: str = ""  # flip-signature, swap-payload, copied-from-other, repush, also-wrong
    cosign_flags: tuple[str, ...] = ()  # what cosign verify needs besides the key
    # verdicts that legitimately differ from ``accepted``: (verifier name prefix, verdict)
    differs: tuple[tuple[str, bool], ...] = ()
    # what chartguard must say when it refuses (so a refusal is for the right reason)
    reason: str = ""

    def expects(self, who: str) -> bool:
        return next((v for prefix, v in self.differs if who.startswith(prefix)), self.accepted)

    @property
    def expected(self) -> str:
        word = {True: "accept", False: "refuse"}
        if not self.differs:
            return word[self.accepted]
        return word[self.accepted] + "; " + ", ".join(
            f"{prefix} {word[v]}s" for prefix, v in self.differs) + " (documented)"


NO_MATCH = "signature does not match"
UNSIGNED = "no signature for"
ATTESTATION = "an attestation, not a signature"
CASES = [
    Case("v2-legacy right key", "v2-legacy", True),
    Case("v3-legacy right key", "v3-legacy", True),
    Case("v3-bundle right key", "v3-bundle", True),
    Case("v2-bundle right key", "v2-bundle", True),
    # cosign signs with the curve's hash (SHA-384) but verifies with SHA-256 unless told:
    # chartguard accepts both hashes, as DESIGN §5 says (test_difference_p384_hash)
    Case("v2-legacy P-384 key", "v2-legacy", True, key="ecdsa-p384",
         cosign_flags=("--signature-digest-algorithm", "sha384")),
    Case("v3-bundle P-384 key", "v3-bundle", True, key="ecdsa-p384",
         cosign_flags=("--signature-digest-algorithm", "sha384")),
    Case("v2-legacy P-521 key", "v2-legacy", True, key="ecdsa-p521",
         cosign_flags=("--signature-digest-algorithm", "sha512")),
    Case("v3-bundle P-521 key", "v3-bundle", True, key="ecdsa-p521",
         cosign_flags=("--signature-digest-algorithm", "sha512")),
    Case("v2-legacy RSA-3072 key", "v2-legacy", True, key="rsa-3072"),
    Case("v3-bundle RSA-3072 key", "v3-bundle", True, key="rsa-3072"),
    # cosign (v2.6 and v3.1) signs with an Ed25519 key using Ed25519ph and verifies pure
    # Ed25519: its own verify refuses what it signed, and so does chartguard (pure Ed25519,
    # DESIGN §5)
    Case("v2-legacy ed25519 key (cosign refuses its own)", "v2-legacy", False, key="ed25519",
         reason=NO_MATCH),
    Case("v3-bundle ed25519 key (cosign refuses its own)", "v3-bundle", False, key="ed25519",
         reason=NO_MATCH),
    Case("v2-legacy wrong key", "v2-legacy", False, wrong_key=True, reason=NO_MATCH),
    Case("v3-bundle wrong key", "v3-bundle", False, wrong_key=True, reason=NO_MATCH),
    Case("v2-legacy tampered signature annotation", "v2-legacy", False,
         mutation="flip-signature", reason=NO_MATCH),
    Case("v3-bundle tampered DSSE signature", "v3-bundle", False, mutation="flip-signature",
         reason=NO_MATCH),
    Case("v2-legacy payload claims another digest", "v2-legacy", False,
         mutation="swap-payload", reason=NO_MATCH),
    Case("v2-legacy signature copied from another digest", "v2-legacy", False,
         mutation="copied-from-other", reason="signature copied from another artifact"),
    Case("v3-bundle copied from another digest", "v3-bundle", False,
         mutation="copied-from-other", reason="bundle made for another artifact"),
    Case("v2-legacy tag re-pushed after signing", "v2-legacy", False, mutation="repush",
         reason=UNSIGNED),
    Case("v3-bundle tag re-pushed after signing", "v3-bundle", False, mutation="repush",
         reason=UNSIGNED),
    Case("v2-legacy by a wrong key and by the right key", "v2-legacy", True,
         mutation="also-wrong"),
    # both formats at once: any signature of either format verifying is enough
    Case("v3-bundle by the right key, v2-legacy by a wrong key", "v3-bundle", True,
         mutation="legacy-by-wrong-key"),
    # cosign v2.6 looks only at bundles once the chart has a bundle referrer, even with
    # --new-bundle-format=false: its good legacy signature is not looked at
    Case("v2-legacy by the right key, v3-bundle by a wrong key", "v2-legacy", True,
         mutation="bundle-by-wrong-key", differs=(("cosign v2", False),)),
    Case("v2-legacy and v3-bundle, both by a wrong key", "v2-legacy", False,
         wrong_key=True, mutation="bundle-by-wrong-key", reason=NO_MATCH),
    Case("unsigned chart", "none", False, reason=UNSIGNED),
    Case("v2 attestation only (.att), default policy", "v2-attest", False, reason=UNSIGNED),
    # cosign verify takes ANY key-signed bundle as a signature, whatever its predicate type;
    # chartguard only cosign's signature type unless --bundle-predicate-type names another
    # (README; test_difference_attestation_bundle_approves_only_when_its_type_is_accepted)
    Case("v2 attestation only (bundle), default policy", "v2-attest-bundle", True,
         differs=(("chartguard", False),), reason=ATTESTATION),
    Case("v3 attestation only (bundle), default policy", "v3-attest", True,
         differs=(("chartguard", False),), reason=ATTESTATION),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_agreement(bench: Bench, case: Case, record_property: Callable[[str, object], None],
                   ) -> None:
    keys = bench.keys(case.key, "signer")
    pub = keys.public
    if case.wrong_key:
        pub = bench.keys("ecdsa-p256", "other").public
    if case.mutation == "copied-from-other":
        other = bench.second_version()
        bench.sign(case.signer, keys, other)
        if FORMAT[case.signer] == "legacy":
            copy_legacy_signature(bench.registry, bench.chart.repository, other.digest,
                                  bench.chart.digest)
        else:
            copy_bundles(bench.registry, bench.chart.repository, other.digest,
                         bench.chart.digest)
    else:
        if case.mutation == "also-wrong":
            bench.sign(case.signer, bench.keys("ecdsa-p256", "other"))
        elif case.mutation == "legacy-by-wrong-key":
            bench.sign("v2-legacy", bench.keys("ecdsa-p256", "other"))
        elif case.mutation == "bundle-by-wrong-key":
            bench.sign("v3-bundle", bench.keys("ecdsa-p256", "third"))
        bench.sign(case.signer, keys)
    if case.mutation == "flip-signature":
        _flip_signature(bench)
    elif case.mutation == "swap-payload":
        _swap_payload(bench)
    elif case.mutation == "repush":
        _repush(bench)

    formats = NEW_BUNDLE_FORMAT[case.signer]
    if case.mutation in ("legacy-by-wrong-key", "bundle-by-wrong-key"):
        formats = (False, True)
    verdicts = [*bench.cosign_verdicts(formats, pub, case.cosign_flags),
                *bench.chartguard_verdicts(pub)]
    row = {"case": case.name, "expected": case.expected,
           **{v.who: "accept" if v.accepted else "refuse" for v in verdicts}}
    record_property("cosign_agreement", row)
    print(json.dumps(row))
    wrong = [v for v in verdicts if v.accepted is not case.expects(v.who)]
    assert not wrong, "\n".join(f"{v.who}: {'accepted' if v.accepted else 'refused'}: "
                                f"{v.detail}" for v in wrong)
    refusals = [v for v in verdicts if v.who.startswith("chartguard") and not v.accepted]
    assert all(case.reason in v.detail for v in refusals), refusals


# --- where the tools legitimately differ ------------------------------------------------------


@pytest.mark.parametrize("signer", ["v2-attest-bundle", "v3-attest"])
def test_difference_attestation_bundle_approves_only_when_its_type_is_accepted(
        bench: Bench, signer: Signer) -> None:
    """A ``cosign attest`` bundle (predicate type REVIEW_TYPE) is an attestation: cosign
    checks it with ``verify-attestation --type``; chartguard refuses it as a signature unless
    ``--bundle-predicate-type`` names its type (README, chartguard verify)."""
    keys = bench.keys("ecdsa-p256", "signer")
    bench.sign(signer, keys)
    cli = bench.v2 if signer.startswith("v2") else bench.v3
    assert cli.verify_attestation(bench.by_tag, keys.public, REVIEW_TYPE, bundle=True).ok
    # cosign verify takes it for a signature (any predicate type): chartguard does not
    assert cli.verify(bench.by_tag, keys.public, bundle=True).ok
    refused = bench.chartguard_verdicts(keys.public)
    assert [v.accepted for v in refused] == [False, False, False], refused
    assert all("an attestation, not a signature" in v.detail for v in refused), refused
    accepted = bench.chartguard_verdicts(keys.public, "--bundle-predicate-type", REVIEW_TYPE)
    assert [v.accepted for v in accepted] == [True, True, True], accepted
    # the type is not a wildcard: another type still refuses it
    other = bench.chartguard_verdicts(keys.public, "--bundle-predicate-type",
                                      "https://slsa.dev/provenance/v1")
    assert [v.accepted for v in other] == [False, False, False], other


def test_difference_legacy_attestations_are_not_read(bench: Bench) -> None:
    """cosign v2 ``attest`` (no new bundle format) stores a DSSE envelope at
    ``sha256-<hex>.att``: ``cosign verify-attestation`` accepts it, chartguard never reads
    ``.att`` (only bundles can approve a chart through their predicate type), so it finds no
    signature even with ``--bundle-predicate-type``."""
    keys = bench.keys("ecdsa-p256", "signer")
    bench.sign("v2-attest", keys)
    assert bench.v2.verify_attestation(bench.by_tag, keys.public, REVIEW_TYPE,
                                       bundle=False).ok
    verdicts = bench.chartguard_verdicts(keys.public, "--bundle-predicate-type", REVIEW_TYPE)
    assert [v.accepted for v in verdicts] == [False, False, False], verdicts
    assert all("no signature for" in v.detail for v in verdicts), verdicts


def test_difference_p384_signature_hash(bench: Bench) -> None:
    """cosign signs with a P-384 key using SHA-384 but ``cosign verify`` assumes SHA-256
    unless given ``--signature-digest-algorithm sha384``; chartguard tries the curve's hash
    and SHA-256 (DESIGN §5), so it needs no such flag."""
    keys = bench.keys("ecdsa-p384", "signer")
    bench.sign("v2-legacy", keys)
    assert not bench.v2.verify(bench.by_tag, keys.public).ok
    assert bench.v2.verify(bench.by_tag, keys.public,
                           extra=("--signature-digest-algorithm", "sha384")).ok
    verdicts = bench.chartguard_verdicts(keys.public)
    assert [v.accepted for v in verdicts] == [True, True, True], verdicts


# --- air-gapped: what ``cosign save`` writes ---------------------------------------------------


@pytest.mark.parametrize("signer", ["v2-legacy", "v3-legacy", "v2-bundle", "v3-bundle"])
def test_cosign_save_layout_agreement(bench: Bench, signer: Signer,
                                      record_property: Callable[[str, object], None]) -> None:
    """``cosign save`` (by the cosign that signed) writes an OCI layout; ``cosign verify
    --local-image`` and ``chartguard verify --local-image`` agree on it with the right key and
    with a wrong one. cosign v3 leaves bundle referrers unlisted in blobs/ (found by both);
    cosign v2.6 ``save`` does not copy bundles at all, so there both find no signature."""
    keys = bench.keys("ecdsa-p256", "signer")
    wrong = bench.keys("ecdsa-p256", "other")
    bench.sign(signer, keys)
    cli = bench.v2 if signer.startswith("v2") else bench.v3
    layout = bench.tmp / "layout"
    cli.run("save", "--dir", str(layout), *cli.registry_flags(), bench.by_digest(), check=True)
    expected = signer != "v2-bundle"
    for pub, accept in ((keys.public, expected), (wrong.public, False)):
        fmt = NEW_BUNDLE_FORMAT[signer][0] if cli.major == 2 else None
        theirs = cli.run("verify", "--key", str(pub), "--insecure-ignore-tlog=true",
                         "--trusted-root", str(cli.trusted_root),
                         *([f"--new-bundle-format={str(fmt).lower()}"] if fmt else []),
                         "--local-image", str(layout))
        code = main(["verify", "--local-image", str(layout), "--key", str(pub)])
        out = bench.capsys.readouterr()
        row = {"case": f"cosign save ({signer}), {'right' if pub == keys.public else 'wrong'}"
                       " key, --local-image", "expected": "accept" if accept else "refuse",
               f"cosign {cli.version_text}": "accept" if theirs.ok else "refuse",
               "chartguard verify": "accept" if code == 0 else "refuse"}
        record_property("cosign_agreement", row)
        assert theirs.ok is accept, theirs.describe()
        assert (code == 0) is accept, out.out + out.err


# --- chartguard verify as a separate process ------------------------------------------------


@pytest.mark.parametrize("signer", ["v2-legacy", "v3-bundle"])
def test_chartguard_process_json_output(bench: Bench, signer: Signer) -> None:
    """``python -m chartguard verify --output json`` on what real cosign signed: exit codes
    and the JSON document, accepted with the signer's key and refused with another."""
    keys = bench.keys("ecdsa-p256", "signer")
    wrong = bench.keys("ecdsa-p256", "other")
    bench.sign(signer, keys)
    url = f"{bench.chart.url}/{bench.chart.name}"

    def run(pub: Path) -> tuple[int, dict[str, object]]:
        proc = subprocess.run(
            [sys.executable, "-m", "chartguard", "verify", url, "--version",
             bench.chart.version, "--plain-http", "--key", str(pub), "--output", "json"],
            capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        doc: dict[str, object] = json.loads(proc.stdout)
        return proc.returncode, doc

    code, doc = run(keys.public)
    assert code == 0, doc
    assert doc["verified"] is True
    assert doc["digest"] == bench.chart.digest
    assert doc["format"] == FORMAT[signer]
    assert doc["target"] == f"{url}:{bench.chart.version}@{bench.chart.digest}"
    code, doc = run(wrong.public)
    assert code == 1
    assert doc["verified"] is False
    assert doc["failures"], doc


# --- the equipment itself ---------------------------------------------------------------------


def test_missing_cosign_fails_and_says_make_tools(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No cosign anywhere is an error naming ``make tools``, never a skip."""
    from chartguard_testing import tools

    monkeypatch.delenv("CHARTGUARD_COSIGN3", raising=False)
    monkeypatch.setattr(tools, "TOOLS_DIR", tmp_path / "empty")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(tools.ToolMissingError, match="make tools"):
        CosignCLI(tmp_path / "c", COSIGN_V3_TOOL)


def test_cosign_runs_isolated_and_offline(bench: Bench) -> None:
    """Its home, docker config and TUF cache are the test's own, the key password reaches it
    only through the environment of a signing call, and the only network it can use is
    127.0.0.1: cosign's attempt to fetch Sigstore's public trust root fails at the proxy."""
    for cli in (bench.v2, bench.v3):
        for name in ("HOME", "DOCKER_CONFIG", "TUF_ROOT", "TMPDIR"):
            assert Path(cli.env[name]).is_relative_to(bench.tmp), name
        assert "COSIGN_PASSWORD" not in cli.env
        assert not any(k.startswith("COSIGN_") for k in cli.env)
        res = cli.run("initialize")  # fetches the public-good TUF root: must not get out
        assert not res.ok
        assert "127.0.0.1:9" in res.stderr, res.stderr

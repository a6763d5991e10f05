"""Attestation requirements (``--attestation TYPE[=CEL]``, a chartguard extension) against what
REAL cosign writes: ``cosign attest`` v2 (legacy ``sha256-<hex>.att``), ``cosign attest
--new-bundle-format`` v2 and cosign v3's default (Sigstore bundles as referrers), with keys,
offline (chartguard_testing.cosign_cli).

Each requirement is met by an attestation of its predicate type for the chart's digest, signed
under the signature's policy, whose predicate makes the CEL policy true; an attestation never
counts as the signature itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chartguard.cli import main
from chartguard_testing.charts import HelmEnv, PushedChart
from chartguard_testing.cosign_cli import COSIGN_V2_TOOL, COSIGN_V3_TOOL, CosignCLI, CosignKeys
from chartguard_testing.registry import Registry
from chartguard_testing.registry_signer import RegistryWriter, copy_to_layout, repository_path

SLSA = "https://slsa.dev/provenance/v1"
BUILDER = "https://github.com/org/charts/.github/workflows/release.yml@refs/heads/main"
POLICY = ('predicate.buildDefinition.buildType.startsWith("https://actions.github.io/") && '
          f'predicate.runDetails.builder.id == "{BUILDER}"')
# the same policy with one field changed (another branch's workflow)
OTHER_BRANCH = POLICY.replace("refs/heads/main", "refs/heads/dev")


def provenance(steps: int = 3) -> dict[str, Any]:
    """An SLSA v1 provenance predicate as GitHub's generator writes it (trimmed)."""
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main",
                                                "repository": "https://github.com/org/charts",
                                                "path": ".github/workflows/release.yml"}},
            "resolvedDependencies": [{"uri": f"git+https://github.com/org/charts@step{n}",
                                      "digest": {"gitCommit": f"{n:040x}"}}
                                     for n in range(steps)],
        },
        "runDetails": {"builder": {"id": BUILDER},
                       "metadata": {"invocationId": "https://github.com/org/charts/actions/1"}},
    }


@dataclass
class Attested:
    """A chart helm pushed, cosign v2/v3 homes, and what was signed and attested."""

    registry: Registry
    helm: HelmEnv
    tmp: Path
    capsys: pytest.CaptureFixture[str]
    chart: PushedChart
    _cosign: dict[str, CosignCLI] = field(default_factory=dict)

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

    def image(self, chart: PushedChart | None = None) -> str:
        chart = chart or self.chart
        return f"{chart.repository}@{chart.digest}"

    def predicate(self, doc: dict[str, Any] | None = None) -> Path:
        path = self.tmp / f"predicate-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(doc if doc is not None else provenance()))
        return path

    def attest(self, how: str, keys: CosignKeys, chart: PushedChart | None = None,
               doc: dict[str, Any] | None = None, kind: str = SLSA) -> None:
        image = self.image(chart)
        if how == "v2-legacy":
            self.v2.attest(image, keys, self.predicate(doc), kind, bundle=False)
        elif how == "v2-bundle":
            self.v2.attest(image, keys, self.predicate(doc), kind, bundle=True)
        else:
            assert how == "v3-bundle"
            self.v3.attest(image, keys, self.predicate(doc), kind)

    def verify(self, pub: Path, *extra: str, output: str = "text",
               target: tuple[str, ...] | None = None) -> tuple[int, str, str]:
        where = target or (f"{self.chart.url}/{self.chart.name}", "--version",
                           self.chart.version, "--plain-http")
        code = main(["verify", *where, "--key", str(pub), *extra, "--output", output])
        out = self.capsys.readouterr()
        return code, out.out, out.err


@pytest.fixture
def att(registry: Registry, helm_env: HelmEnv, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> Attested:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    return Attested(registry, helm_env, tmp_path, capsys, chart)


FORMS = ["v2-legacy", "v2-bundle", "v3-bundle"]


@pytest.mark.parametrize("form", FORMS)
def test_signed_chart_with_provenance_meets_the_policy(att: Attested, form: str) -> None:
    keys = att.v2.generate_key_pair("release")
    att.v2.sign(att.image(), keys, bundle=False)
    att.attest(form, keys)

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={POLICY}",
                                output="json")
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["verified"] is True
    assert doc["digest"] == att.chart.digest
    assert doc["format"] == "legacy"  # the signature, never the attestation
    [met] = doc["attestations"]
    assert met["predicateType"] == SLSA
    assert met["policy"] == POLICY
    [by] = met["metBy"]
    assert by["key"].startswith("cosign.pub")
    if form == "v2-legacy":
        assert by["format"] == "legacy"
        assert ".att layer 0" in by["source"]
    else:
        assert by["format"] == "bundle"
        assert "referrer" in by["source"]

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={POLICY}")
    assert code == 0, out + err
    assert f"attestation {SLSA} with policy" in out
    assert "met by" in out

    # presence only: no policy
    code, out, err = att.verify(keys.public, "--attestation", SLSA)
    assert code == 0, out + err


@pytest.mark.parametrize("form", FORMS)
def test_one_field_changed_in_the_policy_refuses_naming_the_type(att: Attested,
                                                                 form: str) -> None:
    keys = att.v2.generate_key_pair("release")
    att.v2.sign(att.image(), keys, bundle=False)
    att.attest(form, keys)

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={OTHER_BRANCH}")
    assert code == 1, out + err
    assert "signature verified, but attestations not met" in err
    assert f"attestation {SLSA} not met: 1 attestation of that type" in err
    assert "is false" in err
    assert "refs/heads/dev" in err

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={OTHER_BRANCH}",
                                output="json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is False
    assert any(f"attestation {SLSA} not met" in f for f in doc["failures"])


def test_attestation_by_another_key_does_not_count(att: Attested) -> None:
    keys = att.v2.generate_key_pair("release")
    other = att.v2.generate_key_pair("other")
    att.v2.sign(att.image(), keys, bundle=False)
    att.attest("v2-legacy", other)
    att.attest("v3-bundle", other)

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={POLICY}")
    assert code == 1, out + err
    assert f"attestation {SLSA} not met: 2 attestations of that type, none meets it" in err
    assert err.count("signature does not match") == 2
    # with the other key the attestations verify, but the chart's signature does not
    code, out, err = att.verify(other.public, "--attestation", f"{SLSA}={POLICY}")
    assert code == 1
    assert "not verified; each signature tried" in err


def test_attestation_for_another_digest_does_not_count(att: Attested) -> None:
    keys = att.v2.generate_key_pair("release")
    att.v2.sign(att.image(), keys, bundle=False)
    second = att.helm.make_chart(att.registry, att.chart.name, "2.0.0")
    att.attest("v2-legacy", keys, chart=second)
    # the other version's .att manifest, copied unchanged under this digest's .att tag
    writer = RegistryWriter(att.registry)
    repo = repository_path(att.chart.repository)
    copied = writer.get_manifest(repo, second.digest.replace(":", "-") + ".att")
    assert copied is not None
    writer.put_manifest(repo, att.chart.digest.replace(":", "-") + ".att", copied)

    code, out, err = att.verify(keys.public, "--attestation", SLSA)
    assert code == 1, out + err
    assert f"attestation subject is sha256:{second.digest.split(':')[1]}" in err
    assert "made for another artifact" in err


def test_an_attestation_alone_is_not_a_signature(att: Attested) -> None:
    keys = att.v2.generate_key_pair("release")
    att.attest("v3-bundle", keys)

    code, out, err = att.verify(keys.public, "--attestation", SLSA)
    assert code == 1, out + err
    assert "an attestation, not a signature" in err


def test_missing_attestation_names_the_type(att: Attested) -> None:
    keys = att.v2.generate_key_pair("release")
    att.v2.sign(att.image(), keys, bundle=False)
    att.attest("v2-legacy", keys, kind="https://chartguard.example/review/v1",
               doc={"approved": True})

    code, out, err = att.verify(keys.public, "--attestation", SLSA)
    assert code == 1, out + err
    assert f"attestation {SLSA} not met: no attestation of that type for " \
           f"{att.chart.digest}" in err


def test_invalid_cel_is_a_usage_error_naming_the_flag(att: Attested) -> None:
    keys = att.v2.generate_key_pair("release")
    code, _, err = att.verify(keys.public, "--attestation",
                                f"{SLSA}=predicate.runDetails.builder.id ==")
    assert code == 2
    assert f"--attestation {SLSA}: failed to parse the CEL expression" in err
    code, _, err = att.verify(keys.public, "--attestation", f"{SLSA}=predicate.x + 1")
    assert code == 2
    assert "expected bool" in err


def test_keyless_without_an_identity_cannot_require_attestations(att: Attested) -> None:
    """Anyone with a Sigstore certificate could write that attestation: a usage error, before
    anything is fetched, as the operator refuses the spec."""
    code = main(["verify", f"{att.chart.url}/{att.chart.name}", "--version",
                 att.chart.version, "--plain-http", "--attestation", SLSA])
    err = att.capsys.readouterr().err
    assert code == 2
    assert "--attestation needs --key or an identity" in err


def test_expensive_policy_fails_clearly_in_bounded_time(att: Attested) -> None:
    keys = att.v2.generate_key_pair("release")
    att.v2.sign(att.image(), keys, bundle=False)
    att.attest("v2-legacy", keys, doc=provenance(steps=2000))
    nested = ("predicate.buildDefinition.resolvedDependencies.all(a, "
              "predicate.buildDefinition.resolvedDependencies.all(b, "
              "predicate.buildDefinition.resolvedDependencies.all(c, "
              "a.uri + b.uri != c.uri)))")  # never short-circuits: 2000^3 steps
    start = time.monotonic()
    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={nested}")
    took = time.monotonic() - start
    assert code == 1, out + err
    assert f"attestation {SLSA} not met" in err
    assert "failed to evaluate the CEL expression" in err or "did not finish" in err, err
    assert took < 30, took
    print(f"expensive policy refused in {took:.2f}s: {err.splitlines()[-1][-200:]}")


def test_local_image_layout_from_cosign_save(att: Attested) -> None:
    keys = att.v2.generate_key_pair("release")
    att.v2.sign(att.image(), keys, bundle=False)
    att.attest("v2-legacy", keys)
    layout = att.tmp / "saved"
    att.v2.run("save", "--dir", str(layout), *att.v2.registry_flags(), att.image(),
               check=True)

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={POLICY}",
                                output="json", target=("--local-image", str(layout)))
    assert code == 0, out + err
    [met] = json.loads(out)["attestations"]
    assert met["metBy"][0]["format"] == "legacy"

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={OTHER_BRANCH}",
                                target=("--local-image", str(layout)))
    assert code == 1, out + err
    assert f"attestation {SLSA} not met" in err


def test_local_image_layout_with_bundle_attestations(att: Attested) -> None:
    """``oras copy -r --to-oci-layout`` style: the bundle referrers listed in the layout."""
    keys = att.v2.generate_key_pair("release")
    att.v2.sign(att.image(), keys, bundle=False)
    att.attest("v3-bundle", keys)
    layout = copy_to_layout(att.registry, att.chart.repository, att.chart.digest,
                            att.tmp / "copied", tag=att.chart.version)

    code, out, err = att.verify(keys.public, "--attestation", f"{SLSA}={POLICY}",
                                output="json", target=("--local-image", str(layout)))
    assert code == 0, out + err
    [met] = json.loads(out)["attestations"]
    assert met["metBy"][0]["format"] == "bundle"
    assert "referrer" in met["metBy"][0]["source"]

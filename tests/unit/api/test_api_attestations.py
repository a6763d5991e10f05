"""``verify.attestations`` (a chartguard extension): parsing and refusals at their field paths,
the implied HelmChart's copy, the CRDs, and the spec digest (unchanged without attestations)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from crdschema import validate

from chartguard.api import (
    HelmChart,
    HelmRelease,
    InvalidSpecError,
    implied_helmchart,
    verify_policy_digest,
)
from chartguard.api.verification import AttestationPolicy

SLSA = "https://slsa.dev/provenance/v1"
POLICY = 'predicate.runDetails.builder.id == "https://github.com/org/charts/x@refs/heads/main"'
KEYS = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}


def chart(**verify: Any) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": "app", "namespace": "apps"},
            "spec": {"chart": "app", "interval": "10m",
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                     "verify": {**KEYS, **verify}}}


def release(**verify: Any) -> dict[str, Any]:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "app", "namespace": "apps"},
            "spec": {"interval": "10m", "chart": {"spec": {
                "chart": "app", "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                "verify": {**KEYS, **verify}}}}}


def refusal(body: dict[str, Any]) -> str:
    kind = HelmChart if body["kind"] == "HelmChart" else HelmRelease
    with pytest.raises(InvalidSpecError) as caught:
        kind.from_object(body)
    return str(caught.value)


def test_attestations_are_read_with_their_field_paths() -> None:
    parsed = HelmChart.from_object(chart(attestations=[
        {"predicateType": SLSA, "policy": POLICY},
        {"predicateType": "https://chartguard.example/review/v1"}]))
    assert parsed.spec.verify is not None
    assert parsed.spec.verify.attestations == (
        AttestationPolicy(SLSA, POLICY, "spec.verify.attestations[0]"),
        AttestationPolicy("https://chartguard.example/review/v1", "",
                          "spec.verify.attestations[1]"))
    rel = HelmRelease.from_object(release(attestations=[{"predicateType": SLSA}]))
    assert rel.spec.chart is not None
    assert rel.spec.chart.spec.verify is not None
    (only,) = rel.spec.chart.spec.verify.attestations
    assert only.field_path == "spec.chart.spec.verify.attestations[0]"


@pytest.mark.parametrize(("entries", "path", "words"), [
    ([{"policy": POLICY}], "spec.verify.attestations[0].predicateType",
     "required field is missing"),
    ([{"predicateType": " "}], "spec.verify.attestations[0].predicateType", "must not be empty"),
    ([{"predicateType": SLSA, "expr": POLICY}], "spec.verify.attestations[0]", "expr"),
    ([{"predicateType": SLSA, "policy": 3}], "spec.verify.attestations[0].policy", "string"),
    ("x", "spec.verify.attestations", "list"),
    ([{"predicateType": SLSA}] * 17, "spec.verify.attestations", "at most 16"),
])
def test_bad_entries_are_refused_at_their_field(entries: Any, path: str, words: str) -> None:
    message = refusal(chart(attestations=entries))
    assert path in message
    assert words in message


def test_release_refusals_name_the_release_field() -> None:
    message = refusal(release(attestations=[{"policy": POLICY}]))
    assert "spec.chart.spec.verify.attestations[0].predicateType" in message


def test_the_implied_helmchart_carries_them() -> None:
    rel = HelmRelease.from_object(release(attestations=[{"predicateType": SLSA,
                                                         "policy": POLICY}]))
    written = implied_helmchart(rel).to_object()
    assert written["spec"]["verify"]["attestations"] == [{"predicateType": SLSA,
                                                          "policy": POLICY}]
    parsed = HelmChart.from_object(written)
    assert rel.spec.chart is not None
    assert verify_policy_digest(parsed.spec.verify) == verify_policy_digest(
        rel.spec.chart.spec.verify)


def test_spec_digest_unchanged_without_attestations_and_changed_by_them() -> None:
    plain = HelmChart.from_object(chart()).spec.verify
    # the digest of a verify block without attestations is what it was before the extension
    # (sha256 of {"v":1,"verify":{"matchOIDCIdentity":[],"provider":"cosign",
    # "secretRef":"cosign-pub","trustedRootSecretRef":null}})
    assert verify_policy_digest(plain) == (
        "sha256:" + hashlib.sha256(
            b'{"v":1,"verify":{"matchOIDCIdentity":[],"provider":"cosign",'
            b'"secretRef":"cosign-pub","trustedRootSecretRef":null}}').hexdigest())
    one = HelmChart.from_object(chart(attestations=[{"predicateType": SLSA, "policy": POLICY}]))
    other = HelmChart.from_object(chart(attestations=[{"predicateType": SLSA,
                                                       "policy": POLICY + " "}]))
    presence = HelmChart.from_object(chart(attestations=[{"predicateType": SLSA}]))
    digests = {verify_policy_digest(v.spec.verify) for v in (one, other, presence)}
    assert len(digests | {verify_policy_digest(plain)}) == 4


def test_the_crds_accept_them_and_refuse_what_the_model_refuses(
        crds: dict[str, dict[str, Any]]) -> None:
    good = chart(attestations=[{"predicateType": SLSA, "policy": POLICY}])
    assert validate(crds, good)[1] == []
    assert validate(crds, release(attestations=[{"predicateType": SLSA}]))[1] == []
    for bad in ([{"policy": POLICY}], [{"predicateType": ""}],
                [{"predicateType": SLSA, "expr": "x"}]):
        body = copy.deepcopy(good)
        body["spec"]["verify"]["attestations"] = bad
        assert validate(crds, body)[1] != [], bad


def test_cosigns_signature_type_is_not_an_attestation_requirement() -> None:
    for body, path in ((chart(attestations=[{"predicateType": SLSA},
                                            {"predicateType": "https://sigstore.dev/cosign/sign/v1"}]),
                        "spec.verify.attestations[1].predicateType"),
                       (release(attestations=[{"predicateType":
                                               "https://sigstore.dev/cosign/sign/v1"}]),
                        "spec.chart.spec.verify.attestations[0].predicateType")):
        text = refusal(body)
        assert path in text
        assert "is cosign's signature type, checked as the signature already" in text


def test_keyless_without_an_identity_cannot_require_attestations() -> None:
    """Anyone with a Sigstore certificate could write the attestation (and its predicate)."""
    for make, path in ((chart, "spec.verify.attestations"),
                       (release, "spec.chart.spec.verify.attestations")):
        body = make(attestations=[{"predicateType": SLSA, "policy": POLICY}])
        verify = (body["spec"]["verify"] if make is chart
                  else body["spec"]["chart"]["spec"]["verify"])
        del verify["secretRef"]
        text = refusal(body)
        assert f"{path}: need secretRef (keys) or matchOIDCIdentity" in text
        verify["matchOIDCIdentity"] = [{"issuer": "^https://token.actions.githubusercontent"
                                                  r"\.com$", "subject": "^https://github.com/org/"}]
        (HelmChart if make is chart else HelmRelease).from_object(body)  # accepted

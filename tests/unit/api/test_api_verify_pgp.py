"""``verify.provider: pgp`` (chartguard extension: Helm provenance) in the models and the CRDs:
accepted with a secretRef on HelmChart and HelmRelease, carried into the implied HelmChart, the
cosign-only fields refused naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from crdschema import validate

from chartguard.api import HelmChart, HelmRelease, InvalidSpecError, implied_helmchart
from chartguard.api.verification import PGP, verify_policy_digest

PGP_VERIFY = {"provider": "pgp", "secretRef": {"name": "pgp-keys"}}
RELEASE: dict[str, Any] = {
    "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
    "metadata": {"name": "podinfo", "namespace": "apps"},
    "spec": {"interval": "10m", "chart": {"spec": {
        "chart": "podinfo", "version": "*",
        "sourceRef": {"kind": "HelmRepository", "name": "podinfo"},
        "verify": PGP_VERIFY}}},
}
CHART: dict[str, Any] = {
    "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
    "metadata": {"name": "podinfo", "namespace": "apps"},
    "spec": {"chart": "podinfo", "interval": "5m", "verify": PGP_VERIFY,
             "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}},
}


def test_pgp_is_accepted_by_the_models_and_the_crds(crds: dict[str, Any]) -> None:
    chart = HelmChart.from_object(copy.deepcopy(CHART))
    assert chart.spec.verify is not None
    assert chart.spec.verify.provider == PGP
    assert chart.spec.verify.secret_ref is not None
    assert chart.spec.verify.secret_ref.name == "pgp-keys"
    assert not chart.spec.verify.keyless
    assert chart.spec.verify.to_spec() == PGP_VERIFY
    release = HelmRelease.from_object(copy.deepcopy(RELEASE))
    implied = implied_helmchart(release)
    assert implied.spec.verify == chart.spec.verify
    for doc in (CHART, RELEASE):
        assert validate(crds, doc)[1] == []
    # another provider with the same Secret is another policy
    cosign = HelmChart.from_object({**CHART, "spec": {
        **CHART["spec"], "verify": {"provider": "cosign", "secretRef": {"name": "pgp-keys"}}}})
    assert verify_policy_digest(cosign.spec.verify) != verify_policy_digest(chart.spec.verify)


@pytest.mark.parametrize(("extra", "path", "words"), [
    ({"matchOIDCIdentity": [{"issuer": ".*", "subject": ".*"}]}, "matchOIDCIdentity",
     "is for cosign keyless signatures; provider pgp verifies Helm provenance"),
    ({"trustedRootSecretRef": {"name": "root"}}, "trustedRootSecretRef",
     "is for cosign keyless signatures"),
    ({"secretRef": None}, "secretRef", "provider pgp needs secretRef"),
], ids=["matchOIDCIdentity", "trustedRootSecretRef", "no-secretRef"])
def test_pgp_refuses_the_cosign_fields_naming_them(extra: dict[str, Any], path: str,
                                                   words: str) -> None:
    for kind, base, prefix in ((HelmChart, CHART, "spec.verify"),
                               (HelmRelease, RELEASE, "spec.chart.spec.verify")):
        doc = copy.deepcopy(base)
        verify = doc["spec"]["verify"] if kind is HelmChart else \
            doc["spec"]["chart"]["spec"]["verify"]
        verify.update(extra)
        if verify.get("secretRef") is None:
            del verify["secretRef"]
        with pytest.raises(InvalidSpecError) as caught:
            kind.from_object(doc)
        assert caught.value.path == f"{prefix}.{path}", caught.value
        assert words in caught.value.message

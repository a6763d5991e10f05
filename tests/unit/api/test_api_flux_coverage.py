"""Coverage against Flux: every spec field path of Flux's current CRDs (tests/data/
flux-spec-fields.txt, source commits noted there) is in chartguard's schema, and a field that
chartguard does not implement is listed in NOT_SUPPORTED_YET and rejected by the model."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from crdschema import REPO, schema_paths, validate, version_schema

from chartguard.api import NOT_SUPPORTED_YET, HelmRelease, InvalidSpecError

FIELDS_FILE = REPO / "tests" / "data" / "flux-spec-fields.txt"
API_VERSIONS = {
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "HelmRelease": "helm.toolkit.fluxcd.io/v2",
}


def flux_fields() -> list[tuple[str, str]]:
    out = []
    for line in FIELDS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kind, path = line.split()
            out.append((kind, path))
    return out


def _not_supported(path: str) -> str | None:
    for entry in NOT_SUPPORTED_YET:
        if path == entry or path.startswith(entry + ".") or path.startswith(entry + "["):
            return entry
    return None


def test_the_field_list_is_substantial_and_names_its_sources() -> None:
    fields = flux_fields()
    assert len(fields) > 150
    assert {k for k, _ in fields} == set(API_VERSIONS)
    assert "commit" in FIELDS_FILE.read_text()


@pytest.mark.parametrize(
    ("kind", "path"), flux_fields(), ids=[f"{k}:{p}" for k, p in flux_fields()]
)
def test_flux_field_is_served_or_listed_as_not_supported(
    crds: dict[str, Any], kind: str, path: str
) -> None:
    schema = version_schema(crds, API_VERSIONS[kind], kind)
    declared = dict(schema_paths(schema))
    if path in declared:
        return
    entry = _not_supported(path)
    assert entry is not None, f"{kind} {path} is neither in crds/ nor in NOT_SUPPORTED_YET"
    # the unsupported subtree is kept opaque by the schema, so the model can refuse it
    assert declared[entry].get("x-kubernetes-preserve-unknown-fields") or \
        entry.replace("[]", "") in declared


def test_not_supported_list_only_names_flux_fields() -> None:
    paths = {p for k, p in flux_fields() if k == "HelmRelease"}
    assert set(NOT_SUPPORTED_YET) <= paths


BASE: dict[str, Any] = {
    "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
    "metadata": {"name": "app", "namespace": "apps"},
    "spec": {"interval": "5m", "chartRef": {"kind": "HelmChart", "name": "app"}},
}
SAMPLE_VALUES = {
    "spec.commonMetadata": {"labels": {"team": "a"}},
    "spec.kubeConfig.configMapRef": {"name": "remote"},
    "spec.install.strategy": {"name": "RetryOnFailure"},
    "spec.install.serverSideApply": True,
    "spec.upgrade.strategy": {"name": "RetryOnFailure"},
    "spec.upgrade.serverSideApply": "enabled",
    "spec.rollback.serverSideApply": "auto",
}


@pytest.mark.parametrize("entry", NOT_SUPPORTED_YET)
def test_not_supported_field_is_accepted_by_schema_and_refused_by_model(
    crds: dict[str, Any], entry: str
) -> None:
    doc = copy.deepcopy(BASE)
    parts = entry.removeprefix("spec.").split(".")
    node = doc["spec"]
    for part in parts[:-1]:
        if part.endswith("[]"):
            node[part[:-2]] = [{"name": "dep"}]
            node = node[part[:-2]][0]
        else:
            node = node.setdefault(part, {})
    node[parts[-1]] = SAMPLE_VALUES[entry]
    assert validate(crds, doc)[1] == []
    with pytest.raises(InvalidSpecError) as caught:
        HelmRelease.from_object(doc)
    assert "not supported by chartguard yet" in caught.value.message
    assert caught.value.path.replace("[0]", "[]") == entry

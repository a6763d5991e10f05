"""Test helper: validate a document against chartguard's CRDs the way the API server would.

- defaulting of structural schemas (``default`` applied to absent fields, recursively),
- the OpenAPI v3 schema checked with jsonschema, with unknown fields rejected as
  ``kubectl apply --validate=strict`` does (``x-kubernetes-preserve-unknown-fields`` allows them),
- ``x-kubernetes-validations`` (CEL) rules evaluated by equivalent Python; a rule without an
  equivalent here is an error, so a new CEL rule cannot go untested.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"
FLUX_DATA = REPO / "tests" / "data" / "flux"
SERVED_KINDS = ("HelmRepository", "HelmChart", "HelmRelease")

# CEL rule text -> the same check in Python (self is the object the rule is attached to)
CEL_EQUIVALENTS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "(has(self.chart) && !has(self.chartRef)) || (!has(self.chart) && has(self.chartRef))":
        lambda s: ("chart" in s) != ("chartRef" in s),
    "!has(self.verify) || self.sourceRef.kind == 'HelmRepository'":
        lambda s: "verify" not in s or s.get("sourceRef", {}).get("kind") == "HelmRepository",
    "has(self.configMapRef) || has(self.secretRef)":
        lambda s: "configMapRef" in s or "secretRef" in s,
    "!has(self.configMapRef) || !has(self.secretRef)":
        lambda s: "configMapRef" not in s or "secretRef" not in s,
    "!has(self.retryInterval) || self.name != 'RemediateOnFailure'":
        lambda s: "retryInterval" not in s or s.get("name") != "RemediateOnFailure",
    "!has(self.retryInterval) || self.name == 'RetryOnFailure'":
        lambda s: "retryInterval" not in s or s.get("name") == "RetryOnFailure",
}


@dataclass(frozen=True)
class SchemaError:
    path: str
    message: str


def flux_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file:index, document)`` of every chartguard kind in tests/data/flux/."""
    for path in sorted(FLUX_DATA.glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and doc.get("kind") in SERVED_KINDS:
                yield f"{path.name}:{i}", doc


def load_crds() -> dict[str, dict[str, Any]]:
    """CRDs of crds/ by kind."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                out[doc["spec"]["names"]["kind"]] = doc
    return out


def version_schema(crds: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    crd = crds[kind]
    group, _, version = api_version.partition("/")
    if group != crd["spec"]["group"]:
        raise KeyError(f"{kind} is not served in group {group}")
    for served in crd["spec"]["versions"]:
        if served["name"] == version and served["served"]:
            return dict(served["schema"]["openAPIV3Schema"])
    raise KeyError(f"{kind} {version} is not served")


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """A copy of ``value`` with structural-schema defaults filled in."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default_into(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in value:
                if key not in schema.get("properties", {}):
                    _default_into(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _default_into(schema["items"], item)


def _strict(schema: Any) -> Any:
    """The schema as JSON Schema, with unknown fields forbidden where Kubernetes would."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if (schema.get("type") == "object" and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    # int64/int32 are OpenAPI formats jsonschema does not know; they must not fail either way
    if out.get("format") in ("int64", "int32"):
        out.pop("format")
    return out


def _cel_rules(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[SchemaError]:
    for rule in schema.get("x-kubernetes-validations", []):
        check = CEL_EQUIVALENTS.get(rule["rule"])
        if check is None:
            raise AssertionError(f"CEL rule without a Python equivalent: {rule['rule']}")
        if isinstance(value, Mapping) and not check(value):
            yield SchemaError(path, rule.get("message", rule["rule"]))
    if isinstance(value, Mapping):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _cel_rules(sub, value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from _cel_rules(schema["items"], item, f"{path}[{i}]")


def _dotted(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(crds: Mapping[str, Any], document: Mapping[str, Any]) -> tuple[Any, list[SchemaError]]:
    """``(defaulted document, errors)`` for one custom resource."""
    schema = version_schema(crds, document["apiVersion"], document["kind"])
    defaulted = apply_defaults(schema, document)
    validator = jsonschema.Draft7Validator(
        _strict(schema), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    errors = [SchemaError(_dotted(e.absolute_path), e.message)
              for e in validator.iter_errors(defaulted)]
    errors.extend(_cel_rules(schema, defaulted, ""))
    return defaulted, errors


def is_structural(schema: Any, path: str = "") -> Iterator[str]:
    """Paths of schema nodes that break Kubernetes' structural-schema rule (a type everywhere,
    unless unknown fields are preserved)."""
    if not isinstance(schema, Mapping):
        return
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        yield path or "<root>"
    for key, sub in schema.get("properties", {}).items():
        yield from is_structural(sub, f"{path}.{key}" if path else key)
    if isinstance(schema.get("items"), Mapping):
        yield from is_structural(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from is_structural(schema["additionalProperties"], f"{path}{{}}")


def schema_paths(
    schema: Mapping[str, Any], path: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every field path the schema declares, with its node (``[]`` for list items)."""
    for key, sub in schema.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        yield here, sub
        yield from schema_paths(sub, here)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from schema_paths(items, f"{path}[]")

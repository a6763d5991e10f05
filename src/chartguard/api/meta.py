"""Metadata, API groups and object references shared by the three kinds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from chartguard.api._fields import Fields, dns_label_problem, dns_subdomain_problem
from chartguard.api.errors import FieldError, InvalidSpecError

T = TypeVar("T")

SOURCE_GROUP = "source.toolkit.fluxcd.io"
HELM_GROUP = "helm.toolkit.fluxcd.io"
#: served versions, storage version first (see crds/)
SOURCE_VERSIONS = ("v1", "v1beta2")
HELM_VERSIONS = ("v2", "v2beta1")

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ObjectMeta:
    """The parts of ``metadata`` the reconcilers use."""

    name: str
    namespace: str
    generation: int = 0
    uid: str = ""
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    deleting: bool = False


@dataclass(frozen=True)
class LocalObjectReference:
    """``{name}`` of an object in the referrer's namespace (Secrets, mostly)."""

    name: str


def start_document(
    body: Mapping[str, Any], kind: str, group: str, versions: tuple[str, ...],
    default_namespace: str,
) -> tuple[ObjectMeta, str, Fields]:
    """Check apiVersion/kind and metadata; return them and the ``spec`` reader.

    Raises ``InvalidSpecError`` right away when the document is not this kind at all.
    """
    if not isinstance(body, Mapping):
        raise InvalidSpecError("", f"a {kind} must be a JSON/YAML object")
    errors: list[FieldError] = []
    top = Fields(body, "", errors)
    api_version = top.string("apiVersion", required=True) or ""
    doc_kind = top.string("kind", required=True) or ""
    allowed = [f"{group}/{v}" for v in versions]
    if doc_kind and doc_kind != kind:
        top.error("kind", f"expected {kind}, got {doc_kind!r}")
    if api_version and api_version not in allowed:
        top.error("apiVersion", f"unsupported value {api_version!r}: chartguard serves "
                                f"{kind} as {' and '.join(allowed)}")
    meta = _metadata(top, default_namespace)
    subject = f"{kind} {meta.namespace}/{meta.name}" if meta.name else kind
    if errors:
        raise InvalidSpecError.aggregate(errors, subject=subject)
    spec = top.section("spec", required=True)
    if spec is None:
        raise InvalidSpecError.aggregate(errors, subject=subject)
    return meta, api_version, spec


def _metadata(top: Fields, default_namespace: str) -> ObjectMeta:
    md = top.section("metadata", required=True)
    if md is None:
        return ObjectMeta(name="", namespace=default_namespace)
    name = md.string("name", required=True) or ""
    if name and (problem := dns_subdomain_problem(name)):
        md.error("name", problem)
    namespace = md.string("namespace") or default_namespace
    if problem := dns_label_problem(namespace):
        md.error("namespace", problem)
    return ObjectMeta(
        name=name,
        namespace=namespace,
        generation=md.integer("generation", 0) or 0,
        uid=md.string("uid") or "",
        resource_version=md.string("resourceVersion") or "",
        labels=md.string_map("labels"),
        annotations=md.string_map("annotations"),
        deleting=md.has("deletionTimestamp"),
    )


def local_reference(parent: Fields, key: str) -> LocalObjectReference | None:
    """A ``{name: ...}`` reference; the name must be a valid object name."""
    ref = parent.section(key)
    if ref is None:
        return None
    ref.reject_unknown(("name",), "a local object reference")
    name = ref.string("name", required=True)
    if name is None:
        return None
    if problem := dns_subdomain_problem(name):
        ref.error("name", problem)
        return None
    return LocalObjectReference(name)


def finish(spec: Fields, subject: str, value: T | None) -> T:
    """``value``, or one ``InvalidSpecError`` for everything collected in the document."""
    if spec.errors:
        raise InvalidSpecError.aggregate(spec.errors, subject=subject)
    if value is None:  # a reader returned nothing without saying why: a bug, fail closed
        raise InvalidSpecError(spec.path, "could not be read", subject=subject)
    return value

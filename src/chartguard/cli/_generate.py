"""The objects ``chartguard create`` writes, built as ``flux create`` builds them.

Field for field what flux2's ``create_source_helm.go`` and ``create_helmrelease.go`` set from
the same flags (defaults included: interval 1m, ``reconcileStrategy: ChartVersion``, the
storage namespace following the target namespace), so ``--export`` prints flux's bytes. Flux has
no flags for ``verify``: the blog adds it with ``yq`` as the first key of ``spec.chart.spec``,
``provider`` first, and that is where it goes here. chartguard serves oci and HTTP(S)
HelmRepositories and HelmRepository chart sources, so other URLs and source kinds are refused
up front.

Every object is then parsed by :mod:`chartguard.api`, as the operator will parse it: what
cannot be reconciled is a :class:`UsageError` naming the field, before anything is printed or
applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chartguard.api import HelmRelease, HelmRepository, InvalidSpecError, Verification
from chartguard.api.durations import format_duration, parse_go_duration
from chartguard.cli._export import Ordered, go_key_order
from chartguard.cli._kinds import HELM_RELEASE, HELM_REPOSITORY
from chartguard.cli._outcome import UsageError
from chartguard.reconcile._values_yaml import ValuesDocumentError, load_values
from chartguard.reconcile.values import merge_maps

# flux's validateObjectName (RFC 1123, at least two characters, as flux checks it)
_OBJECT_NAME = re.compile(r"^[a-z0-9]([a-z0-9\-]){0,61}[a-z0-9]$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
VALUES_FROM_KINDS = ("Secret", "ConfigMap")
CRDS_POLICIES = ("Skip", "Create", "CreateReplace")
RECONCILE_STRATEGIES = ("Revision", "ChartVersion")
#: chart source kinds flux accepts; only the first is served by chartguard
FLUX_SOURCE_KINDS = ("HelmRepository", "GitRepository", "Bucket")


def check_name(name: str) -> None:
    if not _OBJECT_NAME.match(name):
        raise UsageError(f"name '{name}' is invalid, it should adhere to standard defined in "
                         "RFC 1123, the name can only contain alphanumeric characters or '-'")


def labels_from(values: Sequence[str]) -> dict[str, str]:
    """``--label key=value`` (repeatable, comma-separated), validated as flux's parseLabels."""
    out: dict[str, str] = {}
    for item in (part for value in values for part in value.split(",")):
        parts = item.split("=")
        if len(parts) != 2:
            raise UsageError(f"invalid label format '{item}', must be key=value")
        key, value = parts
        prefix, _, name = key.rpartition("/")
        if (not name or len(name) > 63 or not _LABEL_NAME.match(name)
                or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
                or (key.count("/") > 1)):
            raise UsageError(f"invalid label '{key}': use NAME or PREFIX/NAME (letters, digits, "
                             "'-', '_', '.'; at most 63 characters)")
        if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
            raise UsageError(f"invalid label value '{value}': at most 63 letters, digits, "
                             "'-', '_' or '.', starting and ending with a letter or digit")
        out[key] = value
    return out


def duration(flag: str, text: str) -> str:
    """A Go duration flag as flux prints it back (``10m`` -> ``10m0s``)."""
    try:
        return format_duration(parse_go_duration(text))
    except ValueError as err:
        raise UsageError(f"{flag}: {err}; write e.g. 10m, 1h or 90s") from None


def _metadata(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return meta


# --- HelmRepository -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceHelmOptions:
    name: str
    namespace: str
    url: str
    interval: str = "1m0s"
    secret_ref: str = ""
    cert_secret_ref: str = ""
    insecure: bool = False
    pass_credentials: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


def helm_repository(opts: SourceHelmOptions) -> dict[str, Any]:
    """The HelmRepository ``flux create source helm`` writes for these flags."""
    check_name(opts.name)
    url = urlsplit(opts.url) if opts.url else None
    if url is None:
        raise UsageError("--url is required: the OCI repository, e.g. oci://ghcr.io/org/charts")
    if url.scheme not in ("oci", "http", "https"):
        raise UsageError(f"url scheme '{url.scheme}' not supported, can be: oci, http, https")
    if not url.netloc:
        raise UsageError(f"url host is required: write --url {url.scheme}://HOST/PATH")
    if opts.insecure and url.scheme != "oci":
        raise UsageError("--insecure is for oci:// registries (plain HTTP); an http:// URL is "
                         "plain HTTP already")
    spec: dict[str, Any] = {"url": opts.url, "interval": opts.interval}
    if url.scheme == "oci":
        spec["type"] = "oci"
    if opts.pass_credentials:
        spec["passCredentials"] = True
    if opts.secret_ref:
        spec["secretRef"] = {"name": opts.secret_ref}
    if opts.cert_secret_ref:
        spec["certSecretRef"] = {"name": opts.cert_secret_ref}
    if opts.insecure:
        spec["insecure"] = True
    doc = {"apiVersion": HELM_REPOSITORY.api_version, "kind": HELM_REPOSITORY.name,
           "metadata": _metadata(opts.name, opts.namespace, opts.labels), "spec": spec}
    try:
        HelmRepository.from_object(doc)
    except InvalidSpecError as err:
        raise UsageError(f"the HelmRepository would not be valid: {err}") from None
    return doc


# --- HelmRelease --------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyOptions:
    provider: str = ""
    secret_ref: str = ""
    oidc_issuers: tuple[str, ...] = ()
    oidc_subjects: tuple[str, ...] = ()
    trusted_root_secret_ref: str = ""

    @property
    def given(self) -> bool:
        return bool(self.provider or self.secret_ref or self.oidc_issuers or self.oidc_subjects
                    or self.trusted_root_secret_ref)


@dataclass(frozen=True)
class HelmReleaseOptions:
    name: str
    namespace: str
    source: str
    chart: str
    interval: str = "1m0s"
    chart_version: str = ""
    release_name: str = ""
    target_namespace: str = ""
    storage_namespace: str = ""
    create_target_namespace: bool = False
    depends_on: tuple[str, ...] = ()
    values_files: tuple[str, ...] = ()
    values_from: tuple[str, ...] = ()
    service_account: str = ""
    crds: str = ""
    reconcile_strategy: str = "ChartVersion"
    chart_interval: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    verify: VerifyOptions = VerifyOptions()


def parse_source(text: str) -> tuple[str, str, str]:
    """``--source Kind/name[.namespace]`` as flux's HelmChartSource flag reads it."""
    if not text.strip():
        raise UsageError("--source is required: the chart's HelmRepository, as "
                         "HelmRepository/NAME (or HelmRepository/NAME.NAMESPACE)")
    kind, name, namespace = _kind_name_namespace(text)
    if not kind or not name:
        raise UsageError(f"invalid helm chart source '{text}', must be in format <kind>/<name>")
    canonical = next((k for k in FLUX_SOURCE_KINDS if k.lower() == kind.lower()), None)
    if canonical is None:
        raise UsageError(f"source kind '{kind}' is not supported, must be one of: "
                         f"{', '.join(FLUX_SOURCE_KINDS)}")
    if canonical != FLUX_SOURCE_KINDS[0]:
        raise UsageError(f"source kind '{canonical}' is not served by chartguard: it verifies "
                         "charts from OCI registries, so use --source HelmRepository/NAME with "
                         "an oci HelmRepository")
    return canonical, name, namespace


def _kind_name_namespace(text: str) -> tuple[str, str, str]:
    kind, name = "", text
    parts = text.split("/")
    if len(parts) == 2:
        kind, name = parts
    namespace = ""
    if len(pieces := name.split(".")) > 1:
        name, namespace = pieces[0], pieces[1]
    return kind, name, namespace


def _values(files: Sequence[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in (part for value in files for part in value.split(",") if part):
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise UsageError(f"--values {path}: cannot read it ({err.strerror or err})") from None
        try:
            values = load_values(data)
        except ValuesDocumentError as err:
            detail = f" ({err.detail})" if err.detail else ""
            raise UsageError(f"--values {path}: {err}{detail}") from None
        merged = merge_maps(merged, values)
    return merged


def _values_from(items: Sequence[str]) -> list[dict[str, str]]:
    out = []
    for item in (part for value in items for part in value.split(",") if part):
        kind, name = ("", item) if len(item.split("/")) != 2 else item.split("/")
        if not kind:
            raise UsageError(f"invalid Kubernetes object reference '{item}', must be in format "
                             "<kind>/<name>")
        canonical = next((k for k in VALUES_FROM_KINDS if k.lower() == kind.lower()), None)
        if canonical is None:
            raise UsageError(f"reference kind '{kind}' is not supported, must be one of: "
                             f"{', '.join(VALUES_FROM_KINDS)}")
        out.append({"kind": canonical, "name": name})
    return out


def _depends_on(items: Sequence[str]) -> list[dict[str, str]]:
    out = []
    for item in (part for value in items for part in value.split(",") if part):
        parts = item.split("/")  # flux's MakeDependsOn: NAMESPACE/NAME or NAME
        namespace, name = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        out.append({"name": name, **({"namespace": namespace} if namespace else {})})
    return out


def _verify(opts: VerifyOptions) -> dict[str, Any]:
    if len(opts.oidc_issuers) != len(opts.oidc_subjects):
        raise UsageError("give --verify-oidc-issuer and --verify-oidc-subject in pairs (one "
                         "subject for each issuer): a keyless signature must match both")
    if opts.secret_ref and opts.oidc_issuers:
        raise UsageError("--verify-oidc-issuer/--verify-oidc-subject apply to keyless "
                         "signatures, --verify-secret-ref to key-signed ones: give one of them")
    if opts.secret_ref and opts.trusted_root_secret_ref:
        raise UsageError("--verify-trusted-root-secret-ref applies to keyless signatures: drop "
                         "it or --verify-secret-ref")
    spec: dict[str, Any] = {"provider": opts.provider or "cosign"}
    if opts.secret_ref:
        spec["secretRef"] = {"name": opts.secret_ref}
    if opts.oidc_issuers:
        spec["matchOIDCIdentity"] = [{"issuer": i, "subject": s} for i, s in
                                     zip(opts.oidc_issuers, opts.oidc_subjects, strict=True)]
    if opts.trusted_root_secret_ref:
        spec["trustedRootSecretRef"] = {"name": opts.trusted_root_secret_ref}
    return spec


def helm_release(opts: HelmReleaseOptions) -> tuple[dict[str, Any], HelmRelease]:
    """The HelmRelease ``flux create helmrelease`` writes for these flags, with the blog's
    ``verify`` block when verify flags are given; and the model the operator will parse."""
    check_name(opts.name)
    if not opts.chart:
        raise UsageError("--chart is required: the chart's name in the HelmRepository")
    kind, source_name, source_namespace = parse_source(opts.source)
    if opts.reconcile_strategy not in RECONCILE_STRATEGIES:
        raise UsageError(f"'{opts.reconcile_strategy}' is an invalid reconcile strategy(valid: "
                         "Revision, ChartVersion)")
    if opts.crds and opts.crds not in CRDS_POLICIES:
        raise UsageError(f"--crds {opts.crds}: use one of {', '.join(CRDS_POLICIES)}")
    source_ref = {"kind": kind, "name": source_name}
    if source_namespace:
        source_ref["namespace"] = source_namespace
    chart_spec: dict[str, Any] = {"chart": opts.chart, "sourceRef": source_ref,
                                  "reconcileStrategy": opts.reconcile_strategy}
    if opts.chart_version:
        chart_spec["version"] = opts.chart_version
    if opts.chart_interval:
        chart_spec["interval"] = opts.chart_interval
    if opts.verify.given:
        verify = Ordered(_verify(opts.verify))
        chart_spec = Ordered({"verify": verify,
                              **{k: chart_spec[k] for k in go_key_order(chart_spec)}})
    spec: dict[str, Any] = {"chart": {"spec": chart_spec}, "interval": opts.interval}
    for key, value in (("releaseName", opts.release_name),
                       ("targetNamespace", opts.target_namespace),
                       ("storageNamespace", opts.storage_namespace or opts.target_namespace),
                       ("serviceAccountName", opts.service_account)):
        if value:
            spec[key] = value
    if opts.depends_on:
        spec["dependsOn"] = _depends_on(opts.depends_on)
    if opts.create_target_namespace:
        spec.setdefault("install", {})["createNamespace"] = True
    if opts.crds:  # as flux: Create on install, the given policy on upgrade
        spec.setdefault("install", {})["crds"] = "Create"
        spec["upgrade"] = {"crds": opts.crds}
    if values := _values(opts.values_files):
        spec["values"] = values
    if opts.values_from:
        spec["valuesFrom"] = _values_from(opts.values_from)
    doc = {"apiVersion": HELM_RELEASE.api_version, "kind": HELM_RELEASE.name,
           "metadata": _metadata(opts.name, opts.namespace, opts.labels), "spec": spec}
    try:
        release = HelmRelease.from_object(doc)
    except InvalidSpecError as err:
        raise UsageError(f"the HelmRelease would not be valid: {err}") from None
    return doc, release


def verification_of(release: HelmRelease) -> Verification | None:
    return release.spec.chart.spec.verify if release.spec.chart is not None else None

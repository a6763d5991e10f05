"""HelmRepository (source.toolkit.fluxcd.io): where charts live.

For ``type: oci`` the object is static in Flux (no artifact, only a URL and credentials); chartguard
treats it the same way. Defaults as Flux applies them: ``type`` default, ``provider`` generic,
``interval`` 1m (``GetRequeueAfter``), ``timeout`` 60s (``GetTimeout``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from chartguard.api._fields import Fields, Frozen
from chartguard.api.meta import (
    SOURCE_GROUP,
    SOURCE_VERSIONS,
    LocalObjectReference,
    ObjectMeta,
    finish,
    local_reference,
    start_document,
)
from chartguard.untrusted import without_credentials

KIND = "HelmRepository"
TYPE_DEFAULT = "default"
TYPE_OCI = "oci"
PROVIDERS = ("generic", "aws", "azure", "gcp")
URL_PATTERN = re.compile(r"^(http|https|oci)://.*$")
DEFAULT_INTERVAL = timedelta(minutes=1)
DEFAULT_TIMEOUT = timedelta(seconds=60)

_FIELDS = ("url", "secretRef", "certSecretRef", "passCredentials", "interval", "insecure",
           "timeout", "suspend", "accessFrom", "type", "provider")


@dataclass(frozen=True)
class HelmRepositorySpec:
    url: str
    type: str = TYPE_DEFAULT
    provider: str = "generic"
    interval: timedelta = DEFAULT_INTERVAL
    timeout: timedelta = DEFAULT_TIMEOUT
    secret_ref: LocalObjectReference | None = None
    cert_secret_ref: LocalObjectReference | None = None
    pass_credentials: bool = False
    insecure: bool = False
    suspend: bool = False
    access_from: Frozen = None

    @property
    def is_oci(self) -> bool:
        return self.type == TYPE_OCI

    @property
    def oci_location(self) -> str:
        """``host[:port]/path`` of an OCI repository (the url without ``oci://``)."""
        return self.url.removeprefix("oci://").rstrip("/")


@dataclass(frozen=True)
class HelmRepository:
    metadata: ObjectMeta
    api_version: str
    spec: HelmRepositorySpec

    @property
    def subject(self) -> str:
        return f"{KIND} {self.metadata.namespace}/{self.metadata.name}"

    @classmethod
    def from_object(
        cls, body: Mapping[str, Any], *, default_namespace: str = "default"
    ) -> HelmRepository:
        """Parse and validate; raises ``InvalidSpecError`` listing every problem."""
        meta, api_version, spec = start_document(
            body, KIND, SOURCE_GROUP, SOURCE_VERSIONS, default_namespace
        )
        parsed = finish(spec, f"{KIND} {meta.namespace}/{meta.name}", _spec(spec))
        return cls(metadata=meta, api_version=api_version, spec=parsed)


def _quoted(url: str) -> str:
    return repr(without_credentials(url))


def _spec(spec: Fields) -> HelmRepositorySpec | None:
    spec.reject_unknown(_FIELDS, KIND)
    url = spec.string("url", required=True, pattern=URL_PATTERN,
                      pattern_hint="use an http://, https:// or oci:// URL", quote=_quoted)
    repo_type = spec.string("type", default=TYPE_DEFAULT, enum=(TYPE_DEFAULT, TYPE_OCI))
    if url is not None:
        if not urlsplit(url).hostname:
            spec.error("url", f"{_quoted(url)} has no host: write e.g. oci://ghcr.io/org/charts")
        elif url.startswith("oci://") and repo_type != TYPE_OCI:
            spec.error("type", "must be 'oci' for an oci:// url (add `type: oci`)")
        elif repo_type == TYPE_OCI and not url.startswith("oci://"):
            spec.error("url", f"{_quoted(url)} must start with oci:// when type is oci")
    result = HelmRepositorySpec(
        url=url or "",
        type=repo_type or TYPE_DEFAULT,
        provider=spec.string("provider", default="generic", enum=PROVIDERS) or "generic",
        interval=spec.duration("interval") or DEFAULT_INTERVAL,
        timeout=spec.duration("timeout", allow_hours=False) or DEFAULT_TIMEOUT,
        secret_ref=local_reference(spec, "secretRef"),
        cert_secret_ref=local_reference(spec, "certSecretRef"),
        pass_credentials=spec.boolean("passCredentials"),
        insecure=spec.boolean("insecure"),
        suspend=spec.boolean("suspend"),
        access_from=spec.raw("accessFrom"),
    )
    return None if spec.errors else result

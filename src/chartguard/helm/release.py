"""Helm's release records as data: what helm's storage holds for one revision of a release.

Pure: no I/O. helm's Secret storage driver keeps one Secret per revision (type
``helm.sh/release.v1``, labels ``owner=helm,name=<release>,status,version``); its
``data.release`` is, under the Kubernetes base64 of every Secret value, helm's own base64 of the
gzip of the release as JSON. Those bytes come from the cluster, where anyone allowed to write
Secrets in the namespace can forge them, so decoding is bounded: the encoded text, the
gunzipped size and the JSON nesting are capped, and anything else is a
:class:`ReleaseDecodeError`, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from chartguard.helm._goyaml import encode_values
from chartguard.untrusted import UntrustedInputError, escape, loads_json

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
#: the type of the Secrets helm's storage driver writes
HELM_RELEASE_V1 = "helm.sh/release.v1"
#: a Secret holds at most 1 MiB; text far beyond that is not a release helm wrote
MAX_ENCODED = 4 * 1024 * 1024
#: a release record (chart files, manifest, values) gunzips to a few MiB at most
MAX_RELEASE_BYTES = 8 * 1024 * 1024
#: a release nests chart values and user values a few levels down; deeper than any sane values
MAX_RELEASE_DEPTH = 128
_GZIP_MAGIC = b"\x1f\x8b\x08"
_ZERO_TIME = "0001-01-01T00:00:00Z"


class ReleaseDecodeError(ValueError):
    """A Secret or record is not a helm release this code can read (the message says why)."""


@dataclass(frozen=True)
class TestHook:
    """The last run of one Helm test hook."""

    __test__ = False  # a data class, not a pytest test class

    last_started: str = ""
    last_completed: str = ""
    phase: str = ""  # Succeeded | Failed | Running | Unknown


@dataclass(frozen=True)
class StoredRelease:
    """One revision of a release as helm's storage (the Secret driver) holds it."""

    name: str
    namespace: str
    version: int
    #: deployed | failed | pending-install | pending-upgrade | pending-rollback | superseded |
    #: uninstalled | uninstalling | unknown
    status: str
    chart_name: str
    chart_version: str
    app_version: str
    #: ``values_digest`` of the values the revision was released with
    config_digest: str
    #: ``sha256:<hex>`` of the decoded release record: identifies this exact revision
    digest: str
    first_deployed: str
    last_deployed: str
    deleted: str = ""
    description: str = ""
    test_hooks: Mapping[str, TestHook] = field(default_factory=lambda: MappingProxyType({}))
    #: how helm 4 applied the resources: "ssa" (server-side), "csa" (client-side), or "" for a
    #: record helm 3 wrote (client-side); an upgrade or rollback keeps the method
    apply_method: str = ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING


class ReleaseStorage(Protocol):
    def history(self, namespace: str, name: str) -> list[StoredRelease]:
        """Every stored revision of release ``name`` in ``namespace``, newest first; [] when
        there is none."""
        ...

    def mark_failed(self, namespace: str, name: str, version: int, description: str, *,
                    as_user: str = "") -> StoredRelease:
        """Rewrite revision ``version`` of release ``name`` (stuck in ``pending-*``, or
        ``deployed`` by helm but failing its ``healthCheckExprs``) as ``failed`` with
        ``description`` (see :func:`failed_release_secret`), acting as
        ``as_user`` (the identity helm runs the release as; "": the caller's own); the revision
        as stored afterwards. Any failure raises (the caller words it)."""
        ...


def newest(history: Iterable[StoredRelease]) -> StoredRelease | None:
    """The highest revision, whatever order the storage listed them in."""
    return max(history, key=lambda release: release.version, default=None)


def values_digest(values: Mapping[str, Any]) -> str:
    """helm-controller's ``chartutil.DigestValues``: sha256 of the values as go-yaml v2 writes
    them with every mapping sorted (see :mod:`._goyaml`); no values hash the empty string."""
    return "sha256:" + hashlib.sha256(encode_values(values)).hexdigest()


def decode_release_secret(body: Mapping[str, Any]) -> StoredRelease:
    """The revision a helm storage Secret (as the API returns it) holds."""
    return release_from_json(_decode_record(body))


def decode_release_manifest(body: Mapping[str, Any]) -> tuple[StoredRelease, str]:
    """The revision a helm storage Secret holds and its manifest (the rendered objects, YAML
    documents; "" when the release made none)."""
    obj = _decode_record(body)
    manifest = obj.get("manifest")
    if manifest is not None and not isinstance(manifest, str):
        raise ReleaseDecodeError("the helm release record's manifest is not a string")
    return release_from_json(obj), manifest or ""


def _decode_record(body: Mapping[str, Any]) -> Any:
    kind = body.get("type")
    if kind != HELM_RELEASE_V1:
        raise ReleaseDecodeError(
            f"not a helm release Secret: type is {escape(repr(kind))}, not {HELM_RELEASE_V1!r}")
    data = body.get("data")
    encoded = data.get("release") if isinstance(data, Mapping) else None
    if not isinstance(encoded, str) or not encoded:
        raise ReleaseDecodeError("the helm release Secret has no data.release")
    if len(encoded) > MAX_ENCODED:
        raise ReleaseDecodeError(
            f"the helm release Secret's data.release is {len(encoded)} characters, more than "
            f"the {MAX_ENCODED} a Secret can hold")
    record = _record_bytes(_base64(encoded, "data.release (Kubernetes base64)"))
    try:
        obj = loads_json(record, what="the helm release record", max_depth=MAX_RELEASE_DEPTH)
    except UntrustedInputError as exc:
        raise ReleaseDecodeError(str(exc)) from exc
    if not isinstance(obj, Mapping):
        raise ReleaseDecodeError("the helm release record is not a JSON object")
    return obj


def release_manifest(body: Mapping[str, Any]) -> str:
    """The manifest (helm's rendered objects, hooks not included) of the revision a helm
    storage Secret holds, decoded with the checks of :func:`decode_release_secret`."""
    return decode_release_manifest(body)[1]


def failed_release_secret(body: Mapping[str, Any], description: str, *,
                          status: str = "failed") -> dict[str, Any]:
    """The helm release Secret ``body`` rewritten as helm-controller's unlock writes a revision
    stuck in ``pending-*`` (``SetStatus(failed, description)`` + ``Releases.Update``): the
    record's ``info.status`` and ``info.description``, the ``status`` label, re-encoded the
    way helm's Secret driver encodes (JSON, gzip, base64). ``resourceVersion`` is kept, so the
    write fails if helm touched the Secret meanwhile."""
    decode_release_secret(body)  # the same checks as a read
    data = body["data"]
    record = _record_bytes(_base64(data["release"], "data.release (Kubernetes base64)"))
    obj = json.loads(record)
    obj["info"]["status"] = status
    obj["info"]["description"] = description
    encoded = base64.b64encode(gzip.compress(
        json.dumps(obj, separators=(",", ":")).encode(), compresslevel=9))
    meta = dict(body.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), "status": status}
    return {**body, "metadata": meta,
            "data": {**data, "release": base64.b64encode(encoded).decode("ascii")}}


def record_digest(obj: Mapping[str, Any]) -> str:
    """``sha256:`` of the record as sorted, compact JSON, without the hooks' ``last_run``: a
    ``helm test`` run by hand records its run in the revision, which must not make the revision
    look like another one (helm-controller's release digest leaves test runs out too)."""
    hooks = obj.get("hooks")
    if isinstance(hooks, list):
        obj = {**obj, "hooks": [{k: v for k, v in hook.items() if k != "last_run"}
                                if isinstance(hook, Mapping) else hook for hook in hooks]}
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def release_from_json(obj: Mapping[str, Any], *, digest: str | None = None) -> StoredRelease:
    """A release record (helm's JSON, decoded) as a :class:`StoredRelease`.

    ``digest`` defaults to :func:`record_digest` of ``obj``."""
    if not isinstance(obj, Mapping):
        raise ReleaseDecodeError("the helm release record is not a JSON object")
    info = _mapping(obj, "info")
    chart = _mapping(obj, "chart")
    meta = _mapping(chart, "metadata", "chart.metadata")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ReleaseDecodeError(
            f"the helm release record's version is {escape(repr(version))}, not a positive integer")
    config = obj.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise ReleaseDecodeError("the helm release record's config is not an object")
    if digest is None:
        digest = record_digest(obj)
    return StoredRelease(
        name=_text(obj, "name", required=True),
        namespace=_text(obj, "namespace", required=True),
        version=version,
        status=_text(info, "status", "info.status", required=True),
        chart_name=_text(meta, "name", "chart.metadata.name", required=True),
        chart_version=_text(meta, "version", "chart.metadata.version", required=True),
        app_version=_text(meta, "appVersion", "chart.metadata.appVersion"),
        config_digest=values_digest(config or {}),
        digest=digest,
        first_deployed=_time(info, "first_deployed"),
        last_deployed=_time(info, "last_deployed"),
        deleted=_time(info, "deleted"),
        description=_text(info, "description", "info.description"),
        test_hooks=MappingProxyType(_test_hooks(obj.get("hooks"))),
        apply_method=_text(obj, "apply_method"),
    )


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReleaseDecodeError(f"{what} is not base64") from exc


def _record_bytes(helm_text: bytes) -> bytes:
    """helm's base64 of the gzipped JSON; records from before helm compressed are plain."""
    payload = _base64(helm_text.decode("ascii", "replace"), "data.release (helm's base64)")
    if not payload.startswith(_GZIP_MAGIC):
        if len(payload) > MAX_RELEASE_BYTES:
            raise ReleaseDecodeError(f"the helm release record is over {MAX_RELEASE_BYTES} bytes")
        return payload
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        record = inflater.decompress(payload, MAX_RELEASE_BYTES + 1)
    except zlib.error as exc:
        raise ReleaseDecodeError(f"the helm release record is not valid gzip ({exc})") from exc
    if len(record) > MAX_RELEASE_BYTES or inflater.unconsumed_tail:
        raise ReleaseDecodeError(
            f"the helm release record gunzips to more than {MAX_RELEASE_BYTES} bytes")
    if not inflater.eof:
        raise ReleaseDecodeError("the helm release record's gzip stream is truncated")
    return record


def _mapping(parent: Mapping[str, Any], key: str, path: str = "") -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise ReleaseDecodeError(f"the helm release record has no {path or key} object")
    return value


def _text(parent: Mapping[str, Any], key: str, path: str = "", *, required: bool = False) -> str:
    value = parent.get(key)
    if isinstance(value, str) and (value or not required):
        return value
    if value is None and not required:
        return ""
    raise ReleaseDecodeError(
        f"the helm release record's {path or key} is {escape(repr(value))}, not a "
        f"{'non-empty ' if required else ''}string")


def _time(parent: Mapping[str, Any], key: str) -> str:
    value = _text(parent, key, f"{key} time")
    return "" if value == _ZERO_TIME else value


def _test_hooks(hooks: object) -> dict[str, TestHook]:
    """Hooks run by ``helm test`` (events include "test"), by name, with their last run."""
    if hooks is None:
        return {}
    if not isinstance(hooks, list):
        raise ReleaseDecodeError("the helm release record's hooks are not a list")
    found: dict[str, TestHook] = {}
    for hook in hooks:
        if not isinstance(hook, Mapping):
            raise ReleaseDecodeError("a hook in the helm release record is not an object")
        events = hook.get("events")
        if not isinstance(events, list) or "test" not in events:
            continue
        run = hook.get("last_run")
        run = run if isinstance(run, Mapping) else {}
        found[_text(hook, "name", "hook name", required=True)] = TestHook(
            last_started=_time(run, "started_at"),
            last_completed=_time(run, "completed_at"),
            phase=_text(run, "phase", "hook last_run.phase"),
        )
    return found

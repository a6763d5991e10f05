"""A HelmRelease's values: ``valuesFrom`` in order, then ``spec.values``, as helm-controller
composes them (``chartutil.ChartValuesFromReferences`` of fluxcd/pkg).

- Each reference names a ConfigMap or Secret in the release's namespace and a key (default
  ``values.yaml``). Without ``targetPath`` the key holds a YAML map, merged over what came
  before (maps deeply, anything else replaced). With ``targetPath`` the key holds one value,
  set at that path with Helm's ``--set`` syntax (typed: ``true``, ``42``; a value in quotes
  stays a string). With ``literal`` too, the value is set verbatim as a string, as
  ``helm --set-literal`` does (commas, brackets, braces, backslashes, quotes and ``=`` are
  kept; the path still reads ``\\.`` escapes), as fluxcd/pkg ``ReplacePathLiteralValue``.
- Flux merges ``spec.values`` in before each ``targetPath`` and again at the end, sharing its
  nested maps and lists with the result; a ``targetPath`` that lands inside one of those
  therefore also overrides ``spec.values``. The same walk is done here, over a private copy of
  ``spec.values``, so users get Flux's exact values (and digests stay put when they move).
- An ``optional`` reference whose object or key is missing is skipped; a required one is a
  ``ValuesError`` retried with a backoff (the object may appear). An object is read once per
  reconcile even when several entries name it.

Messages name the kind, namespace, name and key; a Secret's content never appears in them.
What Secrets gave is listed in ``ComposedValues.sensitive``, so helm's messages lose it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from chartguard.api import conditions as c
from chartguard.api import thaw
from chartguard.api.helmrelease import HelmRelease, ValuesReference
from chartguard.helm.release import values_digest
from chartguard.reconcile._strvals import StrvalsError, parse_into
from chartguard.reconcile._values_yaml import ValuesDocumentError, load_values
from chartguard.reconcile.outcome import StepFailedError, safe
from chartguard.reconcile.release_inputs import ComposedValues
from chartguard.reconcile.seams import (
    ConfigMapNotFoundError,
    ConfigMapReader,
    SecretNotFoundError,
    SecretReader,
    SecretUnreadableError,
)
from chartguard.reconcile.secret_values import sensitive_strings

#: helm-controller's Ready reason when the values cannot be composed
VALUES_ERROR = "ValuesError"
_PLURALS = {"Secret": "secrets", "ConfigMap": "configmaps"}


def compose_values(release: HelmRelease, secrets: SecretReader,
                   configmaps: ConfigMapReader) -> ComposedValues:
    """The values helm gets for ``release`` and their digest; ``StepFailedError`` (Ready False,
    ``ValuesError``, retried) when a reference cannot be resolved."""
    namespace = release.metadata.namespace
    # a private copy: the targetPath walk below changes it in place, as Flux's does
    inline: dict[str, Any] = thaw(release.spec.values)
    result: dict[str, Any] = {}
    read: dict[tuple[str, str], Mapping[str, Any] | None] = {}
    sensitive: set[str] = set()
    for ref in release.spec.values_from:
        if (ref.kind, ref.name) not in read:
            read[(ref.kind, ref.name)] = _read(ref, namespace, secrets, configmaps)
        data = read[(ref.kind, ref.name)]
        if data is None:
            if ref.optional:
                continue
            raise _failure(ref, namespace, f'{_PLURALS[ref.kind]} "{ref.name}" not found')
        raw = data.get(ref.values_key)
        if raw is None:
            if ref.optional:
                continue
            raise _failure(ref, namespace, "key not found")
        if ref.target_path:
            result = merge_maps(result, inline)
            _set_path(result, ref, namespace, raw)
            if ref.kind == "Secret":
                sensitive |= _target_strings(ref, raw)
            continue
        try:
            values = load_values(raw)
        except ValuesDocumentError as err:
            detail = f": {safe(err.detail)}" if err.detail and ref.kind != "Secret" else ""
            why = f"failed to read values data: {err}{detail}"
            raise _failure(ref, namespace, why) from None
        if ref.kind == "Secret":
            sensitive |= sensitive_strings(values)
        result = merge_maps(result, values)
    composed = _plain(merge_maps(result, inline))
    try:
        digest = values_digest(composed)
    except ValueError as err:  # spec.values the API server took, but JSON cannot hold
        raise StepFailedError(c.READY, VALUES_ERROR, f"spec.values: {safe(err)}",
                              status=c.FALSE, stalled=True) from None
    return ComposedValues(
        values=composed,
        digest=digest,
        secrets=frozenset((namespace, n) for k, n in read if k == "Secret"),
        configmaps=frozenset((namespace, n) for k, n in read if k == "ConfigMap"),
        sensitive=frozenset(sensitive),
    )


def secret_strings(release: HelmRelease, secrets: SecretReader,
                   configmaps: ConfigMapReader) -> frozenset[str]:
    """What the release's ``valuesFrom`` Secrets give, for taking out of helm's messages where
    no values are composed (the uninstall of a deleted release): the composed values' when
    they compose, else every value of every Secret that can still be read."""
    try:
        return compose_values(release, secrets, configmaps).sensitive
    except StepFailedError:
        pass
    found: set[str] = set()
    for ref in release.spec.values_from:
        if ref.kind != "Secret":
            continue
        try:
            data = secrets.get(release.metadata.namespace, ref.name)
        except (SecretNotFoundError, SecretUnreadableError):
            continue
        for raw in data.values():
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            found |= sensitive_strings(text)
            with contextlib.suppress(ValuesDocumentError):
                found |= sensitive_strings(load_values(raw))
    return frozenset(found)


def merge_maps(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """fluxcd/pkg ``MergeMaps`` (Helm's CLI merge): a new top-level map, ``b`` over ``a``; maps
    on both sides merged deeply, anything else taken from ``b`` (the object itself, not a
    copy)."""
    out = dict(a)
    for key, value in b.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge_maps(current, value)
        else:
            out[key] = value
    return out


def replace_path_value(values: dict[str, Any], path: str, value: str) -> None:
    """fluxcd/pkg ``ReplacePathValue``: ``path=value`` in Helm's ``--set`` syntax, into
    ``values`` in place; a value wrapped in quotes is set as a string without them."""
    quoted = any(value.startswith(q) and value.endswith(q) for q in ("'", '"'))
    if quoted:
        value = value.strip("'\"")
    parse_into(f"{path}={value}", values, value_start=len(path) + 1, as_string=quoted)


#: fluxcd/pkg ReplacePathLiteralValue's escaper: backslash first, so no escape is re-escaped
_LITERAL_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "[": "\\[", "]": "\\]",
                                  "{": "\\{", "}": "\\}"})


def replace_path_literal_value(values: dict[str, Any], path: str, value: str) -> None:
    """fluxcd/pkg ``ReplacePathLiteralValue``: ``value`` set verbatim, as a string, at the
    ``--set`` ``path``; what the parser would read as syntax in it is escaped first."""
    escaped = value.translate(_LITERAL_ESCAPES)
    parse_into(f"{path}={escaped}", values, value_start=len(path) + 1, as_string=True)


def _set_value(values: dict[str, Any], ref: ValuesReference, text: str) -> None:
    if ref.literal:
        replace_path_literal_value(values, ref.target_path, text)
    else:
        replace_path_value(values, ref.target_path, text)


def _read(ref: ValuesReference, namespace: str, secrets: SecretReader,
          configmaps: ConfigMapReader) -> Mapping[str, Any] | None:
    try:
        if ref.kind == "Secret":
            return secrets.get(namespace, ref.name)
        return configmaps.get(namespace, ref.name)
    except (SecretNotFoundError, ConfigMapNotFoundError):
        return None
    except SecretUnreadableError as err:
        raise _failure(ref, namespace, safe(err)) from None


def _set_path(result: dict[str, Any], ref: ValuesReference, namespace: str,
              raw: str | bytes) -> None:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as err:
        raise _failure(ref, namespace, f"failed to merge value: the value is not UTF-8 text "
                                       f"(byte {err.start})") from None
    try:
        _set_value(result, ref, text)
    except StrvalsError as err:
        if err.in_value and ref.kind == "Secret":
            why = ("the value does not parse with Helm's --set syntax (an unescaped ',' starts "
                   "another key; escape it as '\\,')")
        else:
            why = safe(err)
        raise _failure(ref, namespace, f"failed to merge value at targetPath "
                                       f"'{safe(ref.target_path)}': {why}") from None


def _target_strings(ref: ValuesReference, raw: str | bytes) -> frozenset[str]:
    """What a Secret's ``targetPath`` value gave: the text, and the values it parses into."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw  # _set_path checked it
    parsed: dict[str, Any] = {}
    _set_value(parsed, ref, text)  # parsed once already: it cannot fail
    return sensitive_strings(text) | sensitive_strings(parsed)


def _failure(ref: ValuesReference, namespace: str, why: str) -> StepFailedError:
    """fluxcd/pkg ``ErrValuesReference`` wording."""
    optional = " optional" if ref.optional else ""
    return StepFailedError(
        c.READY, VALUES_ERROR,
        f"could not resolve{optional} {ref.kind} chart values reference "
        f"'{namespace}/{ref.name}' with key '{ref.values_key}': {why}",
        status=c.FALSE)


def _plain(value: Any) -> Any:
    """A fresh tree: the walk above shares maps and lists between ``spec.values`` and the
    result; what is handed on owns all of its parts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

"""Drift of a release's objects from its manifest: helm-controller's ``action.Diff`` and
``ApplyDiff`` (fluxcd/pkg ``ssa/jsondiff``), over a :class:`~.seams.ClusterObjects`.

Detecting: each object of the manifest helm stored for the current revision gets helm's
metadata (``app.kubernetes.io/managed-by: Helm``, ``meta.helm.sh/release-*``) and, when
namespaced and without one, the release namespace; then a server-side apply of it is run as a
dry run (``dryRun=All``, force, helm's field manager ``helm``), and the server's answer is
compared with the live object. Only what the apply would change counts: fields other managers
own and the manifest does not set stay out of it. Compared are everything but ``metadata`` and
``status``, plus labels and annotations the manifest sets (added or changed, never removed: a
controller adding one is no drift). Ignored pointers are removed from both sides first. An
object that is gone counts as drift ("removed"); one labelled or annotated
``helm.toolkit.fluxcd.io/driftDetection: disabled`` (desired or live) is "excluded".

Correcting (mode ``enabled``): a removed object is created again; a changed one gets a JSON
patch (RFC 6902) under helm's field manager: the one the comparison found, computed against the
whole live object with the ignored fields at their live values (so they keep them, and an
ignored array element moves no index). No helm revision is made, as in Flux.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml

from chartguard.reconcile.drift_rules import IgnoreRule, ignored_paths, lookup, pointer, remove
from chartguard.reconcile.outcome import safe
from chartguard.reconcile.seams import ClusterError, ClusterObjects

#: the field manager the helm CLI applies with (cmd/helm: ``kube.ManagedFieldsManager``)
HELM_FIELD_MANAGER = "helm"
#: helm-controller's DriftDetectionMetadataKey / DriftDetectionDisabledValue
EXCLUDE_KEY = "helm.toolkit.fluxcd.io/driftDetection"
EXCLUDE_VALUE = "disabled"
#: what one message lists at most (objects, and paths per object)
MAX_OBJECTS, MAX_PATHS = 10, 3

_HELM_LABELS = {"app.kubernetes.io/managed-by": "Helm"}
#: created first, as fluxcd/pkg ssa sorts: what other objects live in or are made of
_FIRST = ("Namespace", "CustomResourceDefinition")


class DiffType(StrEnum):
    NONE = "unchanged"
    CREATE = "removed"  # gone from the cluster: correcting creates it again
    UPDATE = "changed"
    EXCLUDE = "excluded"


@dataclass(frozen=True)
class ObjectDiff:
    desired: Mapping[str, Any]
    type: DiffType
    #: RFC 6902 operations turning the live object into the desired one (ignored paths out)
    patch: tuple[Mapping[str, Any], ...] = ()
    #: what correcting applies: ``patch`` rewritten against the whole live object, ignored
    #: fields left as they are live (an ignored array element shifts no index)
    correction: tuple[Mapping[str, Any], ...] = ()

    @property
    def subject(self) -> str:
        """``Kind/namespace/name`` (fluxcd's ResourceName), safe to show."""
        return subject(self.desired)

    def counts(self) -> tuple[int, int, int]:
        ops = [op["op"] for op in self.patch]
        return ops.count("add"), ops.count("replace"), ops.count("remove")

    def paths(self) -> list[str]:
        return [safe(op["path"]) for op in self.patch]


@dataclass(frozen=True)
class DriftReport:
    diffs: tuple[ObjectDiff, ...] = ()
    #: objects that could not be compared, each a safe line
    errors: tuple[str, ...] = ()

    @property
    def drifted(self) -> tuple[ObjectDiff, ...]:
        return tuple(d for d in self.diffs if d.type in (DiffType.CREATE, DiffType.UPDATE))


@dataclass(frozen=True)
class Correction:
    #: ``Kind/namespace/name created|configured``, as fluxcd/pkg's ChangeSet prints them
    done: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)


class ManifestError(ValueError):
    """The stored manifest is not YAML objects helm could have written (the message is safe)."""


def manifest_objects(manifest: str) -> list[dict[str, Any]]:
    """The objects of a release manifest (``---``-separated YAML documents, empty ones left
    out). :class:`ManifestError` for anything else."""
    try:
        docs = list(yaml.load_all(manifest, Loader=_Loader))
    except yaml.YAMLError as err:
        raise ManifestError(f"the release manifest is not YAML: {safe(err)}") from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if not (isinstance(meta, dict) and meta.get("name") and doc.get("kind")
                and doc.get("apiVersion")):
            raise ManifestError("the release manifest holds a document that is no Kubernetes "
                                "object (apiVersion, kind, metadata.name)")
        out.append(doc)
    return out


def desired_objects(manifest: str, release: str, namespace: str,
                    cluster: ClusterObjects) -> list[dict[str, Any]]:
    """The manifest's objects as helm made them: helm's ownership metadata set (helm-controller's
    setHelmMetadata) and the release namespace on namespaced objects that name none."""
    objects = manifest_objects(manifest)
    scoped: dict[tuple[str, str], bool] = {}
    for obj in objects:
        meta = obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), **_HELM_LABELS}
        meta["annotations"] = {**(meta.get("annotations") or {}),
                               "meta.helm.sh/release-name": release,
                               "meta.helm.sh/release-namespace": namespace}
        if not meta.get("namespace"):
            key = (str(obj["apiVersion"]), str(obj["kind"]))
            if key not in scoped:
                try:
                    scoped[key] = cluster.namespaced(*key)
                except ClusterError:  # the object's own comparison reports it
                    scoped[key] = False
            if scoped[key]:
                meta["namespace"] = namespace
    return objects


def detect(objects: Sequence[Mapping[str, Any]], rules: Sequence[IgnoreRule],
           cluster: ClusterObjects, *, as_user: str) -> DriftReport:
    """Compare each desired object with the cluster (jsondiff.UnstructuredList, Graceful: an
    object that cannot be compared is reported and the others still are)."""
    diffs: list[ObjectDiff] = []
    errors: list[str] = []
    for obj in objects:
        try:
            diffs.append(diff_one(obj, ignored_paths(rules, obj), cluster, as_user=as_user))
        except ClusterError as err:
            errors.append(f"{subject(obj)} dry-run failed: {safe(err)}")
    return DriftReport(tuple(diffs), tuple(errors))


def diff_one(desired: Mapping[str, Any], ignore: Sequence[Sequence[str]],
             cluster: ClusterObjects, *, as_user: str) -> ObjectDiff:
    """One object compared with its live self (jsondiff.Unstructured)."""
    if _excluded(desired) or any(len(p) == 0 for p in ignore):
        return ObjectDiff(desired, DiffType.EXCLUDE)
    live = cluster.get(desired, as_user=as_user)
    if live is None:
        return ObjectDiff(desired, DiffType.CREATE)
    if _excluded(live):
        return ObjectDiff(desired, DiffType.EXCLUDE)
    after = cluster.dry_run_apply(desired, field_manager=HELM_FIELD_MANAGER, as_user=as_user)
    patch = compare(live, after, ignore)
    if not patch:
        return ObjectDiff(desired, DiffType.NONE)
    return ObjectDiff(desired, DiffType.UPDATE, tuple(patch),
                      tuple(compare(live, keep_ignored(after, live, ignore))))


def keep_ignored(after: Mapping[str, Any], live: Mapping[str, Any],
                 ignore: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``after`` with the live value (or its absence) at each ignored pointer."""
    out = copy.deepcopy(dict(after))
    for tokens in ignore:
        found, value = lookup(live, tokens)
        if not found:
            remove(out, tokens)
            continue
        parent_found, parent = lookup(out, tokens[:-1])
        if parent_found and isinstance(parent, dict):
            parent[tokens[-1]] = copy.deepcopy(value)
        elif parent_found and isinstance(parent, list) and tokens[-1].lstrip("-").isdigit():
            index = int(tokens[-1])
            if -len(parent) <= index < len(parent):
                parent[index] = copy.deepcopy(value)
    return out


def compare(live: Mapping[str, Any], after: Mapping[str, Any],
            ignore: Sequence[Sequence[str]] = ()) -> list[dict[str, Any]]:
    """The RFC 6902 patch from ``live`` to ``after`` (the dry-run result), ``ignore``d pointers
    removed from both first: labels and annotations added or changed, then every other field
    but ``metadata`` and ``status``."""
    x, y = copy.deepcopy(dict(live)), copy.deepcopy(dict(after))
    for tokens in ignore:
        remove(x, tokens)
        remove(y, tokens)
    ops: list[dict[str, Any]] = []
    x_meta, y_meta = x.get("metadata") or {}, y.get("metadata") or {}
    for key in ("labels", "annotations"):
        want = y_meta.get(key)
        have = x_meta.get(key)
        if not isinstance(want, Mapping) or not want:
            continue
        if not isinstance(have, Mapping):
            ops.append({"op": "add", "path": pointer(("metadata", key)), "value": dict(want)})
            continue
        for name, value in want.items():
            if name not in have:
                ops.append({"op": "add", "path": pointer(("metadata", key, name)),
                            "value": value})
            elif not _same(have[name], value):
                ops.append({"op": "replace", "path": pointer(("metadata", key, name)),
                            "value": value})
    for doc in (x, y):
        doc.pop("metadata", None)
        doc.pop("status", None)
    _diff(x, y, (), ops)
    return ops


def correct(report: DriftReport, cluster: ClusterObjects, *, as_user: str) -> Correction:
    """Create what is gone, patch what changed (ApplyDiff); every object is tried."""
    done: list[str] = []
    errors: list[str] = []
    creates = sorted((d for d in report.drifted if d.type is DiffType.CREATE), key=_order)
    updates = sorted((d for d in report.drifted if d.type is DiffType.UPDATE), key=_order)
    for d in creates:
        try:
            cluster.create(d.desired, field_manager=HELM_FIELD_MANAGER, as_user=as_user)
        except ClusterError as err:
            errors.append(f"{d.subject} creation failure: {safe(err)}")
        else:
            done.append(f"{d.subject} created")
    for d in updates:
        try:
            cluster.json_patch(d.desired, d.correction, field_manager=HELM_FIELD_MANAGER,
                               as_user=as_user)
        except ClusterError as err:
            errors.append(f"{d.subject} patch failure: {safe(err)}")
        else:
            done.append(f"{d.subject} configured")
    return Correction(tuple(done), tuple(errors))


# -- messages (helm-controller's words) -------------------------------------------------------


def drift_message(release: str, report: DriftReport) -> str:
    """``Cluster state of release <ns>/<name>.v<N> has drifted from the desired state:`` and
    one line per object (diff.SummarizeDiffSet), with the first paths that changed."""
    return (f"Cluster state of release {release} has drifted from the desired state:\n"
            + summarize(report))


def summarize(report: DriftReport) -> str:
    lines: list[str] = []
    shown = [d for d in report.diffs if d.type is not DiffType.NONE]
    for d in shown[:MAX_OBJECTS]:
        if d.type is DiffType.UPDATE:
            added, changed, removed = d.counts()
            paths = d.paths()
            more = f" and {len(paths) - MAX_PATHS} more" if len(paths) > MAX_PATHS else ""
            lines.append(f"{d.subject} changed ({added} additions, {changed} changes, "
                         f"{removed} removals): {', '.join(paths[:MAX_PATHS])}{more}")
        else:
            lines.append(f"{d.subject} {d.type}")
    if len(shown) > MAX_OBJECTS:
        lines.append(f"and {len(shown) - MAX_OBJECTS} more objects")
    return "\n".join(lines)


def corrected_message(release: str, correction: Correction) -> str:
    """DriftCorrected's ``Cluster state of release … has been corrected:`` and the changes."""
    return (f"Cluster state of release {release} has been corrected:\n"
            + "\n".join(correction.done))


def correction_failed_message(release: str, correction: Correction) -> str:
    """DriftCorrectionFailed's words: the failures, then what did succeed."""
    partially = "partially " if correction.done else ""
    text = (f"Failed to {partially}correct cluster state of release {release}:\n"
            + "\n".join(correction.errors))
    if correction.done:
        text += "\n\nSuccessful corrections:\n" + "\n".join(correction.done)
    return text


def subject(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    parts = [obj.get("kind"), *([namespace] if namespace else []), meta.get("name")]
    return safe("/".join(str(p) for p in parts))


# -- internals -------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML as helm writes manifests; an alias is refused (helm never writes one, and a
    forged record could make a small text expand into a huge object graph)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not accepted in a release manifest")
        return super().compose_node(parent, index)


def _excluded(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    return any(isinstance(m, Mapping) and m.get(EXCLUDE_KEY) == EXCLUDE_VALUE
               for m in (meta.get("labels"), meta.get("annotations")))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _diff(x: Any, y: Any, at: tuple[str, ...], ops: list[dict[str, Any]]) -> None:
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        for key, value in y.items():
            if key not in x:
                ops.append({"op": "add", "path": pointer((*at, key)), "value": value})
            else:
                _diff(x[key], value, (*at, key), ops)
        ops.extend({"op": "remove", "path": pointer((*at, key))} for key in x if key not in y)
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _diff(a, b, (*at, str(i)), ops)
    elif not _deep_same(x, y):
        ops.append({"op": "replace", "path": pointer(at), "value": y})


def _deep_same(a: Any, b: Any) -> bool:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_deep_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_deep_same(p, q) for p, q in zip(a, b, strict=True))
    return _same(a, b)


def _order(d: ObjectDiff) -> tuple[int, str, str, str, str]:
    obj = d.desired
    kind = str(obj.get("kind"))
    rank = _FIRST.index(kind) if kind in _FIRST else len(_FIRST)
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return rank, group, kind, str(meta.get("namespace", "")), str(meta.get("name", ""))

"""``spec.driftDetection.ignore``: JSON pointers and target selectors, as fluxcd/pkg reads them.

helm-controller hands each rule to ``ssa/jsondiff``: ``paths`` are JSON pointers (RFC 6901)
removed from both the live object and the server's dry-run result before they are compared
(a pointer to nothing removes nothing; ``""`` ignores the whole object); ``target`` selects the
objects a rule applies to (no target: every object of the release). A selector's group,
version, kind, name and namespace are Go regular expressions anchored at both ends
(``^(?:…)$``, kustomize's selector); ``labelSelector`` and ``annotationSelector`` are
Kubernetes label selectors over labels and annotations. Every field set must match.

Pure: :func:`compile_rules` checks the whole list once and raises :class:`IgnoreRuleError`
naming the field, so a bad rule is refused, never half-applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from chartguard.goregex import GoRegex, GoRegexError, compile_go
from chartguard.untrusted import escape

FIELD = "spec.driftDetection.ignore"
ROOT = ""  # the pointer to the whole document: the object is not compared at all

_INDEX = re.compile(r"^-?(0|[1-9][0-9]*)$")
_KEY = r"([A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?)"
_SET = re.compile(rf"^\s*{_KEY}\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EQ = re.compile(rf"^\s*{_KEY}\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*{_KEY}\s*$")


class IgnoreRuleError(ValueError):
    """A rule fluxcd/pkg would refuse; the message names the field (``spec.…``), safe to show."""


# -- JSON pointers (RFC 6901) ----------------------------------------------------------------


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of ``pointer`` (``~1`` is ``/``, ``~0`` is ``~``); ``""`` is the
    whole document. ``ValueError`` for text that is no JSON pointer."""
    if pointer == ROOT:
        return ()
    if not pointer.startswith("/"):
        raise ValueError("a JSON pointer starts with '/' (or is empty: the whole object)")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise ValueError("'~' must be written ~0 and '/' ~1 in a JSON pointer")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in tokens)


def pointer(tokens: Sequence[str]) -> str:
    """The JSON pointer of ``tokens`` (each escaped: ``~`` as ``~0``, ``/`` as ``~1``)."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def remove(doc: Any, tokens: Sequence[str]) -> None:
    """Remove what ``tokens`` point at from ``doc`` in place; nothing there, nothing removed
    (as ``jsonpatch`` with AllowMissingPathOnRemove). An array index may count from the end
    (``-1``, SupportNegativeIndices)."""
    if not tokens:
        return
    *parents, last = tokens
    node = doc
    for token in parents:
        node = _child(node, token)
        if node is None:
            return
    if isinstance(node, MutableMapping):
        node.pop(last, None)
    elif isinstance(node, list) and _INDEX.match(last):
        index = int(last)
        if -len(node) <= index < len(node):
            del node[index]


def lookup(doc: Any, tokens: Sequence[str]) -> tuple[bool, Any]:
    """(found, value) of what ``tokens`` point at in ``doc``."""
    node = doc
    for token in tokens:
        if isinstance(node, Mapping):
            if token not in node:
                return False, None
            node = node[token]
        elif isinstance(node, list) and _INDEX.match(token) and (
                -len(node) <= int(token) < len(node)):
            node = node[int(token)]
        else:
            return False, None
    return True, node


def _child(node: Any, token: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(token)
    if isinstance(node, list) and _INDEX.match(token):
        index = int(token)
        return node[index] if -len(node) <= index < len(node) else None
    return None


# -- label selectors (k8s.io/apimachinery/pkg/labels.Parse) ---------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # = | != | in | notin | exists | !
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":  # an absent key is not equal to anything
                return not present or value not in self.values
            case "exists":
                return present
        return not present


def parse_label_selector(selector: str) -> tuple[Requirement, ...]:
    """``app=x,tier!=db,env in (a,b),!legacy`` as requirements; ``ValueError`` otherwise."""
    out: list[Requirement] = []
    for part in _split(selector):
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
            out.append(Requirement(m.group(1), m.group(3), values))
        elif m := _EQ.match(part):
            operator = "!=" if m.group(3) == "!=" else "="
            out.append(Requirement(m.group(1), operator, frozenset({m.group(4)})))
        elif m := _EXISTS.match(part):
            out.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise ValueError(f"{escape(part.strip())!r} is not a selector requirement (key=value, "
                             "key!=value, key in (a,b), key notin (a,b), key, !key)")
    return tuple(out)


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


# -- selectors and rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """kustomize's selector as fluxcd/pkg ``jsondiff.SelectorRegex`` matches it."""

    group: GoRegex | None = None
    version: GoRegex | None = None
    kind: GoRegex | None = None
    name: GoRegex | None = None
    namespace: GoRegex | None = None
    labels: tuple[Requirement, ...] | None = None
    annotations: tuple[Requirement, ...] | None = None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
        checks = ((self.group, group), (self.version, version),
                  (self.kind, str(obj.get("kind") or "")),
                  (self.name, str(meta.get("name") or "")),
                  (self.namespace, str(meta.get("namespace") or "")))
        if any(rx is not None and not rx.search(value) for rx, value in checks):
            return False
        for requirements, key in ((self.labels, "labels"), (self.annotations, "annotations")):
            found = _strings(meta.get(key))
            if requirements is not None and not all(r.matches(found) for r in requirements):
                return False
        return True


@dataclass(frozen=True)
class IgnoreRule:
    paths: tuple[tuple[str, ...], ...]  # parsed pointers; () is the whole object
    target: Selector | None = None

    def applies_to(self, obj: Mapping[str, Any]) -> bool:
        return self.target is None or self.target.matches(obj)


def compile_rules(raw: Any) -> tuple[IgnoreRule, ...]:
    """``spec.driftDetection.ignore`` (as the API model keeps it) compiled; the first field
    fluxcd/pkg would refuse raises :class:`IgnoreRuleError` naming it."""
    rules: list[IgnoreRule] = []
    for i, rule in enumerate(raw or ()):
        where = f"{FIELD}[{i}]"
        paths: list[tuple[str, ...]] = []
        for j, text in enumerate(rule.get("paths") or ()):
            try:
                paths.append(parse_pointer(str(text)))
            except ValueError as err:
                raise IgnoreRuleError(f"{where}.paths[{j}]: {escape(text)!r} is not a JSON "
                                      f"pointer: {err}") from None
        target = rule.get("target")
        rules.append(IgnoreRule(tuple(paths), _selector(target, f"{where}.target")
                                if target is not None else None))
    return tuple(rules)


def ignored_paths(rules: Sequence[IgnoreRule], obj: Mapping[str, Any]
                  ) -> tuple[tuple[str, ...], ...]:
    """The pointers every rule that applies to ``obj`` (the desired object) ignores."""
    return tuple(p for rule in rules if rule.applies_to(obj) for p in rule.paths)


def _selector(target: Mapping[str, Any], where: str) -> Selector:
    def regex(key: str) -> GoRegex | None:
        text = str(target.get(key) or "")
        if not text:
            return None
        try:
            return compile_go(f"^(?:{text})$")
        except GoRegexError as err:
            raise IgnoreRuleError(f"{where}.{key}: invalid regular expression "
                                  f"{escape(text)!r}: {escape(err)}") from None

    def labels(key: str) -> tuple[Requirement, ...] | None:
        text = str(target.get(key) or "")
        if not text:
            return None
        try:
            return parse_label_selector(text)
        except ValueError as err:
            raise IgnoreRuleError(f"{where}.{key}: {err}") from None

    return Selector(group=regex("group"), version=regex("version"), kind=regex("kind"),
                    name=regex("name"), namespace=regex("namespace"),
                    labels=labels("labelSelector"), annotations=labels("annotationSelector"))


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}

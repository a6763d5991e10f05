"""Helm/Flux chart version constraints (Masterminds semver v3): the one parser and matcher.

Flux and Helm hand ``spec.version`` to Masterminds' ``semver.NewConstraint``. This module is the
single reading of that grammar in chartguard: the spec validator (``check_version_constraint``,
raising ``ValueError``) and the registry client (``chartguard.oci.versions``, which wraps the error
as ``InvalidConstraintError``) both call it, so a manifest that passes validation cannot fail to
parse at fetch time, and the reverse.

Grammar, as Masterminds v3 reads it (``NewConstraint``):

- ``A - B`` (spaces around the hyphen) is first rewritten, as text, to ``>= A, <= B``;
- ``||`` separates alternatives; an empty alternative is an error;
- an alternative is conditions separated by whitespace, a comma, or a comma with whitespace;
- a condition is an optional operator (``= != > < >= => <= =< ~ ~> ^``) and a version ``v?`` +
  one to three dot-separated parts (a number, or a wildcard ``x X *``) + ``-prerelease`` +
  ``+build``; parts after a wildcard are ignored, as Masterminds ignores them.

Deliberate difference: a numeric part with a leading zero (``01.2.3``) is refused here, while
Masterminds coerces it to ``1.2.3``; semver forbids it and the refusal happens at validation, with
a message, never later at fetch time.

Matching follows Masterminds 3.4 (what Helm 4 and current Flux link): a prerelease version
is considered only by an "and" group that names a prerelease in one of its conditions, so
``*`` never selects ``1.0.0-rc.1`` but ``>=1.9.0-0 <2.0.0`` selects ``2.0.0-rc.1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

MAX_CONSTRAINT_LENGTH = 1024
_MAX_PART = 2**64 - 1  # Masterminds parses parts as uint64
_WS = " \t\n\f\r"  # Go's \s: ASCII only, no \v
_SEGMENT_CHARS = frozenset("0123456789xX*|")  # Masterminds' cvRegex part class, '|' included
_IDENT_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")
_WILD = frozenset({"x", "X", "*"})
_TWO_CHAR_OPS = frozenset({"!=", ">=", "=>", "<=", "=<", "~>"})
_ONE_CHAR_OPS = frozenset("=><~^")
_HINT = "use e.g. '1.2.3', '>=1.0.0 <2.0.0', '~1.2', '^2', '1.x' or '*'"

# Masterminds' constraintRangeRegex, ``\s*(cv)\s+-\s+(cv)\s*`` over its cvRegex. Quantifiers are
# possessive (no backtracking) because no shorter match could succeed: a part is followed by a dot,
# '-', '+', whitespace or the end, none of which a part holds, so the match is the same as Go's.
_G = r"[\t\n\f\r ]"
_CV = (r"v?[0-9|xX*]++(?:\.[0-9|xX*]++)?+(?:\.[0-9|xX*]++)?+"
       r"(?:-[0-9A-Za-z-]++(?:\.[0-9A-Za-z-]++)*+)?+(?:\+[0-9A-Za-z-]++(?:\.[0-9A-Za-z-]++)*+)?+")
_RANGE = re.compile(rf"{_G}*+({_CV}){_G}++-{_G}++({_CV}){_G}*+")


class ConstraintSyntaxError(ValueError):
    """``text`` is not a version constraint; ``problem`` says why and ``hint`` what to write."""

    def __init__(self, text: str, problem: str, hint: str = _HINT) -> None:
        self.text = text
        self.problem = problem
        self.hint = hint
        super().__init__(f"invalid version constraint {shorten(text)}: {problem}; {hint}")


def shorten(text: str) -> str:
    """``repr(text)``, cut to 100 characters so a huge input does not flood a message."""
    return repr(text) if len(text) <= 100 else repr(text[:100]) + "..."


@dataclass(frozen=True)
class Version:
    """A semantic version; ``build`` is kept but, as semver says, never compared."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    build: str = ""

    @classmethod
    def parse_strict(cls, text: str) -> Version | None:
        """A strict semver 2.0 version (optional leading ``v``, as Flux allows), or None."""
        m = _STRICT.fullmatch(text)
        if not m:
            return None
        pre = m["pre"] or ""
        if pre and _bad_prerelease(pre):
            return None
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, m["build"] or "")

    def compare(self, other: Version) -> int:
        """-1, 0 or 1, by semver 2.0 precedence (prerelease below release)."""
        mine = (self.major, self.minor, self.patch)
        theirs = (other.major, other.minor, other.patch)
        if mine != theirs:
            return -1 if mine < theirs else 1
        if self.pre == other.pre:
            return 0
        if not self.pre:
            return 1
        if not other.pre:
            return -1
        return _compare_pre(self.pre, other.pre)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += f"-{self.pre}"
        if self.build:
            text += f"+{self.build}"
        return text


_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_NUM = r"0|[1-9][0-9]*"
_STRICT = re.compile(
    rf"v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}))?(?:\+(?P<build>{_IDENT}))?")


def _bad_prerelease(pre: str) -> bool:
    # semver 2.0: numeric prerelease identifiers have no leading zeros (Masterminds agrees)
    return any(p.isdigit() and len(p) > 1 and p[0] == "0" for p in pre.split("."))


def _compare_pre(a: str, b: str) -> int:
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit():  # numeric identifiers sort below alphanumeric ones
            return -1
        if y.isdigit():
            return 1
        return -1 if x < y else 1
    if len(left) == len(right):
        return 0
    return -1 if len(left) < len(right) else 1


@dataclass(frozen=True)
class Condition:
    """One ``op version`` term; ``op`` is ``""`` for a bare version (``=``, or ``~`` if dirty)."""

    op: str
    text: str  # the version as written, e.g. ``1.2.x``
    con: Version  # wildcards and missing parts read as 0
    dirty: bool  # some part was a wildcard or missing
    minor_dirty: bool  # the minor (and so the patch) was a wildcard or missing
    patch_dirty: bool

    def check(self, v: Version, include_prerelease: bool) -> bool:
        # Masterminds >= 3.4 (Helm 4, current Flux): a prerelease is considered only when
        # its "and" group names a prerelease somewhere (Constraint.allows decides that).
        if v.pre and not include_prerelease:
            return False
        return _CHECKS[self.op](v, self)

    def __str__(self) -> str:
        return f"{self.op}{self.text}"


def _not_equal(v: Version, c: Condition) -> bool:
    if c.dirty:
        if c.con.major != v.major:
            return True
        if c.minor_dirty:
            return False
        if c.con.minor != v.minor:
            return True
        if c.patch_dirty:
            return (v.pre or c.con.pre) != "" and _compare_pre(v.pre, c.con.pre) != 0
    return v.compare(c.con) != 0


def _greater(v: Version, c: Condition) -> bool:
    if not c.dirty:
        return v.compare(c.con) > 0
    if v.major != c.con.major:
        return v.major > c.con.major
    if c.minor_dirty:  # >1 means 2.0.0 or above
        return False
    if c.patch_dirty:  # >1.2 means 1.3.0 or above
        return v.minor > c.con.minor
    return v.compare(c.con) > 0


def _less(v: Version, c: Condition) -> bool:
    return v.compare(c.con) < 0


def _greater_equal(v: Version, c: Condition) -> bool:
    return v.compare(c.con) >= 0


def _less_equal(v: Version, c: Condition) -> bool:
    if not c.dirty:
        return v.compare(c.con) <= 0
    if v.major > c.con.major:
        return False
    return not (v.major == c.con.major and v.minor > c.con.minor and not c.minor_dirty)


def _tilde(v: Version, c: Condition) -> bool:
    if v.compare(c.con) < 0:
        return False
    if (c.con.major, c.con.minor, c.con.patch) == (0, 0, 0) and not (
            c.minor_dirty or c.patch_dirty):
        return True  # ~0.0.0 and ~* accept everything
    if v.major != c.con.major:
        return False
    return v.minor == c.con.minor or c.minor_dirty


def _tilde_or_equal(v: Version, c: Condition) -> bool:
    if c.dirty:  # 1.2.x means ~1.2
        return _tilde(v, c)
    return v.compare(c.con) == 0


def _caret(v: Version, c: Condition) -> bool:
    if v.compare(c.con) < 0:
        return False
    if c.con.major > 0 or c.minor_dirty:
        return v.major == c.con.major
    if v.major > 0:
        return False
    if c.con.minor > 0 or c.patch_dirty:
        return v.minor == c.con.minor
    if v.minor > 0:
        return False
    return v.patch == c.con.patch


_CHECKS: dict[str, Callable[[Version, Condition], bool]] = {
    "": _tilde_or_equal, "=": _tilde_or_equal, "!=": _not_equal,
    ">": _greater, "<": _less, ">=": _greater_equal, "=>": _greater_equal,
    "<=": _less_equal, "=<": _less_equal, "~": _tilde, "~>": _tilde, "^": _caret,
}


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: alternatives (``||``) of conditions that must all hold."""

    text: str
    alternatives: tuple[tuple[Condition, ...], ...]

    def allows(self, version: Version) -> bool:
        return any(all(c.check(version, group_pre) for c in group)
                   for group, group_pre in zip(self.alternatives, self._group_prerelease,
                                               strict=True))

    @cached_property
    def _group_prerelease(self) -> tuple[bool, ...]:
        # per "and" group: does any condition name a prerelease (Masterminds 3.4)?
        return tuple(any(c.con.pre for c in group) for group in self.alternatives)

    def __str__(self) -> str:
        return " || ".join(" ".join(str(c) for c in group) for group in self.alternatives)


def check_version_constraint(text: str) -> Constraint:
    """Parse ``text`` as Masterminds' ``NewConstraint`` does.

    Raises ``ConstraintSyntaxError`` (a ``ValueError``) saying what to fix. An empty string is
    an error here: callers that default it (Flux and Helm read ``""`` as ``*``) do so first.
    """
    if not isinstance(text, str):
        raise ConstraintSyntaxError(str(text), "it is not a string")
    if not text.strip(_WS):
        raise ConstraintSyntaxError(text, "it is empty", "use '*' for the latest version")
    if len(text) > MAX_CONSTRAINT_LENGTH:
        raise ConstraintSyntaxError(text, f"it is longer than {MAX_CONSTRAINT_LENGTH} characters")
    # Masterminds rewrites hyphen ranges as text before anything else; doing the same keeps
    # its quirks (">=1 1.2 - 1.3" is refused, "1.2 - 1.3 >=1" is not).
    rewritten = _RANGE.sub(lambda m: f">= {m[1]}, <= {m[2]} ", text)
    try:
        alternatives = tuple(_scan_group(group, text) for group in rewritten.split("||"))
    except ConstraintSyntaxError as err:
        if rewritten == text:
            raise
        raise ConstraintSyntaxError(
            text, f"{err.problem} (a hyphen range 'A - B' reads as '>= A, <= B' and must start "
            "an alternative or follow a comma)") from None
    return Constraint(text, alternatives)


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _scan_group(group: str, whole: str) -> tuple[Condition, ...]:
    """One alternative: conditions separated by whitespace, a comma, or both."""
    i = _skip_ws(group, 0)
    if i == len(group):
        raise ConstraintSyntaxError(whole, "empty alternative around '||'")
    conditions: list[Condition] = []
    while True:
        condition, end = _scan_condition(group, i, whole)
        conditions.append(condition)
        j = _skip_ws(group, end)
        if j == len(group):
            return tuple(conditions)
        if group[j] == ",":
            j = _skip_ws(group, j + 1)
            if j == len(group):
                raise ConstraintSyntaxError(whole, "nothing follows the last comma")
        elif j == end:  # "1.2.3foo": a version must end at whitespace, a comma or the end
            raise ConstraintSyntaxError(
                whole, f"cannot read {_snippet(group, end)} after {group[i:end].strip(_WS)!r}")
        i = j


def _snippet(s: str, i: int) -> str:
    rest = s[i:].strip(_WS)
    return repr(rest) if len(rest) <= 40 else repr(rest[:40]) + "..."


def _scan_condition(s: str, start: int, whole: str) -> tuple[Condition, int]:
    i = start
    op = ""
    if s[i:i + 2] in _TWO_CHAR_OPS:
        op, i = s[i:i + 2], i + 2
    elif i < len(s) and s[i] in _ONE_CHAR_OPS:
        op, i = s[i], i + 1
    i = _skip_ws(s, i)
    version_start = i
    if i < len(s) and s[i] == "v":
        i += 1
    parts: list[str] = []
    while True:
        part_start = i
        while i < len(s) and s[i] in _SEGMENT_CHARS:
            i += 1
        if i == part_start:
            raise ConstraintSyntaxError(whole, f"cannot read {_snippet(s, start)}")
        parts.append(s[part_start:i])
        # a dot separates parts only when a part follows it; at most three parts
        if len(parts) == 3 or i + 1 >= len(s) or s[i] != "." or s[i + 1] not in _SEGMENT_CHARS:
            break
        i += 1
    pre = ""
    if i < len(s) and s[i] == "-":  # a '-' not followed by an identifier is left unread
        end = _scan_identifiers(s, i + 1)
        pre, i = (s[i + 1:end], end) if end > i + 1 else ("", i)
    if i < len(s) and s[i] == "+":  # build metadata: read, never compared
        end = _scan_identifiers(s, i + 1)
        i = end if end > i + 1 else i
    text = s[version_start:i]
    return _condition(op, text, parts, pre, whole), i


def _scan_identifiers(s: str, i: int) -> int:
    """The end of dot-separated non-empty ``[0-9A-Za-z-]`` identifiers starting at ``i``."""
    end = i
    while True:
        start = end
        while end < len(s) and s[end] in _IDENT_CHARS:
            end += 1
        if end == start:
            return start
        if end + 1 < len(s) and s[end] == "." and s[end + 1] in _IDENT_CHARS:
            end += 1
            continue
        return end


def _condition(op: str, text: str, parts: list[str], pre: str, whole: str) -> Condition:
    # As Masterminds' parseConstraint: the first wildcard or missing part makes the condition
    # "dirty" and the parts after it are ignored (1.x.3 is 1.x).
    numbers: list[int] = []
    for part in parts:
        if part in _WILD:
            break
        numbers.append(_part_number(part, text, whole))
    if pre and _bad_prerelease(pre):
        raise ConstraintSyntaxError(
            whole, f"prerelease {pre!r} of {text!r} has a number with a leading zero")
    known = len(numbers)
    major, minor, patch = numbers + [0] * (3 - known)
    con = Version(major, minor, patch, pre)
    # a wildcard major ("*", "x.1") is dirty but neither minor- nor patch-dirty, as in Masterminds
    return Condition(op, text, con, dirty=known < 3, minor_dirty=known == 1,
                     patch_dirty=known == 2)


def _part_number(part: str, text: str, whole: str) -> int:
    if not part.isdigit():  # "1x", "x1", "1|2": the part class allows them, NewVersion does not
        raise ConstraintSyntaxError(
            whole, f"{text!r} is not a version: each part is a number or a wildcard (x, X, *)")
    if len(part) > 1 and part[0] == "0":
        raise ConstraintSyntaxError(whole, f"{text!r} has a leading zero")
    number = int(part)
    if number > _MAX_PART:
        raise ConstraintSyntaxError(whole, f"{part} in {text!r} is too large for a version")
    return number

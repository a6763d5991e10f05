"""Chart version selection as Helm and Flux do it (Masterminds/semver v3 constraints).

Tags are strict semver 2.0 (a leading ``v`` allowed, as Flux allows it); Helm stores ``+``
as ``_`` in tags because OCI tags cannot hold ``+``. Constraints follow Masterminds v3:
``||`` separates alternatives, commas or spaces separate conditions that must all hold,
``A - B`` is ``>= A, <= B``; operators ``= != > < >= => <= =< ~ ~> ^``; ``x``/``X``/``*``
or a missing part is a wildcard. A prerelease version matches a condition only when that
condition names a prerelease itself, so ``*`` never selects ``1.0.0-rc.1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chartguard.oci.errors import InvalidConstraintError, VersionNotFoundError

_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_NUM = r"0|[1-9][0-9]*"
_STRICT = re.compile(
    rf"v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}))?(?:\+(?P<build>{_IDENT}))?")
# A version inside a constraint: parts may be missing or wildcards (Masterminds' cvRegex).
_PART = r"[0-9]+|[xX*]"
_CV = (rf"v?(?:{_PART})(?:\.(?:{_PART}))?(?:\.(?:{_PART}))?"
       rf"(?:-{_IDENT})?(?:\+{_IDENT})?")
_CV_GROUPS = re.compile(
    rf"v?(?P<major>{_PART})(?:\.(?P<minor>{_PART}))?(?:\.(?P<patch>{_PART}))?"
    rf"(?:-(?P<pre>{_IDENT}))?(?:\+(?P<build>{_IDENT}))?")
_OPS = r">=|=>|<=|=<|!=|~>|>|<|=|~|\^"
_TERM = re.compile(rf"(?P<op>{_OPS})?\s*(?P<ver>{_CV})")
# Conditions are separated by spaces or a comma (Masterminds' validConstraintRegex).
_GROUP = re.compile(rf"\s*(?:{_OPS})?\s*{_CV}(?:(?:\s*,\s*|\s+)(?:{_OPS})?\s*{_CV})*\s*")
_HYPHEN = re.compile(rf"\s*(?P<lo>{_CV})\s+-\s+(?P<hi>{_CV})\s*")
_WILD = frozenset({"x", "X", "*"})


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
        """A strict semver version (optional leading ``v``), or None."""
        m = _STRICT.fullmatch(text)
        if not m:
            return None
        pre = m["pre"] or ""
        # semver 2.0: numeric prerelease identifiers have no leading zeros
        if any(p.isdigit() and len(p) > 1 and p[0] == "0" for p in pre.split(".") if pre):
            return None
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, m["build"] or "")

    def compare(self, other: Version) -> int:
        """-1, 0 or 1, by semver 2.0 precedence (prerelease below release)."""
        mine, theirs = (self.major, self.minor, self.patch), (other.major, other.minor,
                                                             other.patch)
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
class _Condition:
    op: str
    con: Version
    dirty: bool  # some part was a wildcard or missing
    minor_dirty: bool  # the minor (and so the patch) was a wildcard or missing
    patch_dirty: bool

    def check(self, v: Version) -> bool:
        # Masterminds: a prerelease only satisfies a condition that names a prerelease.
        if v.pre and not self.con.pre:
            return False
        return _CHECKS[self.op](v, self)


def _not_equal(v: Version, c: _Condition) -> bool:
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


def _greater(v: Version, c: _Condition) -> bool:
    if not c.dirty:
        return v.compare(c.con) > 0
    if v.major != c.con.major:
        return v.major > c.con.major
    if c.minor_dirty:  # >1 means 2.0.0 or above
        return False
    if c.patch_dirty:  # >1.2 means 1.3.0 or above
        return v.minor > c.con.minor
    return v.compare(c.con) > 0


def _less(v: Version, c: _Condition) -> bool:
    return v.compare(c.con) < 0


def _greater_equal(v: Version, c: _Condition) -> bool:
    return v.compare(c.con) >= 0


def _less_equal(v: Version, c: _Condition) -> bool:
    if not c.dirty:
        return v.compare(c.con) <= 0
    if v.major > c.con.major:
        return False
    return not (v.major == c.con.major and v.minor > c.con.minor and not c.minor_dirty)


def _tilde(v: Version, c: _Condition) -> bool:
    if v.compare(c.con) < 0:
        return False
    if (c.con.major, c.con.minor, c.con.patch) == (0, 0, 0) and not (
            c.minor_dirty or c.patch_dirty):
        return True  # ~0.0.0 and ~* accept everything
    if v.major != c.con.major:
        return False
    return v.minor == c.con.minor or c.minor_dirty


def _tilde_or_equal(v: Version, c: _Condition) -> bool:
    if c.dirty:  # 1.2.x means ~1.2
        return _tilde(v, c)
    return v.compare(c.con) == 0


def _caret(v: Version, c: _Condition) -> bool:
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


_CHECKS: dict[str, Callable[[Version, _Condition], bool]] = {
    "": _tilde_or_equal, "=": _tilde_or_equal, "!=": _not_equal,
    ">": _greater, "<": _less, ">=": _greater_equal, "=>": _greater_equal,
    "<=": _less_equal, "=<": _less_equal, "~": _tilde, "~>": _tilde, "^": _caret,
}


def _condition(op: str, text: str) -> _Condition:
    m = _CV_GROUPS.fullmatch(text)
    if not m:  # _TERM matched _CV, so this cannot happen; kept as a guard
        raise InvalidConstraintError(f"version {text!r} in a constraint is not semver")
    major, minor, patch = m["major"], m["minor"], m["patch"]
    pre = m["pre"] or ""
    dirty = minor_dirty = patch_dirty = False
    if major in _WILD:
        con, dirty = Version(0, 0, 0, pre), True
    elif minor is None or minor in _WILD:
        con, dirty, minor_dirty = Version(int(major), 0, 0, pre), True, True
    elif patch is None or patch in _WILD:
        con, dirty, patch_dirty = Version(int(major), int(minor), 0, pre), True, True
    else:
        con = Version(int(major), int(minor), int(patch), pre)
    return _Condition(op, con, dirty, minor_dirty, patch_dirty)


def _parse_group(group: str, whole: str) -> list[_Condition]:
    # "A - B" is ">= A, <= B" (Masterminds rewrites it before parsing)
    group = _HYPHEN.sub(lambda m: f" >={m['lo']}, <={m['hi']} ", group)
    if not group.strip():
        return [_condition("", "*")]  # an empty alternative means any version
    if not _GROUP.fullmatch(group):
        raise _bad(whole)
    return [_condition(m["op"] or "", m["ver"]) for m in _TERM.finditer(group)]


def _bad(constraint: str) -> InvalidConstraintError:
    return InvalidConstraintError(
        f"version {constraint!r} is not a semver version or constraint: use an exact version "
        "(1.2.3) or a range such as '>=1.2.0 <2.0.0', '^1.2', '~1.2.3', '1.2.x' or '*'")


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: alternatives (``||``) of conditions that must all hold."""

    text: str
    alternatives: tuple[tuple[_Condition, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if not isinstance(text, str) or len(text) > 1024:
            raise _bad(str(text)[:100])
        alternatives = tuple(tuple(_parse_group(g, text)) for g in text.split("||"))
        return cls(text, alternatives)

    def allows(self, version: Version) -> bool:
        return any(all(c.check(version) for c in group) for group in self.alternatives)


def is_exact_version(constraint: str) -> bool:
    """True when ``constraint`` names one version (``1.2.3``, ``v1.2.3-rc.1+b``), no range."""
    return Version.parse_strict(constraint.strip()) is not None


def tag_for_version(version: str) -> str:
    """The OCI tag Helm pushes a chart version under (``+`` is not allowed in tags)."""
    return version.strip().replace("+", "_")


def version_of_tag(tag: str) -> Version | None:
    """The semver version a tag holds, or None for tags such as ``sha256-….sig``."""
    return Version.parse_strict(tag.replace("_", "+"))


def select_version(tags: Iterable[str], constraint: str) -> str:
    """The tag holding the highest version that satisfies ``constraint``.

    Raises InvalidConstraintError for a malformed constraint and VersionNotFoundError
    when no tag matches. Ties (versions equal but for build metadata) go to the tag that
    sorts last, so the choice does not depend on the registry's listing order.
    """
    parsed = Constraint.parse(constraint.strip() or "*")
    best: tuple[Version, str] | None = None
    seen = 0
    for tag in tags:
        version = version_of_tag(tag)
        if version is None:
            continue
        seen += 1
        if not parsed.allows(version):
            continue
        if best is None:
            best = (version, tag)
            continue
        order = version.compare(best[0])
        if order > 0 or (order == 0 and tag > best[1]):
            best = (version, tag)
    if best is None:
        raise VersionNotFoundError(
            f"no tag matches version {constraint!r} ({seen} semver tags found): push a "
            "matching chart version or change the version constraint")
    return best[1]

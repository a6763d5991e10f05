"""Chart version selection as Helm and Flux do it, over a registry's tags.

Constraints are parsed by :mod:`chartguard.api.constraints`, the same parser the spec validator
uses, so a ``spec.version`` that passed validation is read the same way here; its ``ValueError``
becomes :class:`InvalidConstraintError`. This module adds what only a registry needs: tags are
strict semver 2.0 (a leading ``v`` allowed, as Flux allows it), and Helm stores ``+`` as ``_`` in
tags because OCI tags cannot hold ``+``.
"""

from __future__ import annotations

from collections.abc import Iterable

from chartguard.api.constraints import (
    Constraint,
    ConstraintSyntaxError,
    Version,
    check_version_constraint,
    shorten,
)
from chartguard.oci.errors import InvalidConstraintError, VersionNotFoundError

__all__ = [
    "Constraint",
    "Version",
    "is_exact_version",
    "parse_constraint",
    "select_version",
    "tag_for_version",
    "version_of_tag",
]


def parse_constraint(constraint: str) -> Constraint:
    """``constraint`` parsed; InvalidConstraintError (saying what to fix) when it is malformed."""
    try:
        return check_version_constraint(constraint)
    except ConstraintSyntaxError as err:
        raise InvalidConstraintError(
            f"version {shorten(err.text)} is not a semver version or constraint: {err.problem}; "
            "use an exact version (1.2.3) or a range such as '>=1.2.0 <2.0.0', '^1.2', "
            "'~1.2.3', '1.2.x' or '*'") from None


def is_exact_version(constraint: str) -> bool:
    """True when ``constraint`` names one version (``1.2.3``, ``v1.2.3-rc.1+b``), no range."""
    return Version.parse_strict(constraint.strip()) is not None


def tag_for_version(version: str) -> str:
    """The OCI tag Helm pushes a chart version under (``+`` is not allowed in tags)."""
    return version.strip().replace("+", "_")


def version_of_tag(tag: str) -> Version | None:
    """The semver version a tag holds, or None for tags such as ``sha256-….sig``."""
    return Version.parse_strict(tag.replace("_", "+"))


def select_version(tags: Iterable[str], constraint: str | Constraint) -> str:
    """The tag holding the highest version that satisfies ``constraint``.

    ``""`` means any version (``*``), as in Helm and Flux; a whitespace-only constraint is
    malformed, as it is for them. Raises InvalidConstraintError for a malformed constraint and
    VersionNotFoundError when no tag matches. Ties (versions equal but for build metadata) go to
    the tag that sorts last, so the choice does not depend on the registry's listing order.
    A constraint already parsed (``parse_constraint``) is used as it is.
    """
    parsed = (constraint if isinstance(constraint, Constraint)
              else parse_constraint(constraint or "*"))
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
            f"no tag matches version {parsed.text!r} ({seen} semver tags found): push a "
            "matching chart version or change the version constraint")
    return best[1]

"""Syntax of Helm/Flux chart version constraints (Masterminds semver v3), checked before any fetch.

Flux hands ``spec.version`` to ``semver.NewConstraint``; a typo there only shows up as a failed
reconcile. ``check_version_constraint`` rejects the same inputs up front and says which part is
wrong. Choosing a version that satisfies the constraint is ``chartguard.oci``'s job.

Grammar (as Masterminds parses it): alternatives separated by ``||``; each alternative is a list of
comparisons separated by commas or spaces, or a hyphen range ``1.2 - 1.4.5``; a comparison is an
optional operator (``= != > < >= => <= =< ~ ~> ^``) and a version whose minor and patch may be
wildcards (``x``, ``X``, ``*``) with optional ``-prerelease`` and ``+build``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"(?:[0-9]+|[xX*])"
_IDENTS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = rf"v?{_NUM}(?:\.{_NUM})?(?:\.{_NUM})?(?:-{_IDENTS})?(?:\+{_IDENTS})?"
_OPS = r"(?:!=|>=|=>|<=|=<|~>|=|>|<|~|\^)"
_COMPARISON = re.compile(rf"\s*({_OPS})?\s*({_VERSION})\s*,?")
_HYPHEN = re.compile(rf"^\s*({_VERSION})\s+-\s+({_VERSION})\s*$")
_NUMERIC_PART = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Comparison:
    """One ``op version`` term; ``op`` is ``""`` for a bare version (meaning ``=``)."""

    op: str
    version: str


#: alternatives (``||``) of conjunctions of comparisons
Constraint = tuple[tuple[Comparison, ...], ...]


def check_version_constraint(text: str) -> Constraint:
    """Parse ``text``; raise ``ValueError`` saying what to fix when it is not a constraint."""
    if not text.strip():
        raise ValueError("empty version constraint: use '*' for the latest version")
    alternatives: list[tuple[Comparison, ...]] = []
    for part in text.split("||"):
        if not part.strip():
            raise ValueError(f"invalid version constraint {text!r}: empty alternative around '||'")
        hyphen = _HYPHEN.match(part)
        if hyphen:
            _check_numbers(hyphen.group(1), text)
            _check_numbers(hyphen.group(2), text)
            alternatives.append(
                (Comparison(">=", hyphen.group(1)), Comparison("<=", hyphen.group(2)))
            )
            continue
        alternatives.append(_conjunction(part, text))
    return tuple(alternatives)


def _conjunction(part: str, whole: str) -> tuple[Comparison, ...]:
    terms: list[Comparison] = []
    pos = 0
    stripped_end = len(part.rstrip())
    while pos < stripped_end:
        match = _COMPARISON.match(part, pos)
        # a version must end at a separator, so "1.2.3foo" is not read as "1.2.3" + junk
        if match is None or match.end() == pos or not _ends_cleanly(part, match):
            snippet = part[pos:].strip()
            raise ValueError(
                f"invalid version constraint {whole!r}: cannot read {snippet!r}; "
                "use e.g. '1.2.3', '>=1.0.0 <2.0.0', '~1.2', '^2', '1.x' or '*'"
            )
        _check_numbers(match.group(2), whole)
        terms.append(Comparison(match.group(1) or "", match.group(2)))
        pos = match.end()
    return tuple(terms)


def _ends_cleanly(part: str, match: re.Match[str]) -> bool:
    end = match.end()
    return end >= len(part) or part[end - 1] in " ," or part[end] in " ,"


def _check_numbers(version: str, whole: str) -> None:
    core = version.lstrip("v").split("-", 1)[0].split("+", 1)[0]
    for number in core.split("."):
        # semver forbids leading zeros in numeric parts; Masterminds rejects them too
        if _NUMERIC_PART.fullmatch(number) and len(number) > 1 and number.startswith("0"):
            raise ValueError(
                f"invalid version constraint {whole!r}: {version!r} has a leading zero"
            )

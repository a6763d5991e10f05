"""The keyless identity matcher: one (issuer, subject) pair of Go regular expressions.

Flux's ``matchOIDCIdentity`` entries and cosign's identity options are both this: the issuer
expression must match the certificate's OIDC issuer and the subject expression one of its
subject alternative names, each with Go's unanchored ``MatchString`` (write ``^...$`` to pin a
value). The spec validation of :mod:`chartguard.api` and the verifier of
:mod:`chartguard.verify` both build this one class, so an expression accepted in a manifest is
the expression the verifier runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chartguard.goregex import GoRegex, GoRegexError, compile_go
from chartguard.untrusted import escape

ISSUER = "issuer"
SUBJECT = "subject"


class IdentityExpressionError(ValueError):
    """One or both expressions cannot be used; ``problems`` holds (field, reason) pairs."""

    def __init__(self, problems: tuple[tuple[str, str], ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"identity {name}: {reason}" for name, reason in problems))


def _invalid(expression: str, exc: GoRegexError) -> str:
    return (f"invalid regular expression '{escape(expression)}': {escape(str(exc))} "
            "(Go RE2 syntax: no look-around, no back-references)")


def _compile(name: str, expression: str, problems: list[tuple[str, str]]) -> GoRegex | None:
    if not expression:
        problems.append((name, "must not be empty: use '.*' to accept any value, or better, "
                               "pin it"))
        return None
    try:
        return compile_go(expression)
    except GoRegexError as exc:
        problems.append((name, _invalid(expression, exc)))
        return None


@dataclass(frozen=True)
class IdentityMatcher:
    """An accepted (issuer, subject) pair of Go regular expressions; both must match."""

    issuer: str
    subject: str
    _issuer_re: GoRegex = field(init=False, repr=False, compare=False)
    _subject_re: GoRegex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        issuer_re = _compile(ISSUER, self.issuer, problems)
        subject_re = _compile(SUBJECT, self.subject, problems)
        if issuer_re is None or subject_re is None:
            raise IdentityExpressionError(tuple(problems))
        object.__setattr__(self, "_issuer_re", issuer_re)
        object.__setattr__(self, "_subject_re", subject_re)

    def issuer_matches(self, issuer: str) -> bool:
        return self._issuer_re.search(issuer)

    def matching_subject(self, issuer: str, subjects: Iterable[str]) -> str | None:
        """The first subject matching along with ``issuer``, or None."""
        if not self.issuer_matches(issuer):
            return None
        return next((s for s in subjects if self._subject_re.search(s)), None)

    def matches(self, issuer: str, subject: str) -> bool:
        """True when both expressions match (one subject)."""
        return self.matching_subject(issuer, (subject,)) is not None


def identity_set(matchers: Iterable[IdentityMatcher]) -> list[list[str]]:
    """The matchers as policy: any one must match, so order and repeats do not count.

    The one canonical form of an identity list, for every digest or fingerprint of a policy.
    """
    return [list(pair) for pair in sorted({(m.issuer, m.subject) for m in matchers})]

"""Go regular expressions (RE2 syntax, linear-time matching), as cosign and Flux compile them.

cosign and Flux hand identity expressions to Go's ``regexp``: RE2 syntax, no look-around, no
back-references, and matching that never backtracks. :func:`compile_go` compiles with the
``google-re2`` binding, so an expression Go accepts behaves the same here and no expression
can make matching slow; :meth:`GoRegex.search` is Go's ``MatchString`` (an unanchored search).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2


class GoRegexError(ValueError):
    """An expression Go's ``regexp`` would refuse; the message is RE2's reason, which may quote
    part of the expression (callers escape it before it reaches a message)."""


def _options() -> Any:
    options = re2.Options()
    # RE2 would log every parse error to stderr through absl; the error is raised instead.
    options.log_errors = False
    return options


_OPTIONS = _options()


def _go_refuses(expression: str) -> str | None:
    """What RE2 accepts and Go's ``regexp/syntax`` refuses: ``\\C`` (any byte)."""
    escaped = False
    for char in expression:
        if escaped and char == "C":
            return "invalid escape sequence: \\C"
        escaped = not escaped and char == "\\"
    return None


@dataclass(frozen=True)
class GoRegex:
    """A compiled Go regular expression; ``pattern`` is the text it was compiled from."""

    pattern: str
    _compiled: Any = field(repr=False, compare=False)

    def search(self, text: str) -> bool:
        """Go's ``MatchString``: true when the expression matches anywhere in ``text``."""
        try:
            return self._compiled.search(text) is not None
        except UnicodeEncodeError:  # a lone surrogate is no identity: never matched
            return False


def compile_go(expression: str) -> GoRegex:
    """Compile ``expression`` with Go's syntax; :class:`GoRegexError` when Go would refuse it."""
    refused = _go_refuses(expression)
    if refused is None:
        try:
            return GoRegex(expression, re2.compile(expression, _OPTIONS))
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "refused by RE2"
            # the binding raises its reason as bytes
            refused = (reason.decode("utf-8", "replace") if isinstance(reason, bytes)
                       else str(reason))
        except UnicodeEncodeError:
            refused = "not valid UTF-8 (a lone surrogate)"
    raise GoRegexError(refused)

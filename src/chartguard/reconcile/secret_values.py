"""Values that came from Secrets, kept out of what chartguard shows.

helm quotes values in its errors: a chart's ``fail``/``required`` message, a template that
prints a value it cannot use, an API server refusing a field. Its stderr reaches conditions,
Events and logs (summarised by :mod:`chartguard.helm.errors`, which removes what *looks* like a
credential, not what a Secret held), so the release reconcile takes out every value a
``valuesFrom`` Secret gave, in the forms helm or our escaping write it: as is, Go-quoted
(``%q``), escaped. A message cut short in the middle of a value loses that value's start too.

Values shorter than :data:`MIN_LENGTH` stay: taking out "on", "80" or "app" would blank out
the words around them, and such a value is no credential.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from chartguard.untrusted import escape

REDACTED = "[redacted]"
MIN_LENGTH = 4
_CUT = "…"  # what escape() appends to a text it shortened


def sensitive_strings(value: Any) -> frozenset[str]:
    """The text of every scalar in ``value`` (values a Secret gave), and of each line of a
    multi-line one: what helm could quote of it."""
    out: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and not isinstance(item, bool):
            text = str(item)
            for piece in (text, *text.splitlines()):
                if len(piece.strip()) >= MIN_LENGTH:
                    out.add(piece.strip())
    return frozenset(out)


def redact(text: str, sensitive: Collection[str]) -> str:
    """``text`` with every form of each of ``sensitive`` replaced by ``[redacted]``."""
    if not sensitive:
        return text
    forms: set[str] = set()
    for value in sensitive:
        forms.add(value)
        forms.add(escape(value, len(value)))
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])  # Go's %q, near enough
        forms.add(json.dumps(value)[1:-1])
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= MIN_LENGTH:
            text = text.replace(form, REDACTED)
    if text.endswith(_CUT):
        text = _redact_cut(text[:-len(_CUT)], forms) + _CUT
    return text


def _redact_cut(text: str, forms: Collection[str]) -> str:
    """``text`` ended in the middle of a value: its start goes too."""
    longest = 0
    for form in forms:
        for size in range(min(len(form) - 1, len(text)), MIN_LENGTH - 1, -1):
            if size <= longest:
                break
            if text.endswith(form[:size]):
                longest = size
                break
    return text[:len(text) - longest] + REDACTED if longest else text

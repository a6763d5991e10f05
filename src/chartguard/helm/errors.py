"""What a failed helm run means, and helm's own words made safe to show.

::

    HelmError                      helm failed (or could not start); ``storage_changed`` says
     |                             whether helm's release storage got a new or changed revision
     |                             (only those failures count toward remediation, as in
     |                             helm-controller)
     +-- ChartDigestMismatchError  the chart file is not the bytes that were verified: helm
                                   was never started

helm's stderr is outside text: it quotes templates, values and URLs. :func:`summarize` keeps
helm's ``Error:`` lines, removes anything that looks like a credential (bearer tokens, the
user:password of a URL, ``password=``/``token=`` values, Authorization headers) and escapes
the rest into one capped line.
"""

from __future__ import annotations

import re

from chartguard.untrusted import escape

#: what a message quotes of helm's stderr at the most
MAX_MESSAGE = 600
_MAX_LINES = 6
_REDACTED = "[redacted]"

_CREDENTIALS = (
    # Authorization: Bearer/Basic <credentials>, and a bare "Bearer <token>"
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(\S+\s+)?\S+"), rf"\1{_REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{_REDACTED}"),
    (re.compile(r"(?i)\b(basic\s+)[A-Za-z0-9+/]{8,}=*"), rf"\1{_REDACTED}"),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@"), rf"\1{_REDACTED}@"),
    # password=..., token: ..., "secret":"..."
    (re.compile(r"""(?ix)\b((?:[a-z0-9_-]*(?:password|passwd|token|secret|api[_-]?key))
                    ["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&"'}]+)"""), rf"\1{_REDACTED}"),
)


class HelmError(Exception):
    """helm failed; ``message`` is helm's stderr summarised, escaped, never a credential."""

    def __init__(self, action: str, message: str, storage_changed: bool) -> None:
        super().__init__(f"helm {action} failed: {message}")
        self.action = action
        self.message = message
        self.storage_changed = storage_changed


class ChartDigestMismatchError(HelmError):
    """The chart file's bytes are not the digest that was verified; helm never ran."""

    def __init__(self, action: str, *, path: str, expected: str, actual: str) -> None:
        super().__init__(
            action,
            f"the chart file {escape(path)} has digest {actual}, not the verified {expected}: "
            "it changed after verification, so helm was not run",
            storage_changed=False)
        self.expected = expected
        self.actual = actual


def redact(text: str) -> str:
    """``text`` with anything credential-like replaced by ``[redacted]``."""
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


def summarize(stderr: str, *, limit: int = MAX_MESSAGE) -> str:
    """helm's error (its ``Error:`` line and the lines of the same error after it; else its
    last lines), redacted, as one escaped line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "helm printed no error message"
    start = next((i for i, line in enumerate(lines) if line.startswith("Error:")), None)
    if start is None:
        chosen = lines[-_MAX_LINES:]
    else:
        chosen = lines[start:start + _MAX_LINES]
        chosen[0] = chosen[0].removeprefix("Error:").strip()
    return escape(redact("; ".join(chosen)), limit)

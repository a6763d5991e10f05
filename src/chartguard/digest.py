"""The one content-digest rule: ``sha256:`` and 64 lower-case hex digits, nothing else.

Every digest from outside (a manifest, a layout, a signature payload, a spec) is checked with
:func:`is_digest` before it is compared, named in a tag or turned into a file name. ``fullmatch``
on purpose: ``$`` would let a trailing newline through.
"""

from __future__ import annotations

import re

DIGEST_PATTERN = r"sha256:[0-9a-f]{64}"
DIGEST = re.compile(DIGEST_PATTERN)


def is_digest(value: object) -> bool:
    """True when ``value`` is a string that is exactly one sha256 digest."""
    return isinstance(value, str) and DIGEST.fullmatch(value) is not None

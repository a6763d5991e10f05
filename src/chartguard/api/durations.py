"""Go durations (``metav1.Duration``) as Flux writes and reads them.

Flux's CRDs accept ``^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$`` (HelmRepository timeouts without ``h``);
Go's ``time.ParseDuration`` accepts more (signs, ``ns``, ``us``), so both are checked here: the
pattern first, as the API server would, then the value. ``format_duration`` prints what Go's
``Duration.String()`` prints, so ``10m`` round-trips as ``10m0s`` like ``flux create --export``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

#: The pattern of Flux's ``interval``/``timeout`` fields.
DURATION_PATTERN = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
#: HelmRepository ``spec.timeout`` does not allow hours.
SHORT_DURATION_PATTERN = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$")

_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign, as Go accepts
    "μs": 1_000,  # U+03BC greek mu, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_GO_TERM = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_MAX_NANOS = 2**63 - 1


def parse_go_duration(text: str) -> timedelta:
    """Parse like Go's ``time.ParseDuration``; raise ``ValueError`` naming what is wrong."""
    original = text
    sign = 1
    if text and text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return timedelta(0)
    if not text:
        raise ValueError(f"invalid duration {original!r}")
    total = Decimal(0)
    pos = 0
    while pos < len(text):
        match = _GO_TERM.match(text, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"invalid duration {original!r}: expected a number and a unit "
                             "(ns, us, ms, s, m, h) at position "
                             f"{pos + (len(original) - len(text))}")
        total += Decimal(match.group(1)) * _NANOS[match.group(2)]
        pos = match.end()
    if total > _MAX_NANOS:
        raise ValueError(f"invalid duration {original!r}: out of range")
    return sign * timedelta(microseconds=int(total) / 1000)


def check_flux_duration(text: str, *, allow_hours: bool = True) -> timedelta:
    """Parse a duration field the way the API server and then Flux would."""
    pattern = DURATION_PATTERN if allow_hours else SHORT_DURATION_PATTERN
    if not pattern.match(text):
        units = "ms, s, m, h" if allow_hours else "ms, s, m"
        raise ValueError(
            f"{text!r} is not a Go duration: write numbers with units ({units}), "
            "e.g. 10m, 1h30m or 90s"
        )
    return parse_go_duration(text)


def format_duration(value: timedelta) -> str:
    """What Go's ``time.Duration.String()`` prints (``10m0s``, ``1h30m0s``, ``500ms``)."""
    nanos = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim(Decimal(nanos) / size) + unit
    hours, rest = divmod(nanos, _NANOS["h"])
    minutes, rest = divmod(rest, _NANOS["m"])
    seconds = _trim(Decimal(rest) / _NANOS["s"])
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _trim(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text

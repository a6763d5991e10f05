"""bench/soak.py's growth verdict: what `make soak` fails on (its exit code is the check)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak", module)
    spec.loader.exec_module(module)
    return module


soak = _soak()


def test_a_steady_climb_past_the_allowance_is_growth() -> None:
    v = soak.verdict("RSS", [150.0, 152.0, 155.0, 159.0, 160.0, 161.0], [150.0] * 6, 8.0, "MiB")
    assert v.grew
    assert "GROWTH" in v.line()
    assert (v.first, v.last) == (150.0, 161.0)


def test_a_passing_spike_or_growth_within_the_allowance_is_not() -> None:
    # one interval far above, then back: not sustained over the last three
    spike = soak.verdict("RSS", [150.0, 150.0, 190.0, 150.0, 151.0, 150.0],
                         [150.0, 150.0, 195.0, 150.0, 151.0, 150.0], 8.0, "MiB")
    assert not spike.grew
    assert spike.peak == 195.0
    assert spike.line().endswith(": OK")
    within = soak.verdict("RSS", [150.0, 154.0, 157.0, 157.5, 158.0], [158.0] * 5, 8.0, "MiB")
    assert not within.grew


def test_one_more_thread_or_fd_held_to_the_end_is_growth() -> None:
    assert soak.verdict("fds", [27.0, 27.0, 28.0, 28.0, 28.0], [28.0] * 5, 0.0, "").grew
    # back to interval 1's count at the end: not sustained
    assert not soak.verdict("threads", [15.0, 16.0, 16.0, 16.0, 15.0], [16.0] * 5, 0.0,
                            "").grew


def test_two_intervals_compare_the_last_with_the_first() -> None:
    assert soak.verdict("fds", [27.0, 28.0], [28.0, 28.0], 0.0, "").grew
    assert not soak.verdict("fds", [27.0, 27.0], [27.0, 27.0], 0.0, "").grew
    assert not soak.verdict("fds", [27.0], [27.0], 0.0, "").grew

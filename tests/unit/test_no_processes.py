"""The unit suite's guard: starting a process fails the test that tried."""

from __future__ import annotations

import os
import subprocess

import pytest


def test_starting_a_process_in_a_unit_test_fails_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="move it to tests/integration"):
        subprocess.run(["true"], check=False)
    with pytest.raises(pytest.fail.Exception, match="started a process"):
        os.system("true")  # noqa: S605

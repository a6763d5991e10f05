"""Unit tests start no processes: a test that tries fails at once, naming what it ran.

Tests that need helm, a registry or any other program belong in tests/integration.
"""

from __future__ import annotations

import subprocess
from typing import NoReturn

import pytest


class _NoProcesses:
    def __init__(self, args: object, *_args: object, **_kwargs: object) -> None:
        pytest.fail(f"a unit test started a process ({args!r}): move it to tests/integration",
                    pytrace=False)

    def __class_getitem__(cls, _item: object) -> type[_NoProcesses]:
        return cls  # subprocess.Popen[bytes] in annotations evaluated at run time


def _refused(*args: object, **_kwargs: object) -> NoReturn:
    pytest.fail(f"a unit test started a process ({args!r}): move it to tests/integration",
                pytrace=False)


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "Popen", _NoProcesses)
    for name in ("system", "posix_spawn", "posix_spawnp", "fork"):
        monkeypatch.setattr(f"os.{name}", _refused, raising=False)

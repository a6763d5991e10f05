"""helm's work directories (a chart copy, the values file with what Secrets gave) that a killed
operator could not remove are removed by the next one as it starts."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from chartguard.helm.runner import Helm


class _NoStorage:
    def history(self, namespace: str, name: str) -> list[Any]:
        return []

    def mark_failed(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")


def test_work_directories_a_killed_operator_left_are_removed_at_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    host = socket.gethostname()
    left = {"mine": f"run-{os.getpid()}@{host}-x1", "dead": f"run-{2**22 + 3}@{host}-x2",
            "live": f"run-1@{host}-x3", "other host": f"run-{2**22 + 3}@elsewhere-x4",
            "not ours": "cache-dir"}
    for name in left.values():
        (home / "tmp" / name).mkdir(parents=True)
        (home / "tmp" / name / "values.json").write_text('{"password": "x"}')
    helm = Helm(binary="helm", home=home, storage=_NoStorage())
    assert helm.leftovers_removed == 2
    assert {p.name for p in (home / "tmp").iterdir()} == {
        left["live"], left["other host"], left["not ours"]}


def test_a_work_directory_is_named_for_its_process(tmp_path: Path) -> None:
    helm = Helm(binary="helm", home=tmp_path / "home", storage=_NoStorage())
    with helm._workdir("install") as work:
        assert work.name.startswith(f"run-{os.getpid()}@{socket.gethostname()}-")
        (work / "values.json").write_text("{}")
        # what a process started now (this pid again, as a restarted container's) removes
        assert Helm(binary="helm", home=tmp_path / "home",
                    storage=_NoStorage()).leftovers_removed == 1

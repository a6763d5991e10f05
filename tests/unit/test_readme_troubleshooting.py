"""README's troubleshooting table names every failure reason the reconcilers can write.

The reasons are read from the code (the reason argument of every ``StepFailedError``,
``WaitingError``, ``ReleaseStalledError``, ``set_condition``, ``mark`` and ``stall`` call in
``chartguard.reconcile``), so a new reason without a line saying what to do fails here.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import chartguard.reconcile
from chartguard.api import conditions

RECONCILE = Path(chartguard.reconcile.__file__).parent
README = RECONCILE.parents[2] / "README.md"
#: (function name, index of the reason among its positional arguments)
REASON_ARG = {"StepFailedError": 1, "WaitingError": 1, "ReleaseStalledError": 0,
              "set_condition": 3, "mark": 2, "stall": 0, "_stalled": 1}


def _reasons_written() -> set[str]:
    found: set[str] = set()
    for path in RECONCILE.glob("*.py"):
        module = importlib.import_module(f"chartguard.reconcile.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            index = REASON_ARG.get(name)
            args = [kw.value for kw in node.keywords if kw.arg == "reason"] or (
                node.args[index:index + 1] if index is not None else [])
            for arg in args:
                if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name):
                    value = getattr(conditions, arg.attr, None)
                elif isinstance(arg, ast.Name):
                    value = getattr(module, arg.id, None)
                else:
                    continue
                if isinstance(value, str):
                    found.add(value)
    return found


def test_every_failure_reason_has_a_line_in_the_troubleshooting_table() -> None:
    written = _reasons_written()
    failures = {r for r in written if not r.endswith("Succeeded") and r not in (
        conditions.SUCCEEDED, conditions.ARTIFACT_UP_TO_DATE)}
    assert {"VerificationError", "RetriesExceeded", "DependencyNotReady"} <= failures
    table = README.read_text().split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Za-z]+)`", table))
    assert failures - documented == set()

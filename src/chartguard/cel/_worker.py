"""The CEL sandbox process: ``python -m chartguard.cel._worker``, the only importer of the CEL
runtime (Google's CEL C++ implementation through ``cel-expr-python``).

It limits its own address space (``RLIMIT_AS``, given as its one argument, in bytes), then
answers one JSON request per line on stdin with one JSON line on stdout until stdin closes:

    {"op": "check" | "eval", "expr": str, "variables": [str] | null, "data": {...}}
    -> {"ok": true, "type": "BOOL", "value": ...} | {"ok": false, "stage": "compile" | "eval",
                                                     "message": str}

``variables`` null: the expression is parsed only (Flux's health check expressions, whose
variables are an object's top-level fields); a list: each is declared ``dyn`` and the
expression is type-checked (Flux's ``WithCompile`` + ``WithStructVariables``). The
environment is Flux's (fluxcd/pkg runtime/cel): the standard library with cross-type numeric
comparisons, optional types, and the strings, encoders and sets extensions (cel-go's
``ext.Sets``, which the C++ runtime lacks, is declared here: ``sets.contains``,
``sets.equivalent``, ``sets.intersects`` over two lists, with CEL's equality).

The runtime's iteration budget does not count the work of those Python functions, so they count
it themselves: every value they are handed (each element, nested ones included: the runtime
copied them all) and every comparison spends :data:`SETS_BUDGET` units per evaluation. Past
it the evaluation is over: the answer says so, and the process exits (the runtime would go on
calling, an error inside ``all()`` does not stop it, and each call copies its lists again);
the parent starts a fresh one for the next request (``"restart": true``).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections import OrderedDict
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import (
    ext_encoders,
    ext_optional,
    ext_strings,
)

_CACHE_SIZE = 256
#: values handed to and comparisons made by the sets.* functions in one evaluation (about
#: a quarter of a second of this process's time)
SETS_BUDGET = 50_000


class _Budget:
    left = SETS_BUDGET

    @classmethod
    def spend(cls, units: int) -> None:
        cls.left -= units
        if cls.left < 0:
            _over_budget()


def _over_budget() -> None:
    """End this evaluation: answer, then exit (the parent restarts the sandbox)."""
    sys.stdout.write(json.dumps({
        "ok": False, "stage": "eval", "restart": True,
        "message": f"the sets functions exceeded their budget of {SETS_BUDGET:,} values and "
                   "comparisons per evaluation"}) + "\n")
    sys.stdout.flush()
    os._exit(0)


def _size(value: Any) -> int:
    """How many values ``value`` holds (itself included), counted against the budget."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        if count > 4096:  # spend as it goes: a huge list stops early
            _Budget.spend(count)
            count = 0
    return count


def _equal(a: Any, b: Any) -> bool:
    """CEL's equality on plain values: numbers across types, never a bool with a number."""
    _Budget.spend(1)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return bool(a == b)


def _contains(a: list[Any], b: list[Any]) -> bool:
    return all(any(_equal(x, y) for x in a) for y in b)


def _counted(impl: Any) -> Any:
    def counted(a: list[Any], b: list[Any]) -> bool:
        _Budget.spend(_size(a) + _size(b))
        return bool(impl(a, b))
    return counted


def _sets() -> list[Any]:
    """cel-go's ext.Sets: ``sets.contains(a, b)`` (every element of b is in a),
    ``sets.equivalent(a, b)``, ``sets.intersects(a, b)``."""
    lists = [cel.Type.List(cel.Type.DYN), cel.Type.List(cel.Type.DYN)]
    impls = {
        "contains": _contains,
        "equivalent": lambda a, b: _contains(a, b) and _contains(b, a),
        "intersects": lambda a, b: any(_equal(x, y) for x in a for y in b),
    }
    return [cel.FunctionDecl(f"sets.{name}", [cel.Overload(
        f"list_sets_{name}_list", return_type=cel.Type.BOOL, parameters=lists,
        impl=_counted(impl))])
        for name, impl in impls.items()]


def _environment(variables: tuple[str, ...] | None) -> Any:
    extensions = [ext_strings.ExtStrings(), ext_encoders.ExtEncoders(),
                  ext_optional.ExtOptional()]
    declared = dict.fromkeys(variables or (), cel.Type.DYN)
    return cel.NewEnv(variables=declared, extensions=extensions, functions=_sets())


class _Compiler:
    def __init__(self) -> None:
        self._envs: dict[tuple[str, ...] | None, Any] = {}
        self._compiled: OrderedDict[tuple[str, tuple[str, ...] | None], Any] = OrderedDict()

    def compile(self, expr: str, variables: tuple[str, ...] | None) -> Any:
        key = (expr, variables)
        found = self._compiled.get(key)
        if found is not None:
            self._compiled.move_to_end(key)
            return found
        env = self._envs.get(variables)
        if env is None:
            env = self._envs[variables] = _environment(variables)
        compiled = env.compile(expr, disable_check=variables is None)
        self._compiled[key] = compiled
        while len(self._compiled) > _CACHE_SIZE:
            self._compiled.popitem(last=False)
        return compiled


def _plain(value: Any) -> Any:
    """A result as JSON can carry it (only a bool is ever used; the rest is for messages)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _answer(compiler: _Compiler, request: dict[str, Any]) -> dict[str, Any]:
    raw_vars = request.get("variables")
    variables = tuple(raw_vars) if isinstance(raw_vars, list) else None
    try:
        compiled = compiler.compile(str(request["expr"]), variables)
    except Exception as exc:  # the runtime's status error: a compile error
        return {"ok": False, "stage": "compile", "message": str(exc)}
    if request.get("op") == "check":
        return {"ok": True, "type": compiled.return_type().name(), "value": None}
    _Budget.left = SETS_BUDGET
    try:
        result = compiled.eval(data=request.get("data") or {})
        kind = result.type().name()
        value = result.value()
    except Exception as exc:  # budget exceeded and other runtime statuses
        return {"ok": False, "stage": "eval", "message": str(exc)}
    if kind == "ERROR":
        return {"ok": False, "stage": "eval", "message": str(value)}
    return {"ok": True, "type": kind, "value": _plain(value)}


def main() -> None:
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    compiler = _Compiler()
    for line in sys.stdin:
        try:
            answer = _answer(compiler, json.loads(line))
        except MemoryError:
            answer = {"ok": False, "stage": "eval", "message": "out of memory"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

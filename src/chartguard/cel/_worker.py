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
comparisons, optional types, and the strings and encoders extensions.
"""

from __future__ import annotations

import json
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


def _environment(variables: tuple[str, ...] | None) -> Any:
    extensions = [ext_strings.ExtStrings(), ext_encoders.ExtEncoders(),
                  ext_optional.ExtOptional()]
    declared = dict.fromkeys(variables or (), cel.Type.DYN)
    return cel.NewEnv(variables=declared, extensions=extensions)


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

"""CEL expressions from HelmRelease specs, compiled and evaluated as Flux's fluxcd/pkg
``runtime/cel`` does it, with Google's CEL runtime (``cel-expr-python``, the CEL C++
implementation) in a sandbox process.

Expressions are untrusted (anyone who writes a HelmRelease writes them) and so are the objects
they read. The runtime bounds some of their cost itself (10,000 comprehension iterations per
evaluation, a parser depth of 32), not the memory: ``[...].map(x, s + 'a')`` over a large string
builds gigabytes. So:

- an expression is at most :data:`MAX_EXPRESSION` characters, its input at most
  :data:`MAX_INPUT` bytes of JSON;
- compiling and evaluating happen in one long-lived process of our own
  (:mod:`chartguard.cel._worker`) whose address space is capped at :data:`MEMORY_LIMIT`, each
  request with a deadline (:data:`DEADLINE`); past either, the process is stopped by its PID
  and the next request starts a fresh one, and the expression fails with a message saying so.

Errors (:class:`CompileError`: the spec must change; :class:`EvaluationError`: this
evaluation failed) carry messages that quote the expression and the runtime's words, already
escaped (:func:`chartguard.untrusted.escape`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from chartguard.untrusted import escape

#: longest expression accepted (Flux sets no limit; real ones are a line or two)
MAX_EXPRESSION = 4096
#: largest input (the variables as JSON): two objects of etcd's 1.5 MiB limit
MAX_INPUT = 4 * 1024 * 1024
#: address space of the sandbox process (about 45 MiB idle): a quarter of the deploy chart's
#: memory limit, which helm and the operator share with it
MEMORY_LIMIT = 256 * 1024 * 1024
#: wall-clock time one request may take in the sandbox
DEADLINE = 5.0
#: how long a request waits for the sandbox another release is using (two deadlines)
BUSY_WAIT = 2 * DEADLINE
#: how much of an expression or runtime message a condition quotes
_QUOTE = 300
_STATUS_CODE = re.compile("[A-Z_]+")


class CelError(Exception):
    """A CEL expression could not be used; the message is safe to show."""


class CompileError(CelError):
    """The expression is not valid CEL (or not of the type required): the spec must change."""


class EvaluationError(CelError):
    """Evaluating the expression failed (a missing field, a result that is not a bool, a
    budget, memory or time limit)."""


class LimitError(EvaluationError):
    """The sandbox ended or refused the request at one of its limits (deadline, memory, the
    ``sets.*`` budget, busy with other expressions): the same expression is likely to reach it
    again, so a caller evaluating it over many inputs stops."""


def quote(expression: str) -> str:
    """The expression as messages quote it: escaped, shortened."""
    return escape(expression, _QUOTE)


def check(expression: str, *, variables: tuple[str, ...] | None = None,
          boolean: bool = False) -> None:
    """Compile ``expression``; :class:`CompileError` when it is not valid.

    ``variables`` None: parse only (Flux's health check expressions, whose variables are the
    top-level fields of the object evaluated); else each is declared ``dyn`` and the expression
    type-checked, and with ``boolean`` it must be of type bool (Flux's ``WithOutputType``)."""
    answer = _SANDBOX.request({"op": "check", "expr": _bounded(expression),
                               "variables": list(variables) if variables is not None else None},
                              expression)
    if not answer.get("ok"):
        raise CompileError(f"failed to parse the CEL expression '{quote(expression)}': "
                           f"{_runtime_words(answer.get('message'))}")
    if boolean and answer.get("type") != "BOOL":
        raise CompileError(f"CEL expression output type mismatch: expected bool, got "
                           f"{escape(str(answer.get('type')).lower(), 40)} in "
                           f"'{quote(expression)}'")


def evaluate_boolean(expression: str, data: Mapping[str, Any], *,
                     variables: tuple[str, ...] | None = None) -> bool:
    """Evaluate ``expression`` with ``data`` as its variables (compiled as :func:`check`
    does); its result must be a bool. :class:`CompileError` or :class:`EvaluationError`."""
    try:
        payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"the input of '{quote(expression)}' is not JSON: "
                              f"{escape(exc)}") from None
    if len(payload) > MAX_INPUT:
        raise EvaluationError(f"the input of the CEL expression '{quote(expression)}' is "
                              f"{len(payload)} bytes, more than {MAX_INPUT}")
    answer = _SANDBOX.request(
        {"op": "eval", "expr": _bounded(expression),
         "variables": list(variables) if variables is not None else None}, expression,
        data=payload)
    if not answer.get("ok"):
        compiling = answer.get("stage") == "compile"
        words = _runtime_words(answer.get("message"),
                               expression=None if compiling else expression)
        if compiling:
            raise CompileError(f"failed to parse the CEL expression '{quote(expression)}': "
                               f"{words}")
        error = LimitError if answer.get("restart") else EvaluationError
        raise error(f"failed to evaluate the CEL expression '{quote(expression)}': {words}")
    value = answer.get("value")
    if not isinstance(value, bool):
        raise EvaluationError(f"failed to evaluate CEL expression as boolean: "
                              f"'{quote(expression)}' gave a "
                              f"{escape(str(answer.get('type')).lower(), 40)}")
    return value


def _bounded(expression: str) -> str:
    if len(expression) > MAX_EXPRESSION:
        raise CompileError(f"the CEL expression '{quote(expression)}' is {len(expression)} "
                           f"characters long, more than {MAX_EXPRESSION}")
    return expression


#: a quoted value in the runtime's words ("Key not found in map : \"hunter2\"")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def _runtime_words(message: object, *, expression: str | None = None) -> str:
    """The runtime's error without its status code (``INVALID_ARGUMENT: ...
    [INVALID_ARGUMENT]``), escaped: the caret diagram's newlines become ``\\x0a``."""
    text = str(message or "unknown error").strip()
    code, sep, rest = text.partition(": ")
    if sep and _STATUS_CODE.fullmatch(code):
        text = rest.removesuffix(f"[{code}]").rstrip()
    if text == "std::bad_alloc":
        text = f"out of memory (the sandbox allows {MEMORY_LIMIT // (1024 * 1024)} MiB)"
    if expression is not None:
        # an evaluation error may quote data the expression read (a map key looked up, a
        # string it compared): that can be another namespace's object, and the message goes
        # to this release's status and Events, so a quoted value the expression itself does
        # not spell out (a field name it wrote stays, as help) is left out
        text = _QUOTED.sub(
            lambda m: m.group(0) if m.group(0)[1:-1] in expression else '"..."', text)
    return escape(text, _QUOTE)


class _Sandbox:
    """One worker process, one request at a time; restarted after it dies or is stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self.started = 0  # processes started, for tests and metrics

    def request(self, request: dict[str, Any], expression: str, *,
                data: str = "") -> dict[str, Any]:
        # the data is spliced in as already-encoded JSON, so it is serialised once
        line = json.dumps(request, separators=(",", ":"))
        if data:
            line = line[:-1] + ',"data":' + data + "}"
        # one process serves every release: a release whose expressions keep it busy (each
        # just under the deadline) must not hold the others' reconciles for long
        if not self._lock.acquire(timeout=BUSY_WAIT):
            raise LimitError(f"the CEL sandbox was busy with other expressions for "
                                  f"{BUSY_WAIT:g}s; '{quote(expression)}' is evaluated again "
                                  "at the next reconcile")
        try:
            proc = self._running()
            assert proc.stdin is not None
            assert proc.stdout is not None
            try:
                proc.stdin.write(line.encode("utf-8", "surrogatepass") + b"\n")
                proc.stdin.flush()
                answer = _read_line(proc.stdout, DEADLINE)
            except (OSError, ValueError):
                answer = None
            if answer is None:
                died = proc.poll() is not None
                self._stop()
                limit = ("used more memory than the sandbox allows "
                         f"({MEMORY_LIMIT // (1024 * 1024)} MiB)" if died else
                         f"did not finish within {DEADLINE:g}s")
                raise LimitError(f"the CEL expression '{quote(expression)}' {limit}")
            try:
                parsed = json.loads(answer)
            except ValueError:
                raise EvaluationError(f"the CEL sandbox gave no answer for "
                                      f"'{quote(expression)}'") from None
            if not isinstance(parsed, dict):
                return {"ok": False, "stage": "eval"}
            if parsed.get("restart"):  # the worker ended an evaluation by exiting
                self._stop()
            return parsed
        finally:
            self._lock.release()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "chartguard.cel._worker", str(MEMORY_LIMIT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                close_fds=True)
        except OSError as exc:
            raise EvaluationError(f"the CEL sandbox process cannot be started: "
                                  f"{escape(exc.strerror or exc)}") from None
        self.started += 1
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        with self._lock:
            self._stop()


def _read_line(stream: IO[bytes], deadline: float) -> bytes | None:
    """One line from ``stream`` within ``deadline`` seconds; None on timeout or EOF."""
    fd = stream.fileno()
    buffer = bytearray()
    end = time.monotonic() + deadline
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buffer += chunk
        if buffer.endswith(b"\n"):
            return bytes(buffer)


_SANDBOX = _Sandbox()
atexit.register(_SANDBOX.close)


def sandbox_processes_started() -> int:
    """How many sandbox processes this process started (one unless some were stopped)."""
    return _SANDBOX.started

"""Fault modes of the emulator, switched at run time by a test: what a real API server does
when etcd compacts, a load balancer cuts connections, priority and fairness sheds load, or
another writer wins a race.

Only the emulator has them: they are driven through ``/chaos/v1/...``, a path no real API
server serves (it answers 404 there), so a test that switched a fault on the real control
plane would fail at once instead of silently testing nothing. From a test, use
:class:`FaultControl` (``KubeAPI.faults``); every switch answers what it changed, and
:meth:`FaultControl.state` tells how many faults were delivered, so a test can check that
the fault it set up really happened.

The faults, each worded as kube-apiserver words it (checked against the real one):

- ``drop``: every open watch is cut now (its TCP connection aborted mid-stream, as when an
  API server or the load balancer before it goes away): clients reconnect and resume from the
  last resourceVersion they saw;
- ``stall``: the open watches stay connected but deliver nothing more (a half-dead
  connection); a later ``drop`` ends them, and what they missed is still in the history;
- ``compact``: the change history is forgotten (etcd compaction): a watch resuming from any
  older resourceVersion gets the real server's answer, HTTP 200 with one ``ERROR`` event
  carrying a ``Status`` 410 ``Expired`` "too old resource version: N (M)" (the watch cache
  answers in the stream, not with an HTTP 410), and the client must list again;
- ``expire``: the next N watches that resume from a resourceVersion get that same 410;
- ``conflict``: the next N writes (PUT or PATCH) of a resource's ``status`` (or of the object
  itself) get 409 ``Conflict`` "Operation cannot be fulfilled on ...: the object has been
  modified; please apply your changes to the latest version and try again", as when another
  writer got there first;
- ``errors``: the next N requests matching a method, a path pattern and a client (its
  ``User-Agent``: kubectl, helm, kopf and chartguard each send their own) get 500, 502, 503,
  504 or 429, with ``Retry-After`` when asked (kube-apiserver's priority and fairness answers
  429 "Too many requests, please try again later." with ``Retry-After`` and
  ``details.retryAfterSeconds``).

Stopping and starting the server again with its objects is :meth:`KubeAPI.stop_server` and
:meth:`KubeAPI.start_server` (the state file, :mod:`.storage`).
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from chartguard_testing.apiserver.resources import ApiError, Obj

PREFIX = "/chaos/v1/"

_REASONS = {500: ("InternalError", "Internal error occurred: injected fault"),
            502: ("InternalError", "Bad Gateway"),
            503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
            504: ("Timeout", "the server was unable to return a response in the time "
                             "allotted, but may still be processing the request"),
            429: ("TooManyRequests", "Too many requests, please try again later.")}


@dataclass
class Burst:
    """The next ``count`` requests matching ``method`` (any when "") and ``path`` and
    ``agent`` (regular expressions searched in the path and query, and in the User-Agent)
    are answered ``code``."""

    code: int
    count: int
    method: str = ""
    path: str = ""
    retry_after: int | None = None
    agent: str = ""

    def matches(self, method: str, target: str, agent: str) -> bool:
        return ((not self.method or self.method.upper() == method)
                and (not self.path or re.search(self.path, target) is not None)
                and (not self.agent or re.search(self.agent, agent) is not None))


@dataclass
class Faults:
    """What is switched on, and what was delivered (by fault name)."""

    expire_next: int = 0
    conflicts: dict[str, int] = field(default_factory=dict)  # "plural[/status]" -> count
    bursts: list[Burst] = field(default_factory=list)
    delivered: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.delivered[name] = self.delivered.get(name, 0) + 1

    def take_expire(self, too_old: bool) -> bool:
        """Whether a resuming watch gets 410 Expired: its version is ``too_old`` for the
        history, or an ``expire`` fault is pending. Both are counted as "expired"."""
        if not too_old and self.expire_next <= 0:
            return False
        if not too_old:
            self.expire_next -= 1
        self.count("expired")
        return True

    def take_burst(self, method: str, target: str, agent: str) -> Burst | None:
        for burst in self.bursts:
            if burst.count > 0 and burst.matches(method, target, agent):
                burst.count -= 1
                self.count(f"error {burst.code}")
                return burst
        return None

    def take_conflict(self, plural: str, subresource: str | None) -> bool:
        key = f"{plural}/{subresource}" if subresource else plural
        left = self.conflicts.get(key, 0)
        if left <= 0:
            return False
        self.conflicts[key] = left - 1
        self.count(f"conflict {key}")
        return True

    def state(self) -> Obj:
        return {"delivered": dict(self.delivered), "expireNext": self.expire_next,
                "conflicts": dict(self.conflicts),
                "errors": [{"code": b.code, "left": b.count, "method": b.method,
                            "path": b.path} for b in self.bursts if b.count > 0]}


def burst_response(burst: Burst) -> web.Response:
    reason, message = _REASONS.get(burst.code, ("InternalError", "injected fault"))
    details: Obj = {}
    headers: dict[str, str] = {}
    if burst.retry_after is not None:
        details["retryAfterSeconds"] = burst.retry_after
        headers["Retry-After"] = str(burst.retry_after)
    body = ApiError(burst.code, reason, message, details=details).status()
    return web.Response(body=json.dumps(body), status=burst.code, headers=headers,
                        content_type="application/json")


def conflict_error(describe: str, group: str, plural: str, name: str) -> ApiError:
    """The 409 a write with a stale view gets (the real server's wording and details)."""
    details: Obj = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {describe} "{name}": '
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again", details=details)


class FaultControl:
    """A test's handle on a running emulator's faults (``KubeAPI.faults``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _post(self, what: str, body: Obj | None = None) -> Obj:
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.url}{PREFIX}{what}", method="POST", data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer: Obj = json.loads(response.read())
        return answer

    def drop_watches(self) -> int:
        """Cut every open watch now; how many were open."""
        return int(self._post("watches/drop")["watches"])

    def stall_watches(self) -> int:
        """Open watches deliver nothing more until dropped; how many were open."""
        return int(self._post("watches/stall")["watches"])

    def compact(self) -> int:
        """Forget the change history: resuming from any older resourceVersion gets 410
        Expired. Returns the resourceVersion from which watches can still resume."""
        return int(self._post("watches/compact")["resourceVersion"])

    def expire_next(self, count: int = 1) -> None:
        """The next ``count`` watches that resume from a resourceVersion get 410 Expired."""
        self._post("watches/expire", {"count": count})

    def conflict(self, plural: str, count: int, *, subresource: str | None = "status") -> None:
        """The next ``count`` PUT/PATCH of ``plural`` (its ``subresource``, or the object
        itself when None) get 409 Conflict."""
        self._post("conflicts", {"resource": plural, "subresource": subresource,
                                 "count": count})

    def errors(self, code: int, count: int, *, method: str = "", path: str = "",
               agent: str = "", retry_after: int | None = None) -> None:
        """The next ``count`` requests matching ``method`` ("" any), ``path`` and ``agent``
        (regular expressions searched in path?query and in the User-Agent) are answered
        ``code``."""
        self._post("errors", {"code": code, "count": count, "method": method, "path": path,
                              "agent": agent, "retryAfter": retry_after})

    def clear(self) -> None:
        """Switch every fault off (what was delivered is still counted)."""
        self._post("clear")

    def state(self) -> Obj:
        """``{"delivered": {fault: count}, ...}``: what the emulator did so far."""
        with urllib.request.urlopen(f"{self.url}{PREFIX}state", timeout=10) as response:  # noqa: S310
            answer: Obj = json.loads(response.read())
        return answer

    def delivered(self, fault: str) -> int:
        return int(self.state()["delivered"].get(fault, 0))


def parse_control(what: str, body: Obj) -> tuple[str, Any]:
    """The control request ``what`` (the path after ``/chaos/v1/``) and its argument;
    a malformed one is a 400."""
    try:
        if what == "watches/expire":
            return what, int(body.get("count", 1))
        if what == "conflicts":
            sub = body.get("subresource")
            return what, (str(body["resource"]), str(sub) if sub else None,
                          int(body["count"]))
        if what == "errors":
            code = int(body["code"])
            if code not in _REASONS:
                raise ValueError(f"code {code} is none of {sorted(_REASONS)}")
            retry = body.get("retryAfter")
            burst = Burst(code, int(body["count"]), str(body.get("method") or ""),
                          str(body.get("path") or ""),
                          int(retry) if retry is not None else None,
                          str(body.get("agent") or ""))
            for pattern in (burst.path, burst.agent):
                re.compile(pattern)
            return what, burst
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise ApiError(400, "BadRequest", f"chaos control {what}: {exc}") from exc
    if what in ("watches/drop", "watches/stall", "watches/compact", "clear", "state"):
        return what, None
    raise ApiError(404, "NotFound", f"no chaos control {what!r}")

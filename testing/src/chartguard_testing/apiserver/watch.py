"""Watches: JSON lines of ``{"type", "object"}`` on one chunked response.

Semantics kept from kube-apiserver, because clients rely on them:
- no resourceVersion (or "0"): ADDED for every current object first, then changes;
- ``resourceVersion=N``: every change after N from the log; ``N`` older than the log holds
  gives one ERROR event carrying a 410 ``Expired`` Status (clients then re-list);
- ``sendInitialEvents=true``: the current objects, then a BOOKMARK annotated
  ``k8s.io/initial-events-end: "true"`` (client-go's watch-list waits for it);
- ``timeoutSeconds`` ends the response; so does the server shutting down;
- faults (:mod:`.faults`): a dropped watch has its connection aborted mid-stream; an expired
  one gets the 410 ERROR event however recent its resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from chartguard_testing.apiserver.resources import ApiError, Obj, ResourceType
from chartguard_testing.apiserver.storage import DROP, OVERFLOW, STOP, Event, Store


@dataclass
class WatchRequest:
    rt: ResourceType
    version: str
    namespace: str | None
    match: Callable[[Obj], bool]
    resource_version: str
    send_initial_events: bool
    timeout: float
    # turns a stored object into what the client asked for (version, Table)
    render: Callable[[Obj], Obj]
    # given whether the resumed version is too old for the history: True when this watch
    # gets 410 Expired (a fault may expire a recent one too); asked once per resuming watch
    expire: Callable[[bool], bool] = lambda too_old: too_old


def stop_all(store: Store) -> None:
    """Tell every open watch to end (server shutdown)."""
    store.stop_watchers()


async def serve_watch(request: web.Request, store: Store, w: WatchRequest) -> web.StreamResponse:
    queue = store.subscribe()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        backlog: list[tuple[str, Obj]] = []
        rv = w.resource_version
        if w.send_initial_events or rv in ("", "0"):
            backlog = [("ADDED", o) for o in store.list(w.rt, w.namespace, w.match)]
            if w.send_initial_events:
                backlog.append(("BOOKMARK", _bookmark(w, store.rv)))
        elif not rv.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv!r}")
        elif w.expire(int(rv) < store.oldest_rv()):
            backlog = [("ERROR", _expired(
                f"too old resource version: {rv} ({max(store.oldest_rv(), int(rv) + 1)})"))]
        else:
            backlog = [(e.type, e.obj) for e in store.events
                       if e.rv > int(rv) and _wanted(w, e)]
        response.enable_chunked_encoding()
        await response.prepare(request)
        for type_, obj in backlog:
            await _send(response, type_, obj if type_ in ("BOOKMARK", "ERROR")
                        else w.render(obj))
        if backlog and backlog[-1][0] == "ERROR":
            return response
        deadline = time.monotonic() + w.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=left)
            except TimeoutError:
                break
            if event is STOP:
                break
            if event is DROP:
                if request.transport is not None:
                    request.transport.abort()  # the client sees its stream cut, not ended
                return response
            if event is OVERFLOW:
                await _send(response, "ERROR", _expired(f"the client fell more than "
                                                        f"{store.history} changes behind"))
                break
            if _wanted(w, event):
                await _send(response, event.type, w.render(event.obj))
        return response
    except ConnectionResetError:
        return response  # the client went away: nothing left to answer
    finally:
        store.unsubscribe(queue)


def _expired(message: str) -> Obj:
    return ApiError(410, "Expired", message).status()


def _wanted(w: WatchRequest, event: Event) -> bool:
    if event.key != w.rt.key:
        return False
    if w.namespace is not None and event.obj["metadata"].get("namespace") != w.namespace:
        return False
    return w.match(event.obj)


def _bookmark(w: WatchRequest, rv: int) -> Obj:
    return {"kind": w.rt.kind, "apiVersion": w.rt.api_version(w.version),
            "metadata": {"resourceVersion": str(rv),
                         "annotations": {"k8s.io/initial-events-end": "true"}}}


async def _send(response: web.StreamResponse, type_: str, obj: Obj) -> None:
    await response.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

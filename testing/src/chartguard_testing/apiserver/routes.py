"""HTTP routing: kube-apiserver's URL layout onto the catalog, the store and the watches.

``/api/v1/...`` is the core group, ``/apis/G/V/...`` the others; below that
``[namespaces/NS/]PLURAL[/NAME[/SUBRESOURCE]]``. Bodies are JSON (or protobuf for the
three core kinds client-go sends that way); answers are always JSON. ``/chaos/v1/...`` (no
real API server has it) switches the emulator's fault modes (:mod:`.faults`).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chartguard_testing.apiserver import discovery, patching, protobuf, selectors, tables
from chartguard_testing.apiserver.faults import (
    PREFIX,
    Faults,
    burst_response,
    conflict_error,
    parse_control,
)
from chartguard_testing.apiserver.resources import ApiError, Obj, ResourceType
from chartguard_testing.apiserver.storage import Store
from chartguard_testing.apiserver.watch import WatchRequest, serve_watch

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STORE: web.AppKey[Store] = web.AppKey("store", Store)
FAULTS: web.AppKey[Faults] = web.AppKey("faults", Faults)
WATCH_TIMEOUT_DEFAULT = 1800.0  # the apiserver's own upper bound is 30 to 60 minutes


@dataclass
class Target:
    rt: ResourceType
    version: str
    namespace: str | None  # None: all namespaces (or a cluster-scoped resource)
    name: str | None
    subresource: str | None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data), status=status,
                        content_type="application/json")


def _parse(store: Store, group: str, version: str, rest: list[str]) -> Target:
    namespace: str | None = None
    if (len(rest) >= 3 and rest[0] == "namespaces"
            and not (len(rest) == 3 and rest[2] in ("status", "finalize") and not group)):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    rt = store.catalog.get(group, version, rest[0])
    if not rt.namespaced and namespace is not None:
        raise ApiError(404, "NotFound", f"{rt.describe()} is not namespaced")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in ("status", "finalize"):
        raise ApiError(404, "NotFound", f"{rt.describe()} has no subresource {sub!r}")
    if sub == "status" and not rt.status_subresource:
        raise ApiError(404, "NotFound", f"{rt.describe()} has no status subresource")
    if rt.namespaced and name is not None and namespace is None:
        raise ApiError(404, "NotFound", f"{rt.describe()} is namespaced: use "
                       "/namespaces/NAMESPACE/...")
    return Target(rt, version, namespace, name, sub)


def _seconds(value: str | None) -> float:
    if not value:
        return WATCH_TIMEOUT_DEFAULT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ApiError(400, "BadRequest", f"timeoutSeconds must be a number of seconds, not "
                       f"{value!r}")
    return seconds


def _present(t: Target, obj: Obj) -> Obj:
    return {**obj, "apiVersion": t.rt.api_version(t.version)}


async def _body(request: web.Request) -> Obj:
    raw = await request.read()
    if request.content_type == protobuf.CONTENT_TYPE:
        return protobuf.decode(raw)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return body


async def _resource(request: web.Request, group: str, version: str, rest: list[str],
                    ) -> web.StreamResponse:
    store = request.app[STORE]
    t = _parse(store, group, version, rest)
    q = request.query
    dry_run = "All" in q.getall("dryRun", [])
    ns = t.namespace or ""
    method = request.method
    if t.name is None:
        match_labels = selectors.label_selector(q.get("labelSelector"))
        match_fields = selectors.field_selector(q.get("fieldSelector"))

        def match(o: Obj) -> bool:
            return match_labels(o) and match_fields(o)

        if method == "GET" and q.get("watch") in ("true", "1"):
            return await serve_watch(request, store, WatchRequest(
                t.rt, t.version, t.namespace, match, q.get("resourceVersion", ""),
                q.get("sendInitialEvents") == "true",
                _seconds(q.get("timeoutSeconds")),
                lambda o: _render(request, t, [o], o["metadata"]["resourceVersion"]),
                request.app[FAULTS].take_expire))
        if method == "GET":
            items = store.list(t.rt, t.namespace, match)
            return _json(_render(request, t, items, str(store.rv), as_list=True))
        if method == "POST":
            if t.rt.namespaced and t.namespace is None:
                raise ApiError(405, "MethodNotAllowed", "create namespaced objects under "
                               "/namespaces/NAMESPACE/")
            return _json(_present(t, store.create(t.rt, ns, await _body(request),
                                                  dry_run=dry_run)), 201)
        if method == "DELETE":
            gone = [store.delete(t.rt, o["metadata"].get("namespace", ""),
                                 o["metadata"]["name"], dry_run=dry_run)
                    for o in store.list(t.rt, t.namespace, match)]
            return _json(_render(request, t, gone, str(store.rv), as_list=True))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
    status = t.subresource == "status"
    if (method in ("PUT", "PATCH") and not dry_run and store.exists(t.rt, ns, t.name)
            and request.app[FAULTS].take_conflict(t.rt.plural, t.subresource)):
        raise conflict_error(t.rt.describe(), t.rt.group, t.rt.plural, t.name)
    if method == "GET":
        return _json(_render(request, t, [store.get(t.rt, ns, t.name)], str(store.rv)))
    if method == "PUT":
        return _json(_present(t, store.replace(t.rt, ns, t.name, await _body(request),
                                               status=status, dry_run=dry_run)))
    if method == "PATCH":
        if request.content_type not in patching.PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the patch type {request.content_type!r} is not supported")
        obj, created = store.patch(t.rt, ns, t.name, request.content_type,
                                   await request.read(), status=status,
                                   manager=q.get("fieldManager", ""), dry_run=dry_run)
        return _json(_present(t, obj), 201 if created else 200)
    if method == "DELETE":
        # DeleteOptions bodies (propagationPolicy, gracePeriod) are ignored: deletion is
        # immediate and dependents always go (foreground and background look alike here)
        return _json(_present(t, store.delete(t.rt, ns, t.name, dry_run=dry_run)))
    raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")


def _render(request: web.Request, t: Target, objects: list[Obj], rv: str, *,
            as_list: bool = False) -> Obj:
    """Objects in the requested version, as a Table when the client asked for one."""
    presented = [_present(t, o) for o in objects]
    if tables.wants_table(request.headers.get("Accept", "")):
        return tables.table(t.rt, t.version, presented, rv, request.query.get("includeObject"))
    if not as_list:
        return presented[0]
    return {"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version(t.version),
            "metadata": {"resourceVersion": rv}, "items": presented}


async def handle(request: web.Request) -> web.StreamResponse:
    parts = [p for p in request.path.split("/") if p]
    store = request.app[STORE]
    if request.path.startswith(PREFIX):
        return await _control(request, request.path.removeprefix(PREFIX))
    burst = request.app[FAULTS].take_burst(request.method, request.path_qs,
                                           request.headers.get("User-Agent", ""))
    if burst is not None:
        return burst_response(burst)
    if parts[:1] == ["api"]:
        if len(parts) == 1:
            return _json(discovery.api_versions(request.host))
        if parts[1] != "v1":
            raise ApiError(404, "NotFound", f"no core API version {parts[1]!r}")
        if len(parts) == 2:
            return _json(discovery.resource_list(store.catalog, "", "v1"))
        return await _resource(request, "", "v1", parts[2:])
    if parts[:1] == ["apis"]:
        if len(parts) == 1:
            return _json(discovery.api_groups(store.catalog))
        doc = (discovery.api_group(store.catalog, parts[1]) if len(parts) == 2
               else discovery.resource_list(store.catalog, parts[1], parts[2])
               if len(parts) == 3 else None)
        if len(parts) <= 3:
            if doc is None:
                raise ApiError(404, "NotFound", f"no API {'/'.join(parts[1:])}")
            return _json(doc)
        return await _resource(request, parts[1], parts[2], parts[3:])
    if parts == ["version"]:
        return _json(discovery.VERSION)
    if parts and parts[0] in ("healthz", "livez", "readyz"):
        return web.Response(text="ok")
    if parts == ["openapi", "v2"]:
        # kubectl apply needs a 200 here; an empty document means "no schema known"
        return web.Response(status=200, content_type="application/json")
    raise ApiError(404, "NotFound", "the server could not find the requested resource")


async def _control(request: web.Request, what: str) -> web.Response:
    """A test switches a fault (:mod:`.faults`)."""
    faults = request.app[FAULTS]
    store = request.app[STORE]
    if what == "state" and request.method == "GET":
        return _json(faults.state())
    if request.method != "POST":
        raise ApiError(405, "MethodNotAllowed", "chaos controls are POSTed")
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"chaos control body is not JSON: {exc}") from exc
    what, arg = parse_control(what, body if isinstance(body, dict) else {})
    answer: dict[str, Any] = {}
    if what == "watches/drop":
        answer["watches"] = store.drop_watchers()
    elif what == "watches/stall":
        answer["watches"] = store.stall_watchers()
    elif what == "watches/compact":
        answer["resourceVersion"] = store.compact()
    elif what == "watches/expire":
        faults.expire_next = arg
    elif what == "conflicts":
        plural, sub, count = arg
        faults.conflicts[f"{plural}/{sub}" if sub else plural] = count
    elif what == "errors":
        faults.bursts.append(arg)
    elif what == "clear":
        faults.expire_next = 0
        faults.conflicts.clear()
        faults.bursts.clear()
    for name in ("watches/drop", "watches/stall", "watches/compact"):
        if what == name:
            faults.count(name.removeprefix("watches/"))
    return _json({**answer, **faults.state()})


@web.middleware
async def as_status(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers a ``Status``, as kube-apiserver does: clients print its message.

    A bug of the emulator itself is a 500 Status naming the request; its traceback goes to
    the server's log, never into the answer."""
    try:
        return await handler(request)
    except ApiError as err:
        return _json(err.status(), err.code)
    except web.HTTPException as exc:  # aiohttp's own refusals (e.g. body too large)
        if exc.status < 400:
            raise
        return _json(ApiError(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason,
                              ).status(), exc.status)
    except Exception as exc:  # answered as a Status, logged with its traceback
        traceback.print_exc(file=sys.stderr)
        return _json(ApiError(500, "InternalError",
                              f"the test apiserver failed on {request.method} {request.path}: "
                              f"{type(exc).__name__}: {exc}").status(), 500)


def build_app(store: Store) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[as_status])
    app[STORE] = store
    app[FAULTS] = Faults()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app

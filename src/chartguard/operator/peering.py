"""High availability: replicas that share a kopf peering object, of which one reconciles.

``chartguard run --peering NAME`` runs kopf in peering mode: every replica writes a keep-alive
(its identity, priority and the time it was last seen) into the ``status`` of the
``ClusterKopfPeering`` NAME (or, watching namespaces, the ``KopfPeering`` NAME in each of them),
and kopf pauses the watches of every replica that sees a live peer of a higher or equal
priority. kopf only pauses its watches, though: the operator's own work queue (intervals,
retries, queued keys) would go on reconciling. So the operator reads the same objects and
applies kopf's rule itself (:func:`leads`); a replica that does not lead drops its queue and
waits (:meth:`Runtime.pause`), and starts afresh from kopf's re-listing when it leads again.

kopf never creates the peering object: without it every replica waits for ever. The operator
creates it when it is missing (``create`` on the kind, in the deploy chart's RBAC).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from chartguard.operator.kube import Kube, KubeError
from chartguard.untrusted import escape

GROUP, VERSION = "kopf.dev", "v1"
CLUSTER_PLURAL, NAMESPACED_PLURAL = "clusterkopfpeerings", "kopfpeerings"
#: how often a replica re-reads the peering objects (kopf's keep-alives come every ~50 s; a
#: replica that stops cleanly removes its entry at once, so a stand-by takes over within this)
POLL_SECONDS = 3.0
#: kopf's default lifetime of an entry that states none
_DEFAULT_LIFETIME = 60

_log = logging.getLogger("chartguard")


def own_identity() -> str:
    """This replica's name among its peers: the pod's name (``POD_ID``, as kopf reads it)
    or host and pid, with a random suffix so that a restarted process is a new peer."""
    base = os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}"
    return f"{base}/{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Peer:
    identity: str
    priority: int
    deadline: datetime  # lastseen + lifetime: after it the peer is presumed dead


def peers(status: Any) -> list[Peer]:
    """The entries kopf keeps in a peering object's status (malformed ones are skipped)."""
    out: list[Peer] = []
    if not isinstance(status, Mapping):
        return out
    for identity, info in status.items():
        if not isinstance(info, Mapping):
            continue
        try:
            priority = int(info.get("priority", 0))
            lifetime = int(info.get("lifetime", _DEFAULT_LIFETIME))
            seen = datetime.fromisoformat(str(info["lastseen"]))
        except (KeyError, TypeError, ValueError):
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        out.append(Peer(str(identity), priority, seen + timedelta(seconds=lifetime)))
    return out


def leads(status: Any, identity: str, priority: int, now: datetime) -> Peer | None:
    """kopf's rule, from one replica's side: None when it may work (no other live peer has a
    priority as high as its own), else the peer it yields to (equal priorities pause both,
    as kopf pauses them)."""
    rivals = [p for p in peers(status)
              if p.identity != identity and p.deadline > now and p.priority >= priority]
    return max(rivals, key=lambda p: p.priority) if rivals else None


class _Gate(Protocol):
    def pause(self, reason: str) -> None: ...

    def resume(self) -> None: ...


class Peering:
    """One replica's view of its peering object(s)."""

    def __init__(self, kube: Kube, name: str, namespaces: Sequence[str], identity: str,
                 priority: int) -> None:
        self.kube = kube
        self.name = name
        self.namespaces = tuple(namespaces)  # empty: the cluster-wide kind
        self.identity = identity
        self.priority = priority

    def where(self) -> str:
        if not self.namespaces:
            return f"ClusterKopfPeering {self.name}"
        return f"KopfPeering {self.name} in {', '.join(self.namespaces)}"

    def statuses(self) -> list[Any]:
        """The status of each peering object, creating a missing one (KubeError when one can
        be neither read nor created)."""
        if not self.namespaces:
            return [self._status("")]
        return [self._status(ns) for ns in self.namespaces]

    def _status(self, namespace: str) -> Any:
        body = self.kube.get_object(GROUP, VERSION, self._plural, namespace, self.name)
        if body is None:
            kind = "KopfPeering" if namespace else "ClusterKopfPeering"
            meta: dict[str, str] = {"name": self.name}
            if namespace:
                meta["namespace"] = namespace
            try:
                body = self.kube.create_object(GROUP, VERSION, self._plural, namespace, {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta})
            except KubeError as err:
                if err.status != 409:  # another replica created it meanwhile
                    raise
                body = self.kube.get_object(GROUP, VERSION, self._plural, namespace,
                                             self.name) or {}
            else:
                _log.info("peering: created %s %s%s", kind, self.name,
                          f" in {namespace}" if namespace else "")
        return body.get("status")

    @property
    def _plural(self) -> str:
        return NAMESPACED_PLURAL if self.namespaces else CLUSTER_PLURAL

    def decide(self, now: datetime | None = None) -> str | None:
        """None when this replica leads; else why it waits."""
        now = now or datetime.now(UTC)
        try:
            statuses = self.statuses()
        except KubeError as err:
            return (f"{self.where()} cannot be read: {escape(str(err))} (are kopf's peering "
                    "CRDs installed? the deploy chart installs them when replicas > 1)")
        for status in statuses:
            rival = leads(status, self.identity, self.priority, now)
            if rival is not None:
                return (f"replica {escape(rival.identity)} (priority {rival.priority}) "
                        "reconciles")
        return None


async def follow(peering: Peering, gate: _Gate, interval: float = POLL_SECONDS) -> None:
    """Pause ``gate`` while this replica does not lead, resume it when it does; runs until
    cancelled. The first decision is taken at once."""
    loop = asyncio.get_running_loop()
    leading: bool | None = None
    last_reason = ""
    while True:
        reason = await loop.run_in_executor(None, peering.decide)
        if reason is None and leading is not True:
            _log.info("peering %s: this replica (%s, priority %d) leads and reconciles",
                      peering.where(), peering.identity, peering.priority)
            gate.resume()
        elif reason is not None and (leading is not False or reason != last_reason):
            _log.info("peering %s: this replica (%s, priority %d) stands by: %s",
                      peering.where(), peering.identity, peering.priority, reason)
            gate.pause(reason)
        leading, last_reason = reason is None, reason or ""
        await asyncio.sleep(interval)

"""High availability without a cluster: kopf's peering rule as one replica applies it, the
peering object created when missing, the work queue dropped on a pause, and ``--peering``'s
flags."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chartguard.cli import build_parser
from chartguard.cli.run import config_from
from chartguard.operator.kube import KubeError
from chartguard.operator.peering import Peering, follow, leads, peers
from chartguard.operator.workqueue import WorkQueue

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def entry(priority: int, seconds_ago: float = 1, lifetime: int = 60) -> dict[str, Any]:
    """A keep-alive as kopf writes it into the peering object's status."""
    return {"priority": priority, "lifetime": lifetime,
            "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_a_replica_leads_unless_a_live_peer_has_a_priority_as_high() -> None:
    status = {"me": entry(100), "low": entry(50)}
    assert leads(status, "me", 100, NOW) is None
    higher = leads({**status, "high": entry(200)}, "me", 100, NOW)
    assert higher is not None
    assert (higher.identity, higher.priority) == ("high", 200)
    # equal priorities pause both sides, as kopf pauses them
    tie = leads({**status, "twin": entry(100)}, "me", 100, NOW)
    assert tie is not None
    assert tie.identity == "twin"
    # a peer past its lifetime is presumed dead; an entry of lifetime 0 is a clean exit
    assert leads({**status, "dead": entry(200, seconds_ago=61)}, "me", 100, NOW) is None
    assert leads({**status, "gone": entry(200, lifetime=0)}, "me", 100, NOW) is None
    # its own entry never counts, nor does an empty or missing status
    assert leads({"me": entry(999)}, "me", 1, NOW) is None
    assert leads(None, "me", 1, NOW) is None
    # of several, the one it yields to is the highest
    rival = leads({"a": entry(300), "b": entry(200)}, "me", 100, NOW)
    assert rival is not None
    assert rival.identity == "a"


def test_peers_skips_malformed_entries_and_reads_naive_times_as_utc() -> None:
    status = {"ok": entry(7), "no-time": {"priority": 1}, "bad-prio": {**entry(1),
              "priority": "x"}, "not-a-map": "x",
              "naive": {"priority": 3, "lastseen": "2026-06-01T11:59:59"}}
    found = {p.identity: p for p in peers(status)}
    assert set(found) == {"ok", "naive"}
    assert found["naive"].deadline == NOW - timedelta(seconds=1) + timedelta(seconds=60)
    assert peers(["not", "a", "map"]) == []


class FakeKube:
    """The two calls Peering makes, over an in-memory set of objects."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.created: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse: KubeError | None = None
        self.race = False  # another replica creates it between our get and create

    def get_object(self, group: str, version: str, plural: str, namespace: str,
                   name: str) -> dict[str, Any] | None:
        if self.refuse is not None:
            raise self.refuse
        return self.objects.get((plural, namespace, name))

    def create_object(self, group: str, version: str, plural: str, namespace: str,
                      body: dict[str, Any]) -> dict[str, Any]:
        assert (group, version) == ("kopf.dev", "v1")
        key = (plural, namespace, body["metadata"]["name"])
        if self.race:
            self.objects[key] = {**body, "status": {"other": entry(500)}}
            raise KubeError("create: 409 Conflict", 409)
        self.created.append((plural, namespace, body))
        self.objects[key] = dict(body)
        return dict(body)


def test_the_peering_object_is_created_when_missing_in_the_scope_of_the_operator() -> None:
    kube = FakeKube()
    cluster = Peering(kube, "cg", (), "me", 10)  # type: ignore[arg-type]
    assert cluster.decide(NOW) is None
    assert kube.created == [("clusterkopfpeerings", "", {
        "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
        "metadata": {"name": "cg"}})]
    assert cluster.decide(NOW) is None  # there now: not created twice
    assert len(kube.created) == 1
    # watching namespaces: kopf uses a KopfPeering in each of them
    spaced = Peering(kube, "cg", ("a", "b"), "me", 10)  # type: ignore[arg-type]
    spaced.decide(NOW)
    assert [(p, ns, b["kind"]) for p, ns, b in kube.created[1:]] == [
        ("kopfpeerings", "a", "KopfPeering"), ("kopfpeerings", "b", "KopfPeering")]
    assert kube.created[1][2]["metadata"] == {"name": "cg", "namespace": "a"}
    # a rival in one namespace is enough to stand by
    kube.objects[("kopfpeerings", "b", "cg")]["status"] = {"other": entry(11)}
    reason = spaced.decide(NOW)
    assert reason is not None
    assert "replica other (priority 11) reconciles" in reason


def test_a_creation_race_reads_what_the_other_replica_created() -> None:
    kube = FakeKube()
    kube.race = True
    reason = Peering(kube, "cg", (), "me", 10).decide(NOW)  # type: ignore[arg-type]
    assert reason == "replica other (priority 500) reconciles"


def test_an_unreadable_peering_object_stands_by_and_says_what_to_install() -> None:
    kube = FakeKube()
    kube.refuse = KubeError("clusterkopfpeerings cg: 404 Not Found", 404)
    reason = Peering(kube, "cg", (), "me", 10).decide(NOW)  # type: ignore[arg-type]
    assert reason is not None
    assert reason.startswith("ClusterKopfPeering cg cannot be read: clusterkopfpeerings cg: "
                             "404 Not Found")
    assert "peering CRDs" in reason


class Gate:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self, reason: str) -> None:
        self.calls.append(f"pause: {reason}")

    def resume(self) -> None:
        self.calls.append("resume")


class Scripted:
    """A Peering whose decisions are a script (its last one repeated)."""

    identity, priority = "me", 1

    def __init__(self, decisions: list[str | None]) -> None:
        self.decisions = decisions
        self.done = asyncio.Event()

    def where(self) -> str:
        return "ClusterKopfPeering cg"

    def decide(self) -> str | None:
        if len(self.decisions) == 1:  # the last one stays
            self.done.set()
            return self.decisions[0]
        return self.decisions.pop(0)


def test_follow_pauses_and_resumes_on_changes_only() -> None:
    async def scenario() -> list[str]:
        gate = Gate()
        script = Scripted(["x leads", "x leads", None, None, "y leads", "z leads", "z leads"])
        task = asyncio.create_task(follow(script, gate, interval=0))  # type: ignore[arg-type]
        await asyncio.wait_for(script.done.wait(), 5)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return gate.calls
    assert asyncio.run(scenario()) == ["pause: x leads", "resume", "pause: y leads",
                                       "pause: z leads"]


def test_work_queue_clear_drops_queued_keys_and_timers_but_not_keys_in_work() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("busy")
        assert await queue.get() == "busy"
        queue.add("busy")  # dirty: would run again when done
        queue.add("a")
        queue.add_after("b", 0.01)
        queue.clear()
        assert len(queue) == 0
        assert queue.scheduled("busy")  # still being worked on
        assert not queue.scheduled("a")
        assert not queue.scheduled("b")
        queue.done("busy")  # its dirt was dropped too: not queued again
        await asyncio.sleep(0.03)  # b's timer was cancelled
        assert len(queue) == 0
        queue.add("c")  # usable afterwards
        assert await asyncio.wait_for(queue.get(), 1) == "c"
    asyncio.run(scenario())


def _run_args(*argv: str) -> Any:
    args, extra = build_parser().parse_known_args(["run", *argv])
    assert not extra
    return args


def test_peering_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    standalone = config_from(_run_args())
    assert (standalone.peering, standalone.peering_priority) == ("", 0)
    config = config_from(_run_args("--peering", "chartguard", "--peering-priority", "7"))
    assert (config.peering, config.peering_priority) == ("chartguard", 7)
    # no priority given: a random one, so two replicas practically never tie
    drawn = {config_from(_run_args("--peering", "cg")).peering_priority for _ in range(20)}
    assert len(drawn) > 1
    assert all(0 < p < 2**31 for p in drawn)
    monkeypatch.setenv("CHARTGUARD_PEERING", "from-env")
    monkeypatch.setenv("CHARTGUARD_PEERING_PRIORITY", "9")
    env = config_from(_run_args())
    assert (env.peering, env.peering_priority) == ("from-env", 9)
    monkeypatch.delenv("CHARTGUARD_PEERING")
    monkeypatch.delenv("CHARTGUARD_PEERING_PRIORITY")
    with pytest.raises(ValueError, match="--peering 'Not_A_Name': use a Kubernetes object name"):
        config_from(_run_args("--peering", "Not_A_Name"))
    with pytest.raises(ValueError, match="--peering-priority must be between 1 and 2147483647"):
        config_from(_run_args("--peering", "cg", "--peering-priority", "0"))

"""The operator's small parts without a cluster: selectors, the work queue, status patches,
and ``chartguard run``'s flags and CHARTGUARD_* variables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import kopf
import pytest

from chartguard import __version__
from chartguard.cli import build_parser
from chartguard.cli.run import config_from
from chartguard.operator import SelectorError, label_filter
from chartguard.operator.kube import FIELD_MANAGER, load_config
from chartguard.operator.runtime import status_patch
from chartguard.operator.workqueue import WorkQueue


def test_label_selectors_become_kopf_filters() -> None:
    f = label_filter("app=web, tier!=db, env in (a,b), zone notin (x), sharded, !legacy")
    assert f["app"] == "web"
    assert f["tier"]("api")
    assert not f["tier"]("db")
    assert f["tier"](None)
    assert f["env"]("a")
    assert not f["env"]("c")
    assert f["zone"](None)
    assert not f["zone"]("x")
    assert f["sharded"] is kopf.PRESENT
    assert f["legacy"] is kopf.ABSENT
    assert label_filter("") == {}
    with pytest.raises(SelectorError):
        label_filter("a in b")


def test_work_queue_runs_a_key_once_at_a_time_and_keeps_late_changes() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add("a")  # deduplicated
        assert len(queue) == 1
        key = await queue.get()
        queue.add("a")  # while being worked on: dirty, queued again when done
        assert len(queue) == 0
        queue.done(key)
        assert len(queue) == 1
        await queue.get()
        queue.done("a")
        queue.add_after("b", 0.01)
        queue.add_after("b", 0.02)  # replaces the earlier timer
        got = [await asyncio.wait_for(queue.get(), 1)]
        queue.done("b")
        await asyncio.sleep(0.05)
        assert len(queue) == 0  # the first timer was cancelled
        return got
    assert asyncio.run(scenario()) == ["b"]


def test_status_patch_holds_only_what_changed() -> None:
    old = {"observedGeneration": 1, "conditions": [{"type": "Ready"}], "url": "u",
           "other": "kept"}
    new = {"observedGeneration": 2, "conditions": [{"type": "Ready"}]}
    assert status_patch(old, new) == {"observedGeneration": 2, "url": None}
    assert status_patch(new, new) == {}


def test_run_flags_fall_back_to_chartguard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTGUARD_NAMESPACE", "a, b")
    monkeypatch.setenv("CHARTGUARD_CONCURRENCY", "8")
    monkeypatch.setenv("CHARTGUARD_REQUIRE_KEYLESS_IDENTITY", "true")
    monkeypatch.setenv("CHARTGUARD_ARTIFACT_DIR", "/var/cache/charts")
    config = config_from(build_parser().parse_args(["run", "--concurrency", "2"]))
    assert config.namespaces == ("a", "b")
    assert config.concurrency == 2  # the flag wins
    assert config.require_keyless_identity
    assert config.artifact_dir == Path("/var/cache/charts")
    monkeypatch.setenv("CHARTGUARD_HEALTH_PORT", "http")
    with pytest.raises(ValueError, match="CHARTGUARD_HEALTH_PORT"):
        config_from(build_parser().parse_args(["run"]))
    monkeypatch.delenv("CHARTGUARD_HEALTH_PORT")
    everywhere = config_from(build_parser().parse_args(["run", "--all-namespaces"]))
    assert everywhere.namespaces == ()


def test_insecure_kubeconfig_flags_are_off_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from(build_parser().parse_args(["run"]))
    assert (config.insecure_kubeconfig_exec, config.insecure_kubeconfig_tls) == (False, False)
    config = config_from(build_parser().parse_args(["run", "--insecure-kubeconfig-exec"]))
    assert (config.insecure_kubeconfig_exec, config.insecure_kubeconfig_tls) == (True, False)
    monkeypatch.setenv("CHARTGUARD_INSECURE_KUBECONFIG_TLS", "true")
    config = config_from(build_parser().parse_args(["run"]))
    assert (config.insecure_kubeconfig_exec, config.insecure_kubeconfig_tls) == (False, True)


def test_every_api_write_names_chartguard_as_its_field_manager(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API server takes a write's field manager from the user agent (up to the first /):
    beside Flux, managedFields must say "chartguard" where Flux's say "source-controller"."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    client = load_config(4)
    assert client.user_agent == f"{FIELD_MANAGER}/{__version__}"
    assert client.user_agent.split("/", 1)[0] == "chartguard"
    assert client.default_headers["User-Agent"] == client.user_agent

"""``chartguard run --registry-timeout/--registry-deadline``: they reach every registry client,
so a trickling registry fails within the deadline the operator was given."""

from __future__ import annotations

import pytest

from chartguard.cli import build_parser
from chartguard.cli.run import config_from
from chartguard.reconcile.shared import RegistryClients


def test_registry_time_flags_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from(build_parser().parse_args(["run"]))
    assert (config.registry_timeout, config.registry_deadline) == (10.0, 60.0)
    monkeypatch.setenv("CHARTGUARD_REGISTRY_DEADLINE", "8")
    config = config_from(build_parser().parse_args(["run", "--registry-timeout", "2.5"]))
    assert (config.registry_timeout, config.registry_deadline) == (2.5, 8.0)
    with pytest.raises(ValueError, match="the timeout no longer than the deadline"):
        config_from(build_parser().parse_args(["run", "--registry-timeout", "30"]))
    with pytest.raises(ValueError, match="both must be positive"):
        config_from(build_parser().parse_args(["run", "--registry-deadline", "0"]))


def test_registry_clients_get_the_deadline() -> None:
    clients = RegistryClients(timeout=2.0, deadline=7.0)
    client = clients.client("k", plain_http=True, credentials=None, tls=None)
    assert client.deadline == 7.0
    clients.close()

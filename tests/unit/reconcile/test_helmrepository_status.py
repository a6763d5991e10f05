"""HelmRepository: oci validated without a request; what the seed shows, or what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from chartguard.api import HelmRepository
from chartguard.api import conditions as c
from chartguard.api.status import HelmRepositoryStatus
from chartguard.reconcile.helmrepository import reconcile_helmrepository
from chartguard.reconcile.outcome import invalid_spec_conditions
from chartguard.reconcile.seams import SecretNotFoundError, SecretUnreadableError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Secrets:
    def __init__(self, data: dict[str, dict[str, bytes]]) -> None:
        self.data = data

    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        if name == "forbidden":
            raise SecretUnreadableError("403 Forbidden")
        if name not in self.data:
            raise SecretNotFoundError(name)
        return self.data[name]


def repo(**spec: Any) -> HelmRepository:
    return HelmRepository.from_object({
        "apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "HelmRepository",
        "metadata": {"name": "podinfo", "namespace": "default", "generation": 3},
        "spec": {"type": "oci", "interval": "5m0s", "url": "oci://ghcr.io/stefanprodan/charts",
                 **spec}})


def ready(status: HelmRepositoryStatus) -> tuple[str, str, str]:
    cond = c.get_condition(status.conditions, "Ready")
    assert cond is not None
    return cond["status"], cond["reason"], cond["message"]


def test_the_seeds_repository_is_ready_with_the_seeds_message() -> None:
    result = reconcile_helmrepository(repo(), HelmRepositoryStatus(), Secrets({}), now=NOW)
    assert ready(result.status) == ("True", "Succeeded", "Helm repository is ready")
    assert result.status.observed_generation == 3


@pytest.mark.parametrize(("spec", "secrets", "reason", "words"), [
    ({"secretRef": {"name": "creds"}}, {}, "AuthenticationFailed",
     "failed to get credentials Secret 'default/creds': not found"),
    ({"secretRef": {"name": "forbidden"}}, {}, "AuthenticationFailed",
     "failed to get credentials Secret 'default/forbidden': 403 Forbidden"),
    ({"secretRef": {"name": "creds"}}, {"creds": {"username": b"u"}}, "AuthenticationFailed",
     "must have both 'username' and 'password'"),
    ({"certSecretRef": {"name": "tls"}}, {"tls": {"ca.crt": b"not pem"}},
     "AuthenticationFailed", "'ca.crt' is not a PEM certificate"),
    ({"provider": "aws"}, {}, "UnsupportedProvider", "not served by chartguard yet"),
])
def test_unusable_secrets_make_ready_false_saying_what(
        spec: dict[str, Any], secrets: dict[str, dict[str, bytes]], reason: str,
        words: str) -> None:
    result = reconcile_helmrepository(repo(**spec), HelmRepositoryStatus(), Secrets(secrets),
                                      now=NOW)
    status, got_reason, message = ready(result.status)
    assert (status, got_reason) == ("False", reason)
    assert words in message


def test_password_never_reaches_the_status() -> None:
    secrets = Secrets({"creds": {"username": b"user", "password": b"hunter2-secret"}})
    result = reconcile_helmrepository(repo(secretRef={"name": "creds"}), HelmRepositoryStatus(),
                                      secrets, now=NOW)
    assert ready(result.status)[0] == "True"
    assert "hunter2" not in repr(result)


def test_http_index_repositories_stall_where_no_http_sources_are_set_up() -> None:
    http = HelmRepository.from_object({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "bitnami", "namespace": "default", "generation": 1},
        "spec": {"url": "https://charts.bitnami.com/bitnami", "interval": "10m"}})
    result = reconcile_helmrepository(http, HelmRepositoryStatus(), Secrets({}), now=NOW)
    status, reason, message = ready(result.status)
    assert (status, reason) == ("False", "UnsupportedRepositoryType")
    assert "not served by chartguard yet" in message
    stalled = c.get_condition(result.status.conditions, "Stalled")
    assert stalled is not None
    assert stalled["status"] == "True"
    assert result.requeue_after is None  # nothing to retry until the spec changes


def test_invalid_spec_stalls_naming_the_field_without_a_newline_from_outside() -> None:
    message, conds = invalid_spec_conditions(
        [], "spec.version: 'x\nForged: line' is not a semver constraint", generation=2,
        now=NOW)
    assert "\n" not in message
    assert message.startswith("invalid spec: spec.version")
    assert [(x["type"], x["status"], x["reason"]) for x in conds] == [
        ("Ready", "False", "InvalidSpec"), ("Stalled", "True", "InvalidSpec")]

"""How the commands word the API's failures: the Status message, a cluster that is not there."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from chartguard.cli._kube import _reason, _transport_error


def test_the_api_servers_status_message_is_kept_bounded() -> None:
    err = ApiException(status=422, reason="Unprocessable Entity")
    err.body = json.dumps({"kind": "Status",
                           "message": "spec.interval: Invalid value " + "x" * 500})
    text = _reason(err)
    assert text.startswith("422 Unprocessable Entity: spec.interval: Invalid value x")
    assert len(text) < 350
    bare = ApiException(status=404, reason="Not Found")
    bare.body = "not json"
    assert _reason(bare) == "404 Not Found"


def test_connection_failures_are_told_apart_from_bugs() -> None:
    refused = MaxRetryError(None, "/apis", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    assert _transport_error(refused)
    assert _transport_error(ConnectionRefusedError())
    assert not _transport_error(ValueError("a bug"))
    assert not _transport_error(KeyError("a bug"))

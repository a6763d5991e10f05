"""helm's release Secrets decoded: a real one helm 4 wrote, and bounded decoding of forged ones."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from chartguard.helm.release import (
    MAX_RELEASE_BYTES,
    ReleaseDecodeError,
    StoredRelease,
    TestHook,
    decode_release_secret,
    newest,
    record_digest,
    release_from_json,
    values_digest,
)

DATA = Path(__file__).parent / "data"


def real_secret() -> dict[str, Any]:
    """Captured from the API emulator after real helm 4.1.4 ran
    ``helm install demo <demo-0.1.0.tgz> -n apps --values {"replicaCount": 2, "podAnnotations":
    {"team": "yes", "note": "a: b"}} --description "captured for chartguard's unit tests"``
    and ``helm test demo -n apps`` (the chart is ``helm create``'s, with its test Pod)."""
    loaded: dict[str, Any] = json.loads((DATA / "release-secret-helm4.json").read_text())
    return loaded


def record_of(secret: dict[str, Any]) -> bytes:
    return gzip.decompress(base64.b64decode(base64.b64decode(secret["data"]["release"])))


def secret_holding(payload: bytes, *, gzipped: bool = True) -> dict[str, Any]:
    """A Secret as helm's driver writes it, around ``payload`` (the release JSON)."""
    body = gzip.compress(payload) if gzipped else payload
    helm_text = base64.b64encode(body)
    return {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
            "metadata": {"name": "sh.helm.release.v1.demo.v1", "namespace": "apps",
                         "labels": {"owner": "helm", "name": "demo", "version": "1"}},
            "data": {"release": base64.b64encode(helm_text).decode()}}


def minimal_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": "demo", "namespace": "apps", "version": 2,
        "info": {"status": "pending-upgrade", "first_deployed": "2024-01-01T00:00:00Z",
                 "last_deployed": "2024-01-02T00:00:00Z", "deleted": "0001-01-01T00:00:00Z",
                 "description": "Preparing upgrade"},
        "chart": {"metadata": {"name": "demo", "version": "1.0.0"}},
    }
    record.update(changes)
    return record


def test_a_secret_helm_4_wrote_decodes_to_its_revision() -> None:
    secret = real_secret()
    stored = decode_release_secret(secret)
    assert stored.name == "demo"
    assert stored.namespace == "apps"
    assert stored.version == 1
    assert stored.status == "deployed"
    assert not stored.pending
    assert (stored.chart_name, stored.chart_version, stored.app_version) == (
        "demo", "0.1.0", "1.2.3")
    assert stored.description == "captured for chartguard's unit tests"
    assert stored.first_deployed.startswith("20")
    assert stored.first_deployed.endswith("Z")
    assert stored.last_deployed == stored.first_deployed
    assert stored.deleted == ""
    assert stored.apply_method == "ssa"
    # the config digest is the one helm-controller computes for the values installed
    assert stored.config_digest == values_digest(
        {"replicaCount": 2, "podAnnotations": {"team": "yes", "note": "a: b"}})
    assert stored.config_digest == (
        "sha256:692920ec47576983a1640537fd775d444fc69ba48186b5a056ec23495b7a8b55")
    # the digest names the stored record (without its hooks' runs: see the test below)
    assert stored.digest == record_digest(json.loads(record_of(secret)))
    # helm test ran the chart's one test hook
    (name, hook), = stored.test_hooks.items()
    assert name == "demo-test-connection"
    assert hook.phase == "Succeeded"
    assert hook.last_started
    assert hook.last_completed >= hook.last_started


def test_a_test_run_by_hand_does_not_change_the_digest_but_anything_else_does() -> None:
    record = json.loads(record_of(real_secret()))
    first = decode_release_secret(secret_holding(json.dumps(record).encode()))
    # `helm test` by hand: a new last_run on the test hook, the revision is the same one
    for hook in record["hooks"]:
        hook["last_run"] = {"started_at": "2030-01-01T00:00:00Z", "phase": "Failed"}
    rerun = decode_release_secret(secret_holding(json.dumps(record).encode()))
    assert rerun.digest == first.digest
    assert next(iter(rerun.test_hooks.values())).phase == "Failed"  # still read
    record["manifest"] += "\n# edited"
    edited = decode_release_secret(secret_holding(json.dumps(record).encode()))
    assert edited.digest != first.digest


def test_the_digest_changes_with_any_byte_of_the_record() -> None:
    record = json.loads(record_of(real_secret()))
    first = decode_release_secret(secret_holding(json.dumps(record).encode()))
    record["info"]["description"] += "!"
    second = decode_release_secret(secret_holding(json.dumps(record).encode()))
    assert first.digest != second.digest
    assert first.version == second.version


def test_a_record_from_before_helm_compressed_still_decodes() -> None:
    stored = decode_release_secret(
        secret_holding(json.dumps(minimal_record()).encode(), gzipped=False))
    assert stored.status == "pending-upgrade"
    assert stored.pending
    assert stored.deleted == ""  # Go's zero time is "not deleted"
    assert stored.app_version == ""
    assert stored.apply_method == ""
    assert stored.config_digest == values_digest({})  # no config: the empty values


def test_hooks_that_are_not_tests_are_left_out_and_unrun_tests_are_empty() -> None:
    record = minimal_record(hooks=[
        {"name": "migrate", "events": ["pre-install", "pre-upgrade"],
         "last_run": {"started_at": "2024-01-01T00:00:00Z", "phase": "Succeeded"}},
        {"name": "smoke", "events": ["test"], "last_run": {"phase": ""}},
        {"name": "old", "events": ["test"],
         "last_run": {"started_at": "0001-01-01T00:00:00Z",
                      "completed_at": "0001-01-01T00:00:00Z", "phase": "Failed"}},
    ])
    stored = release_from_json(record)
    assert dict(stored.test_hooks) == {"smoke": TestHook(), "old": TestHook(phase="Failed")}


def test_release_from_json_without_bytes_digests_canonical_json() -> None:
    a = release_from_json(minimal_record())
    b = release_from_json(dict(reversed(list(minimal_record().items()))))
    assert a.digest == b.digest  # key order does not matter
    assert a.digest != release_from_json(minimal_record(version=3)).digest


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "Opaque"}, "not a helm release Secret: type is 'Opaque'"),
    ({"data": {}}, "has no data.release"),
    ({"data": {"release": "%%%not base64%%%"}}, "Kubernetes base64"),
    ({"data": {"release": base64.b64encode(b"%%%").decode()}}, "helm's base64"),
    ({"data": {"release": "A" * (4 * 1024 * 1024 + 4)}}, "more than the 4194304"),
])
def test_a_secret_that_is_not_a_release_is_refused(change: dict[str, Any],
                                                   message: str) -> None:
    secret = {**real_secret(), **change}
    with pytest.raises(ReleaseDecodeError, match=message.replace("(", r"\(")):
        decode_release_secret(secret)


def test_a_gzip_bomb_is_refused_before_it_is_inflated() -> None:
    payload = b'{"name": "' + b"a" * (MAX_RELEASE_BYTES + 10) + b'"}'
    secret = secret_holding(payload)
    assert len(secret["data"]["release"]) < 64 * 1024  # small on the wire
    with pytest.raises(ReleaseDecodeError, match="gunzips to more than 8388608 bytes"):
        decode_release_secret(secret)


def test_truncated_or_corrupt_gzip_is_refused() -> None:
    whole = gzip.compress(json.dumps(minimal_record()).encode())
    broken = ((whole[:-12], "truncated"), (whole[:10] + b"\xff" * 40, "not valid gzip"))
    for body, message in broken:
        helm_text = base64.b64encode(body)
        secret = {**real_secret(), "data": {"release": base64.b64encode(helm_text).decode()}}
        with pytest.raises(ReleaseDecodeError, match=message):
            decode_release_secret(secret)


def test_json_nested_too_deep_is_refused_without_a_recursion_error() -> None:
    payload = b'{"config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ReleaseDecodeError, match="nested deeper than 128 levels"):
        decode_release_secret(secret_holding(payload))


def test_a_record_that_is_not_json_is_refused() -> None:
    with pytest.raises(ReleaseDecodeError, match="not valid JSON"):
        decode_release_secret(secret_holding(b"{not json"))


@pytest.mark.parametrize(("path", "value", "message"), [
    (("version",), "2", "version is '2', not a positive integer"),
    (("version",), True, "version is True"),
    (("version",), 0, "version is 0"),
    (("name",), "", "name is '', not a non-empty string"),
    (("info",), None, "no info object"),
    (("info", "status"), 7, "info.status is 7"),
    (("chart", "metadata"), None, "no chart.metadata object"),
    (("chart", "metadata", "version"), None, "chart.metadata.version is None"),
    (("config",), ["a"], "config is not an object"),
    (("hooks",), {"a": 1}, "hooks are not a list"),
    (("hooks",), ["x"], "a hook in the helm release record is not an object"),
    (("info", "description"), "\x1b[31mred", None),  # control characters are only data
])
def test_a_record_missing_what_we_read_names_the_field(path: tuple[str, ...], value: Any,
                                                       message: str | None) -> None:
    record = copy.deepcopy(minimal_record())
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    if message is None:
        assert release_from_json(record).description == "\x1b[31mred"
        return
    with pytest.raises(ReleaseDecodeError, match=message.replace("(", r"\(")):
        release_from_json(record)


def test_an_error_message_quotes_outside_text_escaped() -> None:
    record = minimal_record(version="\x1b[2J1\n2")
    with pytest.raises(ReleaseDecodeError) as caught:
        release_from_json(record)
    assert "\x1b" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_newest_is_the_highest_version_in_any_order() -> None:
    def at(version: int) -> StoredRelease:
        return release_from_json(minimal_record(version=version))

    assert newest([at(2), at(5), at(3)]) == at(5)
    assert newest([]) is None

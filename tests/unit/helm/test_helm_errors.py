"""helm's stderr in messages: its Error lines only, capped, escaped, no credential."""

from __future__ import annotations

import pytest

from chartguard.helm.errors import (
    MAX_MESSAGE,
    ChartDigestMismatchError,
    HelmError,
    redact,
    summarize,
)


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig", "eyJhbGciOiJSUzI1NiJ9"),
    ('Get "https://10.0.0.1/api": bearer abc.def-ghi', "abc.def-ghi"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("pull https://robot:s3cr3t-Pa55@registry.example.com/charts/demo", "s3cr3t-Pa55"),
    ("oci://user:hunter2@ghcr.io/org/chart:1.0.0", "hunter2"),
    ("template: values password=hunter2 in use", "hunter2"),
    ('error converting YAML: {"adminPassword": "hunter2"}', "hunter2"),
    ("dbPassword: 'p4ss word'", "p4ss word"),
    ("set token=ghp_0123456789abcdef&x=1", "ghp_0123456789abcdef"),
    ("api_key=AKIAEXAMPLE, region=eu", "AKIAEXAMPLE"),
    ("clientSecret:abc123", "abc123"),
])
def test_credentials_are_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "[redacted]" in out


def test_ordinary_text_is_kept() -> None:
    text = 'Error: INSTALLATION FAILED: services "web" already exists: basic check'
    assert redact(text) == text


def test_summary_keeps_the_error_lines_without_the_prefix() -> None:
    stderr = ("level=WARN msg=\"upgrade failed\" name=web error=\"boom\"\n"
              "Error: UPGRADE FAILED: context deadline exceeded\n")
    assert summarize(stderr) == "UPGRADE FAILED: context deadline exceeded"


def test_summary_keeps_the_lines_of_a_multi_line_error() -> None:
    stderr = ("Error: INSTALLATION FAILED: demo/templates/bad.yaml:1:10\n"
              "  executing \"demo/templates/bad.yaml\" at <.Values.nope.missing>:\n"
              "    nil pointer evaluating interface {}.missing\n")
    assert summarize(stderr) == (
        'INSTALLATION FAILED: demo/templates/bad.yaml:1:10; executing '
        '"demo/templates/bad.yaml" at <.Values.nope.missing>:; '
        "nil pointer evaluating interface {}.missing")


def test_summary_falls_back_to_the_last_lines() -> None:
    assert summarize("".join(f"line {i}\n\n" for i in range(10))) == (
        "line 4; line 5; line 6; line 7; line 8; line 9")
    assert summarize("") == "helm printed no error message"


def test_summary_is_one_escaped_capped_line_without_credentials() -> None:
    stderr = ("Error: template: x: password=hunter2 \x1b[31m\u202eevil\n"
              + "Error: " + "y" * 5000 + "\n")
    out = summarize(stderr)
    assert "hunter2" not in out
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "\n" not in out
    assert out.endswith("…")  # capped at MAX_MESSAGE characters of helm's text, then escaped
    assert len(out) < MAX_MESSAGE + 20


def test_helm_error_carries_action_message_and_storage_change() -> None:
    error = HelmError("upgrade", "it broke", storage_changed=True)
    assert (error.action, error.message, error.storage_changed) == ("upgrade", "it broke", True)
    assert str(error) == "helm upgrade failed: it broke"


def test_a_digest_mismatch_never_changed_storage() -> None:
    error = ChartDigestMismatchError("install", path="/store/a.tgz", expected="sha256:" + "a" * 64,
                                     actual="sha256:" + "b" * 64)
    assert isinstance(error, HelmError)
    assert error.storage_changed is False
    assert "sha256:" + "b" * 64 in error.message
    assert "helm was not run" in error.message

"""Values Secrets gave, taken out of helm's messages in every form helm or chartguard writes
them."""

from __future__ import annotations

import pytest

from chartguard.helm.errors import summarize
from chartguard.reconcile.secret_values import REDACTED, redact, sensitive_strings


@pytest.mark.parametrize(("text", "expected"), [
    ('greeting "hunter2-Zq9" is not allowed', f'greeting "{REDACTED}" is not allowed'),
    # Go's %q of a value with quotes and a backslash
    ('bad value "say \\"hi\\" \\\\o/"', f'bad value "{REDACTED}"'),
    # escaped by chartguard.untrusted.escape
    ("tab\\x09inside", REDACTED),
    ("no secret here", "no secret here"),
])
def test_each_form_of_a_value_is_redacted(text: str, expected: str) -> None:
    sensitive = {"hunter2-Zq9", 'say "hi" \\o/', "tab\tinside"}
    assert redact(text, sensitive) == expected


def test_the_longest_value_goes_first() -> None:
    assert redact("x abcd-efgh y", {"abcd", "abcd-efgh"}) == f"x {REDACTED} y"


def test_a_message_cut_in_the_middle_of_a_value_loses_its_start() -> None:
    secret = "Zq9xK-" * 10
    stderr = "Error: INSTALLATION FAILED: execution error: value " + secret
    cut = summarize(stderr, limit=60)
    assert cut.endswith("…")
    assert secret[:8] in cut  # what helm's summary alone would show
    shown = redact(cut, {secret})
    assert "Zq9x" not in shown
    assert shown.endswith(f"value {REDACTED}…")


def test_short_values_and_unrelated_text_stay() -> None:
    assert redact("port 80 on app", {"80", "app", "on"}) == "port 80 on app"
    assert redact("nothing to do", set()) == "nothing to do"


def test_sensitive_strings_are_the_scalars_and_their_lines() -> None:
    assert sensitive_strings({"a": ["long-one", 12345, 1.5, True, None], "b": {"c": "x"},
                              "d": "line-one\n  line-two\n"}) == {
        "long-one", "12345", "line-one\n  line-two", "line-one", "line-two"}

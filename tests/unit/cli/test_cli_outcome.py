"""The one place where commands end: exit codes, usage errors, JSON failures, flag hints."""

from __future__ import annotations

import json

import pytest

from chartguard.cli import EXIT_FAILED, EXIT_USAGE, main
from chartguard.cli._outcome import hinted, line, wants_json
from chartguard.oci import AuthenticationError, OCIError, TLSVerificationError
from chartguard.oci.errors import Hint


def test_the_command_words_each_hint_the_error_carries_once() -> None:
    words: dict[object, str] = {Hint.USE_PLAIN_HTTP: "pass --plain-http",
                                Hint.CA_CERTIFICATE: "pass --ca-file F"}
    tls = TLSVerificationError("TLS failed", hints=(Hint.CA_CERTIFICATE, Hint.USE_PLAIN_HTTP))
    assert hinted(tls, words) == "TLS failed; pass --ca-file F; pass --plain-http"
    # a hint the command has no flag for adds nothing; an error without hints is as it is
    assert hinted(AuthenticationError("refused", hints=(Hint.CREDENTIALS,)), words) == "refused"
    assert hinted(OCIError("broken"), words) == "broken"
    assert hinted(ValueError("plain"), words) == "plain"


def test_line_escapes_what_could_forge_lines_or_drive_a_terminal() -> None:
    assert line("a\nb\x1b[31mc\u202e") == "a\\x0ab\\x1b[31mc\\u202e"
    assert len(line("x" * 10_000)) < 5_000


@pytest.mark.parametrize(("argv", "expected"), [
    (["verify", "--output", "json"], True), (["verify", "--output=json"], True),
    (["verify", "--output", "text"], False), (["verify", "json"], False)])
def test_json_output_is_known_before_argparse_runs(argv: list[str], expected: bool) -> None:
    assert wants_json(argv) is expected


def test_argparse_errors_are_usage_errors_with_the_commands_usage(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--output", "yaml"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: chartguard verify ")
    assert "chartguard verify: error: argument --output: invalid choice: 'yaml'" in err
    assert main(["verify", "--output", "json", "--nope"]) == EXIT_USAGE
    out = capsys.readouterr().out
    assert json.loads(out) == {"verified": False, "error": "unrecognized arguments: --nope",
                               "exitCode": EXIT_USAGE}
    assert main([]) == EXIT_USAGE
    assert "usage: chartguard " in capsys.readouterr().err


def test_exit_codes_are_one_set_for_every_command() -> None:
    assert (EXIT_FAILED, EXIT_USAGE) == (1, 2)

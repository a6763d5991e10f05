"""The one identity matcher: Go RE2 expressions, for the spec (chartguard.api) and the verifier."""

from __future__ import annotations

import pytest

from chartguard.api.verification import OIDCIdentityMatch
from chartguard.goregex import GoRegexError, compile_go
from chartguard.identity import IdentityExpressionError, IdentityMatcher, identity_set
from chartguard.verify import InvalidPolicyError, OIDCIdentity, VerificationPolicy


def test_a_catastrophic_expression_for_backtracking_matches_in_linear_time() -> None:
    # Python's re takes exponential time on this; RE2 answers at once (no timing asserted).
    evil = compile_go(r"(a+)+$")
    assert evil.search("a" * 100_000 + "!") is False
    assert compile_go(r"^(a+)+!$").search("a" * 100_000 + "!") is True


@pytest.mark.parametrize(
    "expression",
    [r"(?=x)y", r"(?!evil).*", r"(?<=a)b", r"(?<!a)b", r"(a)\1", r"(?P<n>a)(?P=n)", r"a++",
     r"x\Z", r"\C", r"x{1001}", "(["],
)
def test_what_go_refuses_is_refused(expression: str) -> None:
    with pytest.raises(GoRegexError):
        compile_go(expression)


def test_go_syntax_classes_and_names_work() -> None:
    assert compile_go(r"^\pL+@example\.com$").search("héllo@example.com")
    assert compile_go(r"^\p{Greek}+$").search("αβγ")
    assert compile_go(r"^[[:alpha:]]+$").search("abc")
    assert compile_go(r"^(?<user>\w+)@").search("me@example.com")
    assert compile_go(r"\\C").search("a\\Cb")  # an escaped backslash before C is a literal


def test_search_is_gos_unanchored_matchstring_and_dollar_is_end_of_text() -> None:
    assert compile_go(r"@example\.com").search("me@example.com.evil.org")
    # Python's `$` matches before a final newline; Go's (and RE2's) does not.
    assert not compile_go(r"^me@example\.com$").search("me@example.com\n")
    assert not compile_go(".").search("\ud800")  # a lone surrogate is never an identity


def test_a_refused_expression_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(GoRegexError, match="missing \\]"):
        compile_go("([")
    assert capfd.readouterr().err == ""


def test_lookaround_is_refused_with_the_field_named() -> None:
    with pytest.raises(IdentityExpressionError) as err:
        IdentityMatcher(issuer="(?!evil).*", subject="^me$")
    assert err.value.problems == (
        ("issuer", "invalid regular expression '(?!evil).*': invalid perl operator: (?! "
                   "(Go RE2 syntax: no look-around, no back-references)"),)
    with pytest.raises(InvalidPolicyError, match=r"^identity subject: invalid regular expression"):
        OIDCIdentity(issuer=".*", subject="(?<=a)b")


def test_both_bad_fields_are_reported_and_an_empty_one_is_refused() -> None:
    with pytest.raises(IdentityExpressionError) as err:
        IdentityMatcher(issuer="", subject="[")
    assert [name for name, _ in err.value.problems] == ["issuer", "subject"]
    assert "must not be empty" in err.value.problems[0][1]


def test_an_expression_with_a_control_character_is_quoted_escaped() -> None:
    with pytest.raises(IdentityExpressionError) as err:
        IdentityMatcher(issuer="(\n\x1b[31m", subject=".*")
    (_, reason), = err.value.problems
    assert "\n" not in reason
    assert "\x1b" not in reason
    assert reason.startswith("invalid regular expression '(\\x0a\\x1b[31m'")


def test_matcher_tries_every_subject_and_needs_the_issuer() -> None:
    matcher = IdentityMatcher(issuer=r"^https://token\.actions\.", subject=r"/acme/charts/")
    issuer = "https://token.actions.githubusercontent.com"
    subjects = ("ci@example.com", "https://github.com/acme/charts/.github/workflows/r.yml@main")
    assert matcher.matching_subject(issuer, subjects) == subjects[1]
    assert matcher.matching_subject("https://accounts.google.com", subjects) is None
    assert matcher.matches(issuer, subjects[1])


def test_the_spec_model_and_the_verifier_share_the_matcher() -> None:
    assert OIDCIdentityMatch is IdentityMatcher
    spec_matcher = IdentityMatcher(issuer="^https://a$", subject="^me$")
    # a matcher parsed from a spec goes into a policy as it is, no second compile
    policy = VerificationPolicy(identities=(spec_matcher,))
    same = VerificationPolicy(identities=(OIDCIdentity("^https://a$", "^me$"),) * 2)
    assert policy.fingerprint == same.fingerprint


def test_identity_set_ignores_order_and_repeats() -> None:
    a, b = IdentityMatcher("^i$", "^a$"), IdentityMatcher("^i$", "^b$")
    assert identity_set([b, a, b]) == identity_set([a, b]) == [["^i$", "^a$"], ["^i$", "^b$"]]

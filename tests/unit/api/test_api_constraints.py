"""One constraint parser: the spec validator and the registry client accept exactly the same inputs.

``check_version_constraint`` (chartguard.api, used on ``spec.version``) and
``chartguard.oci.versions`` (used at fetch time) must never disagree, or a manifest would pass
validation and then fail to fetch. The grammar is Masterminds semver v3's; a reference reading
of its regular expressions checks the scanner on generated inputs.
"""

from __future__ import annotations

import random
import re

import pytest

from chartguard.api.constraints import ConstraintSyntaxError, Version, check_version_constraint
from chartguard.oci import InvalidConstraintError, VersionNotFoundError, select_version
from chartguard.oci.versions import is_exact_version, parse_constraint
from constraint_cases import CORPUS, GRAMMAR, api_accepts

TAGS = ["0.1.0", "1.0.0", "1.2.3", "2.0.0-rc.1", "2.0.0", "latest"]


def _oci_accepts(text: str) -> bool:
    try:
        parse_constraint(text)
    except InvalidConstraintError as err:
        return "not a semver version or constraint" not in str(err)
    return True


def _fetch_accepts(text: str) -> bool:
    try:
        select_version(TAGS, text)
    except InvalidConstraintError:
        return False
    except VersionNotFoundError:
        pass
    return True


@pytest.mark.parametrize("text", CORPUS, ids=lambda t: repr(t[:20]))
def test_validator_and_registry_client_agree(text: str) -> None:
    assert api_accepts(text) == _oci_accepts(text)
    # the flows: spec validation defaults "" to "*" (Flux's default) and select_version reads ""
    # as "*" (Helm and Flux do), so both accept exactly the same spec.version values
    assert api_accepts(text or "*") == _fetch_accepts(text)
    # an exact version goes straight to a tag; the validator must not refuse one
    if is_exact_version(text):
        assert api_accepts(text)


@pytest.mark.parametrize(("text", "accepted"), GRAMMAR)
def test_grammar_follows_masterminds(text: str, accepted: bool) -> None:
    assert api_accepts(text) is accepted


def test_messages_say_what_to_fix() -> None:
    with pytest.raises(ConstraintSyntaxError,
                       match=r"cannot read 'foo' after '1\.2\.3'.*use e\.g\."):
        check_version_constraint("1.2.3foo")
    with pytest.raises(ConstraintSyntaxError, match=r"empty alternative around '\|\|'"):
        check_version_constraint("1 ||")
    with pytest.raises(ConstraintSyntaxError, match=r"hyphen range .* must start an alternative"):
        check_version_constraint(">=1 1.2 - 1.3")
    with pytest.raises(ConstraintSyntaxError, match=r"it is empty; use '\*'"):
        check_version_constraint("")
    with pytest.raises(InvalidConstraintError,
                       match=r"version '1 \|\|' is not a semver version or constraint: empty"):
        parse_constraint("1 ||")


def test_parsed_structure_is_what_matching_uses() -> None:
    parsed = check_version_constraint(">=1.2, <2 || 3.x")
    assert str(parsed) == ">=1.2 <2 || 3.x"
    first = parsed.alternatives[0][0]
    assert (first.op, first.con, first.patch_dirty) == (">=", Version(1, 2, 0), True)
    assert parsed.allows(Version(1, 9, 0))
    assert parsed.allows(Version(3, 4, 0))
    assert not parsed.allows(Version(2, 0, 0))
    assert not parsed.allows(Version(3, 0, 0, "rc.1"))


# -- reference: Masterminds v3's regular expressions (constraints.go), read literally ------------

_S = r"[\t\n\f\r ]"
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"
_CV = (r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?"
       r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?")
_REF_RANGE = re.compile(rf"{_S}*({_CV}){_S}+-{_S}+({_CV}){_S}*")
_REF_VALID = re.compile(
    rf"({_S}*({_OPS}){_S}*({_CV}){_S}*)((?:{_S}+|,{_S}*)({_OPS}){_S}*({_CV}){_S}*)*")
_REF_FIND = re.compile(rf"({_OPS}){_S}*({_CV})")
_REF_ONE = re.compile(rf"{_S}*({_OPS}){_S}*({_CV}){_S}*")


def _reference_accepts(text: str) -> bool:
    text = _REF_RANGE.sub(lambda m: f">= {m[1]}, <= {m[11]} ", text)
    for group in text.split("||"):
        if not _REF_VALID.fullmatch(group):
            return False
        for term in _REF_FIND.findall(group):
            m = _REF_ONE.fullmatch(term[0] + term[1])
            assert m is not None
            parts = [m[3], (m[4] or "")[1:], (m[5] or "")[1:]]
            for part in parts:  # NewVersion on the parts before the first wildcard/missing one
                if part in ("", "x", "X", "*"):
                    break
                if not part.isdigit() or int(part) >= 2**64 or (len(part) > 1 and part[0] == "0"):
                    return False
            if m[7] and any(p.isdigit() and len(p) > 1 and p[0] == "0" for p in m[7].split(".")):
                return False
    return True


def test_scanner_matches_masterminds_regular_expressions_on_generated_input() -> None:
    accepted = 0
    rng = random.Random(20261124)  # fixed: a failure reproduces
    alphabet = ["1", "2", "0", "x", "*", ".", "-", "+", ",", " ", "|", "||", "v", ">", "=", "<",
                "~", "^", "!", "a", "\t", " - "]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))
        verdict = api_accepts(text)
        assert verdict == _reference_accepts(text), repr(text)
        accepted += verdict
    assert accepted > 500  # the generator reaches valid constraints, not only junk

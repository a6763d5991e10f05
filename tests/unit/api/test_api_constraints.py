"""One constraint parser: the spec validator and the registry client accept exactly the same inputs.

``check_version_constraint`` (chartguard.api, used on ``spec.version``) and
``chartguard.oci.versions`` (used at fetch time) must never disagree, or a manifest would pass
validation and then fail to fetch. The grammar is Masterminds semver v3's; a reference reading
of its regular expressions checks the scanner on generated inputs.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from chartguard.api.constraints import ConstraintSyntaxError, Version, check_version_constraint
from chartguard.oci import InvalidConstraintError, VersionNotFoundError, select_version
from chartguard.oci.versions import is_exact_version, parse_constraint
from chartguard_testing.charts import HelmEnv

# the union of the constraints in tests/unit/oci/test_oci_versions.py and
# tests/unit/api/test_api_models.py, valid and invalid, plus the cases the two parsers disagreed on
CORPUS = [
    "*", "", "x", ">=0.0.0", "1.2.3", "=1.2.3", "v1.2.3", ">=1.2.0 <2.0.0", ">=1.2, <2",
    ">= 1.2.0, < 1.3", "=>1.2.0 =<1.2.3", "> 1.2.3 < 1.3.0", ">1 <3", ">1.2 <1.10", "<=1.2", "<1.2",
    "<2", "^1.2", "^1.2.3", "^1", "^0.1", "^0.1.0", "^0.0.3", "^0.0", "^0", "~1.2.3", "~1.2", "~1",
    "~>1.2.0", "~0.1.1", "1.2.x", "1.2.*", "1.x", "1.X.x", "1", "1.2", "<1 || >=2",
    "1.2.x || 0.1.x", "^0.1 || ~1.3", "9.9.9 || 1.0.0", "!=2.1.0", "!=2.x, <3", "!=1.10.0, ^1",
    "1.2 - 1.3", "1.0.0 - 1.2.3", ">=2.0.0-0", ">=2.0.0-0 <2.0.0-z",
    ">=2.0.0-alpha <2.0.0-alpha.3", "~2.0.0-alpha", "2.0.0-alpha.10", ">=3.0.0-0", "^3.0.0-alpha",
    ">=1.0.0", ">=2.0.0", ">=1.0.1-0 <1.0.1-z", "=1.0.1+build.7", ">=1.9.0-0 <2.0.0", ">=5.0.0",
    "foo", ">=", ">>1", "1.2.3foo", ">=1.0.0 ,, 2", "~=1.0", "1.0.0 -", "=<>1", "^", "1..2",
    ">=1.0.0 && <2", "*" * 2000, "5.*", "4.0.x", ">=4.0.0 <5.0.0", ">=6.1.6", "^1.2.3 || ~2.0",
    "1.2 - 1.4.5", ">1.0.0-0", "15.18.0", ">= 6.0.0", ">=1,<2", "~> 3.1", "!=1.0.0", "=<2",
    "1.2.3+build.1", "  ", "latest", "||", "01.2.3", "1 ||", "=>", ">>6",
    # disagreements before the parsers were merged
    "||1", "1||", ">=1,", "1 - 2 <1.5", ">=1 1.2 - 1.3", "1\t2", "1\u00a02", "1\v2", "1.2.3-01",
    "99999999999999999999",
]
TAGS = ["0.1.0", "1.0.0", "1.2.3", "2.0.0-rc.1", "2.0.0", "latest"]


def _api_accepts(text: str) -> bool:
    try:
        check_version_constraint(text)
    except ValueError as err:
        return "invalid version constraint" not in str(err)  # a refusal must say so
    return True


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
    assert _api_accepts(text) == _oci_accepts(text)
    # the flows: spec validation defaults "" to "*" (Flux's default) and select_version reads ""
    # as "*" (Helm and Flux do), so both accept exactly the same spec.version values
    assert _api_accepts(text or "*") == _fetch_accepts(text)
    # an exact version goes straight to a tag; the validator must not refuse one
    if is_exact_version(text):
        assert _api_accepts(text)


GRAMMAR = [
    # Masterminds v3.2+ refuses an empty alternative (older releases read it as '*')
    ("||", False), ("1 ||", False), ("||1", False), ("", False), ("  ", False),
    # separators are whitespace (Go's ASCII \s), a comma, or a comma with whitespace
    ("1\t2", True), ("1 , 2", True), (">=1,", False), ("1,,2", False), ("1\u00a02", False),
    ("1\v2", False),
    # hyphen ranges are rewritten as text first, quirks included
    ("1 - 2 <1.5", True), ("1.2 - 1.3 >=1", True), (">=1 1.2 - 1.3", False),
    (">=1, 1.2 - 1.3", True), (">=1.2 - 1.3", False), ("1-2", True),
    # parts after a wildcard are ignored; a part is digits or one wildcard
    ("1.x.3", True), ("x.01", True), ("x1", False), ("1|2", False), ("V1", False),
    # prerelease numbers have no leading zero; parts fit in uint64
    ("1.2.3-01", False), ("1.2.3-0a", True), ("18446744073709551615", True),
    ("18446744073709551616", False),
    # deliberately stricter than Masterminds (which coerces 01 to 1): semver forbids it
    ("01.2.3", False), ("1.02", False),
]


@pytest.mark.parametrize(("text", "accepted"), GRAMMAR)
def test_grammar_follows_masterminds(text: str, accepted: bool) -> None:
    assert _api_accepts(text) is accepted


# Masterminds coerces a leading zero away (01 -> 1); we refuse it, at validation, with a message
STRICTER_THAN_HELM = {"01.2.3", "1.02"}


def test_real_helm_parses_exactly_what_we_parse(helm_env: HelmEnv, tmp_path: Path) -> None:
    """Helm's own Masterminds build is the oracle: a chart's ``kubeVersion`` goes through
    ``semver.NewConstraint``. ``C || >=0.0.0-0`` admits every Kubernetes version when ``C``
    parses and fails the whole constraint when it does not, so ``helm template`` tells which.
    Helm's Chart.yaml loader first turns every Unicode space into ' ' (``sanitizeString``), which
    ``--version`` does not do, so our side of the comparison gets the same treatment."""
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    cases = [*CORPUS, *(text for text, _ in GRAMMAR)]
    disagreements, helm_only = [], []
    for text in dict.fromkeys(cases):
        (chart / "Chart.yaml").write_text(
            "apiVersion: v2\nname: probe\nversion: 0.1.0\n"
            f"kubeVersion: {json.dumps(text + ' || >=0.0.0-0')}\n")
        helm = helm_env.run("template", str(chart), check=False)
        if helm.returncode != 0:
            assert "incompatible with Kubernetes" in helm.stderr, helm.stderr
        ours = _api_accepts("".join(" " if ch.isspace() else ch for ch in text))
        if (helm.returncode == 0) != ours:
            (helm_only if text in STRICTER_THAN_HELM else disagreements).append(text)
    assert disagreements == []
    assert sorted(helm_only) == sorted(STRICTER_THAN_HELM)  # the one known, deliberate gap


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
        verdict = _api_accepts(text)
        assert verdict == _reference_accepts(text), repr(text)
        accepted += verdict
    assert accepted > 500  # the generator reaches valid constraints, not only junk

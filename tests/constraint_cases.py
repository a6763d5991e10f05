"""Version constraints both parsers (spec validation, registry client) and helm are checked on.

Shared by tests/unit/api/test_api_constraints.py and the helm-backed comparison in
tests/integration/test_api_constraints_helm.py (tests/ is on the path through its conftest).
"""

from __future__ import annotations

from chartguard.api.constraints import check_version_constraint

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

# Masterminds coerces a leading zero away (01 -> 1); we refuse it, at validation, with a message
STRICTER_THAN_HELM = {"01.2.3", "1.02"}


def api_accepts(text: str) -> bool:
    try:
        check_version_constraint(text)
    except ValueError as err:
        return "invalid version constraint" not in str(err)  # a refusal must say so
    return True

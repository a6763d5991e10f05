"""Version selection as Helm/Flux do it: Masterminds v3 constraints over registry tags."""

from __future__ import annotations

import time

import pytest

from chartguard.oci import (
    InvalidConstraintError,
    VersionNotFoundError,
    is_exact_version,
    select_version,
    tag_for_version,
)

TAGS = [
    "0.0.3", "0.0.4", "0.1.0", "0.1.5", "0.2.0",
    "1.0.0", "1.2.0", "1.2.3", "1.2.10", "1.3.0", "1.10.0",
    "2.0.0-rc.1", "2.0.0-alpha", "2.0.0-alpha.10", "2.0.0-alpha.2", "2.0.0",
    "2.1.0", "3.0.0-beta.1",
    "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig",
    "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "latest", "1.2", "01.2.3", "1.2.3.4",
]


@pytest.mark.parametrize(("constraint", "expected"), [
    # any version: highest release; prereleases excluded
    ("*", "2.1.0"),
    ("", "2.1.0"),
    ("x", "2.1.0"),
    (">=0.0.0", "2.1.0"),
    # exact and '=' forms
    ("1.2.3", "1.2.3"),
    ("=1.2.3", "1.2.3"),
    ("v1.2.3", "1.2.3"),
    # ranges, space- or comma-separated
    (">=1.2.0 <2.0.0", "1.10.0"),
    (">=1.2, <2", "1.10.0"),
    (">= 1.2.0, < 1.3", "1.2.10"),
    ("=>1.2.0 =<1.2.3", "1.2.3"),
    ("> 1.2.3 < 1.3.0", "1.2.10"),
    # dirty comparisons (Masterminds): >1 means 2.0.0+, >1.2 means 1.3.0+, <=1.2 includes 1.2.x
    (">1 <3", "2.1.0"),
    (">1.2 <1.10", "1.3.0"),
    ("<=1.2", "1.2.10"),
    ("<1.2", "1.0.0"),
    ("<2", "1.10.0"),
    # caret
    ("^1.2", "1.10.0"),
    ("^1.2.3", "1.10.0"),
    ("^1", "1.10.0"),
    ("^0.1", "0.1.5"),
    ("^0.1.0", "0.1.5"),
    ("^0.0.3", "0.0.3"),
    ("^0.0", "0.0.4"),
    ("^0", "0.2.0"),
    # tilde
    ("~1.2.3", "1.2.10"),
    ("~1.2", "1.2.10"),
    ("~1", "1.10.0"),
    ("~>1.2.0", "1.2.10"),
    ("~0.1.1", "0.1.5"),
    # wildcards
    ("1.2.x", "1.2.10"),
    ("1.2.*", "1.2.10"),
    ("1.x", "1.10.0"),
    ("1.X.x", "1.10.0"),
    ("1", "1.10.0"),
    ("1.2", "1.2.10"),
    # alternatives
    ("<1 || >=2", "2.1.0"),
    ("1.2.x || 0.1.x", "1.2.10"),
    ("^0.1 || ~1.3", "1.3.0"),
    ("9.9.9 || 1.0.0", "1.0.0"),
    # not-equal
    ("!=2.1.0", "2.0.0"),
    ("!=2.x, <3", "1.10.0"),
    ("!=1.10.0, ^1", "1.3.0"),
    # hyphen ranges
    ("1.2 - 1.3", "1.3.0"),
    ("1.0.0 - 1.2.3", "1.2.3"),
    # prereleases only when the constraint names one; then ordered by semver 2.0
    # (Masterminds, unlike npm, then admits prereleases of any version, not just 2.0.0's)
    (">=2.0.0-0", "3.0.0-beta.1"),
    (">=2.0.0-0 <2.0.0-z", "2.0.0-rc.1"),
    (">=2.0.0-alpha <2.0.0-alpha.3", "2.0.0-alpha.2"),
    ("~2.0.0-alpha", "2.0.0"),
    ("2.0.0-alpha.10", "2.0.0-alpha.10"),
    (">=3.0.0-0", "3.0.0-beta.1"),
    ("^3.0.0-alpha", "3.0.0-beta.1"),
])
def test_select_version_matches_masterminds(constraint: str, expected: str) -> None:
    assert select_version(TAGS, constraint) == expected


def test_prereleases_are_never_picked_by_a_release_constraint() -> None:
    tags = ["1.0.0", "1.1.0-rc.1", "2.0.0-beta"]
    assert select_version(tags, "*") == "1.0.0"
    assert select_version(tags, ">=1.0.0") == "1.0.0"
    assert select_version(tags, "^1") == "1.0.0"
    with pytest.raises(VersionNotFoundError):
        select_version(tags, ">=2.0.0")


def test_underscore_in_tags_means_plus() -> None:
    tags = ["1.0.0", "1.0.1_build.7", "1.0.1-rc.1_sha.abc"]
    assert select_version(tags, "^1") == "1.0.1_build.7"
    assert select_version(tags, ">=1.0.1-0 <1.0.1-z") == "1.0.1-rc.1_sha.abc"
    assert select_version(tags, "=1.0.1+build.7") == "1.0.1_build.7"


@pytest.mark.parametrize(("constraint", "expected"), [
    # Masterminds 3.4 (Helm 4.1.4, measured with `helm pull`): a prerelease named anywhere in
    # an "and" group admits prereleases for the whole group...
    (">=1.9.0-0 <2.0.0", "2.0.0-rc.1"),
    (">=1.0.0 <2.0.0-z", "2.0.0-rc.1"),
    # ...and only for that group of an "or"
    ("1.x || >=2.0.0-0 <3", "2.0.0-rc.1"),
    ("1.x || >=2.0.0 <3", "1.8.0"),
])
def test_a_prerelease_named_in_a_group_admits_prereleases_for_that_group(
        constraint: str, expected: str) -> None:
    assert select_version(["1.8.0", "1.9.0-rc.1", "2.0.0-rc.1"], constraint) == expected


def test_build_metadata_ties_resolve_independently_of_listing_order() -> None:
    tags = ["1.0.0_b", "1.0.0_a", "1.0.0"]
    assert select_version(tags, "*") == select_version(list(reversed(tags)), "*") == "1.0.0_b"


def test_leading_v_tags_are_versions_as_flux_reads_them() -> None:
    assert select_version(["v1.0.0", "v1.2.0", "0.9.0"], "^1") == "v1.2.0"


@pytest.mark.parametrize("tag", [
    "latest", "1.2", "01.2.3", "1.2.3.4", "1.2.3-01", "main", "sha256-abc.sig", "1.2.3+", "",
])
def test_non_semver_tags_are_ignored(tag: str) -> None:
    with pytest.raises(VersionNotFoundError):
        select_version([tag], "*")


def test_no_match_names_the_constraint_and_what_to_do() -> None:
    with pytest.raises(VersionNotFoundError, match=r"'>=5\.0\.0'.*push"):
        select_version(TAGS, ">=5.0.0")


@pytest.mark.parametrize("constraint", [
    "foo", ">=", ">>1", "1.2.3foo", ">=1.0.0 ,, 2", "~=1.0", "1.0.0 -", "=<>1", "^", "1..2",
    ">=1.0.0 && <2", "*" * 2000,
])
def test_malformed_constraints_are_refused(constraint: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidConstraintError, match="not a semver version or constraint"):
        select_version(TAGS, constraint)
    assert time.monotonic() - started < 1.0  # no regex blow-up


@pytest.mark.parametrize(("text", "exact"), [
    ("1.2.3", True), ("v1.2.3", True), ("1.2.3-rc.1", True), ("1.2.3+build.1", True),
    (" 1.2.3 ", True), ("1.2", False), ("1.2.x", False), ("*", False), (">=1.2.3", False),
    ("=1.2.3", False), ("^1.2.3", False), ("01.2.3", False), ("", False),
])
def test_is_exact_version(text: str, exact: bool) -> None:
    assert is_exact_version(text) is exact


def test_tag_for_version_stores_plus_as_underscore_like_helm() -> None:
    assert tag_for_version("1.0.0+build.1") == "1.0.0_build.1"
    assert tag_for_version("1.0.0") == "1.0.0"

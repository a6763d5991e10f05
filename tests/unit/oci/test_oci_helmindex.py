"""A Helm repository's index.yaml read within bounds, and version selection in it as
source-controller's ``getChartVersion`` does it (Masterminds constraints, ``*`` = latest stable)."""

from __future__ import annotations

import json

import pytest
import yaml

from chartguard.oci import (
    InvalidConstraintError,
    InvalidIndexError,
    SizeLimitExceededError,
    VersionNotFoundError,
    parse_index,
    select_entry,
)
from chartguard.oci.helmindex import MAX_INDEX_DEPTH, MAX_INDEX_NODES, digest_is_valid

DIGEST = "2c69053d764f88998110a45c6e9c6c8c77e86406e5268fac4c5db2381acac06c"


def version(v: str, created: str = "2026-01-01T00:00:00Z", **extra: object) -> object:
    return {"apiVersion": "v2", "name": "demo", "version": v, "created": created,
            "urls": [f"demo-{v}.tgz"], "digest": DIGEST, **extra}


def index(*versions: object, name: str = "demo") -> bytes:
    """An index as ``helm repo index`` writes it (YAML, block style)."""
    return yaml.safe_dump({"apiVersion": "v1", "entries": {name: list(versions)}}).encode()


def pick(data: bytes, constraint: str) -> str:
    return select_entry(parse_index(data), "demo", constraint, "the index").version


def test_a_helm_written_index_is_read_newest_first_with_its_digests() -> None:
    parsed = parse_index(index(version("0.1.0"), version("0.10.0"), version("0.2.0")))
    entries = parsed.entries["demo"]
    assert [e.version for e in entries] == ["0.10.0", "0.2.0", "0.1.0"]
    assert entries[0].urls == ("demo-0.10.0.tgz",)
    assert entries[0].digest == f"sha256:{DIGEST}"
    assert entries[0].created == "2026-01-01T00:00:00Z"  # timestamps stay text
    assert parsed.versions == 3


def test_a_json_index_is_read_too() -> None:
    doc = {"apiVersion": "v1", "entries": {"demo": [{"name": "demo", "version": "1.0.0",
                                                     "urls": ["https://x/demo-1.0.0.tgz"]}]}}
    assert pick(json.dumps(doc).encode(), "*") == "1.0.0"


@pytest.mark.parametrize(("item", "why"), [
    ({"version": "1.0.0", "urls": []}, "no name"),
    ({"name": "../demo", "version": "1.0.0"}, "a path in the name"),
    ({"name": "demo", "version": 1.0}, "a version that is no string"),
    ({"name": "demo", "version": "1.0.0", "urls": "x.tgz"}, "urls not a list"),
    ("just text", "not a mapping"),
])
def test_invalid_chart_versions_are_dropped_not_fatal(item: object, why: str) -> None:
    data = index(version("1.0.0"), item)
    parsed = parse_index(data)
    assert [e.version for e in parsed.entries["demo"]] == ["1.0.0"], why
    assert parsed.dropped == 1


@pytest.mark.parametrize(("data", "message"), [
    (b"", "is empty"),
    (b"   \n", "is empty"),
    (b"- a list\n", "not a YAML mapping"),
    (b"entries: {}\n", "has no apiVersion"),
    (b"apiVersion: v1\nentries: [1, 2]\n", "entries is not a mapping"),
    (b"apiVersion: v1\nentries: {demo: [\n", "is not valid YAML"),
    (b"apiVersion: v1\nentries: !!python/object:os.system {}\n", "is not valid YAML"),
])
def test_what_is_not_an_index_is_refused_saying_why(data: bytes, message: str) -> None:
    with pytest.raises(InvalidIndexError, match=message):
        parse_index(data)


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    lines = ["apiVersion: v1", 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for n in range(1, 12):  # 10**12 values once expanded, a few hundred bytes of YAML
        refs = ", ".join([f"*a{n - 1}"] * 10)
        lines.append(f"a{n}: &a{n} [{refs}]")
    with pytest.raises(InvalidIndexError, match=f"more than {MAX_INDEX_NODES:,} values"):
        parse_index("\n".join(lines).encode())


def test_a_few_aliases_are_fine() -> None:
    data = (b"apiVersion: v1\nentries:\n  demo:\n  - &v {name: demo, version: 1.0.0, "
            b"urls: [a.tgz]}\n  other:\n  - {name: other, version: 2.0.0, urls: [b.tgz]}\n"
            b"aliased: *v\n")
    assert pick(data, "*") == "1.0.0"


def test_deep_nesting_is_refused() -> None:
    data = b"apiVersion: v1\nx: " + b"[" * (MAX_INDEX_DEPTH + 1) + b"]" * (MAX_INDEX_DEPTH + 1)
    with pytest.raises(InvalidIndexError, match=f"deeper than {MAX_INDEX_DEPTH} levels"):
        parse_index(data)


def test_an_index_over_the_size_cap_is_refused() -> None:
    from chartguard.oci.helmindex import MAX_INDEX_BYTES

    with pytest.raises(SizeLimitExceededError, match=f"limit of {MAX_INDEX_BYTES} bytes"):
        parse_index(b"#" * (MAX_INDEX_BYTES + 1))


# -- version selection ---------------------------------------------------------------------

RELEASES = index(version("1.0.0"), version("1.2.0"), version("1.10.0"), version("2.0.0-rc.1"),
                 version("v2.1.0-beta.2"), version("not-semver"))


@pytest.mark.parametrize(("constraint", "expected"), [
    ("", "1.10.0"),  # latest stable, as Flux reads an empty version
    ("*", "1.10.0"),  # prereleases only when the constraint names one (Masterminds 3.4)
    (">=1.0.0", "1.10.0"),
    ("~1.2", "1.2.0"),
    ("^1", "1.10.0"),
    ("1.0.0", "1.0.0"),
    (">=2.0.0-0", "v2.1.0-beta.2"),  # a leading v is allowed (fluxcd/pkg ParseVersion)
    (">=2.0.0-0 <2.1.0-0", "2.0.0-rc.1"),
    ("not-semver", "not-semver"),  # an exact match of the entry's text wins first
])
def test_the_highest_version_the_constraint_allows(constraint: str, expected: str) -> None:
    assert pick(RELEASES, constraint) == expected


def test_equal_versions_go_to_the_one_created_last() -> None:
    data = index(version("1.0.0+a", created="2026-01-02T00:00:00Z"),
                 version("1.0.0+b", created="2026-01-03T00:00:00Z"),
                 version("1.0.0+c", created="2026-01-01T00:00:00Z"))
    assert pick(data, "1.0.x") == "1.0.0+b"


def test_nothing_matching_names_the_chart_and_the_constraint() -> None:
    with pytest.raises(VersionNotFoundError,
                       match=r"no 'demo' chart with version matching '>=3' found in the index"):
        pick(RELEASES, ">=3")
    with pytest.raises(VersionNotFoundError, match="has no chart 'nginx'"):
        select_entry(parse_index(RELEASES), "nginx", "*", "the index")
    with pytest.raises(InvalidConstraintError):
        pick(RELEASES, ">=1 <<2")


def test_digests_must_be_sha256() -> None:
    assert digest_is_valid(f"sha256:{DIGEST}")
    assert not digest_is_valid("sha256:abc")
    assert not digest_is_valid(f"md5:{DIGEST}")
    entry = parse_index(index(version("1.0.0", digest="sha256:" + DIGEST.upper()))).entries
    assert entry["demo"][0].digest == f"sha256:{DIGEST}"  # prefix and case as sha256sum writes


def test_only_what_is_read_is_built_and_it_equals_what_the_safe_loader_gives() -> None:
    from chartguard.oci.helmindex import load_index_document

    data = (b"apiVersion: v1\n"
            b"generated: 2026-01-01T00:00:00Z\n"
            b"serverInfo: {contextPath: /x, extra: [1, 2, {a: b}]}\n"
            b"entries:\n"
            b"  demo:\n"
            b"  - name: demo\n"
            b"    description: &v '1.0.0'\n"
            b"    version: *v\n"
            b"    created: 2026-01-02T00:00:00.5Z\n"
            b"    urls: [\"demo-1.0.0.tgz\", 'https://mirror/demo-1.0.0.tgz']\n"
            b"    maintainers: [{name: x}]\n"
            b"    digest: \"abc\"\n"
            b"  other: []\n")
    doc = load_index_document(data, "x")
    reference = yaml.safe_load(data)
    assert doc == {
        "apiVersion": "v1",
        "entries": {"demo": [{"name": "demo", "version": "1.0.0",
                              "created": "2026-01-02T00:00:00.5Z",
                              "urls": reference["entries"]["demo"][0]["urls"],
                              "digest": "abc"}],
                    "other": []}}
    # a second document is not read (sigs.k8s.io/yaml reads the first)
    assert load_index_document(b"apiVersion: v1\n---\n- x\n", "x") == {"apiVersion": "v1"}


def test_undefined_aliases_and_complex_keys_are_refused() -> None:
    with pytest.raises(InvalidIndexError, match="undefined alias 'nothing'"):
        parse_index(b"apiVersion: v1\nentries: *nothing\n")
    with pytest.raises(InvalidIndexError, match="key that is not a scalar"):
        parse_index(b"apiVersion: v1\nentries:\n  ? [a, b]\n  : []\n")

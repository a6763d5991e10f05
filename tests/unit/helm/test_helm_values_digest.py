"""values_digest is helm-controller's configDigest, byte for byte: sha256 of the values as
go-yaml v2 writes them with every mapping sorted (fluxcd/pkg chartutil.DigestValues)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from chartguard.helm._goyaml import encode_values
from chartguard.helm.release import values_digest

DATA = Path(__file__).parent / "data"
# Written by the Go program in data/values-digest-go-vectors.go.txt: the encoding helm-controller
# v1.6 uses, run on 366 documents made to reach every scalar style, folding, key form and number
# format of the encoder (strings that read back as booleans, nulls, numbers, timestamps or base 60
# floats; indicators; quotes; control, C1, BOM and 4-byte characters; line breaks of each kind;
# long lines; keys over 128 bytes; empty and nested collections; float64 rounding of integers).
VECTORS: list[dict[str, str]] = json.loads(
    (DATA / "values-digest-go-vectors.json").read_text())
EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("vector", VECTORS, ids=range(len(VECTORS)))
def test_matches_the_go_encoder(vector: dict[str, str]) -> None:
    values = json.loads(vector["json"])
    assert encode_values(values).decode("utf-8") == vector["yaml"]
    assert values_digest(values) == vector["digest"]


# The test table of fluxcd/pkg chartutil/digest_test.go (outputs of the Go code itself).
@pytest.mark.parametrize(("values", "digest"), [
    ({}, EMPTY),
    ({"replicas": 3, "image": {"tag": "latest", "repository": "nginx"},
      "ports": [{"protocol": "TCP", "port": 8080}, {"port": 9090, "protocol": "UDP"}]},
     "sha256:fcdc2b0de1581a3633ada4afee3f918f6eaa5b5ab38c3fef03d5b48d3f85d9f6"),
    ({"image": {"repository": "nginx", "tag": "latest"},
      "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 9090, "protocol": "UDP"}],
      "replicas": 3},
     "sha256:fcdc2b0de1581a3633ada4afee3f918f6eaa5b5ab38c3fef03d5b48d3f85d9f6"),
    ({"replicas": 3, "test": {"632bd80235a05f4192aefade": "value1",
                              "632bd80ddf416cf32fd50679": "value2",
                              "632bd817c559818a52307da2": "value3",
                              "632bd82398e71231a98004b6": "value4"}},
     "sha256:8a980fcbeadd6f05818f07e8aec14070c22250ca3d96af1fcd5f93b3e85b4d70"),
])
def test_fluxs_own_table(values: dict[str, Any], digest: str) -> None:
    assert values_digest(values) == digest


def test_a_value_derived_by_hand_from_go_yamls_rules() -> None:
    values = {"b": "yes", "c": 1e-05,
              "a": {"multi": "x\ny\n", "list": [1.5, 2.0, "2024-01-15"], "empty": ""}}
    expected = (
        "a:\n"                   # keys sorted at every level
        "  empty: \"\"\n"        # "" written plain would read back as null: double-quoted
        "  list:\n"              # a sequence in a mapping is not indented
        "  - 1.5\n"
        "  - 2\n"                # a float64 holding an integer prints as an integer
        "  - \"2024-01-15\"\n"   # a plain date would read back as a timestamp
        "  multi: |\n"           # a newline: literal block; one final newline, no chomp sign
        "    x\n"                # indented one step past its key
        "    y\n"
        "b: \"yes\"\n"           # YAML 1.1 reads a plain yes as true
        "c: 1e-05\n"             # Go's %g (shortest) writes an exponent below 1e-4
    )
    assert encode_values(values).decode() == expected
    assert values_digest(values) == "sha256:" + hashlib.sha256(expected.encode()).hexdigest()
    # and the Go program agrees (run once when this test was written)
    assert values_digest(values) == (
        "sha256:007c42e3efaf8cf61a0eaf7d188ace82a489beac4298a020b2018ddbaf1481ca")


def test_frozen_values_digest_like_plain_ones() -> None:
    plain = {"a": [1, {"b": None}], "c": True}
    frozen = MappingProxyType({"a": (1, MappingProxyType({"b": None})), "c": True})
    assert values_digest(frozen) == values_digest(plain)


def test_integers_go_through_float64_as_in_helm_controller() -> None:
    # Go decodes JSON numbers as float64: 2**53 + 1 is 2**53 there
    assert values_digest({"n": 2 ** 53 + 1}) == values_digest({"n": 2 ** 53})
    assert values_digest({"n": 3}) == values_digest({"n": 3.0})
    assert encode_values({"x": 10 ** 400}) == b"x: .inf\n"


def test_non_string_keys_are_the_strings_a_yaml_to_json_conversion_makes() -> None:
    assert encode_values({2: "a", True: "b", None: "c"}) == b'"2": a\n"null": c\n"true": b\n'

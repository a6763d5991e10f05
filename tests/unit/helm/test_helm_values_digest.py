"""values_digest: one name for a set of values, as Go's encoding/json writes them, so the values
a reconcile composes and the config helm stored (read back through JSON) compare equal."""

from __future__ import annotations

import hashlib

import pytest

from chartguard.helm.release import go_json, values_digest


def test_digest_is_sha256_of_sorted_compact_json() -> None:
    values = {"replicas": 3, "image": {"tag": "latest", "repository": "nginx"}}
    canonical = '{"image":{"repository":"nginx","tag":"latest"},"replicas":3}'
    assert go_json(values) == canonical
    assert values_digest(values) == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def test_key_order_does_not_change_the_digest_but_values_do() -> None:
    a = {"x": {"b": 1, "a": [1, {"q": 2, "p": 1}]}, "y": None}
    b = {"y": None, "x": {"a": [1, {"p": 1, "q": 2}], "b": 1}}
    assert values_digest(a) == values_digest(b)
    assert values_digest(a) != values_digest({**a, "y": False})
    assert values_digest(a) != values_digest({"x": {"b": 1, "a": [{"q": 2, "p": 1}, 1]},
                                              "y": None})


def test_html_characters_and_line_separators_are_escaped_as_go_does() -> None:
    assert go_json({"k": "<a href='x'>&</a>"}) == \
        '{"k":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"}'
    assert go_json({"k": "a\u2028b\u2029c"}) == '{"k":"a\\u2028b\\u2029c"}'
    assert go_json({"k": "tab\there\nnl\x01\x7f\"q\\"}) == \
        '{"k":"tab\\there\\nnl\\u0001\x7f\\"q\\\\"}'
    assert go_json({"k": "über ✓"}) == '{"k":"über ✓"}'


@pytest.mark.parametrize(("number", "text"), [
    (1, "1"), (1.0, "1"), (-0.0, "-0"), (0, "0"), (2.5, "2.5"), (1e20, "100000000000000000000"),
    (1e21, "1e+21"), (1.5e300, "1.5e+300"), (0.000001, "0.000001"), (1e-7, "1e-7"),
    (1.25e-10, "1.25e-10"), (2**53 + 1, "9007199254740992"), (0.1, "0.1"), (True, "true"),
])
def test_numbers_are_float64_as_helm_reads_them_back(number: float, text: str) -> None:
    assert go_json({"n": number}) == f'{{"n":{text}}}'


def test_an_integer_and_the_same_float_name_the_same_values() -> None:
    assert values_digest({"port": 8080}) == values_digest({"port": 8080.0})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 10**400, b"bytes", {1: "a"}])
def test_what_json_cannot_hold_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="values"):
        values_digest({"k": bad})


def test_deep_values_are_encoded_without_recursion() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    assert go_json(deep).count("{") == 5001

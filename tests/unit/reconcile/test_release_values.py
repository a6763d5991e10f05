"""A HelmRelease's values composed as helm-controller composes them: valuesFrom in order,
targetPath with Helm's --set syntax, optional references, then spec.values; bounded YAML;
no Secret content in any message."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from chartguard.api import HelmRelease
from chartguard.api import conditions as c
from chartguard.helm.release import values_digest
from chartguard.reconcile._values_yaml import MAX_VALUES_BYTES, MAX_VALUES_DEPTH
from chartguard.reconcile.outcome import StepFailedError
from chartguard.reconcile.seams import (
    ConfigMapNotFoundError,
    SecretNotFoundError,
    SecretUnreadableError,
)
from chartguard.reconcile.values import (
    VALUES_ERROR,
    compose_values,
    replace_path_literal_value,
    replace_path_value,
    secret_strings,
)

NS = "apps"


class Secrets:
    def __init__(self, data: dict[str, dict[str, bytes]] | None = None) -> None:
        self.data = data or {}
        self.reads: list[tuple[str, str]] = []

    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        self.reads.append((namespace, name))
        if name == "forbidden":
            raise SecretUnreadableError("secrets \"forbidden\" is forbidden: 403")
        try:
            return self.data[name]
        except KeyError:
            raise SecretNotFoundError(name) from None


class ConfigMaps:
    def __init__(self, data: dict[str, dict[str, str]] | None = None) -> None:
        self.data = data or {}
        self.reads: list[tuple[str, str]] = []

    def get(self, namespace: str, name: str) -> Mapping[str, str]:
        self.reads.append((namespace, name))
        try:
            return self.data[name]
        except KeyError:
            raise ConfigMapNotFoundError(name) from None


def release(values_from: list[dict[str, Any]], values: dict[str, Any] | None = None
            ) -> HelmRelease:
    spec: dict[str, Any] = {
        "interval": "5m", "valuesFrom": values_from,
        "chart": {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository",
                                                             "name": "podinfo"}}}}
    if values is not None:
        spec["values"] = values
    return HelmRelease.from_object({"apiVersion": "helm.toolkit.fluxcd.io/v2",
                                    "kind": "HelmRelease",
                                    "metadata": {"name": "podinfo", "namespace": NS},
                                    "spec": spec})


def compose(values_from: list[dict[str, Any]], values: dict[str, Any] | None = None, *,
            secrets: dict[str, dict[str, bytes]] | None = None,
            configmaps: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    composed = compose_values(release(values_from, values), Secrets(secrets),
                              ConfigMaps(configmaps))
    return dict(composed.values)


def failure(values_from: list[dict[str, Any]], **worlds: Any) -> StepFailedError:
    with pytest.raises(StepFailedError) as info:
        compose(values_from, **worlds)
    err = info.value
    assert (err.condition, err.status, err.reason) == (c.READY, c.FALSE, VALUES_ERROR)
    return err


def test_flux_golden_valuesfrom_example_composes_the_same_values() -> None:
    # helm-controller's config/testdata/valuesfrom: its golden.txt is this result
    configmap = {
        "resources.limits": "resources:\n  limits:\n    cpu: 200m\n    memory: 128Mi\n",
        "resources.requests": "resources:\n  requests:\n    cpu: 100m\n    memory: 64Mi\n",
        "resources.limits.cpu": "400m",
        "list.example": "{a,b,c}",
        "list.example.overwrite": "d",
        "podAnnotation.example.value": "demo",
    }
    cm = "valuesfrom-config"
    got = compose(
        [{"kind": "ConfigMap", "name": cm, "valuesKey": "resources.limits"},
         {"kind": "ConfigMap", "name": cm, "valuesKey": "resources.requests"},
         {"kind": "ConfigMap", "name": cm, "valuesKey": "resources.limits.cpu",
          "targetPath": "resources.limits.cpu"},
         {"kind": "ConfigMap", "name": cm, "valuesKey": "list.example",
          "targetPath": "list.example"},
         {"kind": "ConfigMap", "name": cm, "valuesKey": "list.example.overwrite",
          "targetPath": "list.example[2]"},
         {"kind": "ConfigMap", "name": cm, "valuesKey": "podAnnotation.example.value",
          "targetPath": "podAnnotations.some\\.k8s\\.annotation\\/env"},
         {"kind": "Secret", "name": "valuesfrom-secret"}],
        {"replicaCount": 2},
        configmaps={cm: configmap},
        secrets={"valuesfrom-secret": {"values.yaml": b"serviceAccount:\n  enabled: true\n"}})
    assert got == {
        "list": {"example": ["a", "b", "d"]},
        "podAnnotations": {"some.k8s.annotation/env": "demo"},
        "replicaCount": 2,
        "resources": {"limits": {"cpu": "400m", "memory": "128Mi"},
                      "requests": {"cpu": "100m", "memory": "64Mi"}},
        "serviceAccount": {"enabled": True},
    }


def test_later_references_win_maps_merge_deeply_and_spec_values_come_last() -> None:
    got = compose(
        [{"kind": "ConfigMap", "name": "values"}, {"kind": "Secret", "name": "values"}],
        {"other": "values", "nested": "inline"},
        configmaps={"values": {"values.yaml": "flat: value\nnested:\n  configuration: value\n"
                                              "deep: {a: 1, b: 1}\n"}},
        secrets={"values": {"values.yaml": b"flat:\n  nested: value\ndeep: {b: 2}\n"}})
    assert got == {"flat": {"nested": "value"}, "nested": "inline", "other": "values",
                   "deep": {"a": 1, "b": 2}}


def test_target_path_inside_spec_values_overrides_them_as_in_flux() -> None:
    # fluxcd/pkg chartutil "target path precedence over all"
    got = compose(
        [{"kind": "Secret", "name": "values", "valuesKey": "key",
          "targetPath": "nested.configuration[0]"},
         {"kind": "ConfigMap", "name": "values"}],
        {"nested": {"configuration": ["list", "item", "option"]}},
        configmaps={"values": {"values.yaml": "flat: value\nnested:\n  configuration:\n"
                                              "  - one\n  - two\n  - three\n"}},
        secrets={"values": {"key": b"value"}})
    assert got == {"flat": "value", "nested": {"configuration": ["value", "item", "option"]}}


def test_target_path_sets_a_list_item_over_earlier_references() -> None:
    got = compose(
        [{"kind": "ConfigMap", "name": "values"},
         {"kind": "Secret", "name": "values", "targetPath": "nested.configuration[1]"}],
        {"other": "values"},
        configmaps={"values": {"values.yaml": "flat: value\nnested:\n  configuration:\n"
                                              "  - list\n  - item\n  - option\n"}},
        secrets={"values": {"values.yaml": b"foo"}})
    assert got == {"flat": "value", "nested": {"configuration": ["list", "foo", "option"]},
                   "other": "values"}


def test_composing_does_not_change_the_release_model() -> None:
    hr = release([{"kind": "Secret", "name": "v", "valuesKey": "k", "targetPath": "a.b[0]"}],
                  {"a": {"b": ["inline"]}})
    compose_values(hr, Secrets({"v": {"k": b"set"}}), ConfigMaps())
    assert hr.spec.values["a"]["b"] == ("inline",)


@pytest.mark.parametrize(("path", "value", "want"), [
    ("outer.inner", "value", {"outer": {"inner": "value"}}),
    ("name", "{a,b,c}", {"name": ["a", "b", "c"]}),
    ("name", "value1\\,value2", {"name": "value1,value2"}),
    ("merge.at.specific.path", "true", {"merge": {"at": {"specific": {"path": True}}}}),
    ("merge.at.specific.path", '"true"', {"merge": {"at": {"specific": {"path": "true"}}}}),
    ("merge.at.specific.path", "'42'", {"merge": {"at": {"specific": {"path": "42"}}}}),
    ("port", "8080", {"port": 8080}),
    ("port", "08080", {"port": "08080"}),
    ("ratio", "1.5", {"ratio": "1.5"}),
    ("nothing", "null", {"nothing": None}),
    ("merge.at[2]", "value", {"merge": {"at": [None, None, "value"]}}),
    ("a[0][1]", "x", {"a": [[None, "x"]]}),
    ("a[1].b", "x", {"a": [None, {"b": "x"}]}),
    ("nodeSelector.kubernetes\\.io/role", "master",
     {"nodeSelector": {"kubernetes.io/role": "master"}}),
    ("empty", "", {"empty": ""}),
    ("pem", "-----BEGIN-----\nAB=\n-----END-----\n",
     {"pem": "-----BEGIN-----\nAB=\n-----END-----\n"}),
])
def test_replace_path_value_follows_helm_set_syntax(path: str, value: str,
                                                    want: dict[str, Any]) -> None:
    # fluxcd/pkg chartutil TestReplacePathValue, and Helm's --set typing
    values: dict[str, Any] = {}
    replace_path_value(values, path, value)
    assert values == want


def test_target_path_into_a_scalar_is_refused_naming_the_path() -> None:
    err = failure([{"kind": "ConfigMap", "name": "v"},
                   {"kind": "ConfigMap", "name": "v", "valuesKey": "k",
                    "targetPath": "image.tag"}],
                  configmaps={"v": {"values.yaml": "image: nginx\n", "k": "1.0"}})
    assert "targetPath 'image.tag'" in err.message
    assert "'image' is a string, not a map" in err.message
    assert not err.stalled


def test_optional_references_that_are_missing_are_skipped() -> None:
    got = compose(
        [{"kind": "Secret", "name": "absent", "optional": True},
         {"kind": "ConfigMap", "name": "absent", "optional": True},
         {"kind": "ConfigMap", "name": "present", "valuesKey": "nokey", "optional": True},
         {"kind": "ConfigMap", "name": "present"}],
        configmaps={"present": {"values.yaml": "a: 1"}})
    assert got == {"a": 1}


@pytest.mark.parametrize(("kind", "plural"), [("Secret", "secrets"),
                                              ("ConfigMap", "configmaps")])
def test_a_required_reference_that_is_missing_is_retried_naming_it(kind: str,
                                                                   plural: str) -> None:
    err = failure([{"kind": kind, "name": "app-values"}])
    assert err.message == (f"could not resolve {kind} chart values reference "
                           f"'{NS}/app-values' with key 'values.yaml': "
                           f'{plural} "app-values" not found')
    assert not err.stalled


def test_a_required_key_that_is_missing_is_retried_naming_it() -> None:
    err = failure([{"kind": "Secret", "name": "creds", "valuesKey": "values-prod.yaml"}],
                  secrets={"creds": {"values.yaml": b"password: hunter2"}})
    assert err.message == ("could not resolve Secret chart values reference "
                           f"'{NS}/creds' with key 'values-prod.yaml': key not found")
    assert "hunter2" not in err.message


def test_an_unreadable_secret_is_retried_even_when_optional() -> None:
    err = failure([{"kind": "Secret", "name": "forbidden", "optional": True}])
    assert "could not resolve optional Secret chart values reference" in err.message
    assert "403" in err.message
    assert not err.stalled


@pytest.mark.parametrize("document", [
    b"password: hunter2\n  bad: indent: here\n",      # not YAML
    b"- hunter2\n",                                   # a list
    b"hunter2",                                       # a string
    b"password: !!binary aHVudGVyMg==\n",              # not a JSON value
    b"\xffhunter2",                                   # not UTF-8
    b"hunter2: .inf\n",                               # not a JSON number
    b"hunter2: &a [*a]\n",                            # recursive
    b"? [hunter2]\n: 1\n",                            # a key that is not a string
])
def test_a_secret_that_is_not_a_values_map_is_refused_without_its_content(
        document: bytes) -> None:
    err = failure([{"kind": "Secret", "name": "creds"}],
                  secrets={"creds": {"values.yaml": document}})
    assert err.message.startswith(f"could not resolve Secret chart values reference "
                                  f"'{NS}/creds' with key 'values.yaml': failed to read "
                                  "values data: the document")
    assert "hunter2" not in err.message
    assert "aHVudGVy" not in err.message


def test_a_configmap_that_is_not_yaml_says_where_and_what() -> None:
    err = failure([{"kind": "ConfigMap", "name": "v"}],
                  configmaps={"v": {"values.yaml": "a: [1\n"}})
    assert "not valid YAML at line 2, column 1: did not find expected ',' or ']'" \
        in err.message


def test_a_document_that_is_a_list_says_so() -> None:
    err = failure([{"kind": "ConfigMap", "name": "v"}],
                  configmaps={"v": {"values.yaml": "- a\n- b\n"}})
    assert err.message.endswith("the document is a list, not a map of values "
                                "(key: value lines)")


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    start = time.monotonic()
    err = failure([{"kind": "ConfigMap", "name": "bomb"}],
                  configmaps={"bomb": {"values.yaml": "\n".join(lines)}})
    assert "expands to more than 1000000 values (aliases included)" in err.message
    assert time.monotonic() - start < 5


def test_aliases_within_bounds_expand_into_separate_copies() -> None:
    got = compose(
        [{"kind": "ConfigMap", "name": "v"},
         {"kind": "ConfigMap", "name": "v", "valuesKey": "tag", "targetPath": "a.list[0]"}],
        configmaps={"v": {"values.yaml": "a: {list: &l [1, 2]}\nb: {list: *l}\n"
                                         "c: {<<: {p: 1}, q: 2}\n",
                          "tag": "changed"}})
    assert got == {"a": {"list": ["changed", 2]}, "b": {"list": [1, 2]},
                   "c": {"p": 1, "q": 2}}


def test_a_recursive_alias_and_deep_nesting_are_refused() -> None:
    err = failure([{"kind": "ConfigMap", "name": "v"}],
                  configmaps={"v": {"values.yaml": "a: &a [*a]\n"}})
    assert "alias inside the collection it names" in err.message
    deep = "a: " + "[" * (MAX_VALUES_DEPTH + 1) + "]" * (MAX_VALUES_DEPTH + 1)
    err = failure([{"kind": "ConfigMap", "name": "v"}], configmaps={"v": {"values.yaml": deep}})
    assert f"nested deeper than {MAX_VALUES_DEPTH} levels" in err.message


def test_a_document_over_the_size_cap_is_refused() -> None:
    err = failure([{"kind": "Secret", "name": "big"}],
                  secrets={"big": {"values.yaml": b"a: " + b"x" * MAX_VALUES_BYTES}})
    assert "more than the 4 MiB a values document may have" in err.message


def test_plain_scalars_resolve_as_go_yaml_does() -> None:
    got = compose([{"kind": "ConfigMap", "name": "v"}], configmaps={"v": {"values.yaml": (
        "a: y\nb: n\nc: 22:22\nd: 2024-01-01\ne: 1e3\nf: 0755\ng: 1_000\nh: ~\ny: key\n")}})
    assert got == {"a": True, "b": False, "c": "22:22", "d": "2024-01-01", "e": 1000.0,
                   "f": 493, "g": 1000, "h": None, "true": "key"}


def test_a_comma_in_a_secret_target_value_is_refused_without_the_value() -> None:
    err = failure([{"kind": "Secret", "name": "creds", "valuesKey": "password",
                    "targetPath": "auth.password"}],
                  secrets={"creds": {"password": b"hunter2,tail"}})
    assert "targetPath 'auth.password'" in err.message
    assert "escape it as '\\,'" in err.message
    assert "hunter2" not in err.message
    assert "tail" not in err.message


def test_a_comma_in_a_configmap_target_value_names_the_stray_key() -> None:
    err = failure([{"kind": "ConfigMap", "name": "v", "valuesKey": "k", "targetPath": "a"}],
                  configmaps={"v": {"k": "one,two"}})
    assert "key 'two' has no value" in err.message


@pytest.mark.parametrize("value", [
    "one,two", "a.b=c", "{x,y}", "[0]", "C:\\dir\\file", '"quoted"', "'single'", "true",
    "42", "null", "", "trailing\\", "line 1\nline 2, still [it] {all}\n",
    '{"json": [1, 2], "k": "v,w"}',
])
def test_literal_sets_the_value_verbatim_as_a_string(value: str) -> None:
    """fluxcd/pkg ReplacePathLiteralValue (helm --set-literal): no comma, bracket, brace,
    quote, escape or type parsing of the value."""
    composed = compose([{"kind": "ConfigMap", "name": "v", "valuesKey": "k",
                         "targetPath": "config.file\\.conf", "literal": True}],
                       configmaps={"v": {"k": value}})
    assert composed == {"config": {"file.conf": value}}  # the path still reads \. escapes


def test_literal_path_syntax_and_merge_into_spec_values() -> None:
    composed = compose([{"kind": "Secret", "name": "s", "valuesKey": "k",
                         "targetPath": "list[1].raw", "literal": True},
                        {"kind": "Secret", "name": "s", "valuesKey": "k",
                         "targetPath": "map.raw", "literal": True}],
                       {"map": {"keep": 1}, "other": 2},
                       secrets={"s": {"k": b"x,y=z"}})
    assert composed == {"list": [None, {"raw": "x,y=z"}], "map": {"keep": 1, "raw": "x,y=z"},
                        "other": 2}
    parsed: dict[str, Any] = {}
    replace_path_literal_value(parsed, "a", "1,b=2")
    assert parsed == {"a": "1,b=2"}
    replace_path_value(parsed, "a", "1,b=2")  # without literal: --set syntax, typed
    assert parsed == {"a": 1, "b": 2}


def test_literal_without_target_path_merges_the_yaml_as_flux_does() -> None:
    """Flux: literal has no effect without targetPath."""
    assert compose([{"kind": "ConfigMap", "name": "v", "literal": True}],
                   configmaps={"v": {"values.yaml": "a: {b: 1}"}}) == {"a": {"b": 1}}


def test_a_literal_secret_value_is_sensitive_whole() -> None:
    refs = [{"kind": "Secret", "name": "creds", "valuesKey": "k", "targetPath": "auth.token",
             "literal": True}]
    composed = compose_values(release(refs), Secrets({"creds": {"k": b"tok,en=s3cr3t"}}),
                              ConfigMaps())
    assert composed.values == {"auth": {"token": "tok,en=s3cr3t"}}
    assert "tok,en=s3cr3t" in composed.sensitive


def test_digest_follows_the_referenced_secret_and_objects_read_are_recorded() -> None:
    refs = [{"kind": "Secret", "name": "creds"}, {"kind": "ConfigMap", "name": "base"},
            {"kind": "Secret", "name": "creds", "valuesKey": "extra", "optional": True},
            {"kind": "Secret", "name": "absent", "optional": True}]
    base = {"base": {"values.yaml": "replicas: 1"}}
    secrets = Secrets({"creds": {"values.yaml": b"password: one"}})
    first = compose_values(release(refs), secrets, ConfigMaps(base))
    again = compose_values(release(refs), Secrets({"creds": {"values.yaml": b"password: one"}}),
                           ConfigMaps(base))
    changed = compose_values(release(refs), Secrets({"creds": {"values.yaml": b"password: two"}}),
                             ConfigMaps(base))
    assert first.digest == again.digest == values_digest(first.values)
    assert changed.digest != first.digest
    assert first.secrets == {(NS, "creds"), (NS, "absent")}
    assert first.configmaps == {(NS, "base")}
    assert secrets.reads == [(NS, "creds"), (NS, "absent")]  # each object read once


def test_no_references_give_spec_values_and_their_digest() -> None:
    composed = compose_values(release([], {"image": {"tag": "6.5.4"}}), Secrets(), ConfigMaps())
    assert composed.values == {"image": {"tag": "6.5.4"}}
    assert composed.digest == values_digest({"image": {"tag": "6.5.4"}})
    assert composed.secrets == composed.configmaps == frozenset()


def test_what_secrets_gave_is_listed_as_sensitive_and_nothing_else() -> None:
    refs = [{"kind": "Secret", "name": "creds"}, {"kind": "ConfigMap", "name": "base"},
            {"kind": "Secret", "name": "creds", "valuesKey": "key",
             "targetPath": "db.key"}]
    secrets = Secrets({"creds": {
        "values.yaml": b"db:\n  password: s3cr3t-pw\n  port: 543210\n  tls: true\n"
                       b"  cert: |\n    -----BEGIN-----\n    MIIBabc\n  list: [hunter2x]\n"
                       b"  on: yes\n",
        "key": b"k3y-v4lue"}})
    composed = compose_values(release(refs, {"image": {"tag": "6.5.4"}}), secrets,
                              ConfigMaps({"base": {"values.yaml": "replicas: 12345"}}))
    assert composed.values["db"]["key"] == "k3y-v4lue"
    assert composed.sensitive == {"s3cr3t-pw", "543210", "-----BEGIN-----\nMIIBabc",
                                  "-----BEGIN-----", "MIIBabc", "hunter2x", "k3y-v4lue"}


def test_a_secret_target_path_list_gives_each_item() -> None:
    refs = [{"kind": "Secret", "name": "creds", "valuesKey": "k", "targetPath": "hosts"}]
    composed = compose_values(release(refs), Secrets({"creds": {"k": b"{alpha1,beta22}"}}),
                              ConfigMaps())
    assert composed.values == {"hosts": ["alpha1", "beta22"]}
    assert {"alpha1", "beta22"} <= composed.sensitive


def test_secret_strings_are_the_composed_values_secrets_gave() -> None:
    secrets = Secrets({"vals": {"values.yaml": b"greeting: hunter2-Zq9\nport: 8080\n"}})
    rel = release([{"kind": "Secret", "name": "vals"}], {"inline": "not-a-secret"})
    assert secret_strings(rel, secrets, ConfigMaps()) == frozenset({"hunter2-Zq9", "8080"})


def test_secret_strings_when_values_do_not_compose_are_every_readable_secret_value() -> None:
    """The release is being deleted and a reference is gone: what can still be read is kept
    out of helm's uninstall message all the same."""
    secrets = Secrets({"vals": {"values.yaml": b"greeting: hunter2-Zq9\n",
                                "other": b"s3cret-token-77"}})
    rel = release([{"kind": "Secret", "name": "vals"}, {"kind": "Secret", "name": "gone"}])
    with pytest.raises(StepFailedError):
        compose_values(rel, secrets, ConfigMaps())
    found = secret_strings(rel, secrets, ConfigMaps())
    assert {"hunter2-Zq9", "s3cret-token-77"} <= found

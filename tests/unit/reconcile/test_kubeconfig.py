"""spec.kubeConfig.secretRef: the Secret's key as helm-controller picks it, and the kubeconfig
sanitised as fluxcd/pkg's runtime/client.KubeConfig does (what Flux drops is refused here)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml

from chartguard.api import HelmRelease
from chartguard.reconcile.kubeconfig import (
    KubeConfigError,
    KubeConfigOptions,
    KubeConfigSecretNotFoundError,
    TokenRequestError,
    parse_cluster_address,
    remote_kubeconfig,
    sanitize,
    workload_identity_kubeconfig,
)
from chartguard.reconcile.seams import ConfigMapNotFoundError, SecretNotFoundError

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKeysecretkeymaterial0123456789abcdef\n" \
      b"-----END EC PRIVATE KEY-----\n"
TOKEN = "tok-0123456789abcdef"
EXEC = {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws", "args": ["eks"]}


def kubeconfig(cluster: Mapping[str, Any] | None = None,
               user: Mapping[str, Any] | None = None) -> bytes:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "b",
        "clusters": [{"name": "a", "cluster": {"server": "https://a.example:6443"}},
                     {"name": "b", "cluster": dict(cluster or {
                         "server": "https://b.example:6443",
                         "certificate-authority-data": base64.b64encode(CA).decode()})}],
        "users": [{"name": "u", "user": dict(user or {"token": TOKEN})}],
        "contexts": [{"name": "a", "context": {"cluster": "a", "user": "u"}},
                     {"name": "b", "context": {"cluster": "b", "user": "u"}}],
    }
    return yaml.safe_dump(doc).encode()


class Secrets:
    def __init__(self, data: Mapping[str, bytes] | None) -> None:
        self.data = data

    def get(self, namespace: str, name: str) -> Mapping[str, bytes]:
        if self.data is None:
            raise SecretNotFoundError(name)
        return self.data


def release(ref: Mapping[str, Any]) -> HelmRelease:
    return HelmRelease.from_object({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": {"interval": "5m", "chartRef": {"kind": "HelmChart", "name": "app"},
                 "kubeConfig": {"secretRef": dict(ref)}}})


def test_the_current_context_is_used_and_only_what_flux_keeps() -> None:
    config = sanitize(kubeconfig(), KubeConfigOptions(), source="apps/kc")
    assert config.server == "https://b.example:6443"
    assert config.ca_data == CA
    assert config.token == TOKEN
    doc = config.document("apps")
    assert doc["contexts"][0]["context"] == {"cluster": "remote", "user": "remote",
                                             "namespace": "apps"}
    assert doc["clusters"][0]["cluster"] == {
        "server": "https://b.example:6443",
        "certificate-authority-data": base64.b64encode(CA).decode()}
    assert doc["users"][0]["user"] == {"token": TOKEN}
    assert TOKEN not in repr(config)
    assert TOKEN in config.sensitive


@pytest.mark.parametrize(("data", "key", "chosen"), [
    ({"value": b"A", "value.yaml": b"B"}, "", "A"),
    ({"value.yaml": b"B"}, "", "B"),
    ({"other": b"C", "value": b"A"}, "other", "C"),
])
def test_the_key_is_secretref_key_else_value_else_value_yaml(
        data: dict[str, bytes], key: str, chosen: str) -> None:
    texts = {"A": kubeconfig(), "B": kubeconfig(user={"username": "b", "password": "pw-12345"}),
             "C": kubeconfig(user={"token": "other-token-123"})}
    secret = {k: texts[v.decode()] for k, v in data.items()}
    config = remote_kubeconfig(release({"name": "kc", "key": key} if key else {"name": "kc"}),
                               Secrets(secret), KubeConfigOptions())
    expected = sanitize(texts[chosen], KubeConfigOptions())
    assert (config.token, config.username) == (expected.token, expected.username)
    assert config.source == "apps/kc"


def test_missing_secret_and_keys_are_worded_as_helm_controller() -> None:
    with pytest.raises(KubeConfigSecretNotFoundError, match="could not get KubeConfig secret "
                                                            "'apps/kc': secret not found"):
        remote_kubeconfig(release({"name": "kc"}), Secrets(None), KubeConfigOptions())
    with pytest.raises(KubeConfigError, match=re.escape(
            "KubeConfig secret 'apps/kc' does not contain a 'value' or 'value.yaml' key with "
            "data")):
        remote_kubeconfig(release({"name": "kc"}), Secrets({"x": b"1"}), KubeConfigOptions())
    with pytest.raises(KubeConfigError, match="does not contain a 'k' key with data"):
        remote_kubeconfig(release({"name": "kc", "key": "k"}), Secrets({"value": b"1"}),
                          KubeConfigOptions())


@pytest.mark.parametrize(("cluster", "user", "words"), [
    (None, {"exec": {"command": "aws"}}, "user.exec: exec plugins are not run"),
    (None, {"auth-provider": {"name": "gcp"}}, "user.auth-provider: auth-provider plugins"),
    (None, {"client-certificate": "/etc/x", "client-key": "/etc/y"}, "files on the operator's"),
    (None, {"tokenFile": "/var/run/secrets/token"}, "user.tokenFile: files"),
    (None, {"token": TOKEN, "as": "admin"}, "user.as: the kubeconfig's own impersonation"),
    (None, {"client-certificate-data": base64.b64encode(CA).decode()},
     "client-certificate-data and client-key-data go together"),
    (None, {"token": TOKEN, "color": "red"}, "user.color: not a kubeconfig user field"),
    ({"server": "https://b", "insecure-skip-tls-verify": True}, None,
     "cluster.insecure-skip-tls-verify: TLS verification cannot be turned off"),
    ({"server": "https://b", "certificate-authority": "/etc/ca"}, None,
     "cluster.certificate-authority: files on the operator's disk"),
    ({"server": "ftp://b"}, None, "cluster.server: not an http(s) URL"),
    ({"certificate-authority-data": "@@@", "server": "https://b"}, None,
     "certificate-authority-data: not base64"),
])
def test_what_flux_would_drop_is_refused_naming_the_key(
        cluster: dict[str, Any] | None, user: dict[str, Any] | None, words: str) -> None:
    with pytest.raises(KubeConfigError) as caught:
        sanitize(kubeconfig(cluster, user), KubeConfigOptions())
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert "b.example" not in str(caught.value)


def test_insecure_flags_allow_exec_and_skipping_tls_verification() -> None:
    options = KubeConfigOptions(insecure_exec=True, insecure_tls=True)
    config = sanitize(kubeconfig({"server": "https://b", "insecure-skip-tls-verify": True},
                                 {"exec": EXEC}), options)
    assert config.insecure
    user = config.document("apps")["users"][0]["user"]
    assert user == {"exec": EXEC}


def test_client_certificates_are_kept_and_the_key_is_sensitive() -> None:
    config = sanitize(kubeconfig(user={
        "client-certificate-data": base64.b64encode(CA).decode(),
        "client-key-data": base64.b64encode(KEY).decode()}), KubeConfigOptions())
    assert (config.client_cert, config.client_key) == (CA, KEY)
    assert "MHcCAQEEIKeysecretkeymaterial0123456789abcdef" in config.sensitive


@pytest.mark.parametrize(("text", "words"), [
    (b"{{{", "not valid YAML at line 2"),
    (b"- a\n- b\n", "not a map"),
    (b"apiVersion: v1\n", "it names no current-context"),
    (b"current-context: x\ncontexts: []\n", "contexts: no entry named as the current context"),
    (b"x" * (1024 * 1024 + 1), "more than the 1024 KiB"),
])
def test_a_document_that_is_no_kubeconfig_is_refused(text: bytes, words: str) -> None:
    with pytest.raises(KubeConfigError, match=words):
        sanitize(text, KubeConfigOptions())


# -- spec.kubeConfig.configMapRef: Flux's workload identity, provider generic ---------------


class ConfigMaps:
    def __init__(self, data: Mapping[str, str] | None) -> None:
        self.data = data

    def get(self, namespace: str, name: str) -> Mapping[str, str]:
        if self.data is None:
            raise ConfigMapNotFoundError(name)
        return self.data


class Tokens:
    def __init__(self, fail: str = "") -> None:
        self.asked: list[tuple[str, str, tuple[str, ...]]] = []
        self.fail = fail

    def token(self, namespace: str, name: str, audiences: Sequence[str]) -> str:
        if self.fail:
            raise TokenRequestError(self.fail)
        self.asked.append((namespace, name, tuple(audiences)))
        return f"token-of-{namespace}-{name}"


def wi_release() -> HelmRelease:
    return HelmRelease.from_object({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": {"interval": "5m", "chartRef": {"kind": "HelmChart", "name": "app"},
                 "kubeConfig": {"configMapRef": {"name": "remote"}}}})


def test_generic_provider_takes_a_token_of_the_named_service_account() -> None:
    tokens = Tokens()
    config = workload_identity_kubeconfig(wi_release(), ConfigMaps({
        "provider": "generic", "address": "Remote.Example", "ca.crt": CA.decode(),
        "serviceAccountName": "deployer", "audiences": "a1\n\n a2 \n"}), tokens)
    assert config.server == "https://remote.example:443"
    assert config.ca_data == CA
    assert config.token == "token-of-apps-deployer"
    assert tokens.asked == [("apps", "deployer", ("a1", "a2"))]
    assert config.source == "ConfigMap apps/remote"
    assert "token-of-apps-deployer" in config.sensitive


def test_generic_provider_defaults_the_audience_to_the_address() -> None:
    tokens = Tokens()
    config = workload_identity_kubeconfig(wi_release(), ConfigMaps({
        "provider": "generic", "address": "https://10.0.0.1:6443",
        "serviceAccountName": "deployer"}), tokens)
    assert config.server == "https://10.0.0.1:6443"
    assert tokens.asked == [("apps", "deployer", ("https://10.0.0.1:6443",))]


def test_without_a_service_account_the_operators_own_token_is_never_requested() -> None:
    """Flux would use its controller's account; a tenant naming an address it controls (and
    the local API server's audience) would receive the operator's token."""
    tokens = Tokens()
    with pytest.raises(KubeConfigError, match="names no serviceAccountName"):
        workload_identity_kubeconfig(wi_release(), ConfigMaps({
            "provider": "generic", "address": "https://attacker.example",
            "audiences": "https://kubernetes.default.svc"}), tokens)
    assert tokens.asked == []


@pytest.mark.parametrize(("data", "words"), [
    (None, "failed to get configmap apps/remote: configmap not found"),
    ({"provider": "aws", "address": "x"}, "provider 'aws' is not supported by chartguard: a "
                                          "workload-identity kubeconfig of a cloud provider"),
    ({"provider": "gcp"}, "provider 'gcp' is not supported by chartguard"),
    ({"provider": "azure"}, "provider 'azure' is not supported by chartguard"),
    ({"provider": "nope"}, "provider 'nope' not implemented"),
    ({"provider": "generic"}, "cluster address is required to create a REST config"),
    ({"provider": "generic", "address": "http://remote"}, "must use https scheme"),
])
def test_workload_identity_refusals_in_fluxs_words(data: dict[str, str] | None,
                                                   words: str) -> None:
    with pytest.raises(KubeConfigError) as caught:
        workload_identity_kubeconfig(wi_release(), ConfigMaps(data), Tokens())
    assert words in str(caught.value)


def test_a_refused_token_request_is_a_kubeconfig_error() -> None:
    with pytest.raises(KubeConfigError, match="failed to get access token for cluster: 403"):
        workload_identity_kubeconfig(wi_release(), ConfigMaps({
            "provider": "generic", "address": "remote", "serviceAccountName": "sa"}),
            Tokens(fail="403 Forbidden"))


def test_parse_cluster_address_as_fluxcd_pkg() -> None:
    assert parse_cluster_address("HOST") == "https://host:443"
    assert parse_cluster_address("https://h:8443/") == "https://h:8443"
    with pytest.raises(KubeConfigError):
        parse_cluster_address("https://h:notaport")

"""``spec.kubeConfig.secretRef``: the kubeconfig of the remote cluster a release goes into.

As helm-controller's ``kube.ConfigFromSecret`` reads it: the Secret in the HelmRelease's
namespace, its ``secretRef.key``, else ``value``, else ``value.yaml``; then, as fluxcd/pkg's
``runtime/client.KubeConfig`` sanitises it, only the current context's server, CA data, TLS
server name, proxy, client certificate and key data, token, and username/password are used.
What Flux would silently drop is refused here with the key named, so a kubeconfig never half
works: an ``exec`` plugin unless ``chartguard run --insecure-kubeconfig-exec`` (Flux's
``--insecure-kubeconfig-exec``), ``insecure-skip-tls-verify`` unless
``--insecure-kubeconfig-tls``, and always ``auth-provider``, files on the operator's disk
(``certificate-authority``, ``client-certificate``, ``client-key``, ``tokenFile``) and the
kubeconfig's own impersonation (``as``...; ``spec.serviceAccountName`` impersonates instead).

Pure: no I/O. Messages name the Secret, keys and what is wrong, never what the kubeconfig holds
(its server address included: it is the user's, but nothing here repeats outside text).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from chartguard.api import HelmRelease
from chartguard.helm.release import ReleaseStorage
from chartguard.reconcile._values_yaml import ValuesDocumentError, load_values
from chartguard.reconcile.release_prepare import CLOUD_WORKLOAD_IDENTITY, REFUSED_FIELDS
from chartguard.reconcile.seams import (
    ClusterObjects,
    ConfigMapNotFoundError,
    ConfigMapReader,
    HelmActions,
    SecretNotFoundError,
    SecretReader,
    SecretUnreadableError,
)
from chartguard.untrusted import escape

DEFAULT_KEY = "value"
DEFAULT_KEY_EXT = "value.yaml"
#: a kubeconfig with a few certificates is some KiB; a Secret holds at most 1 MiB
MAX_KUBECONFIG = 1024 * 1024
#: helm-controller's reason for a kubeconfig it cannot build a client from
REST_CLIENT_ERROR = "RESTClientError"

_CLUSTER_KEYS = {"server", "certificate-authority-data", "tls-server-name", "proxy-url",
                 "insecure-skip-tls-verify", "disable-compression", "extensions"}
_USER_KEYS = {"client-certificate-data", "client-key-data", "token", "username", "password",
              "exec", "extensions"}
_REFUSED_USER = {
    "auth-provider": "auth-provider plugins are never used (Flux drops them too); use a token, "
                     "a client certificate or an exec plugin",
    "client-certificate": "files on the operator's disk are not read; use client-certificate-data",
    "client-key": "files on the operator's disk are not read; use client-key-data",
    "tokenFile": "files on the operator's disk are not read; use token",
    "as": "the kubeconfig's own impersonation is not used; set spec.serviceAccountName",
    "as-uid": "the kubeconfig's own impersonation is not used; set spec.serviceAccountName",
    "as-groups": "the kubeconfig's own impersonation is not used; set spec.serviceAccountName",
    "as-user-extra": "the kubeconfig's own impersonation is not used; set "
                     "spec.serviceAccountName",
}
_REFUSED_CLUSTER = {
    "certificate-authority": "files on the operator's disk are not read; use "
                             "certificate-authority-data",
}


class KubeConfigError(Exception):
    """The kubeconfig cannot be used; the message says why (never what it holds)."""


class KubeConfigSecretNotFoundError(KubeConfigError):
    """The kubeConfig Secret (or ConfigMap) does not exist (a deletion then skips the
    uninstall, as Flux)."""


class ClusterConnectError(Exception):
    """No client for the remote cluster could be made from its kubeconfig (a bad certificate or
    key, an exec plugin that failed); the message says why, never what the kubeconfig holds."""


class RemoteStorageError(Exception):
    """helm's records in the remote cluster could not be read (its API refused or did not
    answer); a condition of the release, not an outage of the operator's own API."""


class TokenRequestError(Exception):
    """A ServiceAccount token could not be had; the message says why (never a token)."""


class ServiceAccountTokens(Protocol):
    """The TokenRequest API of the operator's cluster (fluxcd/pkg auth's generic provider)."""

    def token(self, namespace: str, name: str, audiences: Sequence[str]) -> str:
        """A token of ServiceAccount ``namespace/name`` for ``audiences``;
        ``TokenRequestError`` when the API refuses it."""
        ...


class RemoteClusters(Protocol):
    """Where helm and helm's storage act on a remote cluster (the operator's ``Helm`` with
    ``--kubeconfig``, a client of that cluster)."""

    def connect(self, release: HelmRelease, config: RemoteKubeConfig
                ) -> AbstractContextManager[
                    tuple[HelmActions, ReleaseStorage, ClusterObjects]]:
        """helm, the release storage and the objects (drift detection) of the cluster
        ``config`` names, for one reconcile;
        everything written for it (the kubeconfig file, certificates) is removed on exit.
        ``ClusterConnectError`` when no client can be made."""
        ...


@dataclass(frozen=True)
class KubeConfigOptions:
    """fluxcd/pkg's ``KubeConfigOptions``: what a remote kubeconfig may use."""

    insecure_exec: bool = False  # --insecure-kubeconfig-exec
    insecure_tls: bool = False  # --insecure-kubeconfig-tls


@dataclass(frozen=True, repr=False)
class RemoteKubeConfig:
    """A sanitised kubeconfig: one cluster, one user, what Flux keeps. ``repr`` shows no
    secret (a traceback or log of it must not)."""

    server: str
    ca_data: bytes = b""
    tls_server_name: str = ""
    proxy_url: str = ""
    insecure: bool = False
    client_cert: bytes = b""
    client_key: bytes = b""
    token: str = ""
    username: str = ""
    password: str = ""
    #: the user's ``exec`` section as given (only with ``insecure_exec``)
    exec_config: Mapping[str, Any] = field(default_factory=dict)
    #: the Secret it came from, "<namespace>/<name>"
    source: str = ""

    def __repr__(self) -> str:
        return f"RemoteKubeConfig(from Secret {self.source})"

    def document(self, namespace: str) -> dict[str, Any]:
        """A kubeconfig holding only this (for ``helm --kubeconfig``), ``namespace`` set."""
        cluster: dict[str, Any] = {"server": self.server}
        if self.ca_data:
            cluster["certificate-authority-data"] = _b64(self.ca_data)
        if self.tls_server_name:
            cluster["tls-server-name"] = self.tls_server_name
        if self.proxy_url:
            cluster["proxy-url"] = self.proxy_url
        if self.insecure:
            cluster["insecure-skip-tls-verify"] = True
        user: dict[str, Any] = {}
        if self.client_cert:
            user["client-certificate-data"] = _b64(self.client_cert)
        if self.client_key:
            user["client-key-data"] = _b64(self.client_key)
        if self.token:
            user["token"] = self.token
        if self.username:
            user["username"] = self.username
        if self.password:
            user["password"] = self.password
        if self.exec_config:
            user["exec"] = dict(self.exec_config)
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "remote", "cluster": cluster}],
            "users": [{"name": "remote", "user": user}],
            "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "remote",
                                                        "namespace": namespace}}],
            "current-context": "remote",
        }

    @property
    def sensitive(self) -> frozenset[str]:
        """What must never be shown: kept out of helm's messages."""
        out = {self.token, self.password}
        out.update(line for line in self.client_key.decode("utf-8", "replace").splitlines()
                   if len(line) > 16)
        return frozenset(value for value in out if value)


def secret_ref(release: HelmRelease) -> tuple[str, str] | None:
    """(namespace, name) of the kubeconfig Secret, or None."""
    ref = release.spec.kube_config
    if ref is None or not ref.secret_name:
        return None
    return release.metadata.namespace, ref.secret_name


def remote_kubeconfig(release: HelmRelease, secrets: SecretReader,
                      options: KubeConfigOptions) -> RemoteKubeConfig:
    """The release's remote kubeconfig, sanitised; ``KubeConfigError`` (helm-controller's
    words where it has them) when the Secret, its key or the kubeconfig will not do.
    ``SecretUnreadableError`` passes (a transient failure)."""
    ref = release.spec.kube_config
    assert ref is not None
    namespace = release.metadata.namespace
    name = f"{namespace}/{ref.secret_name}"
    try:
        data = secrets.get(namespace, ref.secret_name)
    except SecretNotFoundError:
        raise KubeConfigSecretNotFoundError(f"could not get KubeConfig secret '{escape(name)}': "
                              "secret not found") from None
    if ref.key:
        text = data.get(ref.key)
        if not text:
            raise KubeConfigError(f"KubeConfig secret '{escape(name)}' does not contain a "
                                  f"'{escape(ref.key)}' key with data")
    else:
        text = data.get(DEFAULT_KEY) or data.get(DEFAULT_KEY_EXT)
        if not text:
            raise KubeConfigError(f"KubeConfig secret '{escape(name)}' does not contain a "
                                  f"'{DEFAULT_KEY}' or '{DEFAULT_KEY_EXT}' key with data")
    try:
        return sanitize(text, options, source=name)
    except KubeConfigError as err:
        raise KubeConfigError(f"failed to load KubeConfig from secret '{escape(name)}': "
                              f"{err}") from None


#: the ConfigMap keys of a workload-identity kubeconfig (fluxcd/pkg apis/meta KubeConfigKey*)
PROVIDER, CLUSTER, ADDRESS, CA_CERT, SERVICE_ACCOUNT, AUDIENCES = (
    "provider", "cluster", "address", "ca.crt", "serviceAccountName", "audiences")
GENERIC = "generic"
CLOUD_PROVIDERS = ("aws", "azure", "gcp")


def workload_identity_kubeconfig(release: HelmRelease, configmaps: ConfigMapReader,
                                 tokens: ServiceAccountTokens) -> RemoteKubeConfig:
    """fluxcd/pkg ``auth/utils.GetRESTConfig`` for ``spec.kubeConfig.configMapRef``, provider
    ``generic``: the cluster at ``address`` (https; port 443 unless given) with ``ca.crt``,
    reached with a token of ``serviceAccountName`` (in the HelmRelease's namespace;
    required: unlike Flux, never the operator's own ServiceAccount) for ``audiences`` (one a
    line; default the address), from the operator cluster's TokenRequest API. The cloud
    providers are refused (they need their cloud's identity service). ``KubeConfigError``
    in Flux's words."""
    ref = release.spec.kube_config
    assert ref is not None
    namespace = release.metadata.namespace
    name = f"{namespace}/{ref.configmap_name}"
    try:
        data = configmaps.get(namespace, ref.configmap_name)
    except ConfigMapNotFoundError:
        raise KubeConfigSecretNotFoundError(f"failed to get configmap {escape(name)}: "
                                            "configmap not found") from None
    provider = data.get(PROVIDER, "")
    if provider in CLOUD_PROVIDERS:
        raise KubeConfigError(f"provider '{provider}' is not supported by chartguard: "
                              f"{dict(REFUSED_FIELDS)[CLOUD_WORKLOAD_IDENTITY]}")
    if provider != GENERIC:
        raise KubeConfigError(f"provider '{escape(provider)}' not implemented")
    address = data.get(ADDRESS, "")
    if not address:
        raise KubeConfigError("cluster address is required to create a REST config")
    host = parse_cluster_address(address)
    audiences = [a.strip() for a in data.get(AUDIENCES, "").split("\n") if a.strip()]
    account = data.get(SERVICE_ACCOUNT, "")
    if not account:
        # Flux falls back to the controller's own ServiceAccount; chartguard does not: its
        # token, for audiences the ConfigMap chooses, would go to the address the ConfigMap
        # names, which any tenant who may write a HelmRelease and a ConfigMap controls
        raise KubeConfigError(
            f"ConfigMap {escape(name)} names no serviceAccountName: chartguard requests tokens "
            "only for a ServiceAccount of the HelmRelease's namespace, never for its own "
            "(that token would be sent to the address the ConfigMap names); add "
            "serviceAccountName")
    try:
        token = tokens.token(namespace, account, audiences or [host])
    except TokenRequestError as err:
        raise KubeConfigError(f"failed to get access token for cluster: {err}") from None
    return RemoteKubeConfig(server=host, ca_data=data.get(CA_CERT, "").encode(), token=token,
                            source=f"ConfigMap {name}")


def parse_cluster_address(address: str) -> str:
    """fluxcd/pkg ``auth.ParseClusterAddress``: ``https://`` added when no scheme is given,
    https required, port 443 when none, the host lower-cased."""
    if not address.startswith("http"):
        address = f"https://{address}"
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        raise KubeConfigError(f"failed to parse cluster address '{escape(address)}'") from None
    if parts.scheme != "https" or not parts.hostname:
        raise KubeConfigError(f"the Kubernetes API server address '{escape(address)}' must "
                              "use https scheme")
    host = parts.netloc.rpartition("@")[2].lower()
    return f"https://{host}" if port else f"https://{host}:443"


def sanitize(text: bytes, options: KubeConfigOptions, *, source: str = "") -> RemoteKubeConfig:
    """Flux's sanitised view of the kubeconfig ``text`` (its current context)."""
    if len(text) > MAX_KUBECONFIG:
        raise KubeConfigError(f"it has {len(text)} bytes, more than the "
                              f"{MAX_KUBECONFIG // 1024} KiB a kubeconfig may have")
    try:
        doc = load_values(text)
    except ValuesDocumentError as err:
        raise KubeConfigError(str(err.args[0])) from None
    current = doc.get("current-context")
    if not isinstance(current, str) or not current:
        raise KubeConfigError("it names no current-context")
    context = _named(doc, "contexts", "context", current)
    cluster = _named(doc, "clusters", "cluster", _string(context, "cluster", "the context"))
    user_name = context.get("user")
    user = _named(doc, "users", "user", user_name) if user_name else {}
    for key in cluster:
        if key in _REFUSED_CLUSTER:
            raise KubeConfigError(f"cluster.{key}: {_REFUSED_CLUSTER[key]}")
        if key not in _CLUSTER_KEYS:
            raise KubeConfigError(f"cluster.{escape(key)}: not a kubeconfig cluster field "
                                  "chartguard can use")
    for key in user:
        if key in _REFUSED_USER:
            raise KubeConfigError(f"user.{key}: {_REFUSED_USER[key]}")
        if key not in _USER_KEYS:
            raise KubeConfigError(f"user.{escape(key)}: not a kubeconfig user field "
                                  "chartguard can use")
    server = _string(cluster, "server", "cluster")
    parts = urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KubeConfigError("cluster.server: not an http(s) URL of an API server")
    insecure = cluster.get("insecure-skip-tls-verify") is True
    if insecure and not options.insecure_tls:
        raise KubeConfigError("cluster.insecure-skip-tls-verify: TLS verification cannot be "
                              "turned off (chartguard run --insecure-kubeconfig-tls allows it, "
                              "as Flux's --insecure-kubeconfig-tls)")
    exec_config = user.get("exec")
    if exec_config is not None:
        if not options.insecure_exec:
            raise KubeConfigError("user.exec: exec plugins are not run (chartguard run "
                                  "--insecure-kubeconfig-exec allows them, as Flux's "
                                  "--insecure-kubeconfig-exec)")
        if (not isinstance(exec_config, dict) or not isinstance(exec_config.get("command"), str)
                or not isinstance(exec_config.get("apiVersion"), str)):
            raise KubeConfigError("user.exec: a map with an apiVersion and a command is "
                                  "expected")
    cert = _data(user, "client-certificate-data")
    key_data = _data(user, "client-key-data")
    if bool(cert) != bool(key_data):
        raise KubeConfigError("user: client-certificate-data and client-key-data go together")
    return RemoteKubeConfig(
        server=server, ca_data=_data(cluster, "certificate-authority-data"),
        tls_server_name=_optional(cluster, "tls-server-name"),
        proxy_url=_optional(cluster, "proxy-url"), insecure=insecure,
        client_cert=cert, client_key=key_data, token=_optional(user, "token"),
        username=_optional(user, "username"), password=_optional(user, "password"),
        exec_config=exec_config or {}, source=source)


def _named(doc: Mapping[str, Any], section: str, inner: str, name: object) -> dict[str, Any]:
    entries = doc.get(section)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(inner)
            if not isinstance(body, dict):
                raise KubeConfigError(f"{section}: the entry named by the current context has "
                                      f"no {inner} map")
            return body
    raise KubeConfigError(f"{section}: no entry named as the current context says")


def _string(section: Mapping[str, Any], key: str, where: str) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise KubeConfigError(f"{where}: {key} is missing")
    return value


def _optional(section: Mapping[str, Any], key: str) -> str:
    value = section.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise KubeConfigError(f"{key}: a string is expected")
    return value


def _data(section: Mapping[str, Any], key: str) -> bytes:
    value = _optional(section, key)
    try:
        return base64.b64decode(value, validate=True) if value else b""
    except (binascii.Error, ValueError):
        raise KubeConfigError(f"{key}: not base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


__all__ = ["DEFAULT_KEY", "DEFAULT_KEY_EXT", "REST_CLIENT_ERROR", "ClusterConnectError",
           "KubeConfigError", "KubeConfigOptions", "KubeConfigSecretNotFoundError",
           "RemoteClusters", "RemoteKubeConfig", "RemoteStorageError", "SecretUnreadableError",
           "ServiceAccountTokens", "TokenRequestError", "parse_cluster_address",
           "remote_kubeconfig", "sanitize", "secret_ref", "workload_identity_kubeconfig"]

"""Remote clusters (``spec.kubeConfig``): helm and helm's storage acting on another cluster.

For one reconcile of one release, :meth:`KubeRemoteClusters.connect` writes the sanitised
kubeconfig (:mod:`chartguard.reconcile.kubeconfig`) into a private directory under helm's home
(0700, files 0600), runs helm with ``--kubeconfig`` on it, and reads helm's release records
through a client of that cluster made from the same settings (its certificate and key written
beside it for the TLS library). The directory is removed when the reconcile ends, also on
failure; one a killed operator left is removed by the next one as it starts (its name is that
of helm's work directories). Nothing of the kubeconfig is logged.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.exec_provider import ExecProvider
from kubernetes.config.kube_config import ConfigNode

from chartguard import __version__
from chartguard.api import HelmRelease
from chartguard.helm.errors import HelmError
from chartguard.helm.release import ReleaseStorage, StoredRelease
from chartguard.helm.runner import Helm, write_private_file
from chartguard.operator.cluster import KubeCluster
from chartguard.operator.kube import FIELD_MANAGER, Kube, KubeError
from chartguard.operator.releases import (
    KubeCRDs,
    KubeLiveObjects,
    KubeReleaseStorage,
    ReleaseStorageError,
)
from chartguard.reconcile.kubeconfig import (
    ClusterConnectError,
    RemoteKubeConfig,
    RemoteStorageError,
    TokenRequestError,
)
from chartguard.reconcile.outcome import safe
from chartguard.reconcile.seams import ClusterObjects, HelmActions
from chartguard.untrusted import escape

#: tries after the first for a remote API call (the release's own retry takes it from there)
REMOTE_RETRIES = 2


class KubeTokens:
    """:class:`chartguard.reconcile.kubeconfig.ServiceAccountTokens` over the operator's API
    client (RBAC: ``create`` of ``serviceaccounts/token``, the deploy chart's
    ``rbac.workloadIdentity``)."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def token(self, namespace: str, name: str, audiences: Sequence[str]) -> str:
        try:
            return self._kube.create_token(namespace, name, list(audiences))
        except KubeError as err:
            raise TokenRequestError(f"failed to create kubernetes token for service account "
                                    f"'{escape(namespace)}/{escape(name)}': {safe(err)}"
                                    ) from None



class KubeRemoteClusters:
    """:class:`chartguard.reconcile.kubeconfig.RemoteClusters` over the operator's helm."""

    def __init__(self, helm: Helm, *, timeout: float = 30.0) -> None:
        self._helm = helm
        self._timeout = timeout

    @contextlib.contextmanager
    def connect(self, release: HelmRelease, config: RemoteKubeConfig
                ) -> Iterator[tuple[HelmActions, ReleaseStorage, ClusterObjects]]:
        try:
            work_cm = self._helm.private_dir("kubeconfig")
            work = work_cm.__enter__()
        except HelmError as err:
            raise ClusterConnectError(err.message) from None
        client: kubernetes.client.ApiClient | None = None
        try:
            kubeconfig = work / "kubeconfig"
            document = config.document(release.release_namespace)
            try:
                write_private_file(kubeconfig, json.dumps(document).encode())
                client = kubernetes.client.ApiClient(client_configuration(config, work))
            except OSError as err:
                raise ClusterConnectError(f"cannot write the kubeconfig for helm "
                                          f"({escape(err.strerror or type(err).__name__)})"
                                          ) from None
            client.user_agent = f"{FIELD_MANAGER}/{__version__}"
            kube = Kube(client, timeout=self._timeout, retries=REMOTE_RETRIES)
            storage = _RemoteStorage(KubeReleaseStorage(kube))
            remote = self._helm.for_cluster(kubeconfig, storage, KubeCRDs(kube),
                                            KubeLiveObjects(kube))
            yield remote, storage, KubeCluster(kube)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()  # type: ignore[no-untyped-call]
            work_cm.__exit__(None, None, None)


class _RemoteStorage:
    """The remote cluster's release storage: its failures are the release's condition
    (``RemoteStorageError``), not an outage of the operator's own API."""

    def __init__(self, storage: KubeReleaseStorage) -> None:
        self._storage = storage

    def history(self, namespace: str, name: str) -> list[StoredRelease]:
        try:
            return self._storage.history(namespace, name)
        except ReleaseStorageError as err:
            raise RemoteStorageError(str(err)) from None

    def mark_failed(self, namespace: str, name: str, version: int, description: str, *,
                    as_user: str = "") -> StoredRelease:
        try:
            return self._storage.mark_failed(namespace, name, version, description,
                                             as_user=as_user)
        except ReleaseStorageError as err:
            raise RemoteStorageError(str(err)) from None


def client_configuration(config: RemoteKubeConfig, work: Path) -> kubernetes.client.Configuration:
    """The Python client's settings for ``config``: what client-go makes of it."""
    out = kubernetes.client.Configuration()
    out.host = config.server.rstrip("/")
    out.retries = 0  # Kube retries, after a backoff
    out.verify_ssl = not config.insecure
    if config.ca_data:
        ca = work / "ca.crt"
        write_private_file(ca, config.ca_data)
        out.ssl_ca_cert = str(ca)
    if config.tls_server_name:
        out.tls_server_name = config.tls_server_name
    if config.proxy_url:
        out.proxy = config.proxy_url
    cert, key = config.client_cert, config.client_key
    token = config.token
    if config.exec_config:
        cert, key, token = _run_exec(config, cert, key, token)
    if cert:
        write_private_file(work / "tls.crt", cert)
        write_private_file(work / "tls.key", key)
        out.cert_file, out.key_file = str(work / "tls.crt"), str(work / "tls.key")
    if token:
        out.api_key = {"authorization": f"Bearer {token}"}
    elif config.username:
        basic = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
        out.api_key = {"authorization": f"Basic {basic}"}
    return out


def _run_exec(config: RemoteKubeConfig, cert: bytes, key: bytes,
              token: str) -> tuple[bytes, bytes, str]:
    """The credentials the kubeconfig's exec plugin gives (allowed by
    ``--insecure-kubeconfig-exec`` only); helm runs the plugin itself from the kubeconfig."""
    try:
        node = ConfigNode("exec", dict(config.exec_config))  # type: ignore[no-untyped-call]
        provider = ExecProvider(node, None)  # type: ignore[no-untyped-call]
        status: dict[str, Any] = provider.run()  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as err:
        raise ClusterConnectError(f"the kubeconfig's exec plugin failed: "
                                  f"{escape(type(err).__name__)}") from None
    if status.get("token"):
        token = str(status["token"])
    if status.get("clientCertificateData") and status.get("clientKeyData"):
        cert = str(status["clientCertificateData"]).encode()
        key = str(status["clientKeyData"]).encode()
    return cert, key, token

"""What ``chartguard run`` was asked to do (its flags), in one immutable object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    artifact_dir: Path = Path("/data")
    #: registry work in flight at once (worker threads)
    concurrency: int = 4
    require_keyless_identity: bool = False
    #: a Kubernetes label selector: only matching objects are reconciled (sharding)
    selector: str = ""
    log_format: str = "text"  # text | json
    health_port: int = 0  # 0: no health endpoint
    #: Prometheus ``/metrics`` on this port; 0: not served (the deploy chart serves 8080)
    metrics_port: int = 0
    metrics_address: str = "0.0.0.0"  # noqa: S104 - every interface of the pod
    #: ``status.artifact.url`` base (Flux: the storage's advertised address)
    artifact_url_base: str = ""
    #: jitter added to every interval, as a fraction (Flux: --interval-jitter-percentage 5)
    interval_jitter: float = 0.05
    #: how often unreferenced store files are removed (the first pass waits as long)
    gc_interval: float = 300.0
    #: registry request timeout (connecting, each read), seconds
    registry_timeout: float = 10.0
    #: the total time of one registry operation (resolve, fetch, signatures), retries and
    #: waits included, seconds: a registry that trickles or stalls fails within it
    registry_deadline: float = 60.0
    #: a Sigstore trusted_root.json for keyless verification when spec.verify names none
    #: (air-gapped clusters, a private Sigstore); None: Sigstore's production root
    trusted_root: Path | None = None
    #: the helm binary HelmReleases are installed with (a path, or a name on PATH)
    helm_binary: str = "helm"
    #: the kubectl whose ``kustomize`` post-renders releases (a path, or a name on PATH)
    kubectl_binary: str = "kubectl"
    #: helm's private HELM_*_HOME; None: a temporary directory of the process
    helm_home: Path | None = None
    #: "namespace/name": the ServiceAccount helm impersonates for releases without
    #: spec.serviceAccountName (the deploy chart's releases identity); "": the operator's own
    release_service_account: str = ""
    #: remote kubeconfigs (spec.kubeConfig) may use an exec plugin / turn TLS verification
    #: off (Flux's --insecure-kubeconfig-exec / --insecure-kubeconfig-tls)
    insecure_kubeconfig_exec: bool = False
    insecure_kubeconfig_tls: bool = False
    #: HelmReleases reconciled at once (each may run one helm process)
    release_concurrency: int = 4
    #: the kopf peering object replicas share (``--peering``); "": standalone, one replica
    peering: str = ""
    #: this replica's peering priority: the highest live one reconciles, the others stand by
    peering_priority: int = 0

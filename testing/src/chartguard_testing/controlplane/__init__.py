"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok) built from source by ``make controlplane``: test equipment."""

from chartguard_testing.controlplane.process import (
    BINARIES,
    ApiError,
    ControlPlane,
    ControlPlaneMissingError,
    Namespaced,
    available,
    binaries,
    kwok_node,
    namespaced,
    run_controlplane,
)

__all__ = ["BINARIES", "ApiError", "ControlPlane", "ControlPlaneMissingError", "Namespaced",
           "available", "binaries", "kwok_node", "namespaced", "run_controlplane"]

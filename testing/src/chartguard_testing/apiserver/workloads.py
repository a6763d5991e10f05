"""Instant status: no pod ever runs, so workloads are written as if they were already ready.

That is what ``helm --wait`` (kstatus in helm 4, ReplicaSet readiness in helm 3) and
``kubectl wait`` look at: Deployments get a ReplicaSet with a ``pod-template-hash`` and an
Available status, Services a clusterIP, and the other workload kinds a plausible status.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Iterator
from typing import Any

from chartguard_testing.apiserver.resources import Obj, ResourceType, now

RS_KEY = ("apps", "replicasets")


def _replicas(obj: Obj) -> int:
    replicas: Any = (obj.get("spec") or {}).get("replicas", 1)
    return int(replicas) if replicas is not None else 1


def _since(obj: Obj) -> str:
    """When it became ready: at creation. A fixed time keeps repeated writes no-ops."""
    stamp: str = obj["metadata"].get("creationTimestamp") or now()
    return stamp


def _condition(ts: str, type_: str, reason: str, message: str) -> Obj:
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": ts, "lastTransitionTime": ts}


def template_hash(obj: Obj) -> str:
    template = (obj.get("spec") or {}).get("template") or {}
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
    """Set the server-side defaults and the status a healthy cluster would report."""
    kind = rt.kind if rt.group in ("", "apps", "batch") else ""
    spec = obj.setdefault("spec", {}) if kind in _STATUS else None
    generation = obj["metadata"].get("generation", 1)
    n = _replicas(obj)
    if kind == "Service":
        assert spec is not None
        _service(spec)
        lb = spec.get("type") == "LoadBalancer"
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]} if lb else {}}
    elif kind in ("Deployment", "ReplicaSet"):
        assert spec is not None
        spec.setdefault("replicas", 1)
        obj["status"] = {"observedGeneration": generation, "replicas": n,
                         "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
                         "fullyLabeledReplicas": n}
        if kind == "Deployment":
            del obj["status"]["fullyLabeledReplicas"]
            obj["status"]["conditions"] = [
                _condition(_since(obj), "Available", "MinimumReplicasAvailable",
                           "Deployment has minimum availability."),
                _condition(_since(obj), "Progressing", "NewReplicaSetAvailable",
                           f'ReplicaSet "{obj["metadata"]["name"]}-{template_hash(obj)}" '
                           "has successfully progressed.")]
    elif kind == "StatefulSet":
        revision = f"{obj['metadata']['name']}-{template_hash(obj)}"
        obj["status"] = {"observedGeneration": generation, "replicas": n, "readyReplicas": n,
                         "currentReplicas": n, "updatedReplicas": n, "availableReplicas": n,
                         "currentRevision": revision, "updateRevision": revision,
                         "collisionCount": 0}
    elif kind == "DaemonSet":
        obj["status"] = {"observedGeneration": generation, "currentNumberScheduled": 1,
                         "desiredNumberScheduled": 1, "numberAvailable": 1, "numberReady": 1,
                         "updatedNumberScheduled": 1, "numberMisscheduled": 0}
    elif kind == "Job":
        assert spec is not None
        done = int(spec.get("completions") or 1)
        ts = _since(obj)
        obj["status"] = {"startTime": ts, "completionTime": ts, "succeeded": done,
                         "active": 0, "ready": 0,
                         "conditions": [_condition(ts, "Complete", "CompletionsReached",
                                                   "Reached expected number of succeeded "
                                                   "pods")]}
    elif kind == "Pod":
        assert spec is not None
        obj["status"] = _pod_status(spec, _since(obj))
    elif kind == "PersistentVolumeClaim":
        assert spec is not None
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        obj["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes") or [],
                         "capacity": {"storage": storage}}


_STATUS = {"Service", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "Pod",
           "PersistentVolumeClaim"}


def _service(spec: Obj) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            # nothing routes to it; it only has to look like an allocated address
            spec["clusterIP"] = f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"  # noqa: S311
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _pod_status(spec: Obj, ts: str) -> Obj:
    # one-shot pods (hooks, `helm test`) have finished; the others are running
    finished = spec.get("restartPolicy") in ("Never", "OnFailure")
    state: Obj = ({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts,
                                  "finishedAt": ts}}
                  if finished else {"running": {"startedAt": ts}})
    ready = "False" if finished else "True"
    return {
        "phase": "Succeeded" if finished else "Running",
        "podIP": "10.244.0.10", "hostIP": "127.0.0.1", "startTime": ts,
        "conditions": [{"type": t, "status": s, "lastTransitionTime": ts}
                       for t, s in (("Initialized", "True"), ("Ready", ready),
                                    ("ContainersReady", ready), ("PodScheduled", "True"))],
        "containerStatuses": [
            {"name": c.get("name", ""), "image": c.get("image", ""), "ready": not finished,
             "started": not finished, "restartCount": 0, "state": state}
            for c in spec.get("containers") or []],
    }


def children(rt: ResourceType, obj: Obj) -> Iterator[tuple[tuple[str, str], Obj]]:
    """Objects a controller would create for ``obj``: a Deployment's current ReplicaSet."""
    if rt.key != ("apps", "deployments"):
        return
    spec = obj.get("spec") or {}
    pod_hash = template_hash(obj)
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
    meta = obj["metadata"]
    yield RS_KEY, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
            "labels": {**(template["metadata"].get("labels") or {})},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                 "name": meta["name"], "uid": meta["uid"],
                                 "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": _replicas(obj), "selector": selector, "template": template},
    }

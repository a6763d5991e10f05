"""A Kubernetes API emulator: TEST EQUIPMENT for tests and the demo, not a Kubernetes.

No cluster can run on our machines, so this stateful HTTP server on 127.0.0.1 answers the
calls real kubectl (1.27-1.35), real helm (3.17, 4.1) and kopf 1.45 make, well enough for
them to work unchanged: discovery, CRDs that register their resources, create/get/list/
update/patch (JSON, merge, strategic merge, server-side apply)/delete, the status
subresource, finalizers and deletionTimestamp, ownerReference and namespace cascades,
watches that resume from a resourceVersion (410 when too old), Table output with a CRD's
printer columns, protobuf bodies for Secret/ConfigMap/Namespace, and instant "ready"
status for workloads so ``helm --wait`` and ``kubectl wait`` finish.

What it does NOT do: no pods run (no scheduler, kubelet or controllers beyond a
Deployment's ReplicaSet), no authentication or RBAC (any token is accepted), no admission,
no schema validation or defaulting from CRD schemas, no conversion between versions other
than rewriting ``apiVersion``, no pagination, no persistence beyond a state file read at
start and written at stop (``--state``, for a stop and start of the server with its objects).
Never point anything that matters at it.

Malformed requests get a 4xx ``Status`` (a bug of the emulator a 500 ``Status``, its
traceback only in the server's log); a watch whose client hangs up ends at once, and one
that stops reading is ended with 410 Expired once ``history`` changes are waiting for it.

Modules: ``resources`` (kinds served), ``storage`` (objects, resourceVersions, deletion),
``validation`` (shapes checked before storing), ``patching``, ``selectors``, ``watch``,
``discovery``, ``tables``, ``protobuf``, ``faults`` (fault modes a test switches at run time),
``workloads`` (instant status), ``routes`` (HTTP), ``server`` (run in-process),
``process`` (run as a subprocess for tests: :func:`run_apiserver`).
"""

from chartguard_testing.apiserver.process import KubeAPI, run_apiserver
from chartguard_testing.apiserver.server import kubeconfig, serve

__all__ = ["KubeAPI", "kubeconfig", "run_apiserver", "serve"]

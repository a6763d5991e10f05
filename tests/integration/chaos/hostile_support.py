"""What the hostile-input chaos tests share: a helm that records every invocation, a release
installed from a good signed chart first, and the checks that it stayed (the ``lost`` column).

The release ``app`` follows ``>=1.0.0`` of the chart ``app``; each test installs 1.0.0 (signed),
then publishes something hostile and asks the chart to look again: the refusal must leave helm
untouched (no install or upgrade after the first), the HelmChart's artifact at 1.0.0 with its
file in the store, and the release deployed at revision 1.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_support import helm_records
from operator_support import Charts, Cluster, Operator, helmrelease, repository, secret, wait_for

from chartguard_testing.chaos import NONE
from chartguard_testing.charts import PushedChart
from chartguard_testing.helm_calls import HelmCalls

KEY = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}
RELEASE = "app"


@dataclass
class Installed:
    """The release as the good chart left it: what must still hold after the hostile input."""

    cluster: Cluster
    operator: Operator
    helm: HelmCalls
    good: PushedChart
    chart: str  # the implied HelmChart's name
    revision: str = ""  # its artifact revision (version@digest)
    artifact_path: str = ""
    release_calls: list[str] = field(default_factory=list)

    @property
    def signed_archives(self) -> list[bytes]:
        """The charts that were verified: the good one. A hostile chart, though signed by its
        publisher, must never be installed, so it is not counted as verified."""
        return [self.good.package.read_bytes()]

    def records(self) -> list[dict[str, Any]]:
        return helm_records(self.cluster)

    def lost(self) -> str:
        """NONE when the artifact (revision and file) and the release (revision 1, deployed)
        are as the good chart left them; else what is missing."""
        missing = []
        status = self.cluster.status("helmchart", self.cluster.ns, self.chart)
        artifact = status.get("artifact") or {}
        if artifact.get("revision") != self.revision:
            missing.append(f"artifact revision {artifact.get('revision')!r}, not "
                           f"{self.revision!r}")
        if not (self.operator.artifacts / self.artifact_path).is_file():
            missing.append(f"artifact file {self.artifact_path}")
        records = [r for r in self.records() if r.get("name") == RELEASE]
        latest = max(records, key=lambda r: int(r.get("version", 0)), default={})
        if (latest.get("version"), (latest.get("info") or {}).get("status")) != (1, "deployed"):
            missing.append(f"release at revision {latest.get('version')} "
                           f"({(latest.get('info') or {}).get('status')}), not 1 deployed")
        return "; ".join(missing) or NONE

    def no_helm_run(self) -> None:
        """No install, upgrade or rollback since the good chart's install."""
        assert self.helm.releases() == self.release_calls, self.helm.calls()

    def look_again(self) -> str:
        """Ask the HelmChart to reconcile now; returns the requestedAt stamp."""
        return self.cluster.request_reconcile("helmchart", self.cluster.ns, self.chart)

    def chart_condition(self, type_: str, status: str, words: str,
                        stamp: str | None = None) -> dict[str, Any]:
        """Wait for the HelmChart's ``type_`` condition at ``status`` with ``words`` in its
        message (after ``stamp`` was handled, when given); return it."""
        ns = self.cluster.ns

        def done() -> bool:
            st = self.cluster.status("helmchart", ns, self.chart)
            if stamp is not None and st.get("lastHandledReconcileAt") != stamp:
                return False
            cond = self.cluster.condition("helmchart", ns, self.chart, type_)
            return cond.get("status") == status and words in cond.get("message", "")

        wait_for(done, f"HelmChart {type_}={status} saying {words!r}", timeout=30,
                 operator=self.operator)
        return self.cluster.condition("helmchart", ns, self.chart, type_)

    def release_condition(self, reason: str, words: str, name: str = RELEASE,
                          timeout: float = 30) -> dict[str, Any]:
        ns = self.cluster.ns

        def done() -> bool:
            cond = self.cluster.condition("helmrelease", ns, name, "Ready")
            return cond.get("reason") == reason and words in cond.get("message", "")

        wait_for(done, f"HelmRelease {name} Ready reason {reason} saying {words!r}",
                 timeout=timeout, operator=self.operator)
        return self.cluster.condition("helmrelease", ns, name, "Ready")


def release_ready(cluster: Cluster, operator: Operator, name: str = RELEASE,
                  timeout: float = 60) -> None:
    ns = cluster.ns
    wait_for(lambda: cluster.condition("helmrelease", ns, name, "Ready").get("status")
             == "True", f"{name} ready", timeout=timeout, operator=operator)


def install_good(cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path, *,
                 verify: dict[str, Any] | None = None, sign: Callable[[PushedChart], None]
                 | None = None, extra: tuple[dict[str, Any], ...] = (),
                 url: str | None = None, repo_spec: dict[str, Any] | None = None,
                 **release_spec: Any) -> Installed:
    """Push and sign ``app`` 1.0.0 (by key unless ``sign``), start the operator with a
    recording helm, and wait until the release ``app`` (``>=1.0.0``) is installed."""
    ns = cluster.ns
    good = charts.push("app", "1.0.0")
    if sign is None:
        charts.sign_with_key(good, "good")
    else:
        sign(good)
    helm = HelmCalls.create(tmp_path)
    cluster.kubectl.apply(
        secret("cosign-pub", ns, {"cosign.pub": charts.key("good").public_pem}),
        repository("charts", ns, url or charts.registry.oci(), **(repo_spec or {})),
        *extra,
        helmrelease(RELEASE, ns, "app", "charts", verify or KEY, version=">=1.0.0",
                    **release_spec))
    operator.start(helm=str(helm.wrapper))
    for name in (RELEASE, *(d["metadata"]["name"] for d in extra
                            if d.get("kind") == "HelmRelease")):
        release_ready(cluster, operator, name)
    installed = Installed(cluster, operator, helm, good, chart=f"{ns}-{RELEASE}")
    artifact = cluster.status("helmchart", ns, installed.chart)["artifact"]
    installed.revision = artifact["revision"]
    installed.artifact_path = artifact["path"]
    installed.release_calls = helm.releases()
    releases = 1 + sum(1 for doc in extra if doc.get("kind") == "HelmRelease")
    assert [c.split(" ", 1)[0] for c in installed.release_calls] == ["install"] * releases, (
        helm.calls())
    return installed


def put_secret(cluster: Cluster, name: str, data: dict[str, bytes], *,
               create: bool = False) -> None:
    """Create or replace a Secret of any size (``kubectl apply`` would copy it all into an
    annotation)."""
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": cluster.ns},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    cluster.kubectl("create" if create else "replace", "-f", "-", stdin=json.dumps(body),
                    timeout=120)

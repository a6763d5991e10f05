"""Many signed charts in a registry at once, for benchmarks: one `helm package` output as the
chart layer of N charts (repository ``charts/cNNNN``, tag ``1.0.0``), each with a key-based
cosign ``.sig`` over its own digest. Hand-built manifests, so N can be 1,000 in seconds."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from chartguard.oci import HELM_CHART_LAYER, HELM_CONFIG, OCI_MANIFEST
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry


def push_signed_charts(reg: Registry, helm: HelmEnv, key: cs.KeyPair, n: int) -> None:
    """Push charts ``charts/c0000`` … ``charts/c{n-1}`` at 1.0.0, each signed with ``key``."""
    package = helm.package(helm.create("bench", "1.0.0"))
    layer = rs.Blob(package.read_bytes(), HELM_CHART_LAYER)
    local = threading.local()

    def push(i: int) -> None:
        writer = getattr(local, "writer", None)
        if writer is None:
            writer = local.writer = rs.RegistryWriter(reg)
        name = f"c{i:04d}"
        config = rs.Blob(json.dumps({"apiVersion": "v2", "name": name, "version": "1.0.0"},
                                    separators=(",", ":")).encode(), HELM_CONFIG)
        manifest = rs.Blob(json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
            "layers": [layer.descriptor()]}, separators=(",", ":")).encode(), OCI_MANIFEST)
        digest = writer.push(f"charts/{name}", rs.Artifact(manifest, (config, layer)), "1.0.0")
        repository = f"{reg.host}/charts/{name}"
        signature = cs.sign_legacy_with_key(key, cs.simple_signing_payload(repository, digest))
        writer.push(f"charts/{name}", rs.legacy_signature_artifact([signature]),
                    rs.sig_tag(digest))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(push, range(n)))

"""Many signed charts in a registry at once, for benchmarks: one `helm package` output as the
chart layer of N charts (repository ``charts/cNNNN``, tag ``1.0.0``), each with a key-based
cosign ``.sig`` over its own digest. Hand-built manifests, so N can be 1,000 in seconds.

Each chart's layer is the package renamed ``cNNNN`` (its directory and Chart.yaml), so config
and Chart.yaml agree as `helm push` writes them: chartguard refuses a chart whose archive names
another chart than its config. ``layer_per_chart=False`` shares one layer named ``bench`` (only
for tests of that refusal)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor

import yaml

from chartguard.oci import HELM_CHART_LAYER, HELM_CONFIG, OCI_MANIFEST
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry


def renamed_package(package: bytes, name: str) -> bytes:
    """``package`` (a `helm package` .tgz) as if its chart were called ``name``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as src, \
            gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as dst:
        for member in src.getmembers():
            file = src.extractfile(member) if member.isfile() else None
            data = file.read() if file is not None else None
            rest = member.name.partition("/")[2]
            member.name = f"{name}/{rest}" if rest else name
            if data is not None and rest == "Chart.yaml":
                meta = yaml.safe_load(data)
                meta["name"] = name
                data = yaml.safe_dump(meta, sort_keys=False).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def push_signed_charts(reg: Registry, helm: HelmEnv, key: cs.KeyPair, n: int, *,
                       layer_per_chart: bool = True, path: str = "charts") -> None:
    """Push charts ``<path>/c0000`` … ``<path>/c{n-1}`` at 1.0.0, each signed with ``key``;
    with ``layer_per_chart``, each chart's layer names it as its config does."""
    package = helm.package(helm.create("bench", "1.0.0")).read_bytes()
    shared = rs.Blob(package, HELM_CHART_LAYER)
    local = threading.local()

    def push(i: int) -> None:
        writer = getattr(local, "writer", None)
        if writer is None:
            writer = local.writer = rs.RegistryWriter(reg)
        name = f"c{i:04d}"
        layer = (rs.Blob(renamed_package(package, name), HELM_CHART_LAYER) if layer_per_chart
                 else shared)
        config = rs.Blob(json.dumps({"apiVersion": "v2", "name": name, "version": "1.0.0"},
                                    separators=(",", ":")).encode(), HELM_CONFIG)
        manifest = rs.Blob(json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
            "layers": [layer.descriptor()]}, separators=(",", ":")).encode(), OCI_MANIFEST)
        digest = writer.push(f"{path}/{name}", rs.Artifact(manifest, (config, layer)), "1.0.0")
        repository = f"{reg.host}/{path}/{name}"
        signature = cs.sign_legacy_with_key(key, cs.simple_signing_payload(repository, digest))
        writer.push(f"{path}/{name}", rs.legacy_signature_artifact([signature]),
                    rs.sig_tag(digest))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(push, range(n)))

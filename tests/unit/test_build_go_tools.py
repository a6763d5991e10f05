"""scripts/build_go_tools.py: the replace lines of the wrapper module that builds each tool."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_go_tools.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_go_tools", SCRIPT)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_go_tools", module)
    spec.loader.exec_module(module)
    return module


KUBERNETES_GOMOD = """module k8s.io/kubernetes

go 1.26.0

require (
	github.com/spf13/cobra v1.10.0
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0 // indirect
)

require go.etcd.io/etcd/client/v3 v3.6.8

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)

replace github.com/example/fork v1.0.0 => github.com/example/fixed v1.0.1
"""

ETCD_SERVER_GOMOD = """module go.etcd.io/etcd/server/v3

require (
	go.etcd.io/etcd/api/v3 v3.6.16
	go.etcd.io/etcd/pkg/v3 v3.6.16
)

replace (
	go.etcd.io/etcd/api/v3 => ../api
	go.etcd.io/etcd/pkg/v3 => ../pkg
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_kubernetes_staging_modules_become_their_published_versions() -> None:
    got = _script().wrapper_replaces(KUBERNETES_GOMOD, "v0.36.3")
    assert got == {
        "k8s.io/api": "k8s.io/api v0.36.3",
        "k8s.io/client-go": "k8s.io/client-go v0.36.3",
        # module-to-module replaces are repeated as they are
        "github.com/example/fork v1.0.0": "github.com/example/fixed v1.0.1",
    }  # sample-controller is replaced upstream but not required: left out


def test_sibling_modules_take_the_required_release_and_guards_are_dropped() -> None:
    got = _script().wrapper_replaces(ETCD_SERVER_GOMOD, None)
    assert got == {"go.etcd.io/etcd/api/v3": "go.etcd.io/etcd/api/v3 v3.6.16",
                   "go.etcd.io/etcd/pkg/v3": "go.etcd.io/etcd/pkg/v3 v3.6.16"}


def test_every_default_group_is_pinned_to_a_release() -> None:
    script = _script()
    for tool in script.TOOLSET:
        assert tool.version.startswith("v"), tool
        assert tool.version.count(".") == 2, tool
    groups = {t.group for t in script.TOOLSET}
    assert set(script.DEFAULT_GROUPS) <= groups
    # Flux's controllers too: the GitOps tests run them and must fail, not skip, without them
    assert "flux" in script.DEFAULT_GROUPS
    # cosign first: tests that wait for the real cosign need nothing else
    assert script.TOOLSET[0].group == "cosign"


def test_flux_controllers_come_with_the_crds_of_the_kinds_chartguard_does_not_serve() -> None:
    """Both controllers watch Bucket, ExternalArtifact, GitRepository and OCIRepository:
    without these CRDs neither starts; ours serve HelmRepository and HelmChart."""
    (tool,) = [t for t in _script().TOOLSET if t.key == "source-controller"]
    ((name, parts),) = tool.data
    assert name == "flux-source-crds.yaml"
    kinds = {Path(p).name.split("_", 1)[1].removesuffix(".yaml") for p in parts}
    assert kinds == {"buckets", "externalartifacts", "gitrepositories", "ocirepositories"}


def test_kind_is_built_for_make_e2e_only() -> None:
    script = _script()
    (tool,) = [t for t in script.TOOLSET if t.key == "kind"]
    assert (tool.module, tool.group) == ("sigs.k8s.io/kind", "e2e")
    assert "e2e" not in script.DEFAULT_GROUPS

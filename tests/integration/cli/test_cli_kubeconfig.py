"""Which cluster and namespace the commands talk to (``KUBECONFIG``, ``--kubeconfig``,
``--context``, ``-n``), what they say when they cannot, and that they never load the
operator's framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from cli_support import Chartguard
from operator_support import Cluster, OperatorTarget, repository

from chartguard_testing import procs


def _env_without_kubeconfig(kube: OperatorTarget) -> dict[str, str]:
    return {k: v for k, v in kube.env.items() if k != "KUBECONFIG"}


def test_kubeconfig_context_and_namespace_flags_pick_the_cluster_and_the_objects(
        kube: OperatorTarget, cluster: Cluster, chartguard: Chartguard, tmp_path: Path) -> None:
    cluster.kubectl("create", "namespace", "team-a")
    cluster.kubectl.apply(repository("charts", "team-a", "oci://registry.example/charts"))
    config = yaml.safe_load(kube.kubeconfig.read_text())
    context = config["current-context"]
    # a second context, made current, whose server does not answer
    dead = f"http://127.0.0.1:{procs.free_port()}"
    config["clusters"].append({"name": "dead", "cluster": {"server": dead}})
    config["contexts"].append({"name": "dead", "context": {"cluster": "dead",
                                                           "user": context}})
    config["current-context"] = "dead"
    two = tmp_path / "two-contexts.yaml"
    two.write_text(yaml.safe_dump(config))
    no_env = _env_without_kubeconfig(kube)

    # --kubeconfig without KUBECONFIG; -n picks the namespace (no status yet: flux's words)
    found = chartguard("get", "sources", "helm", "--kubeconfig", str(kube.kubeconfig), "-n",
                       "team-a", env=no_env)
    assert found.code == 0, found.err
    assert [c.strip() for c in found.out.splitlines()[1].split("\t")][:5] == [
        "charts", "", "False", "True", "Helm repository is Ready"]
    # the default namespace is flux-system, as flux's
    empty = chartguard("get", "sources", "helm", "--kubeconfig", str(kube.kubeconfig),
                       env=no_env)
    assert empty.err == '✗ no HelmRepository objects found in "flux-system" namespace\n'

    # the current context does not answer: one line saying so; --context picks the other
    unreachable = chartguard("get", "sources", "helm", "--kubeconfig", str(two), "-A",
                             "--timeout", "10s", env=no_env)
    assert unreachable.code == 1
    assert unreachable.lines == [
        "✗ list HelmRepository objects: the API server did not answer (MaxRetryError); is "
        "the kubeconfig's cluster reachable?"]
    good = chartguard("get", "sources", "helm", "--kubeconfig", str(two), "--context", context,
                      "-A", env=no_env)
    assert good.code == 0, good.err
    assert good.out.splitlines()[1].startswith("team-a")
    # KUBECONFIG is read when no flag is given
    by_env = chartguard("get", "sources", "helm", "-n", "team-a",
                        env={**no_env, "KUBECONFIG": str(two)}, timeout=60)
    assert by_env.code == 1
    assert "did not answer" in by_env.err
    unknown = chartguard("get", "sources", "helm", "--kubeconfig", str(two), "--context",
                         "nope", env=no_env)
    assert unknown.code == 1
    assert unknown.err.startswith(f"✗ cannot use the kubeconfig {two} (context nope): ")
    assert unknown.err.rstrip().endswith("set KUBECONFIG or pass --kubeconfig/--context")
    missing = chartguard("get", "hr", "--kubeconfig", str(tmp_path / "none.yaml"),
                         env=no_env)
    assert missing.code == 1
    assert missing.err.startswith(f"✗ cannot use the kubeconfig {tmp_path / 'none.yaml'}: ")


def test_get_and_reconcile_load_neither_kopf_nor_the_operator(
        kube: OperatorTarget, cluster: Cluster) -> None:
    cluster.kubectl.apply(repository("charts", kube.namespace, "oci://registry.example/c"))
    probe = ("import sys, contextlib, io\n"
             "from chartguard.cli import main\n"
             "codes = []\n"
             "with contextlib.redirect_stdout(io.StringIO()), "
             "contextlib.redirect_stderr(io.StringIO()):\n"
             "    codes.append(main(['get', 'sources', 'helm']))\n"
             "    codes.append(main(['reconcile', 'source', 'helm', 'charts', '--timeout', "
             "'1s']))\n"
             "    codes.append(main(['events']))\n"
             "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'aiohttp')\n"
             "                or m.startswith('chartguard.operator'))\n"
             "print(codes, ','.join(loaded))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=kube.env, capture_output=True,
                         text=True, check=True, timeout=60)
    # get found the object; reconcile annotated it and timed out (nothing reconciles here)
    assert out.stdout.strip() == "[0, 1, 0]", out.stdout + out.stderr
    annotations = cluster.body("helmrepository", kube.namespace, "charts")["metadata"][
        "annotations"]
    assert "reconcile.fluxcd.io/requestedAt" in annotations

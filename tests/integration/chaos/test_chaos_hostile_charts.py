"""Hostile charts and signatures (issue 12, item 3), each refused before helm sees it.

A hostile publisher holds the signing key: every hostile chart here is signed correctly (its
manifest digest, by the key the release trusts), so what refuses it is the chart parser or a
cap, not the signature check. The release ``app`` (``>=1.0.0``) is installed from a good 1.0.0
first; the hostile 1.0.1 is pushed to the real registry and the chart asked to look again. Each
test shows the condition that says why, that no helm install, upgrade or rollback ran (helm is a
recording wrapper), that helm's history holds only the verified chart, and that the artifact
and the release stayed as 1.0.0 left them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_support import Installed, install_good
from operator_support import ISSUER, Charts, Cluster, Operator, secret

from chartguard.oci.chart import MAX_ARCHIVE_READ
from chartguard.oci.limits import Limits
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs
from chartguard_testing.chaos import unverified_installs
from chartguard_testing.hostile import (
    gzip_bomb,
    hostile_archive,
    push_chart,
    push_legacy_layers,
)
from chartguard_testing.memory_registry import chart_archive
from chartguard_testing.registry import Registry
from chartguard_testing.tools import find_tool

LIMITS = Limits()
BOMB = 256 * 1024 * 1024  # 8 times the cap; built in well under a second


def _sign(charts: Charts, installed: Installed, digest: str) -> None:
    """A good signature of ``digest`` by the key the release trusts (the publisher's)."""
    payload = cs.simple_signing_payload(installed.good.repository, digest)
    sig = cs.sign_legacy_with_key(charts.key("good"), payload)
    rs.push_legacy_signature(charts.registry, installed.good.repository, digest, [sig])


def _retagged(registry: Registry, repo: str) -> str:
    """An older chart (0.9.0), signed by the publisher in its day, tagged 1.0.1 by someone who
    may push but not sign: the tag is not what the signature covers."""
    digest = push_chart(registry, repo, "0.9.0", chart_archive("app", "0.9.0"))
    subprocess.run([find_tool("crane"), "tag", "--insecure", f"{repo}@{digest}", "1.0.1"],
                   check=True, capture_output=True, timeout=60)
    return digest


def _entry(case: str) -> Callable[[Registry, str], str]:
    return lambda registry, repo: push_chart(registry, repo, "1.0.1",
                                             hostile_archive(case, "app", "1.0.1"))


#: case -> (what the row calls it, how 1.0.1 is published (returns its digest), the words
#: the HelmChart's FetchFailed message must hold)
CHART_CASES: dict[str, tuple[str, Callable[[Registry, str], str], str]] = {
    "dotdot": ("tar entry app/../../etc/cron.d/x", _entry("dotdot"), "a path with '..'"),
    "absolute": ("tar entry /etc/cron.d/x (absolute)", _entry("absolute"), "an absolute path"),
    "symlink": ("tar entry: symlink to /etc/kubernetes", _entry("symlink"),
                "a symbolic link"),
    "hardlink": ("tar entry: hard link to /etc/shadow", _entry("hardlink"), "a hard link"),
    "device": ("tar entry: character device", _entry("device"), "a device file"),
    "fifo": ("tar entry: FIFO", _entry("fifo"), "a FIFO"),
    "second-chart": ("2nd top dir, its Chart.yaml says evil", _entry("second-chart"),
                     "more than one top directory"),
    "subchart-symlink": ("symlink inside subchart charts/sub.tgz",
                         _entry("subchart-symlink"), "sub.tgz) holds a symbolic link"),
    "subchart-bomb": ("gzip bomb as subchart charts/sub.tgz", _entry("subchart-bomb"),
                      f"unpacks past {MAX_ARCHIVE_READ} bytes"),
    "gzip-bomb": ("gzip bomb: 256 KiB unpacking to 256 MiB",
                  lambda registry, repo: push_chart(registry, repo, "1.0.1",
                                                    gzip_bomb("app", "1.0.1", BOMB)),
                  f"unpacks past {MAX_ARCHIVE_READ} bytes"),
    "oversized": ("chart layer of 11 MiB (cap 10 MiB)",
                  lambda registry, repo: push_chart(registry, repo, "1.0.1", chart_archive(
                      "app", "1.0.1", padding=os.urandom(11 * 1024 * 1024))),
                  f"over the limit of {LIMITS.max_layer_bytes} bytes"),
    "renamed": ("chart named evil in repository app",
                lambda registry, repo: push_chart(registry, repo, "1.0.1",
                                                  chart_archive("evil", "1.0.1"),
                                                  config_name="evil"),
                "is the chart 'evil', not 'app'"),
    "retagged": ("tag 1.0.1 moved to a signed 0.9.0 chart", _retagged,
                 "is version '0.9.0' of app, not '1.0.1'"),
    "media-type": ("chart layer typed image.layer.v1.tar+gzip",
                   lambda registry, repo: push_chart(
                       registry, repo, "1.0.1", chart_archive("app", "1.0.1"),
                       layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip"),
                   "which a Helm chart does not have"),
}


@pytest.mark.chaos
@pytest.mark.parametrize("case", list(CHART_CASES))
def test_a_signed_hostile_chart_is_refused_before_helm_sees_it(
        case: str, cluster: Cluster, charts: Charts, operator: Operator, registry: Registry,
        tmp_path: Path, chaos_row: Callable[..., None]) -> None:
    title, publish, words = CHART_CASES[case]
    installed = install_good(cluster, charts, operator, tmp_path)
    digest = publish(registry, installed.good.repository)
    _sign(charts, installed, digest)
    started = time.perf_counter()
    cond = installed.chart_condition("FetchFailed", "True", words, installed.look_again())
    took = time.perf_counter() - started
    assert cond["reason"] == "ChartPullError"
    assert f"failed to pull {digest}" in cond["message"]  # past verification: it was signed
    assert "Traceback" not in cond["message"]
    ready = cluster.condition("helmchart", cluster.ns, installed.chart, "Ready")
    assert (ready["status"], ready["message"]) == ("False", cond["message"])
    assert len(cond["message"]) < 2500
    installed.no_helm_run()
    assert sorted(p.name for p in (operator.artifacts / "sha256").iterdir()) == [
        Path(installed.artifact_path).name]  # nothing of 1.0.1 was stored
    # the release says why its source is not ready, and stays as it is
    installed.release_condition("SourceNotReady", words)
    chaos_row("chart", title,
              f"{cond['reason']} '{words}' in {took:.1f} s; 1.0.0 kept",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


@pytest.mark.chaos
def test_a_signature_manifest_of_thousands_of_layers_is_read_only_to_its_cap(
        cluster: Cluster, charts: Charts, operator: Operator, registry: Registry,
        tmp_path: Path, chaos_row: Callable[..., None]) -> None:
    """5,000 layers, the valid signature last: only the first 64 are fetched and tried (the
    cap), so the chart is refused, saying how many were left out, in bounded time."""
    installed = install_good(cluster, charts, operator, tmp_path)
    new = charts.push("app", "1.0.1")
    payload = cs.simple_signing_payload(new.repository, new.digest)
    junk = cs.sign_legacy_with_key(charts.key("attacker"), payload)
    valid = cs.sign_legacy_with_key(charts.key("good"), payload)
    layers = 5_000
    push_legacy_layers(registry, new.repository, new.digest, [junk] * (layers - 1) + [valid])
    started = time.perf_counter()
    cond = installed.chart_condition(
        "SourceVerified", "False",
        f"{layers:,} layers; only the first {LIMITS.max_signature_layers} were considered",
        installed.look_again())
    took = time.perf_counter() - started
    assert cond["reason"] == "VerificationError"
    # 64 failures summarised in a few lines, not thousands
    assert f"{LIMITS.max_signature_layers} signatures failed; the first 5 are shown" in (
        cond["message"])
    assert len(cond["message"]) < 2500
    installed.no_helm_run()
    chaos_row("signature", f".sig of {layers:,} layers, valid one last",
              f"VerificationError: first {LIMITS.max_signature_layers} tried, "
              f"{layers - LIMITS.max_signature_layers:,} left out, {took:.1f} s; 1.0.0 kept",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


@pytest.mark.chaos
def test_a_bundle_of_several_megabytes_is_refused_unread(
        cluster: Cluster, charts: Charts, operator: Operator, registry: Registry,
        tmp_path: Path, chaos_row: Callable[..., None]) -> None:
    """A valid keyless bundle padded with 6 MiB of JSON whitespace (cosign would accept it):
    refused by its size (4 MiB cap), before a byte of it is parsed."""
    ns = cluster.ns
    verify = {"provider": "cosign", "trustedRootSecretRef": {"name": "sigstore-root"},
              "matchOIDCIdentity": [{"issuer": f"^{ISSUER}$",
                                     "subject": "^https://github.com/example/"}]}
    installed = install_good(
        cluster, charts, operator, tmp_path, verify=verify, sign=charts.sign_bundle,
        extra=(secret("sigstore-root", ns,
                      {"trusted_root.json": charts.sigstore.trusted_root_json()}),))
    new = charts.push("app", "1.0.1")
    bundle = cs.sign_bundle_keyless(charts.sigstore, new.digest,
                                    "https://github.com/example/charts/x@refs/heads/main",
                                    ISSUER)
    padded = bundle + b" " * (6 * 1024 * 1024)
    rs.push_bundle(registry, new.repository, new.digest, padded)
    started = time.perf_counter()
    cond = installed.chart_condition(
        "SourceVerified", "False",
        f"is {len(padded)} bytes by its descriptor, over the limit of "
        f"{LIMITS.max_signature_bytes} bytes", installed.look_again())
    took = time.perf_counter() - started
    assert cond["reason"] == "VerificationError"
    installed.no_helm_run()
    chaos_row("signature", f"bundle of {len(padded) / 1024 / 1024:.1f} MiB (valid, padded)",
              f"VerificationError: over the {LIMITS.max_signature_bytes // 1024 // 1024} MiB "
              f"cap, not read; {took:.1f} s; 1.0.0 kept",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())

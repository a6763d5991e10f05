"""Hostile Secrets (issue 12, item 4): thousands of keys, megabytes of data, invalid PEM, in
the verification key Secret, a valuesFrom Secret and the registry credentials Secret.

Each starts from the release ``app`` installed from a good signed 1.0.0 (helm a recording
wrapper); the Secret is then replaced by the hostile one. A refusal names the entry and never
shows the Secret's content; no helm install, upgrade or rollback runs; the artifact and release
stay. On the API emulator a Secret may hold megabytes (a real API server refuses more than
1 MiB, so these are the harder case).
"""

from __future__ import annotations

import os
import secrets as random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hostile_support import RELEASE, Installed, install_good, put_secret
from operator_support import Charts, Cluster, Operator, secret, wait_for

from chartguard.reconcile._values_yaml import MAX_VALUES_BYTES
from chartguard.verify.keys import MAX_PUBLIC_KEYS
from chartguard_testing.chaos import unverified_installs
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry

MiB = 1024 * 1024


def _rsa_512() -> bytes:
    modulus = (1 << 511) | (random.randbits(510) << 1) | 1
    key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificate(charts: Charts) -> bytes:
    _, cert = charts.sigstore.issue_certificate("signer@example.com",
                                                "https://accounts.example.com")
    return cert.public_bytes(serialization.Encoding.PEM)


#: case -> (row title, the hostile cosign-pub Secret's data, the words of the refusal)
KEY_CASES: dict[str, tuple[str, Callable[[Charts], dict[str, bytes]], str]] = {
    "thousands": (
        "key Secret of 5,000 .pub entries",
        lambda charts: {f"k{n:04}.pub": charts.key("good").public_pem for n in range(5_000)},
        f"5,000 entries ending in .pub, more than {MAX_PUBLIC_KEYS}"),
    "megabytes": (
        "cosign.pub: 3 MiB of BEGIN lines",
        lambda charts: {"cosign.pub": b"-----BEGIN PUBLIC KEY-----\n" * (3 * MiB // 27)},
        "key cosign.pub: not a PEM public key"),
    "garbage": ("cosign.pub: random bytes",
                lambda charts: {"cosign.pub": os.urandom(512)},
                "key cosign.pub: not a PEM public key"),
    "truncated": ("cosign.pub: PEM cut in half",
                  lambda charts: {"cosign.pub": charts.key("good").public_pem[:60]},
                  "key cosign.pub: not a PEM public key"),
    "certificate": ("cosign.pub: a certificate",
                    lambda charts: {"cosign.pub": _certificate(charts)},
                    "key cosign.pub: a certificate, not a public key"),
    "rsa-512": ("cosign.pub: RSA key of 512 bits",
                lambda charts: {"cosign.pub": _rsa_512()},
                "RSA key of 512 bits is too weak (at least 2048)"),
}


def _refused_row(installed: Installed, chaos_row: Callable[..., None], title: str,
                 words: str, took: float) -> None:
    installed.no_helm_run()
    short = words.removeprefix("key cosign.pub: ").split(" (")[0].split(", more")[0]
    chaos_row("secret", title, f"VerificationError: {short}, {took:.1f} s; 1.0.0 kept",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


@pytest.mark.chaos
@pytest.mark.parametrize("case", list(KEY_CASES))
def test_a_hostile_verification_key_secret_is_refused_naming_the_entry(
        case: str, cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    title, data, words = KEY_CASES[case]
    installed = install_good(cluster, charts, operator, tmp_path)
    hostile = data(charts)
    started = time.perf_counter()
    put_secret(cluster, "cosign-pub", hostile)
    cond = installed.chart_condition("SourceVerified", "False", words, installed.look_again())
    took = time.perf_counter() - started
    assert cond["reason"] == "VerificationError"
    assert len(cond["message"]) < 1000
    for value in hostile.values():  # nothing of the Secret's content is shown
        lines = [ln for ln in value.splitlines() if len(ln) > 30 and b"-----" not in ln]
        assert not any(ln.decode(errors="ignore") in cond["message"] for ln in lines[:3])
    installed.release_condition("VerificationError", words)  # the release says why it waits
    _refused_row(installed, chaos_row, title, words, took)


@pytest.mark.chaos
def test_a_values_secret_of_thousands_of_keys_and_megabytes_reads_only_its_key(
        cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    ns = cluster.ns
    values = {"values.yaml": b"replicaCount: 1\n"}
    installed = install_good(cluster, charts, operator, tmp_path,
                             extra=(secret("vals", ns, values),),
                             valuesFrom=[{"kind": "Secret", "name": "vals"}])
    keys = 5_000
    hostile = {**values, **{f"k{n:04}": os.urandom(600) for n in range(keys)}}
    started = time.perf_counter()
    put_secret(cluster, "vals", hostile)
    stamp = cluster.request_reconcile("helmrelease", ns, RELEASE)
    wait_for(lambda: cluster.status("helmrelease", ns, RELEASE).get(
        "lastHandledReconcileAt") == stamp, "requestedAt handled", timeout=30,
        operator=operator)
    took = time.perf_counter() - started
    assert cluster.condition("helmrelease", ns, RELEASE, "Ready")["status"] == "True"
    installed.no_helm_run()
    size = sum(len(v) for v in hostile.values()) / MiB
    chaos_row("secret", f"valuesFrom Secret: {keys + 1:,} keys, {size:.1f} MiB",
              f"read values.yaml only: values unchanged, no helm run ({took:.1f} s)",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


@pytest.mark.chaos
def test_a_values_document_of_megabytes_over_the_cap_is_refused(
        cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        chaos_row: Callable[..., None]) -> None:
    ns = cluster.ns
    installed = install_good(cluster, charts, operator, tmp_path,
                             extra=(secret("vals", ns, {"values.yaml": b"replicaCount: 1\n"}),),
                             valuesFrom=[{"kind": "Secret", "name": "vals"}])
    document = b"padding: " + b"x" * (5 * MiB)
    started = time.perf_counter()
    put_secret(cluster, "vals", {"values.yaml": document})
    words = f"more than the {MAX_VALUES_BYTES // MiB} MiB a values document may have"
    cond = installed.release_condition("ValuesError", words)
    took = time.perf_counter() - started
    assert cond["status"] == "False"
    assert f"'{ns}/vals' with key 'values.yaml'" in cond["message"]
    assert "xxxxxxxx" not in cond["message"]
    installed.no_helm_run()
    chaos_row("secret", f"valuesFrom values.yaml of {len(document) / MiB:.0f} MiB",
              f"ValuesError: over the {MAX_VALUES_BYTES // MiB} MiB cap, in {took:.1f} s; "
              "no helm run",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())


@pytest.mark.chaos
def test_registry_credentials_in_a_secret_of_thousands_of_keys_and_megabytes(
        cluster: Cluster, charts: Charts, operator: Operator, tmp_path: Path,
        auth_registry: Registry, helm_env: HelmEnv, chaos_row: Callable[..., None]) -> None:
    """Only username and password are read of it; the chart is pulled with them."""
    private = Charts(auth_registry, helm_env, charts.sigstore)
    assert auth_registry.username
    assert auth_registry.password
    keys = 5_000
    creds = {"username": auth_registry.username.encode(),
             "password": auth_registry.password.encode(),
             **{f"k{n:04}": os.urandom(600) for n in range(keys)}}
    put_secret(cluster, "creds", creds, create=True)
    started = time.perf_counter()
    installed = install_good(cluster, private, operator, tmp_path,
                             repo_spec={"secretRef": {"name": "creds"}})
    took = time.perf_counter() - started
    assert cluster.condition("helmrepository", cluster.ns, "charts", "Ready")["status"] == "True"
    assert auth_registry.password not in operator.output()
    size = sum(len(v) for v in creds.values()) / MiB
    chaos_row("secret", f"registry creds: {keys + 2:,} keys, {size:.1f} MiB",
              f"username/password read, chart pulled and installed ({took:.1f} s)",
              unverified=unverified_installs(installed.records(), installed.signed_archives),
              lost=installed.lost())

"""Fixtures for real components: a registry, helm with a private home, charts pushed by helm.

Every process is started on 127.0.0.1 on a free port and stopped by PID; every temporary
directory is removed. A missing tool is an error (``make tools``), never a skip.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chartguard_testing.apiserver import KubeAPI, run_apiserver
from chartguard_testing.chaos import NONE, ChaosRow, format_table
from chartguard_testing.charts import HelmEnv
from chartguard_testing.controlplane import ControlPlane, Namespaced, namespaced, run_controlplane
from chartguard_testing.pgp_signer import PGPKey, make_pgp_key
from chartguard_testing.registry import Registry, run_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A plain-HTTP registry of this test's own."""
    with run_registry(workdir=tmp_path) as reg:
        yield reg


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry behind htpasswd (bcrypt) basic auth: user ``chartguard``."""
    with run_registry(auth=("chartguard", "s3cret-Passw0rd"), workdir=tmp_path) as reg:
        yield reg


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry serving TLS with a CA generated for this test."""
    with run_registry(tls=True, workdir=tmp_path) as reg:
        yield reg


@pytest.fixture
def helm_env(tmp_path: Path) -> HelmEnv:
    """The real helm with HELM_*_HOME of this test's own."""
    return HelmEnv(tmp_path / "helm")


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeAPI]:
    """The Kubernetes API emulator (test equipment) as a subprocess of this test's own.

    ``.kubeconfig`` points at it, ``.url`` is ``http://127.0.0.1:PORT``, ``.env`` is
    os.environ plus KUBECONFIG and a private kubectl discovery cache; stopped by PID.
    """
    with run_apiserver(tmp_path / "kube-api") as api:
        yield api


@pytest.fixture
def pgp_keys(tmp_path: Path) -> Iterator[Callable[..., PGPKey]]:
    """Make OpenPGP keys with the real gpg (``pgp_keys(name=..., email=...)``); their agents
    and short home links are removed after the test."""
    made: list[PGPKey] = []

    def make(name: str = "Chart Signer", email: str = "charts@example.com") -> PGPKey:
        key = make_pgp_key(tmp_path, name=name, email=email)
        made.append(key)
        return key

    yield make
    for key in made:
        key.remove()


@pytest.fixture(scope="session")
def controlplane() -> Iterator[ControlPlane]:
    """A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
    kwok) built by ``make controlplane``: one per pytest process (each xdist worker has its
    own), in a temporary directory removed at the end. Missing binaries are an error naming
    ``make controlplane``, never a skip: CI builds them in ``make tools``."""
    with run_controlplane() as plane:
        yield plane


@pytest.fixture
def real_kube(controlplane: ControlPlane, request: pytest.FixtureRequest,
              tmp_path: Path) -> Iterator[Namespaced]:
    """This test's own namespace on the shared real control plane, as a KubeTarget: its
    kubeconfig defaults to that namespace (``.namespace``); deleted (not awaited) after."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    target = namespaced(controlplane, name, tmp_path / "real-kube")
    yield target
    controlplane.request("DELETE", f"/api/v1/namespaces/{name}")


# --- the cosign agreement table (tests/integration/verify/test_real_cosign.py) -----------------
# Rows come from record_property("cosign_agreement", {...}), which reaches this process from
# pytest-xdist workers too; the table is printed once at the end of the run.

_AGREEMENT: list[dict[str, str]] = []
_CHAOS: list[ChaosRow] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _AGREEMENT.extend(value for name, value in report.user_properties  # type: ignore[misc]
                          if name == "cosign_agreement")
        _CHAOS.extend(ChaosRow.from_json(value) for name, value in report.user_properties
                      if name == "chaos_row")


@pytest.fixture
def chaos_row(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Adds this test's row to the chaos table (``make chaos``): ``chaos_row(group, case,
    did, unverified=[...], lost=NONE)``. ``unverified`` is what
    :func:`chartguard_testing.chaos.unverified_installs` measured; a row with an unverified
    install or lost data fails the test (after the row is recorded, so the table shows it)."""

    def record(group: str, case: str, did: str, *, unverified: list[str],
               lost: str = NONE) -> None:
        row = ChaosRow(group, case, did, len(unverified), lost)
        request.node.user_properties.append(("chaos_row", row.to_json()))
        assert not unverified, f"{case}: helm installed unverified charts: {unverified}"
        assert lost == NONE, f"{case}: data lost: {lost}"

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _CHAOS:
        terminalreporter.section("chaos: faults and hostile input")
        for line in format_table(_CHAOS).splitlines():
            terminalreporter.write_line(line)
    if not _AGREEMENT:
        return
    columns = list(dict.fromkeys(key for row in _AGREEMENT for key in row))
    widths = {c: max(len(c), *(len(str(row.get(c, "-"))) for row in _AGREEMENT))
              for c in columns}
    terminalreporter.section("cosign verify vs chartguard verify: agreement")
    for line in ([columns, ["-" * widths[c] for c in columns]]
                 + [[str(row.get(c, "-")) for c in columns]
                    for row in sorted(_AGREEMENT, key=lambda r: r["case"])]):
        terminalreporter.write_line("  ".join(v.ljust(widths[c]) for c, v in
                                              zip(columns, line, strict=True)).rstrip())

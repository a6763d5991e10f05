"""The emulator (`python -m chartguard_testing.apiserver`): test equipment, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from chartguard_testing import procs

EMULATOR = [sys.executable, "-m", "chartguard_testing.apiserver"]


def test_help_says_it_is_test_equipment_and_what_it_does_not_do() -> None:
    out = subprocess.run([*EMULATOR, "--help"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    text = " ".join(out.split())
    assert "test equipment" in text
    for missing in ("no pods run", "RBAC", "admission", "no schema validation",
                    "memory only"):
        assert missing in text


def test_serves_until_sigterm_even_with_a_watch_open(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    port = procs.free_port()
    proc = subprocess.Popen([*EMULATOR, "--kubeconfig", str(config),
                             "--port", str(port)])
    try:
        procs.wait_until(config.exists, timeout=20, what="apiserver emulator", proc=proc)
        server = yaml.safe_load(config.read_text())["clusters"][0]["cluster"]["server"]
        assert server == f"http://127.0.0.1:{port}"
        assert requests.get(server + "/version", timeout=5).json()["major"] == "1"
        watch = requests.get(server + "/api/v1/namespaces", params={"watch": "true"},
                             stream=True, timeout=10)
        assert watch.status_code == 200
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        watch.close()
    finally:
        procs.stop(proc)


def test_busy_port_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([*EMULATOR, "--kubeconfig",
                               str(tmp_path / "kc"), "--port", str(port)],
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in proc.stderr
    assert "--port" in proc.stderr
    assert not (tmp_path / "kc").exists()

"""``chartguard verify`` as a command: usage errors, output formats, auth/TLS, a real process.

The verdicts of every signature case are in test_verify_scenarios.py; this file pins what
the command adds: exit 2 for flags that do not go together (as cosign rejects them), the JSON
output, the keyless-without-identity warning, registry credentials and CA, and one run as a
separate process with its real exit codes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from verify_support import IDENTITY, ISSUER, Signing

from chartguard.cli import main
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs
from chartguard_testing.charts import HelmEnv
from chartguard_testing.registry import Registry


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def pub(tmp_path: Path) -> Path:
    path = tmp_path / "cosign.pub"
    path.write_bytes(cs.generate_key_pair().public_pem)
    return path


USAGE = [
    ("identity-without-issuer", ["--certificate-identity-regexp", "x"],
     "needs both a subject"),
    ("issuer-without-identity", ["--certificate-oidc-issuer-regexp", "x"],
     "needs both a subject"),
    ("key-and-identity", ["--key", "{pub}", "--certificate-identity-regexp", "x",
                          "--certificate-oidc-issuer-regexp", "y"],
     "either --key or a certificate identity"),
    ("exact-and-regexp-identity", ["--certificate-identity", "a", "--certificate-identity-regexp",
                                   "b", "--certificate-oidc-issuer", "c"], "not both"),
    ("require-identity-without-one", ["--require-identity"], "needs at least one identity"),
    ("unreadable-key", ["--key", "{tmp}/missing.pub"], "missing.pub: cannot be read"),
    ("not-a-key", ["--key", "{tmp}/garbage.pub"], "garbage.pub"),
    ("bad-regexp", ["--certificate-identity-regexp", "(", "--certificate-oidc-issuer-regexp",
                    "x"], "("),
    ("unreadable-trusted-root", ["--trusted-root", "{tmp}/none.json"], "none.json"),
    ("password-stdin-without-username", ["--password-stdin", "--key", "{pub}"],
     "--password-stdin needs --username"),
]


@pytest.mark.parametrize(("argv", "says"), [(a, s) for _, a, s in USAGE],
                         ids=[name for name, _, _ in USAGE])
def test_usage_errors_exit_2_with_what_to_fix(argv: list[str], says: str, pub: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "garbage.pub").write_text("not a key")
    args = [a.format(pub=pub, tmp=tmp_path) for a in argv]
    code, out, err = _run(capsys, "oci://127.0.0.1:1/charts/demo", "--version", "1.0.0", *args)
    assert code == 2, err
    assert says in err
    assert out == ""


def test_chart_needs_a_version_and_a_target(pub: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "oci://127.0.0.1:1/charts/demo", "--key", str(pub))
    assert code == 2
    assert "--version is required" in err
    code, _, err = _run(capsys, "--key", str(pub))
    assert code == 2
    assert "--local-image" in err
    code, _, err = _run(capsys, "oci://127.0.0.1:1/charts/demo", "--local-image", "/x",
                        "--key", str(pub))
    assert code == 2
    assert "not both" in err
    code, _, err = _run(capsys, "--local-image", "/x", "--plain-http", "--key", str(pub))
    assert code == 2
    assert "--plain-http only apply to a registry" in err


def test_json_output_on_success_and_failure(signing: Signing,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pub = signing.key("cosign.pub", "ed25519")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    base = [signing.url, "--version", "1.0.0", "--plain-http", "--output", "json"]
    code, out, _ = _run(capsys, *base, "--key", str(pub))
    assert code == 0
    doc = json.loads(out)
    assert doc["verified"] is True
    assert doc["digest"] == signing.chart.digest
    assert doc["format"] == "legacy"
    assert doc["key"].startswith("cosign.pub (sha256:")
    assert doc["identity"] is None
    wrong = signing.key("wrong.pub")
    code, out, err = _run(capsys, *base, "--key", str(wrong))
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is False
    assert doc["digest"] == signing.chart.digest
    assert doc["failures"] == [
        f"tag {rs.sig_tag(signing.chart.digest)} layer 0: key wrong.pub: signature does not match"]
    assert "not verified" in err


def test_keyless_without_identity_warns_and_require_identity_refuses(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    signing.push_legacy(cs.sign_legacy_keyless(signing.sigstore, signing.payload()))
    root = str(signing.trusted_root())
    base = [signing.url, "--version", "1.0.0", "--plain-http", "--trusted-root", root]
    code, out, err = _run(capsys, *base)
    assert code == 0, err
    assert f"identity {IDENTITY} (issuer {ISSUER})" in out
    assert "warning:" in err
    assert "ANY Fulcio identity was accepted" in err
    code, out, err = _run(capsys, *base, "--require-identity")
    assert code == 2
    assert "needs at least one identity" in err
    code, out, err = _run(capsys, *base, "--certificate-identity", IDENTITY,
                          "--certificate-oidc-issuer", ISSUER)
    assert code == 0, err
    assert "warning" not in err


def test_keyless_against_the_production_root_refuses_a_local_certificate(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    signing.push_legacy(cs.sign_legacy_keyless(signing.sigstore, signing.payload()))
    code, _, err = _run(capsys, signing.url, "--version", "1.0.0", "--plain-http",
                        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER)
    assert code == 1
    assert "sigstore production" in err


def test_version_range_resolves_to_the_signed_digest(signing: Signing,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pub = signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    code, out, err = _run(capsys, signing.url, "--version", ">=1.0.0 <2.0.0", "--plain-http",
                          "--key", str(pub))
    assert code == 0, err
    assert f":1.0.0@{signing.chart.digest}" in out
    code, _, err = _run(capsys, signing.url, "--version", "2.0.0", "--plain-http",
                        "--key", str(pub))
    assert code == 1
    assert "2.0.0" in err


def _signed_chart(registry: Registry, helm_env: HelmEnv, tmp_path: Path) -> Path:
    chart = helm_env.make_chart(registry, "demo", "1.0.0")
    pair = cs.generate_key_pair("ecdsa-p256")
    rs.push_legacy_signature(registry, chart.repository, chart.digest, [
        cs.sign_legacy_with_key(pair, cs.simple_signing_payload(chart.repository, chart.digest))])
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(pair.public_pem)
    return pub


def test_registry_credentials_come_from_stdin_and_are_never_printed(
        auth_registry: Registry, helm_env: HelmEnv, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pub = _signed_chart(auth_registry, helm_env, tmp_path)
    url = f"{auth_registry.oci()}/demo"
    assert auth_registry.password is not None
    monkeypatch.setattr(sys, "stdin", io.StringIO(auth_registry.password + "\n"))
    code, out, err = _run(capsys, url, "--version", "1.0.0", "--plain-http", "--key", str(pub),
                          "--username", "chartguard", "--password-stdin")
    assert code == 0, err
    assert "verified sha256:" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("wrong-password\n"))
    code, out, err = _run(capsys, url, "--version", "1.0.0", "--plain-http", "--key", str(pub),
                          "--username", "chartguard", "--password-stdin")
    assert code == 1
    assert "wrong-password" not in out + err
    assert auth_registry.password not in out + err
    code, _, err = _run(capsys, url, "--version", "1.0.0", "--plain-http", "--key", str(pub))
    assert code == 1
    assert err.count("\n") == 1  # one line saying what to fix


def test_tls_registry_needs_its_ca_file(tls_registry: Registry, helm_env: HelmEnv,
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert tls_registry.tls is not None
    pub = _signed_chart(tls_registry, helm_env, tmp_path)
    url = f"{tls_registry.oci()}/demo"
    code, out, err = _run(capsys, url, "--version", "1.0.0", "--key", str(pub),
                          "--ca-file", str(tls_registry.tls.ca_cert))
    assert code == 0, err
    assert "verified sha256:" in out
    code, _, err = _run(capsys, url, "--version", "1.0.0", "--key", str(pub))
    assert code == 1
    assert tls_registry.host in err


def test_real_process_exit_codes_and_streams(signing: Signing) -> None:
    pub = signing.key("cosign.pub", "rsa")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    base = [sys.executable, "-m", "chartguard", "verify", signing.url, "--version", "1.0.0",
            "--plain-http"]
    ok = subprocess.run([*base, "--key", str(pub)], capture_output=True, text=True,
                        timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert f"verified {signing.chart.digest}: legacy signature by key cosign.pub" in ok.stdout
    bad = subprocess.run([*base, "--key", str(signing.key("other.pub"))], capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "key other.pub: signature does not match" in bad.stderr
    usage = subprocess.run([*base, "--certificate-identity-regexp", "x"], capture_output=True,
                           text=True, timeout=60, check=False)
    assert usage.returncode == 2
    assert "needs both a subject" in usage.stderr

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
    ("pem-with-a-bad-second-key", ["--key", "{tmp}/two.pub"], "two.pub#2"),
    ("unreadable-ca-file", ["--key", "{pub}", "--ca-file", "{tmp}/none.crt"],
     "--ca-file {tmp}/none.crt: cannot be read"),
]


@pytest.mark.parametrize(("argv", "says"), [(a, s) for _, a, s in USAGE],
                         ids=[name for name, _, _ in USAGE])
def test_usage_errors_exit_2_with_what_to_fix(argv: list[str], says: str, pub: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "garbage.pub").write_text("not a key")
    (tmp_path / "two.pub").write_bytes(pub.read_bytes() + b"-----BEGIN PUBLIC KEY-----\n"
                                       b"bm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    args = [a.format(pub=pub, tmp=tmp_path) for a in argv]
    code, out, err = _run(capsys, "oci://127.0.0.1:1/charts/demo", "--version", "1.0.0", *args)
    assert code == 2, err
    assert says.format(tmp=tmp_path) in err
    assert err.startswith("usage: chartguard verify ")  # the usage line, as cosign prints it
    assert out == ""


TARGET_USAGE = [
    ("not-an-oci-url", ["https://127.0.0.1:1/charts/demo", "--version", "1.0.0"], "oci://"),
    ("bad-constraint", ["oci://127.0.0.1:1/charts/demo", "--version", ">>1"],
     "not a semver version or constraint"),
    ("missing-layout-directory", ["--local-image", "{tmp}/nowhere"], "no such directory"),
    ("directory-that-is-no-layout", ["--local-image", "{tmp}"], "not an OCI image layout"),
    ("bad-layout-digest", ["--local-image", "{tmp}@sha256:abc"], "is not a sha256 digest"),
]


@pytest.mark.parametrize(("argv", "says"), [(a, s) for _, a, s in TARGET_USAGE],
                         ids=[name for name, _, _ in TARGET_USAGE])
def test_the_users_own_errors_exit_2_before_any_request(
        argv: list[str], says: str, pub: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # 127.0.0.1:1 refuses connections: a request would be exit 1, never 2
    code, out, err = _run(capsys, *[a.format(tmp=tmp_path) for a in argv], "--key", str(pub))
    assert code == 2, err
    assert says in err
    assert err.startswith("usage: chartguard verify ")
    assert out == ""


def test_json_output_is_one_document_on_every_failure(
        pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (2, ["--certificate-identity-regexp", "x", "--key", str(pub)]),  # our usage check
        (2, ["--key", str(pub), "--no-such-flag"]),  # argparse's own
        (2, ["--key", str(tmp_path / "missing.pub")]),  # unreadable file
        (1, ["--key", str(pub)]),  # the registry cannot be reached
    ]
    for expected, extra in cases:
        code, out, err = _run(capsys, "oci://127.0.0.1:1/charts/demo", "--version", "1.0.0",
                              "--output", "json", *extra)
        assert code == expected, err
        doc = json.loads(out)  # exactly one document: a second one would not parse
        assert doc["exitCode"] == expected
        assert doc["error"]
        assert "Traceback" not in out + err
    assert doc["verified"] is False
    assert "127.0.0.1:1" in doc["error"]
    assert doc["target"] == "oci://127.0.0.1:1/charts/demo"


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
    assert "pass --ca-file F if its CA is private; pass --plain-http" in err  # the CLI's hint
    assert err.count("\n") == 1


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


def test_tampered_chart_layer_fails_verify_though_the_signature_is_good(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    pub = signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    base = [signing.url, "--version", "1.0.0", "--plain-http", "--key", str(pub)]
    code, out, err = _run(capsys, *base)
    assert code == 0, err
    layer = rs.Blob(signing.chart.package.read_bytes(), "").digest
    assert f"chart demo 1.0.0: manifest, config and chart layer {layer}" in out
    stored = signing.registry.blob_path(layer)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, other bytes: only the digest can tell
    stored.write_bytes(bytes(data))
    code, out, err = _run(capsys, *base)
    assert code == 1
    assert out == ""
    assert f"the chart layer {layer} does not match its digest" in err
    assert err.count("\n") == 1
    code, out, _ = _run(capsys, *base, "--output", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is False
    assert doc["digest"] == signing.chart.digest
    assert "chart layer" in doc["error"]


def test_payload_text_with_newlines_and_escapes_is_one_escaped_line(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    pub = signing.key("cosign.pub")
    forged = f"{signing.chart.digest}\nverified {signing.chart.digest}\x1b[32m OK\x1b[0m"
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"],
                                                signing.payload(forged)))
    base = [signing.url, "--version", "1.0.0", "--plain-http", "--key", str(pub)]
    code, out, err = _run(capsys, *base)
    assert code == 1
    assert out == ""
    assert "\x1b" not in err  # no raw ESC reaches the terminal
    lines = err.splitlines()
    assert len(lines) == 2  # the header and ONE line for the one signature tried
    assert lines[1].startswith(f"  tag {rs.sig_tag(signing.chart.digest)} layer 0:")
    assert "\\x0a" in lines[1]
    assert "\\x1b[32m" in lines[1]
    code, out, err = _run(capsys, *base, "--output", "json")
    assert code == 1
    assert "\x1b" not in out
    doc = json.loads(out)
    assert len(doc["failures"]) == 1
    assert "\n" not in doc["failures"][0]


def test_every_key_of_a_pem_file_is_used(signing: Signing,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    first = signing.key("first.pub")
    second = signing.key("second.pub", "ed25519")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["second.pub"], signing.payload()))
    both = signing.tmp / "keys" / "rotation.pub"
    both.write_bytes(first.read_bytes() + second.read_bytes())
    code, out, err = _run(capsys, signing.url, "--version", "1.0.0", "--plain-http",
                          "--key", str(both))
    assert code == 0, err
    assert "by key rotation.pub#2" in out
    only_first = signing.tmp / "keys" / "old.pub"
    only_first.write_bytes(first.read_bytes() + first.read_bytes())
    code, out, err = _run(capsys, signing.url, "--version", "1.0.0", "--plain-http",
                          "--key", str(only_first))
    assert code == 1
    assert "key old.pub#1: signature does not match" in err
    assert "key old.pub#2: signature does not match" in err

"""The real ``cosign`` binary (v2 and v3) as a subprocess, offline, with a private home.

Test equipment: it signs and verifies charts that real helm pushed to a test registry, so
that chartguard is checked against what cosign itself writes and concludes.

Isolation: every :class:`CosignCLI` has its own HOME, DOCKER_CONFIG, TUF cache
(``TUF_ROOT``, ``SIGSTORE_*``), XDG dirs and TMPDIR under one directory, and the process gets
a minimal environment (PATH plus these): nothing of the caller's ``COSIGN_*`` or registry
logins leaks in. Offline: HTTP(S)_PROXY points at a closed port on 127.0.0.1, so a request
to anything but a loopback address (Go never proxies those) fails at once instead of
reaching Sigstore's public services; every command is given the flags that make it need
none (no Rekor upload, no signing config, no TSA, transparency log ignored on verify).

Offline flags (measured with cosign v2.6.5 and v3.1.3; no Rekor, Fulcio, TSA or TUF):

- v2 sign:   ``sign --key K --tlog-upload=false --yes`` writes a legacy ``.sig``;
  add ``--new-bundle-format=true`` for a bundle v0.3 referrer
- v3 sign:   ``sign --key K --signing-config NO-SERVICES.json --yes`` writes a bundle v0.3
  referrer (``--tlog-upload=false --use-signing-config=false`` works too but is deprecated);
  ``--tlog-upload=false --use-signing-config=false --new-bundle-format=false`` (deprecated
  flags) writes a legacy ``.sig``
- attest:    as sign, plus ``--predicate FILE --type URI`` (v2 legacy: ``sha256-<hex>.att``)
- verify:    ``verify --key PUB --insecure-ignore-tlog=true --trusted-root EMPTY.json``
  (a trusted root that trusts nothing: without one cosign fetches the public-good root
  through TUF, and bundles cannot be verified at all: "trusted root is required");
  ``--new-bundle-format=true|false`` picks the format to look for; ``verify-attestation``
  likewise with ``--type URI``
- registry:  ``--allow-insecure-registry --allow-http-registry`` for a plain-HTTP registry;
  the referrers (bundles) land in the ``sha256-<hex>`` fallback tag index

The key password is a throwaway one, passed only through ``COSIGN_PASSWORD`` (never argv).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chartguard_testing import tools

# the names ``make tools`` (scripts/build-go-tools.sh) gives them in .tools/
COSIGN_V2_TOOL = "cosign"
COSIGN_V3_TOOL = "cosign3"
# a closed port: any request that is not to a loopback address fails at once
_NO_NETWORK_PROXY = "http://127.0.0.1:9"
_VERSION = re.compile(r"GitVersion:\s*v?(\d+)\.(\d+)\.(\d+)")
_THROWAWAY_PASSWORD = "throwaway-test-password"  # protects throwaway test keys only
# a trusted root that trusts nothing: key-based verification needs no Sigstore service, and
# given one, cosign does not fetch the public-good root through TUF
_EMPTY_TRUSTED_ROOT = '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n'
# a signing config naming no service at all (cosign v3): key-signed bundles, nothing uploaded
_NO_SERVICES_SIGNING_CONFIG = json.dumps({
    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
    "caUrls": [], "oidcUrls": [], "rekorTlogUrls": [], "tsaUrls": [],
    "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"},
}) + "\n"



class CosignError(RuntimeError):
    """A cosign command that had to succeed failed (its argv and stderr, no secrets)."""


@dataclass(frozen=True)
class CosignKeys:
    """``cosign.key`` (encrypted) and ``cosign.pub``, and the throwaway password of the key."""

    private: Path
    public: Path
    password: str = field(repr=False)


@dataclass(frozen=True)
class Result:
    """What one cosign command did: exit code and output (for case tables and messages)."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        shown = " ".join(self.argv[1:])
        return f"cosign {shown} -> exit {self.code}\n{self.stderr.strip()[-2000:]}"


class CosignCLI:
    """One cosign binary with a home of its own under ``root``.

    ``tool`` is ``"cosign"`` (v2) or ``"cosign3"`` (v3), found by
    :func:`chartguard_testing.tools.find_tool` (``CHARTGUARD_COSIGN`` / ``CHARTGUARD_COSIGN3``,
    then ``.tools/``, then PATH); a missing binary raises ``ToolMissingError`` (``make tools``).
    """

    def __init__(self, root: Path, tool: str = COSIGN_V2_TOOL, *,
                 plain_http: bool = True, timeout: float = 120.0) -> None:
        self.binary = tools.find_tool(tool)
        self.tool = tool
        self.root = root
        self.plain_http = plain_http
        self.timeout = timeout
        dirs = {name: root / name for name in ("home", "docker", "tuf", "cache", "config",
                                               "tmp", "keys", "work")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        self.keys_dir = dirs["keys"]
        self.trusted_root = root / "trusted_root.json"
        self.trusted_root.write_text(_EMPTY_TRUSTED_ROOT)
        self.signing_config = root / "signing_config.json"
        self.signing_config.write_text(_NO_SERVICES_SIGNING_CONFIG)
        self.work_dir = dirs["work"]
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(dirs["home"]),
            "DOCKER_CONFIG": str(dirs["docker"]),
            "TUF_ROOT": str(dirs["tuf"]),
            "SIGSTORE_TUF_ROOT": str(dirs["tuf"]),
            "XDG_CACHE_HOME": str(dirs["cache"]),
            "XDG_CONFIG_HOME": str(dirs["config"]),
            "TMPDIR": str(dirs["tmp"]),
            "HTTP_PROXY": _NO_NETWORK_PROXY,
            "HTTPS_PROXY": _NO_NETWORK_PROXY,
            "http_proxy": _NO_NETWORK_PROXY,
            "https_proxy": _NO_NETWORK_PROXY,
            "NO_PROXY": "",
            "no_proxy": "",
        }
        self.version = self._version()

    # -- running ----------------------------------------------------------------------------

    def _version(self) -> tuple[int, int, int]:
        res = self.run("version")
        found = _VERSION.search(res.stdout + res.stderr)
        if res.code != 0 or not found:
            raise CosignError(f"{self.binary}: cannot tell its version\n{res.describe()}")
        major, minor, patch = (int(x) for x in found.groups())
        return major, minor, patch

    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def version_text(self) -> str:
        return "v{}.{}.{}".format(*self.version)

    def run(self, *args: str, password: str | None = None, stdin: str | None = None,
            check: bool = False) -> Result:
        env = dict(self.env)
        if password is not None:
            env["COSIGN_PASSWORD"] = password
        argv = (self.binary, *args)
        proc = subprocess.run(argv, env=env, cwd=self.work_dir, input=stdin,
                              capture_output=True, text=True, timeout=self.timeout)
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise CosignError(result.describe())
        return result

    def registry_flags(self) -> list[str]:
        return ["--allow-insecure-registry", "--allow-http-registry"] if self.plain_http else []

    def _offline_sign_flags(self, bundle: bool | None) -> list[str]:
        if self.major >= 3:
            if bundle is False:  # the legacy format is only reachable with deprecated flags
                return ["--tlog-upload=false", "--use-signing-config=false",
                        "--new-bundle-format=false", "--yes"]
            return ["--signing-config", str(self.signing_config), "--yes"]
        flags = ["--tlog-upload=false", "--yes"]
        if bundle is not None:
            flags.append(f"--new-bundle-format={str(bundle).lower()}")
        return flags

    def _offline_verify_flags(self) -> list[str]:
        return ["--insecure-ignore-tlog=true", "--trusted-root", str(self.trusted_root)]

    # -- keys -------------------------------------------------------------------------------

    def generate_key_pair(self, name: str = "cosign") -> CosignKeys:
        """``cosign generate-key-pair`` (ECDSA P-256): ``keys/<name>.key`` and ``.pub``."""
        out = self.keys_dir / name
        out.mkdir(parents=True, exist_ok=False)
        self.run("generate-key-pair", "--output-key-prefix", str(out / "cosign"),
                 password=_THROWAWAY_PASSWORD, check=True)
        return CosignKeys(out / "cosign.key", out / "cosign.pub", _THROWAWAY_PASSWORD)

    def import_key_pair(self, private_pem: bytes, name: str) -> CosignKeys:
        """``cosign import-key-pair`` of an unencrypted PEM private key (PKCS#8 / SEC1 / PKCS#1)."""
        out = self.keys_dir / name
        out.mkdir(parents=True, exist_ok=False)
        source = out / "imported.pem"
        source.write_bytes(private_pem)
        self.run("import-key-pair", "--key", str(source), "--output-key-prefix",
                 str(out / "cosign"), password=_THROWAWAY_PASSWORD, check=True)
        source.unlink()
        return CosignKeys(out / "cosign.key", out / "cosign.pub", _THROWAWAY_PASSWORD)

    # -- signing ------------------------------------------------------------------------------

    def sign(self, image: str, keys: CosignKeys, *, bundle: bool | None = None,
             check: bool = True) -> Result:
        """``cosign sign`` ``image`` (``host/repo@sha256:...``) with a key, offline.

        ``bundle``: ``--new-bundle-format`` true/false; None leaves the version's default
        (v2: legacy ``.sig``; v3: a bundle referrer).
        """
        return self.run("sign", "--key", str(keys.private), *self._offline_sign_flags(bundle),
                        *self.registry_flags(), image, password=keys.password, check=check)

    def attest(self, image: str, keys: CosignKeys, predicate: Path, predicate_type: str, *,
               bundle: bool | None = None, check: bool = True) -> Result:
        """``cosign attest --predicate FILE --type URI`` with a key, offline."""
        return self.run("attest", "--key", str(keys.private), "--predicate", str(predicate),
                        "--type", predicate_type, *self._offline_sign_flags(bundle),
                        *self.registry_flags(), image, password=keys.password, check=check)

    # -- verifying ----------------------------------------------------------------------------

    def verify(self, image: str, public_key: Path, *, bundle: bool | None = None,
               extra: Sequence[str] = ()) -> Result:
        """``cosign verify --key PUB [extra]`` offline; the Result says whether cosign accepted.

        ``bundle``: ``--new-bundle-format`` true/false; None leaves cosign's default.
        """
        fmt = [] if bundle is None else [f"--new-bundle-format={str(bundle).lower()}"]
        return self.run("verify", "--key", str(public_key), *self._offline_verify_flags(),
                        *fmt, *extra, *self.registry_flags(), image)

    def verify_attestation(self, image: str, public_key: Path, predicate_type: str, *,
                           bundle: bool | None = None) -> Result:
        """``cosign verify-attestation --key PUB --type URI`` offline."""
        extra = [] if bundle is None else [f"--new-bundle-format={str(bundle).lower()}"]
        return self.run("verify-attestation", "--key", str(public_key), "--type",
                        predicate_type, *self._offline_verify_flags(), *extra,
                        *self.registry_flags(), image)

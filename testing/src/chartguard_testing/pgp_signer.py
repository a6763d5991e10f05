"""OpenPGP keys made by the real ``gpg`` and charts signed by the real ``helm package --sign``.

Each key lives in a GNUPGHOME of its own under the test's directory (never the user's
``~/.gnupg``), reached through a short link in the temporary directory: gpg-agent puts its
Unix sockets in the home when ``/run/user/<uid>`` does not exist (as on CI), and a pytest
directory under an xdist worker makes their path longer than the 108 bytes a socket path may
have (the agent then fails to start). The gpg-agent that key generation starts is stopped
before :func:`make_pgp_key` returns; :meth:`PGPKey.remove` removes the link (the ``pgp_keys``
fixture calls it). Helm reads only legacy keyrings, so the secret key is exported to
``secring.gpg`` for ``helm package --sign --keyring``; the public key is exported binary
(``gpg --export``, what a ``*.gpg`` Secret key holds) and armored (``gpg --armor --export``,
``*.asc``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chartguard_testing.charts import HelmEnv

_PACKAGED = re.compile(r"saved it to: (\S+)")


@dataclass(frozen=True)
class PGPKey:
    home: Path
    uid: str
    fingerprint: str
    public: bytes  # binary (gpg --export)
    armored: bytes  # gpg --armor --export
    secring: Path  # legacy secret keyring for helm
    link_dir: Path  # the short directory holding the link ``home``

    def remove(self) -> None:
        """Stop the key's gpg-agent (if one runs) and remove the short link to its home."""
        stop_agent(self.home)
        shutil.rmtree(self.link_dir, ignore_errors=True)


def gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
    proc = subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], input=stdin,
                          capture_output=True, env=env, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent a secret-key operation started for ``home``."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                   capture_output=True, timeout=30, check=False,
                   env={**os.environ, "GNUPGHOME": str(home)})


def clearsign(key: PGPKey, text: bytes) -> bytes:
    """``text`` clearsigned by ``key`` with gpg (SHA-512, as helm signs)."""
    try:
        return gpg(key.home, "--pinentry-mode", "loopback", "--passphrase", "",
                   "--local-user", key.fingerprint, "--digest-algo", "SHA512", "--clearsign",
                   stdin=text)
    finally:
        stop_agent(key.home)


def add_uid(key: PGPKey, uid: str) -> bytes:
    """Add a user id to ``key`` (same fingerprint, new key material); its new export."""
    try:
        gpg(key.home, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-add-uid",
            key.fingerprint, uid)
    finally:
        stop_agent(key.home)
    return gpg(key.home, "--export", key.fingerprint)


def make_pgp_key(workdir: Path, name: str = "Chart Signer",
                 email: str = "charts@example.com") -> PGPKey:
    """A new RSA-2048 signing key in ``workdir/gnupg-<name>``, used through a short link in
    ``/tmp`` (call :meth:`PGPKey.remove` when done)."""
    real = workdir / ("gnupg-" + re.sub(r"[^A-Za-z0-9]+", "-", name).lower())
    real.mkdir(mode=0o700, parents=True)
    link_dir = Path(tempfile.mkdtemp(prefix="cg-gpg-"))  # $TMPDIR, /tmp on our machines
    home = link_dir / "h"
    home.symlink_to(real)
    uid = f"{name} <{email}>"
    try:
        gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid,
            "rsa2048", "sign", "never")
        listing = gpg(home, "--with-colons", "--list-keys", uid).decode()
        fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                           if line.startswith("fpr:"))
        public = gpg(home, "--export", fingerprint)
        armored = gpg(home, "--armor", "--export", fingerprint)
        secring = home / "secring.gpg"
        secring.write_bytes(gpg(home, "--pinentry-mode", "loopback", "--passphrase", "",
                                "--export-secret-keys", fingerprint))
    except BaseException:
        stop_agent(home)
        shutil.rmtree(link_dir, ignore_errors=True)
        raise
    stop_agent(home)
    return PGPKey(home=home, uid=uid, fingerprint=fingerprint, public=public,
                  armored=armored, secring=secring, link_dir=link_dir)


def package_signed(helm: HelmEnv, chart_dir: Path, key: PGPKey, out: Path) -> Path:
    """``helm package --sign`` into ``out``; the archive (its ``.prov`` is beside it)."""
    out.mkdir(parents=True, exist_ok=True)
    proc = helm.run("package", str(chart_dir), "-d", str(out), "--sign", "--key", key.uid,
                    "--keyring", str(key.secring))
    found = _PACKAGED.search(proc.stdout)
    if not found:
        raise RuntimeError(f"helm package printed no archive: {proc.stdout.strip()}")
    archive = Path(found.group(1))
    if not Path(str(archive) + ".prov").is_file():
        raise RuntimeError(f"helm package --sign wrote no {archive.name}.prov")
    return archive

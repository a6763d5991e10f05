"""What ``pull`` and ``verify`` share about registries: the chart and version the user gave
(checked before any request, so a bad one is a usage error), the password from stdin, and
the flag hints for registry errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from chartguard.cli._outcome import UsageError
from chartguard.oci import (
    ChartReference,
    InvalidConstraintError,
    InvalidReferenceError,
    RegistryClient,
    RegistryCredentials,
    TLSConfig,
)
from chartguard.oci.errors import Hint
from chartguard.oci.versions import is_exact_version, parse_constraint


def chart_reference(url: str, version: str | None) -> ChartReference:
    """``url`` and ``version`` checked before any request: a bad one is a UsageError."""
    try:
        ref = ChartReference.parse_chart_url(url)
        wanted = (version or "*").strip()
        if not is_exact_version(wanted):
            parse_constraint(wanted or (version or ""))
    except (InvalidReferenceError, InvalidConstraintError) as err:
        raise UsageError(str(err)) from None
    return ref


def password_credentials(username: str | None, prog: str) -> RegistryCredentials | None:
    """``username`` with the password piped on stdin (``--password-stdin``)."""
    if not username:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError(f"--password-stdin read no password: pipe it in "
                         f"(echo \"$PASSWORD\" | {prog} ...)")
    return RegistryCredentials(username, password)


def registry_hints(*, client_cert: bool) -> Mapping[object, str]:
    """The command's flags that act on each hint a registry error carries."""
    words: dict[object, str] = {
        Hint.CA_CERTIFICATE: "pass --ca-file F if its CA is private",
        Hint.USE_PLAIN_HTTP: "pass --plain-http if it serves plain HTTP",
        Hint.USE_TLS: "drop --plain-http: it serves HTTPS",
        Hint.CREDENTIALS: "pass --username U --password-stdin with credentials it accepts",
    }
    if client_cert:
        words[Hint.CLIENT_CERTIFICATE] = "pass --cert-file F --key-file F for a client certificate"
    return words


def read_flag_file(path: Path | None, flag: str) -> bytes | None:
    """The bytes of a file a flag names; unreadable is a UsageError naming the flag."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        raise UsageError(f"{flag} {path}: cannot be read ({err.strerror})") from None


def verify_client(args: argparse.Namespace) -> RegistryClient:
    """The registry client ``chartguard verify`` flags ask for (``--plain-http``, ``--ca-file``,
    ``--username`` with ``--password-stdin``), for cosign signatures and Helm provenance alike."""
    ca = read_flag_file(args.ca_file, "--ca-file")
    credentials = password_credentials(args.username, "chartguard verify")
    return RegistryClient(plain_http=args.plain_http, credentials=credentials,
                          tls=TLSConfig(ca_pem=ca) if ca else None)

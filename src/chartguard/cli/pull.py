"""``chartguard pull``: download a chart from an OCI registry, as ``helm pull`` does.

::

    chartguard pull oci://HOST/PATH/CHART [--version RANGE] [-d DIR] [--plain-http]
                    [--ca-file F] [--cert-file F --key-file F] [--username U --password-stdin]

Prints ``Pulled: HOST/PATH/CHART:TAG`` and ``Digest: sha256:...`` (as helm does) and writes
``CHART-VERSION.tgz``, byte-identical to what ``helm pull`` writes. Every byte was checked
against its digest. Exit 0 ok, 1 failure (one line on stderr saying what to fix), 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from chartguard.oci import (
    ChartReference,
    OCIError,
    RegistryClient,
    RegistryCredentials,
    TLSConfig,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PROG = "chartguard pull"


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    p: argparse.ArgumentParser = sub.add_parser(
        "pull", help="download a chart from an OCI registry (as helm pull), digests checked",
        description="Download a Helm chart from an OCI registry, checking the sha256 of the "
                    "manifest and every blob. Exit 0 ok, 1 failure, 2 usage error.")
    p.add_argument("chart", metavar="oci://HOST/PATH/CHART")
    p.add_argument("--version", dest="chart_version", default="*", metavar="RANGE",
                   help="exact version or semver range, as helm's --version (default: latest)")
    p.add_argument("-d", "--destination", type=Path, default=Path(), metavar="DIR",
                   help="directory to write CHART-VERSION.tgz into (default: .)")
    p.add_argument("--plain-http", action="store_true", help="use HTTP, not HTTPS")
    p.add_argument("--ca-file", type=Path, metavar="F", help="CA bundle for the registry")
    p.add_argument("--cert-file", type=Path, metavar="F", help="client certificate (PEM)")
    p.add_argument("--key-file", type=Path, metavar="F", help="client key (PEM)")
    p.add_argument("--username", metavar="U")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the registry password from stdin")
    p.set_defaults(handler=run, parser=p)


def _usage(args: argparse.Namespace) -> str | None:
    if args.password_stdin != bool(args.username):
        return "--username and --password-stdin go together"
    if args.plain_http and (args.ca_file or args.cert_file or args.key_file):
        return "--plain-http does not go with --ca-file/--cert-file/--key-file"
    if bool(args.cert_file) != bool(args.key_file):
        return "--cert-file and --key-file go together"
    return None


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        raise _UsageError(f"{flag} {path}: cannot be read ({err.strerror})") from None


class _UsageError(Exception):
    """Flags that do not make a valid invocation (exit 2)."""


def _write_atomically(directory: Path, name: str, data: bytes) -> Path:
    target = directory / name
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def run(args: argparse.Namespace) -> int:
    problem = _usage(args)
    if problem:
        args.parser.print_usage(sys.stderr)
        print(f"{_PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        tls = None
        if args.ca_file or args.cert_file:
            tls = TLSConfig(ca_pem=_read(args.ca_file, "--ca-file"),
                            cert_pem=_read(args.cert_file, "--cert-file"),
                            key_pem=_read(args.key_file, "--key-file"))
    except _UsageError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    credentials = None
    if args.username:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            print(f"{_PROG}: error: --password-stdin read no password: pipe it in "
                  "(echo \"$PASSWORD\" | chartguard pull ...)", file=sys.stderr)
            return EXIT_USAGE
        credentials = RegistryCredentials(args.username, password)
    if not args.destination.is_dir():
        print(f"Error: destination {args.destination} is not a directory: create it first",
              file=sys.stderr)
        return EXIT_FAILED
    try:
        ref = ChartReference.parse_chart_url(args.chart)
        with RegistryClient(plain_http=args.plain_http, tls=tls,
                            credentials=credentials) as client:
            resolved = client.resolve(ref, args.chart_version)
            chart = client.fetch_chart(ref, resolved.digest)
    except OCIError as err:
        print(f"Error: {err}", file=sys.stderr)
        return EXIT_FAILED
    try:
        # helm names the file after the reference: chart name, resolved tag with _ back to +
        _write_atomically(args.destination, f"{ref.name}-{resolved.version}.tgz", chart.layer)
    except OSError as err:
        print(f"Error: cannot write into {args.destination} ({err.strerror}): check the "
              "directory's permissions and free space", file=sys.stderr)
        return EXIT_FAILED
    print(f"Pulled: {ref.host}/{ref.repository}:{resolved.tag}")
    print(f"Digest: {resolved.digest}")
    return EXIT_OK

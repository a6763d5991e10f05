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
import tempfile
from pathlib import Path
from typing import Any

from chartguard.cli._outcome import Reporter, UsageError, hinted
from chartguard.cli._registry import (
    chart_reference,
    password_credentials,
    read_flag_file,
    registry_hints,
)
from chartguard.oci import ChartReference, OCIError, RegistryClient, TLSConfig

_HINTS = registry_hints(client_cert=True)


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


def _check_flags(args: argparse.Namespace) -> ChartReference:
    """The chart reference, once the flags make a valid invocation (else UsageError)."""
    if args.password_stdin != bool(args.username):
        raise UsageError("--username and --password-stdin go together")
    if args.plain_http and (args.ca_file or args.cert_file or args.key_file):
        raise UsageError("--plain-http does not go with --ca-file/--cert-file/--key-file")
    if bool(args.cert_file) != bool(args.key_file):
        raise UsageError("--cert-file and --key-file go together")
    return chart_reference(args.chart, args.chart_version)


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
    out = Reporter(args.parser)
    try:
        ref = _check_flags(args)
        tls = None
        if args.ca_file or args.cert_file:
            tls = TLSConfig(ca_pem=read_flag_file(args.ca_file, "--ca-file"),
                            cert_pem=read_flag_file(args.cert_file, "--cert-file"),
                            key_pem=read_flag_file(args.key_file, "--key-file"))
        if not args.destination.is_dir():
            raise UsageError(f"-d {args.destination}: not a directory; create it first")
        credentials = password_credentials(args.username, out.prog)
    except UsageError as err:
        return out.usage(str(err))
    try:
        with RegistryClient(plain_http=args.plain_http, tls=tls,
                            credentials=credentials) as client:
            resolved = client.resolve(ref, args.chart_version)
            chart = client.fetch_chart(ref, resolved.digest, version=resolved.version)
    except OCIError as err:
        return out.failure(hinted(err, _HINTS))
    try:
        # helm names the file after the reference: chart name, resolved tag with _ back to +
        _write_atomically(args.destination, f"{ref.name}-{resolved.version}.tgz", chart.layer)
    except OSError as err:
        return out.failure(f"cannot write into {args.destination} ({err.strerror}): check "
                           "the directory's permissions and free space")
    return out.result(None, [f"Pulled: {ref.host}/{ref.repository}:{resolved.tag}",
                             f"Digest: {resolved.digest}"])

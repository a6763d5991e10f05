"""``chartguard verify --pgp-keyring FILE``: Helm's own provenance, as ``helm verify`` checks it.

::

    chartguard verify oci://HOST/PATH/CHART --version V --pgp-keyring pubring.gpg
    chartguard verify --local-image DIR[@sha256:DIGEST|:TAG] --pgp-keyring signer.asc
    chartguard verify ./podinfo-1.2.3.tgz --pgp-keyring signer.asc  # and podinfo-1.2.3.tgz.prov

The chart's provenance (the manifest's provenance layer, or ``<file>.prov`` beside a local
archive) must be signed by a key of the keyrings (binary or armored, repeatable) and name the
archive with its sha256 (:mod:`chartguard.verify.pgp`), as the operator's ``provider: pgp``.
Exit codes and ``--output json`` as the rest of ``chartguard verify``.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chartguard.cli._outcome import Reporter, UsageError, hinted
from chartguard.cli._registry import registry_hints, verify_client
from chartguard.oci import Limits, OCIError
from chartguard.oci.chart import MAX_PROVENANCE_BYTES, archive_metadata
from chartguard.oci.layout import LocalImage, OCILayout
from chartguard.verify import VerificationError, VerificationFailedError
from chartguard.verify.pgp import PGPKeyring, keyring_from_files, verify_provenance

_HINTS = registry_hints(client_cert=False)
#: a local archive is read up to this (the registry's default chart layer cap)
_MAX_LOCAL_ARCHIVE = Limits().max_layer_bytes
_COSIGN_FLAGS = (("--key", "key"), ("--certificate-identity-regexp",
                                     "certificate_identity_regexp"),
                 ("--certificate-oidc-issuer-regexp", "certificate_oidc_issuer_regexp"),
                 ("--certificate-identity", "certificate_identity"),
                 ("--certificate-oidc-issuer", "certificate_oidc_issuer"),
                 ("--trusted-root", "trusted_root"), ("--require-identity", "require_identity"),
                 ("--bundle-predicate-type", "bundle_predicate_type"),
                 ("--attestation", "attestation"))


def add_flag(group: Any) -> None:
    group.add_argument("--pgp-keyring", action="append", default=[], type=Path, metavar="FILE",
                       help="verify Helm's provenance (.prov, helm package --sign) instead of "
                            "cosign signatures, with the OpenPGP public keys of FILE (binary, "
                            "gpg --export, or armored); repeat for several")


class _Target:
    """What is verified: its name for messages, and the digest once known."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.digest: str | None = None


def _read(path: Path, what: str, limit: int) -> bytes | None:
    """A local file's bytes (None when it does not exist); ``UsageError`` when unreadable."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UsageError(f"{what} {path}: cannot be read ({err.strerror})") from None
    if len(data) > limit:
        raise UsageError(f"{what} {path}: larger than {limit:,} bytes")
    return data


def _local(path: Path, target: _Target) -> tuple[bytes, bytes | None, str, str, str]:
    chart = _read(path, "chart", _MAX_LOCAL_ARCHIVE)
    if chart is None:
        raise UsageError(f"chart {path}: no such file")
    target.digest = "sha256:" + hashlib.sha256(chart).hexdigest()
    name, version = archive_metadata(chart, str(path))
    prov = _read(Path(str(path) + ".prov"), "provenance", MAX_PROVENANCE_BYTES)
    return chart, prov, path.name, name, version


def _check(args: argparse.Namespace, check_target: Callable[[argparse.Namespace], None],
           ) -> bool:
    """Usage checks; True when the target is a local archive. A registry chart or an OCI
    layout is checked by ``check_target`` (``chartguard verify``'s own checks, which parse
    ``args.chart_ref`` and ``args.local_image``)."""
    given = [flag for flag, attr in _COSIGN_FLAGS if getattr(args, attr, None)]
    if given:
        raise UsageError(f"--pgp-keyring verifies Helm provenance; {', '.join(given)} "
                         "are for cosign signatures: give one or the other")
    local_file = bool(args.chart) and not str(args.chart).startswith("oci://")
    if local_file:
        flags = [name for name, value in (
            ("--version", args.chart_version), ("--local-image", args.local_image),
            ("--plain-http", args.plain_http), ("--ca-file", args.ca_file),
            ("--username", args.username)) if value]
        if flags:
            raise UsageError(f"{', '.join(flags)} do not apply to a local chart archive "
                             f"({args.chart})")
    else:
        check_target(args)
    return local_file


def run_pgp(args: argparse.Namespace,
            check_target: Callable[[argparse.Namespace], None]) -> int:
    out = Reporter(args.parser, json_output=args.output == "json")
    target = _Target(str(args.chart or args.local_image or ""))
    try:
        local_file = _check(args, check_target)
        keyring: PGPKeyring = keyring_from_files(args.pgp_keyring)
    except UsageError as err:
        return out.usage(str(err))
    except VerificationError as err:
        return out.usage(str(err))
    try:
        if local_file:
            chart, prov, file_name, name, version = _local(Path(args.chart), target)
            where = f"{args.chart}.prov"
        elif args.local_image:
            local: LocalImage = args.local_image  # parsed by check_target
            layout = OCILayout(local.path)
            digest = layout.select(local)
            target.name, target.digest = f"{local.path}@{digest}", digest
            art = layout.fetch_chart(digest, provenance=True)
            chart, prov, file_name = art.layer, art.provenance, art.file_name
            name, version = art.name, art.version
            where = f"the manifest {digest} has no provenance layer"
        else:
            ref = args.chart_ref  # parsed by check_target
            with verify_client(args) as client:
                resolved = client.resolve(ref, args.chart_version)
                target.name = f"{ref}:{resolved.tag}@{resolved.digest}"
                target.digest = resolved.digest
                art = client.fetch_chart(ref, resolved.digest, provenance=True,
                                         version=resolved.version)
            chart, prov, file_name = art.layer, art.provenance, art.file_name
            name, version = art.name, art.version
            where = f"the manifest {resolved.digest} has no provenance layer"
        if prov is None:
            return out.failure(
                f"{target.name}: no provenance (.prov) for {file_name} ({where}): sign the "
                "chart with `helm package --sign` and publish the .prov with it",
                target=target.name, digest=target.digest, failures=[])
        result = verify_provenance(keyring, prov, chart, file_name)
    except UsageError as err:
        return out.usage(str(err))
    except VerificationFailedError as err:
        return out.failure(f"{target.name}: not verified: {'; '.join(err.failures)}",
                           target=target.name, digest=target.digest,
                           failures=list(err.failures))
    except (OCIError, VerificationError) as err:
        return out.failure(f"{target.name}: {hinted(err, _HINTS)}", target=target.name,
                           digest=target.digest, failures=[])
    except OSError as err:
        return out.failure(f"{target.name}: cannot read {err.filename or 'a file'}: "
                           f"{err.strerror}", target=target.name, digest=target.digest,
                           failures=[])
    doc = {"verified": True, "target": target.name, "digest": target.digest,
           "format": "pgp", "key": result.key, "signer": result.signer,
           "chart": {"name": name, "version": version, "file": result.file,
                     "layerDigest": result.digest, "layerSize": len(chart)}}
    return out.result(doc, [
        f"{target.name}: verified Helm provenance of {result.file} signed by {result.signer} "
        f"(key {result.key})",
        f"chart {name} {version}: archive {result.digest} ({len(chart)} bytes) is the one the "
        "signed provenance names"])

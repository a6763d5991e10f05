"""``chartguard verify``: the ``cosign verify`` of Helm charts stored in OCI registries.

::

    chartguard verify oci://HOST/PATH/CHART --version V [policy] [registry flags]
    chartguard verify --local-image DIR[@sha256:DIGEST] [policy]

policy: ``--key FILE`` (repeatable: any key may match), or keyless with
``--certificate-identity-regexp R --certificate-oidc-issuer-regexp R`` (or the exact
``--certificate-identity`` / ``--certificate-oidc-issuer``), ``--trusted-root FILE`` for a private
Sigstore, ``--require-identity`` to refuse keyless without an identity.

Exit 0 verified (summary on stdout), 1 not verified (a line per signature tried, on stderr),
2 usage error (flags that do not go together, unreadable key or trusted root).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from chartguard.oci import (
    ChartReference,
    OCIError,
    RegistryClient,
    RegistryCredentials,
    SignatureArtifacts,
    TLSConfig,
)
from chartguard.oci.layout import LayoutError, LocalImage, read_layout_signatures
from chartguard.reconcile.verification import build_policy, verify_artifacts
from chartguard.verify import (
    NoSignatureError,
    VerificationError,
    VerificationFailedError,
    VerificationPolicy,
    VerificationResult,
    Verifier,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PROG = "chartguard verify"


class _UsageError(Exception):
    """The flags do not make a valid invocation (exit 2)."""


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    p: argparse.ArgumentParser = sub.add_parser(
        "verify", help="verify the cosign signature of a chart in a registry or an OCI layout",
        description="Verify the cosign signature (legacy .sig or v0.3 bundle) of a Helm chart. "
                    "Exit 0 verified, 1 not verified, 2 usage error.")
    p.add_argument("chart", nargs="?", metavar="oci://HOST/PATH/CHART",
                   help="the chart in a registry (needs --version)")
    p.add_argument("--version", dest="chart_version", metavar="V",
                   help="chart version or semver range (as helm's --version)")
    p.add_argument("--local-image", metavar="DIR[@sha256:DIGEST]",
                   help="an OCI image layout (oras copy --to-oci-layout, cosign save) instead "
                        "of a registry")
    pol = p.add_argument_group("policy (as cosign verify)")
    pol.add_argument("--key", action="append", default=[], type=Path, metavar="FILE",
                     help="public key PEM; repeat for several, any one matching is enough")
    pol.add_argument("--certificate-identity-regexp", metavar="R")
    pol.add_argument("--certificate-oidc-issuer-regexp", metavar="R")
    pol.add_argument("--certificate-identity", metavar="SUBJECT", help="exact subject")
    pol.add_argument("--certificate-oidc-issuer", metavar="ISSUER", help="exact issuer")
    pol.add_argument("--trusted-root", type=Path, metavar="FILE",
                     help="Sigstore trusted_root.json (default: the production root, offline)")
    pol.add_argument("--require-identity", action="store_true",
                     help="refuse keyless verification without an identity")
    pol.add_argument("--bundle-predicate-type", action="append", default=[], metavar="URI",
                     help="also accept bundles whose in-toto predicate type is URI (default: "
                          "only cosign's signature type; attestations are not signatures)")
    reg = p.add_argument_group("registry")
    reg.add_argument("--plain-http", action="store_true", help="use HTTP, not HTTPS")
    reg.add_argument("--ca-file", type=Path, metavar="F", help="CA bundle for the registry")
    reg.add_argument("--username", metavar="U")
    reg.add_argument("--password-stdin", action="store_true",
                     help="read the registry password from stdin")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def _identities(args: argparse.Namespace) -> list[tuple[str, str]]:
    subject = args.certificate_identity_regexp
    issuer = args.certificate_oidc_issuer_regexp
    if args.certificate_identity is not None:
        if subject is not None:
            raise _UsageError("give --certificate-identity or --certificate-identity-regexp, "
                              "not both")
        subject = f"^{re.escape(args.certificate_identity)}$"
    if args.certificate_oidc_issuer is not None:
        if issuer is not None:
            raise _UsageError("give --certificate-oidc-issuer or "
                              "--certificate-oidc-issuer-regexp, not both")
        issuer = f"^{re.escape(args.certificate_oidc_issuer)}$"
    if subject is None and issuer is None:
        return []
    if subject is None or issuer is None:
        raise _UsageError("a keyless identity needs both a subject (--certificate-identity"
                          "[-regexp]) and an issuer (--certificate-oidc-issuer[-regexp])")
    if args.key:
        raise _UsageError("give either --key or a certificate identity, not both")
    return [(issuer, subject)]


def _check_target(args: argparse.Namespace) -> None:
    if args.local_image and args.chart:
        raise _UsageError("give either a chart URL or --local-image, not both")
    if not args.local_image and not args.chart:
        raise _UsageError("give a chart as oci://HOST/PATH/CHART --version V, "
                          "or --local-image DIR[@sha256:DIGEST]")
    if args.chart and not args.chart_version:
        raise _UsageError(f"{args.chart}: --version is required")
    if args.local_image:
        try:
            args.local_image = LocalImage.parse(args.local_image)
        except LayoutError as err:
            raise _UsageError(str(err)) from None
        registry_flags = [name for name, given in (
            ("--version", args.chart_version), ("--plain-http", args.plain_http),
            ("--ca-file", args.ca_file), ("--username", args.username),
            ("--password-stdin", args.password_stdin)) if given]
        if registry_flags:
            raise _UsageError(f"{', '.join(registry_flags)} only apply to a registry, "
                              "not to --local-image")
    if args.password_stdin and not args.username:
        raise _UsageError("--password-stdin needs --username")
    if args.plain_http and args.ca_file:
        raise _UsageError("--plain-http and --ca-file do not go together")


def _policy(args: argparse.Namespace) -> VerificationPolicy:
    identities = _identities(args)
    try:
        return build_policy(key_files=args.key, identities=identities,
                            trusted_root=args.trusted_root,
                            require_identity=args.require_identity,
                            bundle_predicate_types=args.bundle_predicate_type)
    except VerificationError as err:
        raise _UsageError(str(err)) from None


def _registry_artifacts(args: argparse.Namespace) -> tuple[str, SignatureArtifacts]:
    ref = ChartReference.parse_chart_url(args.chart)
    credentials = None
    if args.username:
        password = sys.stdin.read().rstrip("\r\n") if args.password_stdin else ""
        credentials = RegistryCredentials(args.username, password)
    tls = None
    if args.ca_file:
        try:
            tls = TLSConfig(ca_pem=args.ca_file.read_bytes())
        except OSError as err:
            raise _UsageError(f"--ca-file {args.ca_file}: cannot be read ({err.strerror})"
                              ) from None
    client = RegistryClient(plain_http=args.plain_http, tls=tls, credentials=credentials)
    resolved = client.resolve(ref, args.chart_version)
    target = f"{ref}:{resolved.tag}@{resolved.digest}"
    return target, client.find_signatures(ref, resolved.digest)


def _result_json(target: str, result: VerificationResult) -> dict[str, Any]:
    return {"verified": True, "target": target, "digest": result.digest,
            "format": result.format, "key": result.key,
            "identity": ({"issuer": result.identity[0], "subject": result.identity[1]}
                         if result.identity else None),
            "rekorLogIndex": result.rekor_log_index,
            "identityUnchecked": result.identity_unchecked, "source": result.source}


def run(args: argparse.Namespace) -> int:
    try:
        _check_target(args)
        policy = _policy(args)
    except _UsageError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    target = str(args.local_image.path if args.local_image else args.chart)
    try:
        # build the verifier before any I/O: a bad policy should not wait for the registry
        verifier = Verifier(policy)
        if args.local_image:
            artifacts = read_layout_signatures(args.local_image)
            target = f"{args.local_image.path}@{artifacts.digest}"
        else:
            target, artifacts = _registry_artifacts(args)
        result = verify_artifacts(verifier, artifacts)
    except _UsageError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except NoSignatureError as err:
        if args.output == "json":
            print(json.dumps({"verified": False, "target": target, "digest": err.digest,
                              "failures": [str(err)]}, indent=2))
        print(f"{_PROG}: {target}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except VerificationFailedError as err:
        lines = [line for line in str(err).splitlines() if line]
        if args.output == "json":
            print(json.dumps({"verified": False, "target": target, "digest": err.digest,
                              "failures": lines}, indent=2))
        print(f"{_PROG}: {target}: not verified; each signature tried:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
        return EXIT_FAILED
    except (OCIError, VerificationError) as err:
        print(f"{_PROG}: {target}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # an unreadable file of a --local-image layout
        print(f"{_PROG}: {target}: cannot read {err.filename or 'a file'}: {err.strerror}",
              file=sys.stderr)
        return EXIT_FAILED
    if args.output == "json":
        print(json.dumps(_result_json(target, result), indent=2))
    else:
        print(f"{target}: {result.summary()}")
    if result.identity_unchecked:
        print(f"{_PROG}: warning: {result.digest} was signed keyless and ANY Fulcio identity "
              "was accepted; pin one with --certificate-identity-regexp and "
              "--certificate-oidc-issuer-regexp", file=sys.stderr)
    return EXIT_OK

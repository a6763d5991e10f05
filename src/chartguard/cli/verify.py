"""``chartguard verify``: the ``cosign verify`` of Helm charts stored in OCI registries.

::

    chartguard verify oci://HOST/PATH/CHART --version V [policy] [registry flags]
    chartguard verify --local-image DIR[@sha256:DIGEST|:TAG] [policy]

policy: ``--key FILE`` (repeatable: any key may match), or keyless with
``--certificate-identity-regexp R --certificate-oidc-issuer-regexp R`` (or the exact
``--certificate-identity`` / ``--certificate-oidc-issuer``), ``--trusted-root FILE`` for a private
Sigstore, ``--require-identity`` to refuse keyless without an identity.
``--attestation TYPE[=CEL]`` (repeatable; a chartguard extension) also requires an attestation
of in-toto predicate type TYPE, signed under the same policy, for the chart's digest, for
which the CEL expression (``predicate``, ``predicateType``, ``subject``) is true.

The chart itself is checked too, as the operator checks it before storing it: the manifest,
its config and its chart layer are downloaded (or read from the layout) and must match their
digests, sizes and media types. A verified signature over a manifest whose chart layer was
altered is not "verified".

Exit 0 verified (summary on stdout), 1 not verified (a line per signature tried, on stderr),
2 usage error (flags that do not go together, a bad URL or version, a missing or unreadable
file, key or trusted root). With ``--output json`` stdout holds one JSON document, also on
every failure.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chartguard import cel
from chartguard.cli._outcome import Reporter, UsageError, hinted, line
from chartguard.cli._provenance import add_flag as add_pgp_flag
from chartguard.cli._provenance import run_pgp
from chartguard.cli._registry import chart_reference, registry_hints, verify_client
from chartguard.oci import (
    ChartArtifact,
    OCIError,
    SignatureArtifacts,
)
from chartguard.oci.layout import LayoutError, LayoutNotFoundError, LocalImage, OCILayout
from chartguard.reconcile.verification import (
    AttestationNotMetError,
    MetRequirement,
    build_policy,
    check_attestation_policy,
    verify_artifacts,
    verify_attestations,
)
from chartguard.untrusted import escape
from chartguard.verify import (
    AttestationRequirement,
    NoSignatureError,
    VerificationError,
    VerificationFailedError,
    VerificationPolicy,
    VerificationResult,
    Verifier,
)

_HINTS = registry_hints(client_cert=False)


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    p: argparse.ArgumentParser = sub.add_parser(
        "verify", help="verify the cosign signature of a chart in a registry or an OCI layout",
        description="Verify the cosign signature (legacy .sig or v0.3 bundle) of a Helm chart "
                    "and check the chart's bytes against the signed manifest. "
                    "Exit 0 verified, 1 not verified, 2 usage error.")
    p.add_argument("chart", nargs="?", metavar="oci://HOST/PATH/CHART",
                   help="the chart in a registry (needs --version); with --pgp-keyring also "
                        "a local chart .tgz (its .prov beside it)")
    p.add_argument("--version", dest="chart_version", metavar="V",
                   help="chart version or semver range (as helm's --version)")
    p.add_argument("--local-image", metavar="DIR[@sha256:DIGEST|:TAG]",
                   help="an OCI image layout (oras copy --to-oci-layout, cosign save) instead "
                        "of a registry; the image is the digest or tag given, or the only one")
    pol = p.add_argument_group("policy (as cosign verify)")
    pol.add_argument("--key", action="append", default=[], type=Path, metavar="FILE",
                     help="public key PEM (every key in the file is used); repeat for "
                          "several, any one matching is enough")
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
    add_pgp_flag(pol)  # Helm provenance: chartguard.cli._provenance
    pol.add_argument("--attestation", action="append", default=[], metavar="TYPE[=CEL]",
                     help="also require an attestation of in-toto predicate type TYPE (the "
                          "text before the first '=', so it cannot hold one), signed under "
                          "the same policy, for the chart's digest, for which the CEL "
                          "expression is true "
                          "(variables predicate, predicateType, subject; none: its presence "
                          "is enough); repeat for several, each must be met")
    reg = p.add_argument_group("registry")
    reg.add_argument("--plain-http", action="store_true", help="use HTTP, not HTTPS")
    reg.add_argument("--ca-file", type=Path, metavar="F", help="CA bundle for the registry")
    reg.add_argument("--username", metavar="U")
    reg.add_argument("--password-stdin", action="store_true",
                     help="read the registry password from stdin")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(handler=run, parser=p, failure_fields={"verified": False})


def _identities(args: argparse.Namespace) -> list[tuple[str, str]]:
    subject = args.certificate_identity_regexp
    issuer = args.certificate_oidc_issuer_regexp
    if args.certificate_identity is not None:
        if subject is not None:
            raise UsageError("give --certificate-identity or --certificate-identity-regexp, "
                             "not both")
        subject = f"^{re.escape(args.certificate_identity)}$"
    if args.certificate_oidc_issuer is not None:
        if issuer is not None:
            raise UsageError("give --certificate-oidc-issuer or "
                             "--certificate-oidc-issuer-regexp, not both")
        issuer = f"^{re.escape(args.certificate_oidc_issuer)}$"
    if subject is None and issuer is None:
        return []
    if subject is None or issuer is None:
        raise UsageError("a keyless identity needs both a subject (--certificate-identity"
                         "[-regexp]) and an issuer (--certificate-oidc-issuer[-regexp])")
    if args.key:
        raise UsageError("give either --key or a certificate identity, not both")
    return [(issuer, subject)]


def _check_target(args: argparse.Namespace) -> None:
    if args.local_image and args.chart:
        raise UsageError("give either a chart URL or --local-image, not both")
    if not args.local_image and not args.chart:
        raise UsageError("give a chart as oci://HOST/PATH/CHART --version V, "
                         "or --local-image DIR[@sha256:DIGEST|:TAG]")
    if args.chart and not args.chart_version:
        raise UsageError(f"{args.chart}: --version is required")
    if args.local_image:
        try:
            args.local_image = LocalImage.parse(args.local_image)
        except LayoutError as err:
            raise UsageError(f"--local-image {args.local_image}: {err}") from None
        registry_flags = [name for name, given in (
            ("--version", args.chart_version), ("--plain-http", args.plain_http),
            ("--ca-file", args.ca_file), ("--username", args.username),
            ("--password-stdin", args.password_stdin)) if given]
        if registry_flags:
            raise UsageError(f"{', '.join(registry_flags)} only apply to a registry, "
                             "not to --local-image")
    else:
        args.chart_ref = chart_reference(args.chart, args.chart_version)
    if args.password_stdin and not args.username:
        raise UsageError("--password-stdin needs --username")
    if args.plain_http and args.ca_file:
        raise UsageError("--plain-http and --ca-file do not go together")


def _attestations(values: list[str]) -> tuple[AttestationRequirement, ...]:
    """``--attestation TYPE[=CEL]`` values, each CEL expression compiled (a usage error
    naming the flag when it is not valid)."""
    out = []
    for value in values:
        kind, sep, policy = value.partition("=")
        if not kind.strip():
            raise UsageError(f"--attestation {value!r}: give the predicate type, e.g. "
                             "--attestation https://slsa.dev/provenance/v1='<CEL>'")
        if sep and not policy.strip():
            raise UsageError(f"--attestation {kind}=: the CEL expression after '=' is "
                             "empty; give one or leave out the '='")
        if policy:
            try:
                check_attestation_policy(policy)
            except cel.CelError as err:
                raise UsageError(f"--attestation {kind}: {err}") from None
        out.append(AttestationRequirement(kind, policy))
    return tuple(out)


def _policy(args: argparse.Namespace) -> VerificationPolicy:
    identities = _identities(args)
    attestations = _attestations(args.attestation)
    if attestations and not args.key and not identities:
        raise UsageError("--attestation needs --key or an identity (--certificate-identity"
                         "[-regexp] and --certificate-oidc-issuer[-regexp]): keyless without "
                         "one accepts an attestation by anyone with a Sigstore certificate, "
                         "who also writes the predicate the policy reads")
    try:
        return build_policy(key_files=args.key, identities=identities,
                            trusted_root=args.trusted_root,
                            require_identity=args.require_identity,
                            bundle_predicate_types=args.bundle_predicate_type,
                            attestations=attestations)
    except VerificationError as err:
        raise UsageError(str(err)) from None


@dataclass
class _Subject:
    """What is being verified, as far as it is known (for messages and JSON)."""

    target: str
    digest: str | None = None


def _from_registry(args: argparse.Namespace, subject: _Subject, *, attestations: bool,
                   ) -> tuple[ChartArtifact, SignatureArtifacts]:
    ref = args.chart_ref
    with verify_client(args) as client:
        resolved = client.resolve(ref, args.chart_version)
        subject.target = f"{ref}:{resolved.tag}@{resolved.digest}"
        subject.digest = resolved.digest
        # the chart's bytes first: the operator stores only what fetch_chart checked
        chart = client.fetch_chart(ref, resolved.digest, version=resolved.version)
        return chart, client.find_signatures(ref, resolved.digest,
                                             attestations=attestations)


def _from_layout(local: LocalImage, subject: _Subject, *, attestations: bool,
                 ) -> tuple[ChartArtifact, SignatureArtifacts]:
    layout = OCILayout(local.path)
    digest = layout.select(local)
    subject.target = f"{local.path}@{digest}"
    subject.digest = digest
    return layout.fetch_chart(digest), layout.signatures(digest, attestations=attestations)


def _signer_json(result: VerificationResult) -> dict[str, Any]:
    return {"format": result.format, "key": result.key,
            "identity": ({"issuer": result.identity[0], "subject": result.identity[1]}
                         if result.identity else None),
            "rekorLogIndex": result.rekor_log_index, "source": result.source}


def _attestations_json(met: tuple[MetRequirement, ...]) -> list[dict[str, Any]]:
    return [{"predicateType": m.requirement.predicate_type,
             "policy": m.requirement.policy or None,
             "metBy": [_signer_json(a.result) for a in m.attestations]} for m in met]


def _result_json(subject: _Subject, result: VerificationResult, chart: ChartArtifact,
                 met: tuple[MetRequirement, ...]) -> dict[str, Any]:
    return {"verified": True, "target": subject.target, "digest": result.digest,
            **_signer_json(result), "identityUnchecked": result.identity_unchecked,
            "chart": {"name": chart.name, "version": chart.version,
                      "layerDigest": chart.layer_digest, "layerSize": len(chart.layer)},
            "attestations": _attestations_json(met)}


def run(args: argparse.Namespace) -> int:
    if args.pgp_keyring:
        return run_pgp(args, check_target=_check_target)
    out = Reporter(args.parser, json_output=args.output == "json")
    try:
        _check_target(args)
        policy = _policy(args)
    except UsageError as err:
        return out.usage(str(err))
    local: LocalImage | None = args.local_image
    subject = _Subject(str(local.path) if local else str(args.chart_ref))
    try:
        # build the verifier before any I/O: a bad policy should not wait for the registry
        verifier = Verifier(policy)
        attest = bool(policy.attestations)
        chart, artifacts = (_from_layout(local, subject, attestations=attest) if local
                            else _from_registry(args, subject, attestations=attest))
        result = verify_artifacts(verifier, artifacts)
        met = verify_attestations(verifier, artifacts, every=args.output == "json")
    except (UsageError, LayoutNotFoundError) as err:
        where = "--local-image " if isinstance(err, LayoutError) else ""
        return out.usage(f"{where}{err}")
    except VerificationFailedError as err:
        failures = [str(err)] if isinstance(err, NoSignatureError) else list(err.failures)
        fields: dict[str, Any] = {"target": subject.target, "digest": err.digest,
                                  "failures": [line(f) for f in failures]}
        if isinstance(err, NoSignatureError):
            return out.failure(f"{subject.target}: {err}", **fields)
        if isinstance(err, AttestationNotMetError):
            return out.failure(f"{subject.target}: signature verified, but attestations "
                               "not met:", details=failures, **fields)
        return out.failure(f"{subject.target}: not verified; each signature tried:",
                           details=failures, **fields)
    except (OCIError, VerificationError) as err:
        return out.failure(f"{subject.target}: {hinted(err, _HINTS)}",
                           target=subject.target, digest=subject.digest, failures=[])
    except OSError as err:  # an unreadable file of a --local-image layout
        return out.failure(f"{subject.target}: cannot read {err.filename or 'a file'}: "
                           f"{err.strerror}", target=subject.target, digest=subject.digest,
                           failures=[])
    if result.identity_unchecked:
        out.warning(f"{result.digest} was signed keyless and ANY Fulcio identity was "
                    "accepted; pin one with --certificate-identity-regexp and "
                    "--certificate-oidc-issuer-regexp")
    lines = [f"{subject.target}: {result.summary()}"]
    for m in met:
        by = ", ".join(f"{a.result.source} ({a.result.signer})" for a in m.attestations)
        lines.append(f"attestation {escape(m.requirement.describe())}: met by {by}")
    lines.append(f"chart {chart.name} {chart.version}: manifest, config and chart layer "
                 f"{chart.layer_digest} ({len(chart.layer)} bytes) match the verified digest")
    return out.result(_result_json(subject, result, chart, met), lines)

"""``chartguard create source helm NAME --url oci://…``, ``chartguard create helmrelease NAME``.

The flags and the objects of ``flux create`` (:mod:`._generate`), plus the ``verify`` flags the
blog needed ``yq`` for. ``--export`` prints the YAML flux prints (:mod:`._export`); without it
the object is created, or its labels and spec updated, as flux's ``upsert`` does, and the command
waits until it is Ready for its generation, printing flux's progress lines.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chartguard.cli._export import export
from chartguard.cli._generate import (
    HelmReleaseOptions,
    SourceHelmOptions,
    VerifyOptions,
    duration,
    helm_release,
    helm_repository,
    labels_from,
    verification_of,
)
from chartguard.cli._kinds import HELM_RELEASE, HELM_REPOSITORY, Kind
from chartguard.cli._outcome import EXIT_FAILED, EXIT_OK, Reporter, UsageError
from chartguard.cli._progress import Progress
from chartguard.cli._scope import Body, Scope, add_scope_flags, run_command, scope_from
from chartguard.cli._wait import settled
from chartguard.cli.reconcile import await_verdict, success_message

if TYPE_CHECKING:
    from chartguard.cli._kube import Kube

_CONFLICT_RETRIES = 3


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    create = sub.add_parser("create", help="create or update a HelmRepository or HelmRelease "
                                           "(or print it with --export), as `flux create` does",
                            description="Create or update sources and releases.")
    kinds = create.add_subparsers(dest="create_kind", required=True, metavar="KIND")
    source = kinds.add_parser("source", help="a HelmRepository")
    source_kinds = source.add_subparsers(dest="source_kind", required=True, metavar="KIND")
    helm = source_kinds.add_parser(
        "helm", help="an oci or HTTP(S) HelmRepository",
        description="Create or update an oci or HTTP(S) HelmRepository (or print it with "
                    "--export).")
    helm.add_argument("name", metavar="NAME")
    helm.add_argument("--url", default="", help="the repository, oci://HOST/PATH or "
                                                "https://HOST/PATH (an index.yaml)")
    helm.add_argument("--secret-ref", default="", metavar="SECRET",
                      help="Secret with the registry's credentials (docker-config or "
                           "username/password)")
    helm.add_argument("--cert-secret-ref", default="", metavar="SECRET",
                      help="Secret with TLS material for the registry (ca.crt, tls.crt, "
                           "tls.key)")
    helm.add_argument("--insecure", action="store_true",
                      help="the registry speaks plain HTTP (spec.insecure)")
    helm.add_argument("--pass-credentials", action="store_true",
                      help="send the credentials to chart URLs on other hosts too "
                           "(spec.passCredentials)")
    _common(helm)
    helm.set_defaults(handler=source_main, parser=helm)

    hr = kinds.add_parser(
        "helmrelease", aliases=["hr"], help="a HelmRelease",
        description="Create or update a HelmRelease (or print it with --export); the verify "
                    "flags add spec.chart.spec.verify, which flux's CLI cannot.")
    hr.add_argument("name", metavar="NAME")
    hr.add_argument("--source", default="", metavar="HelmRepository/NAME[.NAMESPACE]",
                    help="the HelmRepository the chart comes from")
    hr.add_argument("--chart", default="", help="the chart's name")
    hr.add_argument("--chart-version", default="", metavar="VERSION",
                    help="the chart's version or semver range (default: the newest)")
    hr.add_argument("--release-name", default="",
                    help="the Helm release's name (default: [TARGET_NAMESPACE-]NAME)")
    hr.add_argument("--target-namespace", default="", metavar="NS",
                    help="where the release is installed (default: the HelmRelease's "
                         "namespace)")
    hr.add_argument("--storage-namespace", default="", metavar="NS",
                    help="where Helm stores the release (default: the target namespace)")
    hr.add_argument("--create-target-namespace", action="store_true",
                    help="create the target namespace if it does not exist")
    hr.add_argument("--depends-on", action="append", default=[], metavar="[NS/]NAME",
                    help="HelmReleases that must be Ready first (repeatable, comma-separated)")
    hr.add_argument("--values", action="append", default=[], metavar="FILE",
                    help="values files, merged in order (repeatable, comma-separated)")
    hr.add_argument("--values-from", action="append", default=[], metavar="KIND/NAME",
                    help="Secret or ConfigMap with a values.yaml key (repeatable)")
    hr.add_argument("--service-account", default="", metavar="NAME",
                    help="the ServiceAccount helm acts as for this release")
    hr.add_argument("--crds", default="", metavar="POLICY",
                    help="CRDs policy: Skip, Create or CreateReplace")
    hr.add_argument("--reconcile-strategy", default="ChartVersion",
                    help="when the HelmChart counts as changed: ChartVersion or Revision")
    hr.add_argument("--chart-interval", default="", metavar="DURATION",
                    help="how often the HelmChart looks for new versions (default: --interval)")
    verify = hr.add_argument_group(
        "verification (spec.chart.spec.verify, where the blog's yq edit puts it)")
    verify.add_argument("--verify-provider", default="", metavar="PROVIDER",
                        help="cosign (implied by the other --verify-* flags), or pgp: Helm "
                             "provenance, with --verify-secret-ref naming OpenPGP keys")
    verify.add_argument("--verify-secret-ref", default="", metavar="SECRET",
                        help="Secret with the cosign public keys (key-signed charts)")
    verify.add_argument("--verify-oidc-issuer", action="append", default=[], metavar="REGEX",
                        help="keyless: the signer's OIDC issuer (a Go regular expression; "
                             "repeatable, paired with --verify-oidc-subject)")
    verify.add_argument("--verify-oidc-subject", action="append", default=[], metavar="REGEX",
                        help="keyless: the signer's identity (a Go regular expression)")
    verify.add_argument("--verify-trusted-root-secret-ref", default="", metavar="SECRET",
                        help="keyless: Secret with a trusted_root.json (a private Sigstore)")
    _common(hr)
    hr.set_defaults(handler=release_main, parser=hr)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", default="1m", metavar="DURATION",
                   help="how often the object is reconciled (default 1m)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="labels of the object (repeatable, comma-separated)")
    p.add_argument("--export", action="store_true",
                   help="print the object's YAML instead of applying it")
    add_scope_flags(p)


@dataclass(frozen=True)
class Generated:
    doc: dict[str, Any]
    kind: Kind
    what: str  # flux's words: "HelmRepository source", "HelmRelease"
    created: str  # "source created", "HelmRelease created"


def source_main(args: argparse.Namespace) -> int:
    def build(scope: Scope) -> Generated:
        doc = helm_repository(SourceHelmOptions(
            name=args.name, namespace=scope.namespace, url=args.url,
            interval=duration("--interval", args.interval), secret_ref=args.secret_ref,
            cert_secret_ref=args.cert_secret_ref, insecure=args.insecure,
            pass_credentials=args.pass_credentials,
            labels=labels_from(args.label)))
        return Generated(doc, HELM_REPOSITORY, "HelmRepository source", "source")

    return _create(args, build)


def release_main(args: argparse.Namespace) -> int:
    def build(scope: Scope) -> Generated:
        doc, release = helm_release(HelmReleaseOptions(
            name=args.name, namespace=scope.namespace, source=args.source, chart=args.chart,
            interval=duration("--interval", args.interval), chart_version=args.chart_version,
            release_name=args.release_name, target_namespace=args.target_namespace,
            storage_namespace=args.storage_namespace,
            create_target_namespace=args.create_target_namespace,
            depends_on=tuple(args.depends_on), values_files=tuple(args.values),
            values_from=tuple(args.values_from), service_account=args.service_account,
            crds=args.crds, reconcile_strategy=args.reconcile_strategy,
            chart_interval=(duration("--chart-interval", args.chart_interval)
                            if args.chart_interval else ""),
            labels=labels_from(args.label),
            verify=VerifyOptions(
                provider=args.verify_provider, secret_ref=args.verify_secret_ref,
                oidc_issuers=tuple(args.verify_oidc_issuer),
                oidc_subjects=tuple(args.verify_oidc_subject),
                trusted_root_secret_ref=args.verify_trusted_root_secret_ref)))
        verify = verification_of(release)
        if verify is not None and verify.keyless and not verify.match_oidc_identity:
            Progress().warning(
                "keyless verification without --verify-oidc-issuer/--verify-oidc-subject "
                "accepts a signature by any identity Fulcio certified; name the signer's")
        return Generated(doc, HELM_RELEASE, "HelmRelease", "HelmRelease")

    return _create(args, build)


def _create(args: argparse.Namespace, build: Callable[[Scope], Generated]) -> int:
    """``--export`` prints the document and needs no cluster; otherwise it is applied."""
    if args.export:
        try:
            generated = build(scope_from(args))
        except UsageError as err:
            return Reporter(args.parser).usage(str(err))
        sys.stdout.write(export(generated.doc))
        return EXIT_OK
    return run_command(args, lambda scope: _apply(build(scope)))


def _apply(generated: Generated) -> Body:
    kind, what = generated.kind, generated.what

    def body(scope: Scope, kube: Kube, progress: Progress) -> int:
        deadline = time.monotonic() + scope.timeout
        progress.generate(f"generating {what}")
        progress.action(f"applying {what}")
        stored, was_created = upsert(kube, kind, generated.doc)
        progress.success(f"{generated.created} {'created' if was_created else 'updated'}")
        progress.waiting(f"waiting for {what} reconciliation")
        meta = stored.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        outcome = await_verdict(kube, progress, kind, namespace, name, settled,
                                deadline=deadline, timeout=scope.timeout)
        if outcome is None:
            return EXIT_FAILED
        verdict, last = outcome
        if not verdict.ready:
            return progress.failure(f"{kind.name} {name} is not ready: {verdict.message}")
        if kind is HELM_RELEASE:
            progress.success(f"{kind.name} {name} is ready")
            progress.success(success_message(kind, last))
        else:
            progress.success(f"{what} reconciliation completed")
        return EXIT_OK

    return body


def upsert(kube: Kube, kind: Kind, doc: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the object, or set its labels and spec to ``doc``'s (flux's ``upsert``)."""
    from chartguard.cli._kube import KubeError

    meta = doc["metadata"]
    for attempt in range(_CONFLICT_RETRIES):
        existing = kube.get(kind, meta["namespace"], meta["name"])
        if existing is None:
            return kube.create(kind, doc), True
        existing_meta = dict(existing.get("metadata") or {})
        existing_meta["labels"] = dict(meta.get("labels") or {})
        updated = {**existing, "metadata": existing_meta, "spec": doc["spec"]}
        try:
            return kube.replace(kind, updated), False
        except KubeError as err:
            if err.status != 409 or attempt == _CONFLICT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")

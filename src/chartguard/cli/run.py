"""``chartguard run``: the operator, on the current kubeconfig (in-cluster inside a pod).

Every flag can also be given as an environment variable ``CHARTGUARD_<FLAG>`` (dashes as
underscores, e.g. ``CHARTGUARD_ARTIFACT_DIR``, ``CHARTGUARD_NAMESPACE=a,b``); a flag on the
command line wins. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chartguard.cli._outcome import Reporter

if TYPE_CHECKING:
    from chartguard.operator import OperatorConfig

# chartguard.operator (kopf, aiohttp) is imported only when `run` runs: `chartguard --help`,
# `verify` and `pull` stay light.

ENV_PREFIX = "CHARTGUARD_"
# a DNS subdomain, as Kubernetes names objects
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_MAX_PRIORITY = 2**31 - 1
_TRUE = ("1", "true", "yes", "on")


def _env(name: str) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"))


def _env_flag(name: str) -> bool:
    value = _env(name)
    return value is not None and value.strip().lower() in _TRUE


def register(sub: Any) -> None:  # sub: argparse._SubParsersAction
    p: argparse.ArgumentParser = sub.add_parser(
        "run", help="run the operator (HelmRepository, HelmChart and HelmRelease reconcilers)",
        description="Reconcile Flux HelmRepository, HelmChart and HelmRelease objects: pull "
                    "charts from OCI registries, verify their cosign signatures, store the "
                    "verified ones and install exactly those with helm. Every flag is also read "
                    "from CHARTGUARD_<FLAG> (e.g. CHARTGUARD_ARTIFACT_DIR).")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", action="append", default=None, metavar="NS",
                       help="watch this namespace (repeatable; env: comma-separated)")
    scope.add_argument("--all-namespaces", action="store_true", default=None,
                       help="watch every namespace (the default)")
    p.add_argument("--artifact-dir", type=Path, default=None, metavar="DIR",
                   help="where verified charts are stored, by digest (default /data)")
    p.add_argument("--artifact-url-base", default=None, metavar="URL",
                   help="base of status.artifact.url (default file://<artifact-dir>)")
    p.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="registry work in flight at once (default 4)")
    p.add_argument("--require-keyless-identity", action="store_true", default=None,
                   help="refuse keyless verification without matchOIDCIdentity")
    p.add_argument("--selector", default=None, metavar="LABEL_SELECTOR",
                   help="reconcile only objects with these labels (sharding)")
    p.add_argument("--log-format", choices=("text", "json"), default=None)
    p.add_argument("--health-port", type=int, default=None, metavar="PORT",
                   help="serve liveness/readiness on http://0.0.0.0:PORT/healthz")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics on http://ADDRESS:PORT/metrics (default 0: "
                        "not served)")
    p.add_argument("--metrics-address", default=None, metavar="ADDRESS",
                   help="the address /metrics listens on (default 0.0.0.0)")
    p.add_argument("--gc-interval", type=float, default=None, metavar="SECONDS",
                   help="how often store files no HelmChart refers to are removed (default "
                        "300; the first pass waits as long, so every object has been seen)")
    p.add_argument("--registry-timeout", type=float, default=None, metavar="SECONDS",
                   help="bound on connecting to a registry and on each read (default 10)")
    p.add_argument("--registry-deadline", type=float, default=None, metavar="SECONDS",
                   help="total time of one registry operation (resolve, fetch, signatures), "
                        "retries and Retry-After waits included (default 60)")
    p.add_argument("--trusted-root", type=Path, default=None, metavar="FILE",
                   help="Sigstore trusted_root.json for keyless verification when spec.verify "
                        "names none (default: Sigstore's production root, built in)")
    p.add_argument("--helm", default=None, metavar="PATH",
                   help="the helm binary releases are installed with (default: helm on PATH)")
    p.add_argument("--kubectl", default=None, metavar="PATH",
                   help="the kubectl whose `kustomize` applies spec.postRenderers and "
                        "spec.commonMetadata (default: kubectl on PATH)")
    p.add_argument("--helm-home", type=Path, default=None, metavar="DIR",
                   help="helm's private HELM_*_HOME (default: a temporary directory)")
    p.add_argument("--release-service-account", default=None, metavar="NAMESPACE/NAME",
                   help="the ServiceAccount helm acts as (impersonated) for HelmReleases that "
                        "name no spec.serviceAccountName (default: the operator's own identity)")
    p.add_argument("--insecure-kubeconfig-exec", action="store_true", default=None,
                   help="let the kubeconfigs of HelmReleases' spec.kubeConfig run their "
                        "user.exec plugin (as Flux's flag; refused otherwise)")
    p.add_argument("--insecure-kubeconfig-tls", action="store_true", default=None,
                   help="let the kubeconfigs of HelmReleases' spec.kubeConfig turn TLS "
                        "verification off (as Flux's flag; refused otherwise)")
    p.add_argument("--release-concurrency", type=int, default=None, metavar="N",
                   help="HelmReleases reconciled (helm processes) at once (default 4)")
    p.add_argument("--peering", default=None, metavar="NAME",
                   help="high availability: run with kopf peering on the ClusterKopfPeering "
                        "NAME (KopfPeering NAME in each watched namespace, with --namespace; "
                        "created when missing): of the replicas sharing it, the one of the "
                        "highest priority reconciles, the others stand by (default: standalone)")
    p.add_argument("--peering-priority", type=int, default=None, metavar="N",
                   help="this replica's priority with --peering (default: a random one, so "
                        "replicas never tie; equal priorities pause every replica, as kopf does)")
    p.set_defaults(handler=main, parser=p)


def config_from(args: argparse.Namespace) -> OperatorConfig:
    """Flags, else CHARTGUARD_* variables, else defaults; ``ValueError`` on a bad value."""
    from chartguard.operator import OperatorConfig, label_filter

    namespaces = args.namespace
    if namespaces is None and not args.all_namespaces and not _env_flag("all-namespaces"):
        namespaces = [n.strip() for n in (_env("namespace") or "").split(",") if n.strip()]
    defaults = OperatorConfig()

    def pick(value: Any, name: str, cast: Any, default: Any) -> Any:
        if value is not None:
            return value
        raw = _env(name)
        if raw is None or raw == "":
            return default
        try:
            return cast(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name.upper().replace('-', '_')}={raw!r} is not "
                             f"a valid --{name}") from None

    log_format = pick(args.log_format, "log-format", str, defaults.log_format)
    if log_format not in ("text", "json"):
        raise ValueError(f"log format {log_format!r}: use text or json")
    concurrency = pick(args.concurrency, "concurrency", int, defaults.concurrency)
    if concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    release_concurrency = pick(args.release_concurrency, "release-concurrency", int,
                               defaults.release_concurrency)
    if release_concurrency < 1:
        raise ValueError("--release-concurrency must be at least 1")
    identity = pick(args.release_service_account, "release-service-account", str, "")
    if identity and (identity.count("/") != 1 or not all(identity.split("/"))):
        raise ValueError(f"--release-service-account {identity!r}: use NAMESPACE/NAME")
    metrics_port = pick(args.metrics_port, "metrics-port", int, defaults.metrics_port)
    if not 0 <= metrics_port <= 65535:
        raise ValueError(f"--metrics-port {metrics_port}: use a port from 1 to 65535, or 0 "
                         "for no metrics")
    metrics_address = pick(args.metrics_address, "metrics-address", str,
                           defaults.metrics_address)
    selector = pick(args.selector, "selector", str, "")
    label_filter(selector)  # fails early on a malformed selector
    registry_timeout = pick(args.registry_timeout, "registry-timeout", float,
                            defaults.registry_timeout)
    registry_deadline = pick(args.registry_deadline, "registry-deadline", float,
                             defaults.registry_deadline)
    if not 0 < registry_timeout <= registry_deadline:
        raise ValueError(f"--registry-timeout {registry_timeout:g} and --registry-deadline "
                         f"{registry_deadline:g}: both must be positive, the timeout no longer "
                         "than the deadline")
    peering = pick(args.peering, "peering", str, "")
    if peering and not _DNS_NAME.fullmatch(peering):
        raise ValueError(f"--peering {peering!r}: use a Kubernetes object name (lower-case "
                         "letters, digits, '-' and '.', at most 253 characters)")
    priority = pick(args.peering_priority, "peering-priority", int, None)
    if priority is None:
        priority = secrets.randbelow(_MAX_PRIORITY) + 1
    elif peering and not 0 < priority <= _MAX_PRIORITY:
        raise ValueError(f"--peering-priority must be between 1 and {_MAX_PRIORITY}")
    return OperatorConfig(
        namespaces=tuple(namespaces or ()),
        artifact_dir=pick(args.artifact_dir, "artifact-dir", Path, defaults.artifact_dir),
        artifact_url_base=pick(args.artifact_url_base, "artifact-url-base", str, ""),
        concurrency=concurrency,
        require_keyless_identity=bool(args.require_keyless_identity)
        or _env_flag("require-keyless-identity"),
        selector=selector,
        log_format=log_format,
        health_port=pick(args.health_port, "health-port", int, 0),
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        gc_interval=pick(args.gc_interval, "gc-interval", float, defaults.gc_interval),
        registry_timeout=registry_timeout,
        registry_deadline=registry_deadline,
        trusted_root=pick(args.trusted_root, "trusted-root", Path, None),
        helm_binary=pick(args.helm, "helm", str, defaults.helm_binary),
        helm_home=pick(args.helm_home, "helm-home", Path, None),
        kubectl_binary=pick(args.kubectl, "kubectl", str, defaults.kubectl_binary),
        release_concurrency=release_concurrency,
        release_service_account=identity,
        insecure_kubeconfig_exec=bool(args.insecure_kubeconfig_exec)
        or _env_flag("insecure-kubeconfig-exec"),
        insecure_kubeconfig_tls=bool(args.insecure_kubeconfig_tls)
        or _env_flag("insecure-kubeconfig-tls"),
        peering=peering,
        peering_priority=priority if peering else 0,
    )


def main(args: argparse.Namespace) -> int:
    from chartguard.metrics import MetricsServerError
    from chartguard.operator import SelectorError, run
    from chartguard.verify import TrustRoot, VerificationError

    try:
        config = config_from(args)
        if config.trusted_root is not None:
            TrustRoot.from_json(config.trusted_root.read_bytes(), str(config.trusted_root))
    except (ValueError, SelectorError, VerificationError) as err:
        return Reporter(args.parser).usage(str(err))
    except OSError as err:
        return Reporter(args.parser).usage(
            f"--trusted-root {config.trusted_root}: {err.strerror or err}")
    try:
        run(config)
    except MetricsServerError as err:
        return Reporter(args.parser).failure(str(err))
    # kopf has stopped its watches and our workers; a registry call still in flight in a
    # worker thread would hold the interpreter's exit for its timeout. Nothing is lost by not
    # waiting (store writes are atomic; the next start re-reconciles): flush and leave now.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

"""helm 4's command lines for each release action, built from the API models: pure, no I/O.

Each choice follows helm-controller's ``internal/action`` (Flux on the helm 4 SDK), written as
the helm CLI's flags:

- waiting is helm 4's ``--wait=watcher`` (kstatus: Flux's default strategy, ``poller``) or,
  with ``spec.waitStrategy.name: legacy``, ``--wait=legacy`` (helm 3's waiting logic), for
  every action that waits, uninstall included (helm-controller's ``getWaitStrategy``), and
  ``--wait-for-jobs``; ``disableWait`` is ``--wait=hookOnly`` (helm's own default: hooks only);
- install applies server-side (helm 4's default, as Flux's) unless
  ``spec.install.serverSideApply`` is false; upgrade and rollback follow their
  ``serverSideApply`` (enabled | disabled | auto: the apply method of the release they start
  from, or roll back to; the runner reads it from storage, :func:`server_side`), force
  conflicts when server-side (Flux always does), and honour ``force`` as ``--force-replace``
  only when client-side (helm 4 renamed ``--force``, and Flux ignores ``force`` under
  server-side apply);
- ``spec.serviceAccountName`` is impersonated as Flux does it:
  ``system:serviceaccount:<HelmRelease namespace>:<name>`` (``--kube-as-user``);
- ``spec.postRenderers`` and ``spec.commonMetadata`` are applied by chartguard's own
  post-renderer plugin (``--post-renderer``, :mod:`chartguard.helm.postrender`);
- positional arguments follow ``--``, so no release name or path is read as a flag.

What the CLI cannot do is listed by :func:`unsupported`, for the reconciler to refuse.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from chartguard.api.durations import format_duration
from chartguard.api.helmrelease import HelmRelease
from chartguard.helm.postrender import PLUGIN_NAME

WAIT = "watcher"  # helm 4's kstatus waiter: helm-controller's default wait strategy
LEGACY_WAIT = "legacy"  # helm 3's waiting logic: spec.waitStrategy.name legacy
NO_WAIT = "hookOnly"  # helm 4's default: wait for hooks only
ACTIONS = ("install", "upgrade", "test", "rollback", "uninstall")


def action_timeout(release: HelmRelease, action: str) -> timedelta:
    """The action's ``timeout``, else ``spec.timeout`` (Flux's ``GetTimeout``)."""
    spec = release.spec
    own = {"install": spec.install.timeout, "upgrade": spec.upgrade.timeout,
           "test": spec.test.timeout, "rollback": spec.rollback.timeout,
           "uninstall": spec.uninstall.timeout}[action]
    return own if own is not None else spec.timeout


def server_side(mode: str, previous_method: str) -> bool:
    """Whether an upgrade or rollback applies server-side: ``mode`` is its ``serverSideApply``
    (enabled | disabled | auto), ``previous_method`` the apply method helm recorded on the
    revision it starts from (upgrade) or goes back to (rollback): ``ssa``, ``csa``, or "" for
    a revision helm 3 wrote (client-side)."""
    if mode == "enabled":
        return True
    if mode == "disabled":
        return False
    return previous_method == "ssa"


def install_args(release: HelmRelease, chart: Path, values: Path, *,
                 description: str = "", post_render: Path | None = None) -> list[str]:
    """``helm install``: the chart file and values file are the runner's private copies;
    ``post_render``: the plan of chartguard's post-renderer plugin
    (:mod:`chartguard.helm.postrender`)."""
    install = release.spec.install
    args = ["install", *_common(release, "install"),
            *_wait(release, install.disable_wait, install.disable_wait_for_jobs),
            *_apply(install.server_side_apply is not False, force=False),
            "--values", str(values)]
    if release.spec.target_namespace and install.create_namespace:
        args.append("--create-namespace")  # Flux honours it only with a targetNamespace
    if install.crds in ("Skip", "CreateReplace") or install.skip_crds:
        args.append("--skip-crds")  # CreateReplace: applied before (chartguard.helm.crds)
    args += _flag("--no-hooks", install.disable_hooks)
    args += _flag("--disable-openapi-validation", install.disable_openapi_validation)
    args += _flag("--skip-schema-validation", install.disable_schema_validation)
    args += _flag("--take-ownership", not install.disable_take_ownership)
    args += _flag("--replace", install.replace)
    args += _description(description) + _post_render(post_render)
    return [*args, "--", release.release_name, str(chart)]


def upgrade_args(release: HelmRelease, chart: Path, values: Path, *, server_side: bool,
                 description: str = "", post_render: Path | None = None) -> list[str]:
    """``helm upgrade`` (never ``--install``: installing is its own action)."""
    upgrade = release.spec.upgrade
    args = ["upgrade", *_common(release, "upgrade"),
            *_wait(release, upgrade.disable_wait, upgrade.disable_wait_for_jobs),
            *_apply(server_side, force=upgrade.force),
            "--history-max", str(release.spec.max_history), "--values", str(values),
            "--reuse-values" if upgrade.preserve_values else "--reset-values"]
    args += _flag("--no-hooks", upgrade.disable_hooks)
    args += _flag("--disable-openapi-validation", upgrade.disable_openapi_validation)
    args += _flag("--skip-schema-validation", upgrade.disable_schema_validation)
    args += _flag("--take-ownership", not upgrade.disable_take_ownership)
    args += _flag("--cleanup-on-fail", upgrade.cleanup_on_fail)
    args += _description(description) + _post_render(post_render)
    return [*args, "--", release.release_name, str(chart)]


def template_crds_args(release: HelmRelease, chart: Path, values: Path) -> list[str]:
    """``helm template --include-crds``: the chart's CRDs of the subcharts these values enable
    (client-side only; :mod:`chartguard.helm.crds` keeps the documents of crds/ files)."""
    return ["template", "--namespace", release.release_namespace, "--include-crds",
            "--values", str(values), "--", release.release_name, str(chart)]


def test_args(release: HelmRelease) -> list[str]:
    """``helm test`` with ``spec.test.filters`` as ``--filter name=<n>`` / ``!name=<n>``."""
    args = ["test", *_common(release, "test")]
    for item in release.spec.test.filters:
        args += ["--filter", f"{'!' if item.exclude else ''}name={item.name}"]
    return [*args, "--", release.release_name]


def rollback_args(release: HelmRelease, version: int, *, server_side: bool) -> list[str]:
    """``helm rollback`` to ``version``; 0 means the revision before the newest."""
    if version < 0:
        raise ValueError(f"a rollback version is 0 (the previous one) or more, not {version}")
    rollback = release.spec.rollback
    args = ["rollback", *_common(release, "rollback"),
            *_wait(release, rollback.disable_wait, rollback.disable_wait_for_jobs),
            *_apply(server_side, force=rollback.force),
            "--history-max", str(release.spec.max_history)]
    args += _flag("--no-hooks", rollback.disable_hooks)
    args += _flag("--cleanup-on-fail", rollback.cleanup_on_fail)
    args += ["--", release.release_name]
    return [*args, str(version)] if version else args


def uninstall_args(release: HelmRelease) -> list[str]:
    """``helm uninstall``; a release that is already gone is success (``--ignore-not-found``)."""
    uninstall = release.spec.uninstall
    args = ["uninstall", *_common(release, "uninstall"),
            f"--wait={NO_WAIT if uninstall.disable_wait else wait_strategy(release)}",
            "--cascade", uninstall.deletion_propagation, "--ignore-not-found"]
    args += _flag("--keep-history", uninstall.keep_history)
    args += _flag("--no-hooks", uninstall.disable_hooks)
    return [*args, "--", release.release_name]


#: What the helm CLI cannot honour: ``(field [qualifier], why)``; :func:`unsupported` names the
#: ones a release uses, and the reconciler refuses it (Stalled, naming the field). The README's
#: "Not supported yet" list holds each (tests/unit/api/test_api_flux_coverage.py).
CLI_CANNOT_HONOUR: tuple[tuple[str, str], ...] = (
    ("spec.storageNamespace (other than the release namespace)",
     "the helm CLI keeps its release records in the namespace it installs into: it "
     "initialises its storage with the same --namespace (action.Configuration.Init(getter, "
     "settings.Namespace(), HELM_DRIVER)), and no flag or variable separates the two; only "
     "helm's Go SDK, as helm-controller uses it, can"),
    ("spec.rollback.recreate",
     "helm 4 removed pod recreation on rollback (Flux ignores the field since helm 4)"),
)
_CLI_WHY = dict(CLI_CANNOT_HONOUR)


def unsupported(release: HelmRelease) -> tuple[str, ...]:
    """``"<spec field path>: <why>"`` for each field of ``release`` the helm CLI cannot honour
    (:data:`CLI_CANNOT_HONOUR`); the reconciler refuses such a release (Stalled, naming the
    field)."""
    spec = release.spec
    used: list[tuple[str, str]] = []
    if spec.storage_namespace and spec.storage_namespace != release.release_namespace:
        used.append(("spec.storageNamespace (other than the release namespace)",
                     f"; remove storageNamespace or set it to that namespace "
                     f"({release.release_namespace})"))
    if spec.rollback.recreate:
        used.append(("spec.rollback.recreate", "; remove it"))
    return tuple(f"{field.split(' ')[0]}: {_CLI_WHY[field]}{tail}" for field, tail in used)


def _common(release: HelmRelease, action: str) -> list[str]:
    args = ["--namespace", release.release_namespace,
            "--timeout", format_duration(action_timeout(release, action))]
    if release.spec.service_account_name:
        args += ["--kube-as-user", f"system:serviceaccount:{release.metadata.namespace}:"
                                   f"{release.spec.service_account_name}"]
    return args


def wait_strategy(release: HelmRelease) -> str:
    """helm's ``--wait`` value for an action that waits: ``watcher`` (Flux's ``poller``, the
    default) or ``legacy``."""
    return WAIT if release.spec.waits_with_poller else LEGACY_WAIT


def _wait(release: HelmRelease, disable_wait: bool, disable_wait_for_jobs: bool) -> list[str]:
    if disable_wait:
        return [f"--wait={NO_WAIT}"]
    return [f"--wait={wait_strategy(release)}",
            *_flag("--wait-for-jobs", not disable_wait_for_jobs)]


def _apply(server_side: bool, *, force: bool) -> list[str]:
    if server_side:
        return ["--server-side=true", "--force-conflicts"]
    return ["--server-side=false", *_flag("--force-replace", force)]


def _flag(flag: str, on: bool) -> list[str]:
    return [flag] if on else []


def _post_render(plan: Path | None) -> list[str]:
    if plan is None:
        return []
    return ["--post-renderer", PLUGIN_NAME, "--post-renderer-args", str(plan)]


def _description(description: str) -> list[str]:
    return ["--description", description] if description else []

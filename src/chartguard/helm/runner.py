"""Running the helm binary: the only place chartguard starts a process.

Each action runs one helm process with:

- a private HELM_CACHE_HOME / HELM_CONFIG_HOME / HELM_DATA_HOME / HELM_PLUGINS under ``home``
  (mode 0700); HELM_PLUGINS holds only chartguard's post-renderer plugin
  (:mod:`chartguard.helm.postrender`), which helm runs (``--post-renderer``) for a release with
  spec.postRenderers or spec.commonMetadata, reading its plan from the work directory; it runs
  ``kubectl kustomize``, and its error (which helm does not pass on) is read back from there;
  HELM_DRIVER=secret, and no other HELM_* variable of the caller's (they would change what helm
  reads or where it stores); the rest of the caller's environment (KUBECONFIG, proxies) passes;
- the chart copied into a private directory WHILE it is hashed, the hash compared with the
  digest that was verified, and helm run on that copy: what helm reads is what was hashed, and
  a changed store file never reaches helm (:class:`ChartDigestMismatchError`);
- the values in a 0600 file in that directory, which is removed afterwards, also on failure
  (and, when a killed operator could not, by the next one as it starts: the directory is named
  for its process, :mod:`chartguard.leftovers`);
- at most ``max_processes`` helm processes at once, each given helm's timeout plus ``grace``
  before it is stopped by its PID (SIGTERM, then SIGKILL);
- for a release in another cluster (``spec.kubeConfig``), ``--kubeconfig`` on a private file
  (:meth:`Helm.for_cluster`); where Flux's CRD policies ask for what helm's CLI cannot do, the
  chart's CRDs applied before helm runs (:mod:`chartguard.helm.crds`).

Whether a failure changed helm's release storage is decided by reading the storage before and
after: the newest revision's (version, status, digest) differ. A success returns the newest
revision as stored after the action.

``spec.healthCheckExprs`` (:mod:`chartguard.helm.health`) run after a successful install,
upgrade or rollback that waits with the poller strategy, within the rest of its timeout; when
they fail, the revision helm recorded ``deployed`` is rewritten ``failed`` (as the helm SDK
records a failed wait) and the action fails like a helm wait failure.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

from chartguard import cel, metrics
from chartguard.api.helmrelease import HelmRelease
from chartguard.helm import args as helm_args
from chartguard.helm import health
from chartguard.helm.crds import MAX_CRD_OUTPUT, CRDApplier, CRDError, chart_crds
from chartguard.helm.errors import ChartDigestMismatchError, HelmError, redact, summarize
from chartguard.helm.postrender import install_plugin, plan_for
from chartguard.helm.release import ReleaseStorage, StoredRelease, newest
from chartguard.leftovers import left_behind, owner_tag
from chartguard.untrusted import escape

#: time helm gets past its own --timeout to finish writing its storage before it is stopped
DEFAULT_GRACE = timedelta(seconds=30)
_STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
_MAX_STDERR = 256 * 1024
#: the most of helm's stdout read (only ``helm template --include-crds`` is read: a chart's
#: CRDs)
MAX_OUTPUT = MAX_CRD_OUTPUT
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_HOMES = {"HELM_CACHE_HOME": "cache", "HELM_CONFIG_HOME": "config", "HELM_DATA_HOME": "data",
          "HELM_PLUGINS": "plugins"}
_POST_RENDER_PLAN = "postrender.json"
_POST_RENDER_ERROR = "postrender-error.txt"
_WORK = "run-"  # a work directory's prefix, before its owner's tag


@dataclass(frozen=True)
class ChartFile:
    """A chart archive in the artifact store and the digest it was verified as."""

    path: Path
    digest: str  # sha256:<hex> of the .tgz (the HelmChart's status.artifact.digest)


class Helm:
    """The helm binary, run for one operator process with a home of its own.

    Safe to share between threads (one action per release at a time is the caller's rule).
    ``storage`` must read what helm just wrote (a direct list of the Secrets, not a lagging
    watch cache), or ``storage_changed`` and the returned revision lag too; its own errors
    propagate, except after a failed helm run, which then counts as having changed storage.
    """

    def __init__(self, *, binary: str, home: Path, storage: ReleaseStorage,
                 env: Mapping[str, str] | None = None, max_processes: int = 4,
                 grace: timedelta = DEFAULT_GRACE, default_service_account: str = "",
                 live: health.LiveObjects | None = None,
                 health_interval: float = health.POLL_INTERVAL,
                 kubectl: str = "kubectl", crds: CRDApplier | None = None) -> None:
        if max_processes < 1:
            raise ValueError(f"max_processes must be 1 or more, not {max_processes}")
        self.binary = binary
        self.home = home
        self.storage = storage
        self.grace = grace
        #: where spec.healthCheckExprs read objects; None: releases that set them are refused
        self.live = live
        self.health_interval = health_interval
        #: "namespace/name" of the ServiceAccount helm acts as for releases that name none
        #: (``chartguard run --release-service-account``); "": the operator's own identity
        self.default_service_account = default_service_account
        #: the kubectl whose ``kustomize`` applies spec.postRenderers and spec.commonMetadata
        self.kubectl = kubectl
        #: a kubeconfig file helm runs with (``--kubeconfig``): a remote cluster's
        #: (:meth:`for_cluster`); None: the caller's KUBECONFIG or in-cluster configuration
        self.kubeconfig: Path | None = None
        #: applies a chart's CRDs where helm's CLI will not (Flux's CRD policies); None: such a
        #: policy fails the action
        self.crds = crds
        self.processes = 0
        self._root = self
        self._count = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_processes)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in (*_HOMES.values(), "tmp"):
            _private_dir(home / name)
        install_plugin(home / _HOMES["HELM_PLUGINS"])
        #: work directories a killed process left (chart copies, values files), now removed
        self.leftovers_removed = _remove_leftovers(home / "tmp")
        caller = os.environ if env is None else env
        self.env = {key: value for key, value in caller.items() if not key.startswith("HELM_")}
        self.env.update({key: str(home / name) for key, name in _HOMES.items()})
        self.env["HELM_DRIVER"] = "secret"

    def for_cluster(self, kubeconfig: Path, storage: ReleaseStorage,
                    crds: CRDApplier | None = None,
                    live: health.LiveObjects | None = None) -> Helm:
        """This helm (its home, process slots and count) acting on another cluster: every
        run gets ``--kubeconfig kubeconfig`` and ``storage`` reads that cluster's records.
        ``--release-service-account`` names an account of the operator's cluster, so it is not
        impersonated there; ``spec.serviceAccountName`` is, as Flux does with a kubeConfig."""
        view = copy.copy(self)
        view.kubeconfig = kubeconfig
        view.storage = storage
        view.default_service_account = ""
        view.crds = crds
        view.live = live  # spec.healthCheckExprs read that cluster's objects
        return view

    @contextlib.contextmanager
    def private_dir(self, purpose: str) -> Iterator[Path]:
        """A private (0700) directory under helm's home, removed afterwards (and, when a killed
        operator could not, by the next one as it starts)."""
        with self._workdir(purpose) as work:
            yield work

    # --- the actions --------------------------------------------------------------------------

    def install(self, release: HelmRelease, chart: ChartFile, values: Mapping[str, Any], *,
                description: str = "") -> StoredRelease:
        with self._workdir("install") as work:
            copy = self._copy_chart("install", chart, work)
            values_file = _write_values("install", values, work)
            install = release.spec.install
            if install.crds == "CreateReplace" and not install.skip_crds:
                self._apply_crds("install", release, copy, values_file, replace=True,
                                 server_side=install.server_side_apply is not False)
            plan = self._post_render_plan(release, work)
            argv = helm_args.install_args(release, copy, values_file, description=description,
                                          post_render=plan)
            started = time.monotonic()
            with _post_render_errors("install", work):
                done = self._changing("install", release, argv)
            return self._healthy("install", release, done, started)

    def upgrade(self, release: HelmRelease, chart: ChartFile, values: Mapping[str, Any], *,
                description: str = "") -> StoredRelease:
        with self._workdir("upgrade") as work:
            copy = self._copy_chart("upgrade", chart, work)
            values_file = _write_values("upgrade", values, work)
            before = self._history(release)
            current = newest(before)
            server_side = helm_args.server_side(release.spec.upgrade.server_side_apply,
                                                current.apply_method if current else "")
            policy = release.spec.upgrade.crds
            if policy in ("Create", "CreateReplace"):
                self._apply_crds("upgrade", release, copy, values_file,
                                 replace=policy == "CreateReplace", server_side=server_side)
            argv = helm_args.upgrade_args(
                release, copy, values_file, description=description, server_side=server_side,
                post_render=self._post_render_plan(release, work))
            started = time.monotonic()
            with _post_render_errors("upgrade", work):
                done = self._changing("upgrade", release, argv, before=before)
            return self._healthy("upgrade", release, done, started)

    def test(self, release: HelmRelease) -> StoredRelease:
        """Run the release's test hooks; the release as stored after, with their last runs."""
        return self._changing("test", release, helm_args.test_args(release))

    def rollback(self, release: HelmRelease, version: int) -> StoredRelease:
        """Roll back to ``version``; 0 is the revision before the newest."""
        before = self._history(release)
        current = newest(before)
        target = version or (current.version - 1 if current else 0)
        method = next((r.apply_method for r in before if r.version == target), "")
        argv = helm_args.rollback_args(
            release, version,
            server_side=helm_args.server_side(release.spec.rollback.server_side_apply, method))
        started = time.monotonic()
        return self._healthy("rollback", release,
                             self._changing("rollback", release, argv, before=before), started)

    def uninstall(self, release: HelmRelease) -> None:
        """Uninstall; a release that does not exist (any more) is not an error.

        A release already uninstalled with its history kept is left alone: helm would refuse
        ("already deleted"), and there is nothing left to remove. (Without keepHistory, helm
        purges that history.)"""
        before = newest(self._history(release))
        if before and before.status == "uninstalled" and release.spec.uninstall.keep_history:
            return
        self._run("uninstall", release, helm_args.uninstall_args(release), before)

    def unlock(self, release: HelmRelease, version: int, *, description: str) -> StoredRelease:
        """Mark revision ``version``, stuck in ``pending-*`` (a helm killed mid-run), as
        ``failed``, as helm-controller's unlock does. The helm CLI has no command for it, so the
        record is rewritten in helm's storage; no helm process runs."""
        try:
            return self.storage.mark_failed(release.release_namespace, release.release_name,
                                            version, description, as_user=self.identity(release))
        except Exception as exc:  # the storage's own error, whatever it is: worded here
            raise HelmError("unlock", f"cannot mark revision {version} of release "
                                      f"{release.release_namespace}/{release.release_name} "
                                      f"failed: {escape(exc)}", storage_changed=False) from None

    def identity(self, release: HelmRelease) -> str:
        """The user helm acts as for ``release``: its ``spec.serviceAccountName`` (in its
        namespace, as Flux), else the runner's default ServiceAccount; "": the caller's own."""
        if release.spec.service_account_name:
            return (f"system:serviceaccount:{release.metadata.namespace}:"
                    f"{release.spec.service_account_name}")
        if self.default_service_account:
            namespace, _, name = self.default_service_account.partition("/")
            return f"system:serviceaccount:{namespace}:{name}"
        return ""

    # --- health checks ------------------------------------------------------------------------

    def _healthy(self, action: str, release: HelmRelease, after: StoredRelease,
                 started: float) -> StoredRelease:
        """``after`` once the release's health checks pass; else the revision is marked failed
        and :class:`HelmError` raised (storage changed: remediation follows)."""
        if not health.applies(release, action):
            return after
        deadline = started + helm_args.action_timeout(release, action).total_seconds()
        try:
            if self.live is None:
                raise health.HealthCheckError("this helm runner has no access to the cluster's "
                                              "objects to run spec.healthCheckExprs")
            checks = health.HealthChecks(release.spec.health_check_exprs)
            manifest = self.live.manifest(after.namespace, after.name, after.version)
            health.wait_healthy(checks, health.manifest_objects(manifest, after.namespace),
                                self.live, as_user=self.identity(release), deadline=deadline,
                                interval=self.health_interval)
        except (health.HealthCheckError, cel.CelError) as err:
            message = str(err)
        except Exception as err:  # the storage's or the API's own error: worded here
            message = f"health checks could not run: {escape(err)}"
        else:
            return after
        try:
            self.storage.mark_failed(
                after.namespace, after.name, after.version,
                f"Release \"{after.name}\" failed: {message}", as_user=self.identity(release))
        except Exception as exc:  # the storage's own error, whatever it is: worded here
            message += (f"; revision {after.version} could not be marked failed in helm's "
                        f"storage: {escape(exc)}")
        raise HelmError(action, message, storage_changed=True)

    # --- running ------------------------------------------------------------------------------

    def _changing(self, action: str, release: HelmRelease, argv: list[str], *,
                  before: list[StoredRelease] | None = None) -> StoredRelease:
        previous = newest(self._history(release) if before is None else before)
        after = self._run(action, release, argv, previous)
        if after is None:
            raise HelmError(action, "helm succeeded but its storage holds no revision of "
                                    f"release {release.release_namespace}/"
                                    f"{release.release_name}", storage_changed=False)
        return after

    def _run(self, action: str, release: HelmRelease, argv: list[str],
             previous: StoredRelease | None) -> StoredRelease | None:
        seconds = (helm_args.action_timeout(release, action) + self.grace).total_seconds()
        if self.default_service_account and not release.spec.service_account_name:
            # a flag: before the "--" that ends helm's flags
            argv = ["--kube-as-user", self.identity(release), *argv]
        if self.kubeconfig is not None:
            argv = ["--kubeconfig", str(self.kubeconfig), *argv]
        with self._slots:
            started = time.monotonic()
            try:
                returncode, stderr, expired = self._process(action, argv, seconds)
            except HelmError:  # could not be started
                metrics.helm_command(action, time.monotonic() - started, failed=True)
                raise
        failed = expired or returncode != 0
        metrics.helm_command(action, time.monotonic() - started, failed=failed)
        try:
            after = newest(self._history(release))
        except Exception:
            if not failed:
                raise
            after = None  # unknown: count it as a change, as a remediation must look at it
            changed = True
        else:
            changed = _key(after) != _key(previous)
        if expired:
            raise HelmError(action, f"helm did not finish within {seconds:.0f}s and was "
                                    "stopped", storage_changed=changed)
        if failed:
            raise HelmError(action, summarize(stderr), storage_changed=changed)
        return after

    def _process(self, action: str, argv: list[str], seconds: float) -> tuple[int, str, bool]:
        returncode, err, expired, _ = self._process_output(action, argv, seconds, stdout=False)
        return returncode, err, expired

    def _process_output(self, action: str, argv: list[str], seconds: float, *,
                        stdout: bool) -> tuple[int, str, bool, str]:
        """(exit code, stderr's tail, stopped at its timeout, stdout if asked for).

        stdout goes to an unnamed file, read back only when it is at most
        :data:`MAX_OUTPUT` bytes (a chart's templates can print without end): a longer one
        is ``HelmError``. stderr likewise, of which the tail is kept."""
        with tempfile.TemporaryFile(dir=self.home / "tmp") as out_file, \
                tempfile.TemporaryFile(dir=self.home / "tmp") as err_file:
            try:
                proc = subprocess.Popen(
                    [self.binary, *argv], env=self.env, cwd=self.home / "tmp",
                    stdin=subprocess.DEVNULL,
                    stdout=out_file if stdout else subprocess.DEVNULL, stderr=err_file)
            except OSError as exc:
                raise HelmError(action, f"the helm binary {escape(self.binary)} cannot be run "
                                        f"({escape(exc.strerror or exc)}); install helm 4 or "
                                        "point the operator at it",
                                storage_changed=False) from exc
            with self._count:
                self._root.processes += 1
            try:
                proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                _stop(proc)
                return -1, "", True, ""
            except BaseException:
                _stop(proc)
                raise
            err_size = err_file.seek(0, os.SEEK_END)
            err_file.seek(max(0, err_size - _MAX_STDERR))
            err = err_file.read(_MAX_STDERR)
            out = b""
            if stdout:
                size = out_file.seek(0, os.SEEK_END)
                if size > MAX_OUTPUT:
                    raise HelmError(action, f"helm printed {size} bytes, more than "
                                            f"{MAX_OUTPUT} (the chart's templates)",
                                    storage_changed=False)
                out_file.seek(0)
                out = out_file.read()
        return (proc.returncode, err.decode("utf-8", "replace"), False,
                out.decode("utf-8", "replace"))

    def _apply_crds(self, action: str, release: HelmRelease, chart: Path, values: Path, *,
                    replace: bool, server_side: bool) -> None:
        """Flux's CRD policy before ``action``: the chart's crds/ (as ``helm template
        --include-crds`` prints them with these values) created, or with ``replace`` applied,
        as the identity helm acts as. Nothing of helm's storage changes here."""
        if self.crds is None:
            raise HelmError(action, "failed to apply CustomResourceDefinitions: no Kubernetes "
                                    "client to apply them with", storage_changed=False)
        argv = helm_args.template_crds_args(release, chart, values)
        seconds = (helm_args.action_timeout(release, action) + self.grace).total_seconds()
        with self._slots:
            returncode, err, expired, rendered = self._process_output(action, argv, seconds,
                                                                      stdout=True)
        if expired or returncode != 0:
            raise HelmError(action, "failed to read the chart's CustomResourceDefinitions: "
                                    f"{summarize(err) if not expired else 'helm timed out'}",
                            storage_changed=False)
        try:
            crds = chart_crds(rendered)
            if crds:
                self.crds.apply(crds, replace=replace, as_user=self.identity(release),
                                server_side=server_side)
        except CRDError as err:
            raise HelmError(action, f"failed to apply CustomResourceDefinitions: {err}",
                            storage_changed=False) from None

    def _history(self, release: HelmRelease) -> list[StoredRelease]:
        return self.storage.history(release.release_namespace, release.release_name)

    # --- files --------------------------------------------------------------------------------

    def _post_render_plan(self, release: HelmRelease, work: Path) -> Path | None:
        """The plugin's plan in ``work`` (0600), or None when nothing is post-rendered."""
        plan = plan_for(release, kubectl=self.kubectl,
                        error_file=str(work / _POST_RENDER_ERROR))
        if plan is None:
            return None
        path = work / _POST_RENDER_PLAN
        with _create_private(path) as out:
            out.write(plan.to_json().encode("utf-8"))
        return path

    @contextlib.contextmanager
    def _workdir(self, action: str) -> Iterator[Path]:
        try:
            work = Path(tempfile.mkdtemp(prefix=f"{_WORK}{owner_tag()}-", dir=self.home / "tmp"))
        except OSError as exc:
            raise HelmError(action, f"cannot create a private directory under "
                                    f"{escape(self.home)} ({escape(exc.strerror or exc)})",
                            storage_changed=False) from exc
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _copy_chart(action: str, chart: ChartFile, work: Path) -> Path:
        """Copy while hashing; the copy is what helm reads, so it is what was compared."""
        copy = work / "chart.tgz"
        digest = hashlib.sha256()
        try:
            with chart.path.open("rb") as source, _create_private(copy) as target:
                while block := source.read(1024 * 1024):
                    digest.update(block)
                    target.write(block)
        except OSError as exc:
            raise HelmError(action, f"cannot read the chart file {escape(chart.path)} "
                                    f"({escape(exc.strerror or exc)})",
                            storage_changed=False) from exc
        actual = "sha256:" + digest.hexdigest()
        if actual != chart.digest:
            raise ChartDigestMismatchError(action, path=str(chart.path), expected=chart.digest,
                                           actual=actual)
        return copy


@contextlib.contextmanager
def _post_render_errors(action: str, work: Path) -> Iterator[None]:
    """helm says only that the plugin failed: the error is kustomize's, from its file."""
    try:
        yield
    except HelmError as err:
        try:
            said = (work / _POST_RENDER_ERROR).read_text(encoding="utf-8", errors="replace")
        except OSError:
            raise err from None
        raise HelmError(action, f"post-rendering failed: {escape(redact(said.strip()))}",
                        storage_changed=err.storage_changed) from None


def _remove_leftovers(tmp: Path) -> int:
    count = 0
    for entry in tmp.iterdir():
        if entry.is_dir() and left_behind(entry.name, _WORK):
            shutil.rmtree(entry, ignore_errors=True)
            count += 1
    return count


def _key(release: StoredRelease | None) -> tuple[int, str, str] | None:
    return None if release is None else (release.version, release.status, release.digest)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)  # mkdir's mode is masked by the umask, and an existing one may be open


def _create_private(path: Path) -> BinaryIO:
    return cast(BinaryIO, os.fdopen(
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"))


def _write_values(action: str, values: Mapping[str, Any], work: Path) -> Path:
    """The values as JSON, which helm reads as YAML, in a 0600 file.

    JSON escapes the C0 controls; characters YAML reads as line breaks or does not allow
    raw (C1 controls, U+2028/2029, BOM, non-characters, lone surrogates) are escaped too."""
    try:
        text = json.dumps(values, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise HelmError(action, f"the values cannot be given to helm ({escape(exc)})",
                        storage_changed=False) from exc
    text = _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    path = work / "values.json"
    with _create_private(path) as out:
        out.write(text.encode("utf-8"))
    return path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop exactly this process, by its PID: SIGTERM (helm then marks its release failed),
    SIGKILL if it does not exit."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.communicate(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) readable by this user only (0600) holding ``data``."""
    with _create_private(path) as out:
        out.write(data)

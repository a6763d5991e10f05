"""What the runner guarantees around helm: only verified bytes reach it, values never outlive
the run, failures say whether helm's storage changed, processes are bounded and stopped."""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from helm_support import Kube, KubectlReleaseStorage, chart_file, helm_release

from chartguard import metrics
from chartguard.helm.errors import ChartDigestMismatchError, HelmError
from chartguard.helm.release import StoredRelease
from chartguard.helm.runner import ChartFile, Helm
from chartguard_testing import tools
from chartguard_testing.apiserver import KubeAPI
from chartguard_testing.charts import HelmEnv
from chartguard_testing.scrape import Samples

# a pre-install hook Pod that never completes (the emulator keeps restartPolicy Always pods
# Running): helm records the release, then fails it when its --timeout ends
HANGING_HOOK = b"""apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
spec:
  restartPolicy: Always
  containers:
  - name: wait
    image: busybox
"""


def wrapper(tmp_path: Path, *, sleep: float = 0.0) -> tuple[str, Path]:
    """A helm that logs each start and end, the values file it was given (with its mode) and
    the chart path, then runs the real helm."""
    log = tmp_path / "helm-calls.log"
    script = tmp_path / "helm-wrapper"
    script.write_text(f"""#!/bin/sh
echo "start $$" >> {log}
prev=""
for arg in "$@"; do
  if [ "$prev" = "--values" ]; then stat -c "values %a %n" "$arg" >> {log}; fi
  prev="$arg"
done
echo "chart $prev" >> {log}
sleep {sleep}
{tools.helm()} "$@"
rc=$?
echo "end $$" >> {log}
exit $rc
""")
    script.chmod(0o755)
    return str(script), log


def runner(tmp_path: Path, kube_api: KubeAPI, storage: KubectlReleaseStorage, binary: str,
           **kw: object) -> Helm:
    return Helm(binary=binary, home=tmp_path / "runner", storage=storage, env=kube_api.env,
                **kw)  # type: ignore[arg-type]


def leftovers(helm: Helm) -> list[Path]:
    return list((helm.home / "tmp").iterdir())


def test_a_tampered_store_file_never_reaches_helm(helm: Helm, helm_env: HelmEnv, kube: Kube,
                                                  tmp_path: Path) -> None:
    verified = chart_file(helm_env)
    other = chart_file(helm_env, "demo", "0.2.0")
    # the store file is replaced by other bytes after verification
    store = tmp_path / "store.tgz"
    store.write_bytes(other.path.read_bytes())
    with pytest.raises(ChartDigestMismatchError) as caught:
        helm.install(helm_release(), ChartFile(store, verified.digest), {})
    assert caught.value.storage_changed is False
    assert other.digest in caught.value.message
    assert verified.digest in caught.value.message
    assert helm.processes == 0
    assert kube.items("secrets", "flux-system", "-l", "owner=helm") == []
    assert leftovers(helm) == []
    with pytest.raises(ChartDigestMismatchError):
        helm.upgrade(helm_release(), ChartFile(store, verified.digest), {})
    assert helm.processes == 0


def test_helm_reads_a_private_copy_and_the_values_file_is_private_and_removed(
        tmp_path: Path, kube_api: KubeAPI, kube: Kube, storage: KubectlReleaseStorage,
        helm_env: HelmEnv) -> None:
    binary, log = wrapper(tmp_path)
    helm = runner(tmp_path, kube_api, storage, binary)
    chart = chart_file(helm_env)
    helm.install(helm_release(), chart, {"replicaCount": 2})
    lines = log.read_text().splitlines()
    (values_line,) = [line for line in lines if line.startswith("values ")]
    _, mode, values_path = values_line.split(" ", 2)
    assert mode == "600"
    assert Path(values_path).parent.parent == helm.home / "tmp"
    (chart_line,) = [line for line in lines if line.startswith("chart ")]
    copy = Path(chart_line.split(" ", 1)[1])
    assert copy != chart.path  # helm reads the copy that was hashed, not the store file
    assert copy.parent == Path(values_path).parent
    assert not Path(values_path).exists()
    assert not copy.exists()
    assert leftovers(helm) == []
    assert stat.S_IMODE((helm.home / "tmp").stat().st_mode) == 0o700
    for home in ("cache", "config", "data"):
        assert stat.S_IMODE((helm.home / home).stat().st_mode) == 0o700

    # after a failure too
    with pytest.raises(HelmError):
        helm.install(helm_release(), chart, {"replicaCount": 2})  # it exists already
    assert len([line for line in log.read_text().splitlines() if line.startswith("values")]) == 2
    assert leftovers(helm) == []


def test_a_template_that_does_not_render_fails_before_storage(helm: Helm, helm_env: HelmEnv,
                                                              kube: Kube) -> None:
    chart = chart_file(helm_env, files={"templates/bad.yaml": b"{{ .Values.nope.missing }}\n"})
    with pytest.raises(HelmError) as caught:
        helm.install(helm_release(), chart, {})
    error = caught.value
    assert error.action == "install"
    assert error.storage_changed is False
    assert "nil pointer evaluating interface {}.missing" in error.message
    assert error.message.startswith("INSTALLATION FAILED: demo/templates/bad.yaml")
    assert kube.items("secrets", "flux-system", "-l", "owner=helm") == []
    assert leftovers(helm) == []


def test_a_hook_that_times_out_leaves_a_failed_release_and_says_storage_changed(
        helm: Helm, helm_env: HelmEnv, storage: KubectlReleaseStorage) -> None:
    chart = chart_file(helm_env, files={"templates/hook.yaml": HANGING_HOOK})
    release = helm_release("install: {timeout: 2s}")
    with pytest.raises(HelmError) as caught:
        helm.install(release, chart, {})
    assert caught.value.storage_changed is True
    assert "failed pre-install" in caught.value.message
    assert [r.status for r in storage.history("flux-system", "demo")] == ["failed"]
    assert leftovers(helm) == []


def test_a_failed_upgrade_counts_as_a_storage_change(helm: Helm, helm_env: HelmEnv,
                                                     storage: KubectlReleaseStorage) -> None:
    release = helm_release("upgrade: {timeout: 2s}")
    helm.install(release, chart_file(helm_env), {})
    hanging = chart_file(helm_env, version="0.2.0", files={"templates/hook.yaml": HANGING_HOOK})
    with pytest.raises(HelmError) as caught:
        helm.upgrade(release, hanging, {})
    assert caught.value.storage_changed is True
    assert [r.status for r in storage.history("flux-system", "demo")] == ["failed", "deployed"]


def test_no_more_than_max_processes_helm_processes_at_once(
        tmp_path: Path, kube_api: KubeAPI, kube: Kube, storage: KubectlReleaseStorage,
        helm_env: HelmEnv) -> None:
    binary, log = wrapper(tmp_path, sleep=0.4)
    helm = runner(tmp_path, kube_api, storage, binary, max_processes=2)
    chart = chart_file(helm_env)
    results: list[StoredRelease] = []
    errors: list[BaseException] = []

    def install(i: int) -> None:
        try:
            results.append(helm.install(helm_release(name=f"r{i}"), chart, {}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=install, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(r.name for r in results) == [f"r{i}" for i in range(6)]
    assert helm.processes == 6
    running = peak = 0
    for line in log.read_text().splitlines():
        running += {"start": 1, "end": -1}.get(line.split(" ", 1)[0], 0)
        peak = max(peak, running)
    assert peak == 2  # parallel, and never more than two


def test_a_helm_that_does_not_finish_is_stopped_by_pid(
        tmp_path: Path, storage: KubectlReleaseStorage, kube_api: KubeAPI,
        helm_env: HelmEnv) -> None:
    pid_file = tmp_path / "pid"
    stuck = tmp_path / "stuck-helm"
    stuck.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    stuck.chmod(0o755)
    helm = runner(tmp_path, kube_api, storage, str(stuck), grace=timedelta(seconds=0.5))
    started = time.monotonic()
    with pytest.raises(HelmError) as caught:
        helm.test(helm_release("test: {timeout: 1s}"))
    assert time.monotonic() - started < 10
    assert "did not finish within 2s and was stopped" in caught.value.message
    assert caught.value.storage_changed is False
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped


def test_a_missing_helm_binary_is_a_helm_error(tmp_path: Path, kube_api: KubeAPI,
                                               storage: KubectlReleaseStorage,
                                               helm_env: HelmEnv) -> None:
    helm = runner(tmp_path, kube_api, storage, str(tmp_path / "no-such-helm"))
    with pytest.raises(HelmError) as caught:
        helm.install(helm_release(), chart_file(helm_env), {})
    assert "cannot be run (No such file or directory)" in caught.value.message
    assert caught.value.storage_changed is False
    assert helm.processes == 0
    assert leftovers(helm) == []


def test_the_callers_helm_variables_do_not_reach_helm(tmp_path: Path, kube_api: KubeAPI,
                                                       storage: KubectlReleaseStorage,
                                                       helm_env: HelmEnv) -> None:
    env = {**kube_api.env, "HELM_DRIVER": "memory", "HELM_NAMESPACE": "elsewhere",
           "HELM_DATA_HOME": str(tmp_path / "shared")}
    helm = Helm(binary=tools.helm(), home=tmp_path / "runner", storage=storage, env=env)
    installed = helm.install(helm_release(), chart_file(helm_env), {})
    # the Secret driver, in the release namespace: storage holds it
    assert installed.namespace == "flux-system"
    assert helm.env["HELM_DATA_HOME"] == str(tmp_path / "runner" / "data")
    assert "HELM_NAMESPACE" not in helm.env
    assert not (tmp_path / "shared").exists()


def test_a_test_hook_that_fails_is_an_error_and_its_run_is_stored(
        helm: Helm, helm_env: HelmEnv, storage: KubectlReleaseStorage) -> None:
    hanging_test = HANGING_HOOK.replace(b"-hook", b"-slow-test").replace(
        b"pre-install,pre-upgrade", b"test")
    chart = chart_file(helm_env, files={"templates/tests/slow.yaml": hanging_test})
    release = helm_release("test: {timeout: 2s}")
    installed = helm.install(release, chart, {})
    with pytest.raises(HelmError) as caught:
        helm.test(release)
    assert caught.value.action == "test"
    assert caught.value.storage_changed is True  # helm recorded the hooks' runs
    (stored,) = storage.history("flux-system", "demo")
    assert stored.version == installed.version
    hooks = stored.test_hooks
    assert set(hooks) == {"demo-test-connection", "demo-slow-test"}
    assert hooks["demo-slow-test"].phase == "Failed"
    assert hooks["demo-slow-test"].last_started


def test_helm_runs_are_timed_and_failures_counted_by_action_for_metrics(
        tmp_path: Path, kube_api: KubeAPI, helm: Helm, helm_env: HelmEnv,
        storage: KubectlReleaseStorage) -> None:
    chart = chart_file(helm_env)
    before = Samples.parse(metrics.exposition())
    helm.install(helm_release(), chart, {})
    with pytest.raises(HelmError):
        helm.install(helm_release(), chart, {})  # it exists already: helm fails
    tampered = ChartFile(chart.path, "sha256:" + "0" * 64)
    with pytest.raises(ChartDigestMismatchError):  # helm never starts: no helm run counted
        helm.upgrade(helm_release(), tampered, {})
    with pytest.raises(HelmError):  # cannot start: a failure, of no duration to speak of
        runner(tmp_path, kube_api, storage, str(tmp_path / "no-such-helm")).uninstall(
            helm_release())
    moved = Samples.parse(metrics.exposition()).since(before)
    runs, failures = ("chartguard_helm_command_duration_seconds_count",
                      "chartguard_helm_command_failures_total")
    assert (moved.total(runs, action="install"), moved.total(failures, action="install")) == (
        2, 1)
    assert moved.total(runs, action="upgrade") == 0
    assert (moved.total(runs, action="uninstall"),
            moved.total(failures, action="uninstall")) == (1, 1)
    assert moved.total("chartguard_helm_command_duration_seconds_sum", action="install") > 0

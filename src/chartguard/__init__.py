"""chartguard: install only Helm charts whose cosign signatures have been verified.

Layers (checked by import-linter, see pyproject.toml):

    cli / operator      entry points; translate, never decide
    reconcile           the steps of each kind, returning status to write
    helm, store         the helm binary; the artifact store on disk
    verify | oci        cosign verification on bytes | the OCI registry client
    api                 typed views of the Flux kinds, conditions and reasons

Test equipment (a local registry, a chart factory, a Kubernetes API emulator, a local
Sigstore instance) is the separate ``chartguard_testing`` distribution in ``testing/``: the
product never imports it (an import-linter contract) and never ships it.
"""

__version__ = "0.1.0"

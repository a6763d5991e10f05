"""Test equipment: real components started the way tests and the demo need them.

Nothing in here is used by the operator. Each piece is a real program or a faithful local
instance, started on 127.0.0.1, on a free port, in a temporary directory, and stopped by PID:

- :mod:`chartguard.testing.tools`     locate helm, kubectl and docker-registry
- :mod:`chartguard.testing.procs`     free ports, waiting for readiness, stopping by PID
- :mod:`chartguard.testing.registry`  Debian's docker-registry (plain HTTP, htpasswd, TLS)
- :mod:`chartguard.testing.charts`    charts made, packaged and pushed by the real helm
- :mod:`chartguard.testing.sigstore_local`  a local Sigstore: Fulcio-like CA, CT log, Rekor
- :mod:`chartguard.testing.cosign_signer`   cosign's key and signature formats, bad cases too
- :mod:`chartguard.testing.registry_signer` signatures and OCI layouts written as cosign does
- :mod:`chartguard.testing.apiserver`       a Kubernetes API emulator for real kubectl/helm/kopf
"""

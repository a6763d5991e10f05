"""Test equipment: real components started the way tests and the demo need them.

Nothing in here is used by the operator. Each piece is a real program or a faithful local
instance, started on 127.0.0.1, on a free port, in a temporary directory, and stopped by PID:

- :mod:`chartguard_testing.tools`     locate helm, kubectl and docker-registry
- :mod:`chartguard_testing.procs`     free ports, waiting for readiness, stopping by PID
- :mod:`chartguard_testing.registry`  Debian's docker-registry (plain HTTP, htpasswd, TLS)
- :mod:`chartguard_testing.charts`    charts made, packaged and pushed by the real helm
- :mod:`chartguard_testing.sigstore_local`  a local Sigstore: Fulcio-like CA, CT log, Rekor
- :mod:`chartguard_testing.cosign_signer`   cosign's key and signature formats, bad cases too
- :mod:`chartguard_testing.registry_signer` signatures and OCI layouts written as cosign does
- :mod:`chartguard_testing.apiserver`       a Kubernetes API emulator for real kubectl/helm/kopf
"""

"""chartguard.helm: the helm binary (upgrade --install, uninstall, status, history).

Empty until the HelmRelease reconciler lands; declared now so import-linter's layer contract
already places it (only this package will start helm processes).
"""

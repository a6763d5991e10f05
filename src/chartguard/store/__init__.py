"""chartguard.store: verified chart archives on disk, named by digest.

Empty until the HelmChart reconciler lands; declared now so import-linter's layer contract
already places it.
"""

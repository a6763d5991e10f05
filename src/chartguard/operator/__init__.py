"""chartguard.operator: kopf handlers only (translate events to reconcile calls and status).

Empty until the reconcilers land; declared now so import-linter's layer contract already
places it on top.
"""

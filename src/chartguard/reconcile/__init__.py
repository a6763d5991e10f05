"""chartguard.reconcile: the steps of each kind, joining the layers below.

Today it holds :mod:`.verification` (registry signatures -> ``chartguard.verify`` inputs and
results), used by ``chartguard verify`` and, next, by the HelmChart reconciler.
"""

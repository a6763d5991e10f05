"""chartguard.helm: the helm binary, and helm's release storage as data.

The only package that starts helm processes. Argument lists are built by pure functions from the
API models (:mod:`.args`); :class:`Helm` runs them with a private HELM_*_HOME, values in a
temporary file, the chart re-hashed against the digest that was verified, and a bounded number of
processes at once; :mod:`.release` decodes helm's release records (the Secrets helm's storage
driver writes) into :class:`StoredRelease`, which is how the reconciler learns a release's state
without starting helm.
"""

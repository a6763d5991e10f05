"""chartguard.store: verified chart archives on disk, named by digest.

- :mod:`.artifacts`  :class:`ArtifactStore`: ``sha256/<hex>.tgz`` written atomically (temporary
  file + rename), checked against its name before it is trusted, garbage-collected by the set
  of digests objects still refer to.

The store is a cache: a file that is missing (a new pod, an emptied volume) is fetched from the
registry by digest and verified again by the reconciler, so nothing needs a shared volume.
"""

from chartguard.store.artifacts import ArtifactStore, StoreError

__all__ = ["ArtifactStore", "StoreError"]

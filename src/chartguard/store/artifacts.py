"""Chart archives named by their sha256: ``<root>/sha256/<hex>.tgz`` (HTTP repositories'
indexes: ``<root>/sha256/<hex>.yaml``, a store of their own with ``suffix=".yaml"``).

A file's name is its content digest, so a file can be checked against its name at any time and
two objects using the same chart share one file. Writes go to a temporary file in the same
directory, are flushed to disk and renamed into place: a reader (or a restart after SIGKILL)
sees either the whole file or none; the temporary a killed writer leaves is named for its process
and removed when the operator starts again (:meth:`ArtifactStore.remove_leftovers`). A file is
trusted once per process after its sha256 was checked; a corrupted one is removed and reported
missing, so the reconciler fetches it again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from chartguard.digest import is_digest
from chartguard.leftovers import left_behind, owner_tag

_SUBDIR = "sha256"
_SUFFIX = ".tgz"
_STALE_TMP_SECONDS = 600
_TMP = ".tmp-"


class StoreError(Exception):
    """The artifact directory cannot be written or read (disk full, permissions)."""


class ArtifactStore:
    """Verified chart archives under ``root``, addressed by ``sha256:<hex>``. Thread-safe."""

    def __init__(self, root: Path, suffix: str = _SUFFIX) -> None:
        self.root = root
        self._suffix = suffix
        self._dir = root / _SUBDIR
        self._checked: set[str] = set()  # digests whose file was hashed by this process
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Create the directory (at start-up: a read-only or missing volume fails early)."""
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"artifact directory {self._dir}: {err.strerror}") from None

    def remove_leftovers(self) -> list[str]:
        """At start-up: remove the temporaries a killed writer of this host left (a live
        process's, or another host's on a shared volume, age out in :meth:`collect`); return
        the names removed."""
        removed: list[str] = []
        try:
            entries = list(self._dir.iterdir())
        except FileNotFoundError:
            return removed
        for entry in entries:
            name = entry.name
            if not left_behind(name, _TMP):
                continue
            try:
                entry.unlink()
            except OSError:
                continue
            removed.append(name)
        return removed

    def relative_path(self, digest: str) -> str:
        """``sha256/<hex>.tgz``: the artifact's ``path`` in status."""
        _check(digest)
        return f"{_SUBDIR}/{digest.split(':', 1)[1]}{self._suffix}"

    def path(self, digest: str) -> Path:
        return self.root / self.relative_path(digest)

    def has(self, digest: str) -> bool:
        """True when the file for ``digest`` exists and its bytes hash to ``digest``.

        The hash is computed once per process per digest; a mismatching file is removed.
        """
        path = self.path(digest)
        with self._lock:
            if digest in self._checked:
                if path.is_file():
                    return True
                self._checked.discard(digest)
                return False
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as err:
            raise StoreError(f"artifact {path}: {err.strerror}") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            path.unlink(missing_ok=True)
            return False
        with self._lock:
            self._checked.add(digest)
        return True

    def put(self, data: bytes) -> str:
        """Store ``data`` (atomically; a no-op when already there); return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        final = self.path(digest)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{_TMP}{owner_tag()}-", suffix=self._suffix,
                                       dir=self._dir)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                Path(tmp).chmod(0o644)
                Path(tmp).replace(final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise StoreError(f"cannot write artifact {final}: {err.strerror}") from None
        with self._lock:
            self._checked.add(digest)
        return digest

    def read(self, digest: str) -> bytes:
        """The bytes of ``digest``; ``StoreError`` when missing or not matching."""
        if not self.has(digest):
            raise StoreError(f"artifact {digest} is not in the store")
        try:
            return self.path(digest).read_bytes()
        except OSError as err:
            raise StoreError(f"artifact {digest}: {err.strerror}") from None

    def digests(self) -> set[str]:
        """Every digest with a file in the store (temporary files excluded)."""
        try:
            names = [p.name for p in self._dir.iterdir()]
        except FileNotFoundError:
            return set()
        cut = len(self._suffix)
        return {f"sha256:{n[:-cut]}" for n in names
                if n.endswith(self._suffix) and not n.startswith(".")
                and is_digest(f"sha256:{n[:-cut]}")}

    def usage(self) -> tuple[int, int]:
        """How many chart archives the store holds and their bytes (temporaries excluded)."""
        count = size = 0
        for digest in self.digests():
            try:
                size += self.path(digest).stat().st_size
            except OSError:
                continue  # removed meanwhile (garbage collection)
            count += 1
        return count, size

    def collect(self, referenced: Iterable[str]) -> list[str]:
        """Remove every file whose digest is not in ``referenced`` (and old temporaries);
        return the digests removed."""
        keep = set(referenced)
        removed = []
        for digest in sorted(self.digests() - keep):
            self.path(digest).unlink(missing_ok=True)
            with self._lock:
                self._checked.discard(digest)
            removed.append(digest)
        # temporaries left by a killed process; a young one may be a write in flight
        cutoff = time.time() - _STALE_TMP_SECONDS
        try:
            for tmp in self._dir.glob(f"{_TMP}*"):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return removed


def _check(digest: str) -> None:
    if not is_digest(digest):
        raise ValueError(f"{digest!r} is not a sha256 digest")

"""The artifact store: named by digest, atomic, checked against its name, collected."""

from __future__ import annotations

import hashlib
from pathlib import Path

from chartguard.store import ArtifactStore


def test_put_names_the_file_by_its_sha256_and_reads_it_back(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest = store.put(b"chart bytes")
    assert digest == "sha256:" + hashlib.sha256(b"chart bytes").hexdigest()
    assert store.path(digest) == tmp_path / "sha256" / f"{digest[7:]}.tgz"
    assert store.read(digest) == b"chart bytes"
    assert store.digests() == {digest}
    assert not list((tmp_path / "sha256").glob(".tmp-*"))


def test_a_corrupted_file_is_not_trusted_and_is_removed(tmp_path: Path) -> None:
    digest = ArtifactStore(tmp_path).put(b"chart bytes")
    (tmp_path / "sha256" / f"{digest[7:]}.tgz").write_bytes(b"tampered")
    fresh = ArtifactStore(tmp_path)  # a new process checks the file once
    assert not fresh.has(digest)
    assert fresh.digests() == set()


def test_collect_removes_only_unreferenced_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    keep, drop = store.put(b"a"), store.put(b"b")
    assert store.collect({keep}) == [drop]
    assert store.digests() == {keep}
    assert store.has(keep)
    assert not store.has(drop)


def test_usage_counts_stored_archives_and_their_bytes_not_temporaries(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.usage() == (0, 0)  # not even created yet
    store.ensure()
    first = store.put(b"a" * 100)
    store.put(b"b" * 50)
    store.put(b"a" * 100)  # the same bytes: one file
    (tmp_path / "sha256" / ".tmp-writing.tgz").write_bytes(b"c" * 999)
    assert store.usage() == (2, 150)
    store.collect([first])
    assert store.usage() == (1, 100)

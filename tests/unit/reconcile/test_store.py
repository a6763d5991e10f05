"""The artifact store: named by digest, atomic, checked against its name, collected."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

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


def test_remove_leftovers_removes_what_a_killed_writer_of_this_host_left(
        tmp_path: Path) -> None:
    """A SIGKILL between a temporary's creation and its rename leaves it; the next process
    removes it as it starts, but never a live process's write in flight or another host's."""
    store = ArtifactStore(tmp_path)
    kept = store.put(b"chart bytes")
    host = socket.gethostname()
    folder = tmp_path / "sha256"
    names = {
        "mine": f".tmp-{os.getpid()}@{host}-abc123.tgz",  # this pid: a restarted container
        "dead": f".tmp-{2**22 + 7}@{host}-def456.tgz",  # beyond pid_max: no such process
        "live": f".tmp-1@{host}-ghi789.tgz",  # pid 1 is alive
        "other host": f".tmp-{2**22 + 7}@not-{host}-jkl012.tgz",
        "unnamed": ".tmp-mno345.tgz",  # no owner: only age removes it
    }
    for name in names.values():
        (folder / name).write_bytes(b"partial")
    removed = store.remove_leftovers()
    assert sorted(removed) == sorted([names["mine"], names["dead"]])
    left = {p.name for p in folder.iterdir()}
    assert left == {f"{kept[7:]}.tgz", names["live"], names["other host"], names["unnamed"]}
    assert store.has(kept)


def test_put_names_its_temporary_for_its_process(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """What remove_leftovers recognises is what put writes: a put killed before its rename
    (here: the rename fails) leaves a name a restarted process removes."""
    store = ArtifactStore(tmp_path)
    seen: list[str] = []

    def interrupted(self: Path, target: Path) -> Path:
        seen.append(self.name)
        raise KeyboardInterrupt  # stands for the kill: the temporary stays

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.put(b"chart bytes")
    monkeypatch.undo()
    (name,) = seen
    (tmp_path / "sha256" / name).write_bytes(b"partial")  # as a SIGKILL would leave it
    assert ArtifactStore(tmp_path).remove_leftovers() == [name]
    assert list((tmp_path / "sha256").iterdir()) == []

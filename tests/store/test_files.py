"""Instance files: durable, atomic, named by hash, refused below the free-space floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import FileStoreError, InstanceFileStore, InsufficientStorageError


class TestInstanceFileStore:
    def test_write_is_whole_and_named_by_hash(self, tmp_path: Path) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        stored = files.write("1.2.3.4", [b"abc", memoryview(b"def")])
        assert stored.size == 6
        assert files.read(stored.relative_path) == b"abcdef"
        assert "1.2.3.4" not in stored.relative_path
        assert stored.relative_path == files.relative_path_for("1.2.3.4")
        assert list((tmp_path / "instances" / "tmp").iterdir()) == []

    def test_hostile_uid_cannot_steer_the_path(self, tmp_path: Path) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        stored = files.write("../../etc/passwd", [b"x"])
        assert files.absolute(stored.relative_path).is_relative_to(tmp_path / "instances")
        with pytest.raises(FileStoreError, match="outside"):
            files.absolute("../../etc/passwd")

    def test_same_uid_is_replaced_atomically(self, tmp_path: Path) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        first = files.write("1.2", [b"one"])
        second = files.write("1.2", [b"two"])
        assert first.relative_path == second.relative_path
        assert files.read(second.relative_path) == b"two"

    def test_floor_refuses_what_cannot_be_kept(self, tmp_path: Path) -> None:
        files = InstanceFileStore(tmp_path / "instances", min_free_bytes=1 << 62)
        with pytest.raises(InsufficientStorageError, match="floor"):
            files.check_space(10)

    def test_partial_files_are_cleaned(self, tmp_path: Path) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        (tmp_path / "instances" / "tmp" / "dead.part").write_bytes(b"half")
        assert files.clean_temporary() == 1
        assert list((tmp_path / "instances" / "tmp").iterdir()) == []

    def test_negative_floor_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="`min_free_bytes` must be >= 0, -1 is given"):
            InstanceFileStore(tmp_path, min_free_bytes=-1)

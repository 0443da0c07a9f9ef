"""Writing large files around the page cache: same bytes on disk as a buffered write."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from store import InstanceFileStore
from store.direct_io import ALIGNMENT, AlignedBuffers, DirectIoRefused, write_direct


def _direct_io_works(folder: Path) -> bool:
    try:
        write_direct(folder / "probe", [b"x"], AlignedBuffers(ALIGNMENT))
    except DirectIoRefused:
        return False
    (folder / "probe").unlink()
    return True


@pytest.fixture
def direct_folder(tmp_path: Path) -> Path:
    if not _direct_io_works(tmp_path):
        pytest.skip(f"{tmp_path} does not take O_DIRECT")
    return tmp_path


@pytest.mark.parametrize(
    "sizes",
    [
        [1],  # less than a block
        [ALIGNMENT],  # exactly a block
        [132, ALIGNMENT * 3 + 7],  # a file header, then a data set
        [100, 4 * ALIGNMENT, 5],  # fills the buffer exactly, then more
        [3 * ALIGNMENT + 1, 9 * ALIGNMENT],  # several buffers, cut mid-part
    ],
)
def test_parts_are_written_whole_and_cut_to_size(direct_folder: Path, sizes: list[int]) -> None:
    parts = [os.urandom(size) for size in sizes]
    buffers = AlignedBuffers(4 * ALIGNMENT)  # small, to cross buffer boundaries
    path = direct_folder / "file.dcm"
    size = write_direct(path, [memoryview(part) for part in parts], buffers)
    assert size == sum(sizes)
    assert path.read_bytes() == b"".join(parts)


def test_an_existing_file_is_not_overwritten(direct_folder: Path) -> None:
    (direct_folder / "taken").write_bytes(b"kept")
    with pytest.raises(FileExistsError):
        write_direct(direct_folder / "taken", [b"new"], AlignedBuffers(ALIGNMENT))
    assert (direct_folder / "taken").read_bytes() == b"kept"


def test_buffers_are_reused_and_bounded() -> None:
    buffers = AlignedBuffers(ALIGNMENT, keep=1)
    with buffers.take() as first, buffers.take() as second:
        assert first is not second
    with buffers.take() as again:
        assert again is first or again is second
    assert len(buffers._idle) == 1
    with pytest.raises(ValueError, match="multiple"):
        AlignedBuffers(ALIGNMENT + 1)


def test_store_writes_large_instances_directly_and_small_ones_buffered(
    direct_folder: Path,
) -> None:
    store = InstanceFileStore(direct_folder / "instances")
    large = os.urandom((1 << 20) + 333)
    stored = store.write("1.2.3.4", [b"\0" * 132, memoryview(large)])
    assert store.direct_io
    assert store.absolute(stored.relative_path).read_bytes() == b"\0" * 132 + large
    assert stored.sha256 == hashlib.sha256(b"\0" * 132 + large).hexdigest()
    small = store.write("1.2.3.5", [b"small"])
    assert store.absolute(small.relative_path).read_bytes() == b"small"


def test_a_file_system_without_direct_io_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import store.files

    def refuse(path: Path, parts: object, buffers: object) -> int:
        raise DirectIoRefused("tmpfs")

    monkeypatch.setattr(store.files, "write_direct", refuse)
    files = InstanceFileStore(tmp_path / "instances")
    data = os.urandom(2 << 20)
    stored = files.write("1.2.3.6", [data])
    assert not files.direct_io
    assert files.absolute(stored.relative_path).read_bytes() == data


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm")
def test_tmpfs_refuses_direct_io_and_leaves_nothing() -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        path = Path(folder) / "f"
        try:
            write_direct(path, [b"x" * ALIGNMENT], AlignedBuffers(ALIGNMENT))
        except DirectIoRefused:
            assert not path.exists()
        else:  # newer kernels take O_DIRECT on tmpfs
            assert path.read_bytes() == b"x" * ALIGNMENT

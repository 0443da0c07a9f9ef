"""Reading received bytes in place: the same answers as ``io.BytesIO``, without copies."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.filereader import read_dataset

from dicom_gateway.buffers import BufferReader


@pytest.mark.parametrize(
    "moves",
    [
        [("read", 3), ("read", 100), ("read", 1)],
        [("seek", 5, io.SEEK_SET), ("read", 4), ("seek", -2, io.SEEK_CUR), ("read", -1)],
        [("seek", -3, io.SEEK_END), ("read", None), ("seek", 50, io.SEEK_SET), ("read", 2)],
        [("seek", 0, io.SEEK_END), ("read", 10)],
    ],
)
def test_reads_and_seeks_like_bytesio(moves: list[tuple[object, ...]]) -> None:
    data = bytes(range(40))
    ours, theirs = BufferReader(memoryview(data)), io.BytesIO(data)
    for move in moves:
        name, *arguments = move
        assert getattr(ours, str(name))(*arguments) == getattr(theirs, str(name))(*arguments)
        assert ours.tell() == theirs.tell()


def test_views_share_the_buffer() -> None:
    data = bytearray(b"0123456789")
    reader = BufferReader(data)
    view = reader.view(2, 5)
    data[3] = ord("x")
    assert bytes(view) == b"2x4"
    assert reader.find(b"x4") == 3


def test_negative_seek_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        BufferReader(b"abc").seek(-1)


def test_pydicom_reads_a_data_set_from_a_view() -> None:
    dataset = pydicom.Dataset()
    dataset.PatientID = "P-1"
    dataset.Rows = 2
    encoded = io.BytesIO()
    dataset.save_as(encoded, implicit_vr=False, little_endian=True)
    framed = b"junk" + encoded.getvalue() + b"tail"
    view = memoryview(framed)[4:-4]
    read = read_dataset(BufferReader(view).as_binary_io(), False, True)
    assert read.PatientID == "P-1"
    assert read.Rows == 2

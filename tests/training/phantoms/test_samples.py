"""The shipped sample studies are what the project's own generator writes."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from soi.settings import SHIPPED_SAMPLES_DIR
from tests.support.dcmtk import dciodvfy
from training.phantoms.samples import CXR_SAMPLES, write_cxr_samples


def test_shipped_samples_are_regenerated_byte_for_byte(tmp_path: Path) -> None:
    written = write_cxr_samples(tmp_path)
    assert [p.name for p in written] == [s.file_name for s in CXR_SAMPLES]
    for path in written:
        shipped = SHIPPED_SAMPLES_DIR / "cxr" / path.name
        assert shipped.read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("sample", CXR_SAMPLES, ids=lambda s: s.file_name)
def test_samples_are_valid_compressed_radiographs(sample: object) -> None:
    path = SHIPPED_SAMPLES_DIR / "cxr" / sample.file_name  # type: ignore[attr-defined]
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless
    assert (ds.Rows, ds.Columns) == (1024, 1024)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    result = dciodvfy(path)
    assert result.errors == [], result.errors

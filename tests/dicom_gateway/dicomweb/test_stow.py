"""STOW-RS: each part through the ingest; per-instance failures with PS3.18 reasons."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import Dataset
from sqlalchemy import func, select

from dicom_gateway import Ingestor, Router, Source, StoreStatus
from dicom_gateway.dicomweb import (
    InvalidRequestError,
    StowService,
    UnsupportedMediaTypeError,
    build_multipart,
    check_stow_content_type,
)
from dicom_gateway.instance import file_meta_bytes
from store import Database, Instance, InstanceFileStore, add_facility, get_facility
from tests.support.data import make_cr
from tests.support.store import encoded

BASE = "http://soi.test/dicomweb"
DICOM = "application/dicom"


def part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def body(*parts: tuple[str, bytes]) -> io.BytesIO:
    chunks = build_multipart([({"Content-Type": t}, [data]) for t, data in parts], "bnd")
    return io.BytesIO(b"".join(chunks))


def stored_count(database: Database) -> int:
    with database.read() as session:
        return int(session.scalar(select(func.count()).select_from(Instance)) or 0)


@pytest.fixture
def ingestor(database: Database, tmp_path: Path) -> Ingestor:
    return Ingestor(
        database=database, files=InstanceFileStore(tmp_path / "i"), router=Router.from_file()
    )


def source(database: Database, code: str = "LOCAL") -> Source:
    with database.write() as session:
        if code != "LOCAL":
            add_facility(session, code=code, name=code)
        facility = get_facility(session, code)
        return Source("tech", "127.0.0.1", facility.id, facility.code, "dicomweb", "user")


class TestStore:
    def test_every_instance_stored(self, ingestor: Ingestor, database: Database) -> None:
        first = make_cr(seed=1)
        second = make_cr(study_instance_uid=str(first.StudyInstanceUID), seed=2)
        report = StowService(ingestor=ingestor).store(
            body((DICOM, part10(first)), (DICOM, part10(second))),
            boundary="bnd",
            source=source(database),
            base_url=BASE,
        )
        assert report.http_status == 200
        response = report.dataset()
        assert response.RetrieveURL == f"{BASE}/studies/{first.StudyInstanceUID}"
        assert "FailedSOPSequence" not in response
        [one, two] = response.ReferencedSOPSequence
        assert one.ReferencedSOPInstanceUID == first.SOPInstanceUID
        assert two.RetrieveURL == (
            f"{BASE}/studies/{second.StudyInstanceUID}/series/{second.SeriesInstanceUID}"
            f"/instances/{second.SOPInstanceUID}"
        )
        assert stored_count(database) == 2
        assert report.to_json()["00081199"]["vr"] == "SQ"

    def test_non_dicom_parts_fail_the_others_are_stored(
        self, ingestor: Ingestor, database: Database
    ) -> None:
        good = make_cr()
        report = StowService(ingestor=ingestor).store(
            body(("text/plain", b"hello"), (DICOM, b"not dicom" * 40), (DICOM, part10(good))),
            boundary="bnd",
            source=source(database),
            base_url=BASE,
        )
        assert report.http_status == 202
        failed = report.dataset().FailedSOPSequence
        assert [int(item.FailureReason) for item in failed] == [0xC210, 0xC210]
        assert "text/plain, not application/dicom" in report.warnings[0]
        assert "no 'DICM' prefix" in report.warnings[1]
        assert stored_count(database) == 1

    def test_nothing_stored_is_409(self, ingestor: Ingestor, database: Database) -> None:
        no_pixels = make_cr()
        del no_pixels.PixelData
        report = StowService(ingestor=ingestor).store(
            body((DICOM, part10(no_pixels))), boundary="bnd", source=source(database), base_url=BASE
        )
        assert report.http_status == 409
        [item] = report.dataset().FailedSOPSequence
        assert item.FailureReason == StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS
        assert item.ReferencedSOPInstanceUID == no_pixels.SOPInstanceUID
        assert report.dataset().RetrieveURL == ""
        assert stored_count(database) == 0

    def test_another_study_than_the_target(self, ingestor: Ingestor, database: Database) -> None:
        ds = make_cr()
        report = StowService(ingestor=ingestor).store(
            body((DICOM, part10(ds))),
            boundary="bnd",
            source=source(database),
            base_url=BASE,
            study_instance_uid="1.2.3.4",
        )
        [item] = report.dataset().FailedSOPSequence
        assert item.FailureReason == 0xC409
        assert stored_count(database) == 0

    def test_another_facility_s_study_is_refused(
        self, ingestor: Ingestor, database: Database
    ) -> None:
        theirs = make_cr(seed=1)
        service = StowService(ingestor=ingestor)
        local = source(database)
        assert (
            service.store(
                body((DICOM, part10(theirs))), boundary="bnd", source=local, base_url=BASE
            ).http_status
            == 200
        )
        other = source(database, "BV-B")
        joining = make_cr(study_instance_uid=str(theirs.StudyInstanceUID), seed=2)
        own = make_cr(seed=3)
        report = service.store(
            body((DICOM, part10(joining)), (DICOM, part10(theirs)), (DICOM, part10(own))),
            boundary="bnd",
            source=other,
            base_url=BASE,
        )
        assert report.http_status == 202
        failed = report.dataset().FailedSOPSequence
        assert [int(i.FailureReason) for i in failed] == [0x0124, 0x0124]
        assert [r.stored for r in report.results] == [False, False, True]
        assert report.dataset().RetrieveURL == f"{BASE}/studies/{own.StudyInstanceUID}"
        assert stored_count(database) == 2

    def test_transfer_syntax_and_sop_class_not_accepted(
        self, ingestor: Ingestor, database: Database
    ) -> None:
        secondary = make_cr()
        service = StowService(ingestor=ingestor, accepted_sop_classes=["1.2.840.10008.5.1.4.1.1.7"])
        video = make_cr()
        raw_mpeg = file_meta_bytes(
            sop_class_uid=str(video.SOPClassUID),
            sop_instance_uid=str(video.SOPInstanceUID),
            transfer_syntax_uid="1.2.840.10008.1.2.4.100",
        ) + encoded(video)
        report = service.store(
            body((DICOM, raw_mpeg), (DICOM, part10(secondary))),
            boundary="bnd",
            source=source(database),
            base_url=BASE,
        )
        assert [int(i.FailureReason) for i in report.dataset().FailedSOPSequence] == [
            0xC122,
            0x0122,
        ]
        assert report.http_status == 409

    @pytest.mark.parametrize("data", [b"--bnd\r\n\r\nx", b"nothing", b"--bnd--"])
    def test_malformed_or_empty_body(
        self, ingestor: Ingestor, database: Database, data: bytes
    ) -> None:
        with pytest.raises(InvalidRequestError):
            StowService(ingestor=ingestor).store(
                io.BytesIO(data), boundary="bnd", source=source(database), base_url=BASE
            )
        assert stored_count(database) == 0


class TestContentType:
    def test_boundary(self) -> None:
        value = 'multipart/related; type="application/dicom"; boundary="a b"'
        assert check_stow_content_type(value) == "a b"
        assert check_stow_content_type("multipart/related; boundary=x") == "x"

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "application/dicom",
            "application/json",
            'multipart/related; type="application/dicom+json"; boundary=x',
            "text/html",
        ],
    )
    def test_unsupported(self, value: str | None) -> None:
        with pytest.raises(UnsupportedMediaTypeError):
            check_stow_content_type(value)

    def test_no_boundary(self) -> None:
        with pytest.raises(InvalidRequestError, match="no boundary"):
            check_stow_content_type('multipart/related; type="application/dicom"')

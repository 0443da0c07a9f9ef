"""The PACS the demo uses: Soi's DICOM stand-in receiver, and Orthanc started empty."""

from __future__ import annotations

import socket
from pathlib import Path

import pydicom
import pytest

from reports.channels import DicomChannel, Document, Outcome
from soi.standins import DicomReceiver, OrthancPacs
from tests.support.data import make_cr, write_dataset
from tests.support.dcmtk import storescu
from tests.support.tools import require_binary


def _document(ae_title: str = "SOI") -> tuple[Document, str]:
    dataset = make_cr(patient_name="Nguyễn^Thị Hoa")
    return Document("dicom-sr", str(dataset.SOPInstanceUID), dataset=dataset), ae_title


class TestDicomReceiver:
    def test_dcmtk_storescu_stores_and_the_same_uid_twice_is_one_file(self, tmp_path: Path) -> None:
        first = write_dataset(make_cr(), tmp_path / "a.dcm")
        with DicomReceiver(tmp_path / "pacs") as receiver:
            run = storescu([first, first], port=receiver.port, called_aet=receiver.ae_title)
            assert [r.status for r in run.results] == [0, 0]
            assert receiver.counts() == {"CR": 1}
            (kept,) = receiver.files()
            assert pydicom.dcmread(kept).SOPInstanceUID == pydicom.dcmread(first).SOPInstanceUID

    def test_soi_channel_keeps_vietnamese_text_and_stop_frees_the_port(
        self, tmp_path: Path
    ) -> None:
        receiver = DicomReceiver(tmp_path / "pacs").start()
        document, _ = _document()
        outcome = DicomChannel(receiver.ae_title, receiver.host, receiver.port).send(document)
        assert outcome.outcome is Outcome.SENT, outcome.message
        (kept,) = receiver.files()
        assert str(pydicom.dcmread(kept).PatientName) == "Nguyễn^Thị Hoa"
        port = receiver.port
        receiver.stop()
        with socket.socket() as sock:  # a new server can listen there at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()


@pytest.mark.slow
class TestOrthancPacs:
    def test_stores_from_soi_only_and_counts_by_modality(self, tmp_path: Path) -> None:
        require_binary("Orthanc")
        with OrthancPacs(tmp_path / "orthanc", allowed_ae_title="SOI") as orthanc:
            assert orthanc.label.startswith("Orthanc 1.")
            document, _ = _document()
            channel = DicomChannel(orthanc.ae_title, orthanc.host, orthanc.dicom_port)
            sent = channel.send(document)
            assert sent.outcome is Outcome.SENT, sent.message
            intruder = DicomChannel(
                orthanc.ae_title, orthanc.host, orthanc.dicom_port, calling_ae_title="INTRUDER"
            ).send(_document()[0])
            assert intruder.outcome is not Outcome.SENT
            assert orthanc.counts() == {"CR": 1}

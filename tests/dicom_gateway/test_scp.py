"""The DIMSE listener against DCMTK ``storescu``/``echoscu`` and pynetdicom as peers."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from sqlalchemy import select

from dicom_gateway.instance import file_meta_bytes
from soi.runtime import Runtime
from store import (
    Applicability,
    AuditEvent,
    AuditOutcome,
    Instance,
    add_facility,
    add_peer,
)
from tests.support.data import make_cr, pydicom_file, write_dataset
from tests.support.dcmtk import echoscu, storescu

EXPLICIT_LE = "1.2.840.10008.1.2.1"

# One file per transfer syntax the gateway must accept and later stages must decode,
# with the storescu option that proposes exactly that transfer syntax.
TRANSFER_SYNTAX_FILES = {
    "1.2.840.10008.1.2": ("MR_small_implicit.dcm", "-xi"),
    "1.2.840.10008.1.2.1": ("CT_small.dcm", "-xe"),
    "1.2.840.10008.1.2.1.99": ("image_dfl.dcm", "-xd"),
    "1.2.840.10008.1.2.2": ("MR_small_bigendian.dcm", "-xb"),
    "1.2.840.10008.1.2.4.50": ("SC_rgb_jpeg_dcmtk.dcm", "-xy"),
    "1.2.840.10008.1.2.4.70": ("JPEG-LL.dcm", "-xs"),
    "1.2.840.10008.1.2.4.80": ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
    "1.2.840.10008.1.2.4.90": ("MR_small_jp2klossless.dcm", "-xv"),
    "1.2.840.10008.1.2.4.91": ("JPEG2000.dcm", "-xw"),
    "1.2.840.10008.1.2.5": ("MR_small_RLE.dcm", "-xr"),
}


def _port(runtime: Runtime) -> int:
    assert runtime.listener is not None
    return runtime.listener.port


def _instances(runtime: Runtime) -> list[Instance]:
    with runtime.database.read() as session:
        return list(session.scalars(select(Instance).order_by(Instance.id)).all())


def _files_on_disk(runtime: Runtime) -> list[Path]:
    return sorted(p for p in runtime.files.root.rglob("*") if p.is_file())


class TestEcho:
    def test_echoscu_gets_success(self, runtime: Runtime) -> None:
        run = echoscu("127.0.0.1", _port(runtime), "SOI")
        assert run.ok, run.output

    def test_wrong_called_ae_is_rejected(self, runtime: Runtime) -> None:
        run = echoscu("127.0.0.1", _port(runtime), "NOT-SOI")
        assert not run.ok


class TestStore:
    def test_storescu_instance_is_kept_indexed_and_readable(
        self, runtime: Runtime, tmp_path: Path
    ) -> None:
        ds = make_cr(patient_name="Nguyễn^Văn An")
        path = write_dataset(ds, tmp_path / "cr.dcm")
        run = storescu([path], port=_port(runtime), called_aet="SOI", calling_aet="MODALITY")
        assert run.all_succeeded, run.summary()
        [instance] = _instances(runtime)
        assert instance.sop_instance_uid == ds.SOPInstanceUID
        assert instance.applicability == Applicability.APPLICABLE
        assert instance.pipelines == ["cxr"]
        assert instance.source_ae == "MODALITY"
        kept = pydicom.dcmread(runtime.files.absolute(instance.file_path))
        assert kept.PixelData == ds.PixelData
        assert str(kept.PatientName) == "Nguyễn^Văn An"
        assert kept.file_meta.SourceApplicationEntityTitle == "MODALITY"

    def test_same_instance_twice_is_stored_once_and_acknowledged_twice(
        self, runtime: Runtime, tmp_path: Path
    ) -> None:
        path = write_dataset(make_cr(), tmp_path / "cr.dcm")
        for _ in range(2):
            run = storescu([path], port=_port(runtime), called_aet="SOI")
            assert run.all_succeeded, run.summary()
        assert len(_instances(runtime)) == 1
        assert len(_files_on_disk(runtime)) == 1

    def test_instance_no_pipeline_reads_is_stored_not_applicable(self, runtime: Runtime) -> None:
        run = storescu([pydicom_file("rtplan.dcm")], port=_port(runtime), called_aet="SOI")
        assert run.all_succeeded, run.summary()
        [instance] = _instances(runtime)
        assert instance.applicability == Applicability.NOT_APPLICABLE
        assert instance.pipelines == []

    def test_retired_storage_class_from_an_old_study_is_accepted(self, runtime: Runtime) -> None:
        retired_us = "1.2.840.10008.5.1.4.1.1.6"  # Ultrasound Image Storage (retired)
        ds = make_cr(modality="US", body_part="ABDOMEN")
        ds.SOPClassUID = retired_us
        ds.file_meta.MediaStorageSOPClassUID = retired_us
        ae = AE(ae_title="OLD_PACS")
        ae.add_requested_context(retired_us, [EXPLICIT_LE])
        assoc = ae.associate("127.0.0.1", _port(runtime), ae_title="SOI")
        assert assoc.is_established
        try:
            assert assoc.send_c_store(ds).Status == 0x0000
        finally:
            assoc.release()
        [instance] = _instances(runtime)
        assert instance.sop_class_uid == retired_us
        assert instance.applicability == Applicability.NOT_APPLICABLE

    @pytest.mark.parametrize(
        ("syntax", "name", "option"),
        [
            (syntax, name, option)
            for syntax, (name, option) in sorted(TRANSFER_SYNTAX_FILES.items())
        ],
    )
    def test_transfer_syntax_is_accepted_and_pixels_decode(
        self, runtime: Runtime, syntax: str, name: str, option: str
    ) -> None:
        source = pydicom.dcmread(pydicom_file(name))
        assert source.file_meta.TransferSyntaxUID == syntax
        run = storescu([pydicom_file(name)], port=_port(runtime), called_aet="SOI", extra=[option])
        assert run.all_succeeded, run.summary()
        [instance] = _instances(runtime)
        assert instance.transfer_syntax_uid == syntax
        kept = pydicom.dcmread(runtime.files.absolute(instance.file_path))
        assert kept.file_meta.TransferSyntaxUID == syntax
        assert (kept.pixel_array == source.pixel_array).all()


def _send_raw(
    port: int, requests: list[tuple[str, str, bytes]], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> list[pydicom.Dataset]:
    """Send C-STORE requests whose command and data set bytes the test controls.

    Each request is (Affected SOP Class UID, Affected SOP Instance UID, data set bytes in
    explicit VR little endian). pynetdicom sends a file's data set as it is on disk, with
    the UIDs of its file meta in the command, so a data set can disagree with its request.
    """
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="HOSTILE")
    for sop_class in {sop_class for sop_class, _, _ in requests}:
        ae.add_requested_context(sop_class, [EXPLICIT_LE])
    assoc = ae.associate("127.0.0.1", port, ae_title="SOI")
    assert assoc.is_established
    try:
        responses = []
        for index, (sop_class, sop_instance, body) in enumerate(requests):
            path = folder / f"request-{index}.dcm"
            meta = file_meta_bytes(
                sop_class_uid=sop_class,
                sop_instance_uid=sop_instance,
                transfer_syntax_uid=EXPLICIT_LE,
            )
            path.write_bytes(meta + body)
            responses.append(assoc.send_c_store(path))
        return responses
    finally:
        assoc.release()


def _dataset_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    whole = buffer.getvalue()
    return whole[132 + 12 + int.from_bytes(whole[140:144], "little") :]


class TestBadInput:
    CR = "1.2.840.10008.5.1.4.1.1.1"

    def _cases(self) -> list[tuple[str, tuple[str, str, bytes], int]]:
        def request(ds: pydicom.Dataset, body: bytes | None = None) -> tuple[str, str, bytes]:
            return (self.CR, str(ds.SOPInstanceUID), _dataset_bytes(ds) if body is None else body)

        no_pixels = make_cr()
        del no_pixels.PixelData
        actually_ct = make_cr()
        actually_ct.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        hostile_uid = make_cr()
        hostile_uid.SOPInstanceUID = "../../etc/passwd"
        other_uid = make_cr()
        truncated = make_cr(rows=128, columns=128)
        huge = make_cr()
        body = bytearray(_dataset_bytes(huge))
        index = body.find(b"\x10\x00\x10\x00PN")  # Patient Name, explicit VR LE, 2-byte length
        body[index + 6 : index + 8] = (0xFFF0).to_bytes(2, "little")
        garbage = make_cr()
        return [
            ("no pixel data", request(no_pixels), 0xA900),
            ("SOP class differs from the request", request(actually_ct), 0xA900),
            ("hostile UID", request(hostile_uid), 0xC212),
            (
                "instance UID differs from the request",
                (self.CR, "1.2.3.4.5", _dataset_bytes(other_uid)),
                0xC211,
            ),
            (
                "truncated pixel data",
                request(truncated, _dataset_bytes(truncated)[:-5000]),
                0xC213,
            ),
            ("huge element length", request(huge, bytes(body)), 0xC213),
            (
                "not DICOM",
                request(garbage, b"this is not a DICOM data set" * 40),
                0xC210,
            ),
            ("empty data set", request(make_cr(), b""), 0xC210),
        ]

    def test_each_gets_a_precise_status_nothing_is_kept_and_it_is_audited(
        self,
        runtime: Runtime,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        cases = self._cases()
        good = make_cr()
        with caplog.at_level(logging.WARNING):
            statuses = _send_raw(
                _port(runtime),
                [payload for _, payload, _ in cases]
                + [(self.CR, good.SOPInstanceUID, _dataset_bytes(good))],
                tmp_path,
                monkeypatch,
            )
        for (label, _, expected), status in zip(cases, statuses[:-1], strict=True):
            assert status.Status == expected, f"{label}: 0x{status.Status:04X}"
            assert status.ErrorComment, label
        assert statuses[-1].Status == 0x0000, "the association goes on after refusals"
        assert [i.sop_instance_uid for i in _instances(runtime)] == [good.SOPInstanceUID]
        assert len(_files_on_disk(runtime)) == 1
        with runtime.database.read() as session:
            refused = session.scalars(
                select(AuditEvent).where(AuditEvent.outcome == AuditOutcome.REFUSED)
            ).all()
        assert len(refused) == len(cases)
        assert all(event.detail["reason"] for event in refused)
        assert "instance refused" in caplog.text

    def test_below_the_free_space_floor_out_of_resources(
        self, runtime: Runtime, tmp_path: Path
    ) -> None:
        runtime.files.min_free_bytes = runtime.files.free_bytes() + (1 << 40)
        path = write_dataset(make_cr(), tmp_path / "cr.dcm")
        run = storescu([path], port=_port(runtime), called_aet="SOI")
        [result] = run.results
        assert result.status == 0xA700
        assert _instances(runtime) == []
        assert _files_on_disk(runtime) == []


class TestPeers:
    def test_unknown_peer_is_rejected_once_peers_are_registered(
        self, runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with runtime.database.write() as session:
            add_facility(session, code="BV-A", name="Bệnh viện A")
            add_peer(
                session, name="pacs-a", ae_title="PACS_A", host="127.0.0.1", facility_code="BV-A"
            )
        path = write_dataset(make_cr(), tmp_path / "cr.dcm")
        with caplog.at_level(logging.WARNING):
            refused = storescu([path], port=_port(runtime), called_aet="SOI", calling_aet="OTHER")
        assert refused.association_rejected
        assert "calling AE 'OTHER' from 127.0.0.1 is not a registered peer" in caplog.text
        accepted = storescu([path], port=_port(runtime), called_aet="SOI", calling_aet="PACS_A")
        assert accepted.all_succeeded, accepted.summary()
        with runtime.database.read() as session:
            rejected = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "dimse.associate")
            ).all()
        assert [(e.actor, e.outcome) for e in rejected] == [("OTHER", AuditOutcome.REFUSED)]

"""Tests of the protocol-peer harness (tests/support) against real programs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.support import (
    DICOMWEB_PLUGIN,
    LOOPBACK,
    OrthancError,
    OrthancServer,
    dciodvfy,
    echoscu,
    find_binary,
    free_port,
    parse_storescu_log,
    require_binary,
    require_path,
    storescu,
    wait_for_port,
)


def _testdata(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing"
    return Path(str(path))


@pytest.fixture
def dicom_files() -> list[Path]:
    return [_testdata("CT_small.dcm"), _testdata("MR_small.dcm")]


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    with OrthancServer(tmp_path / "orthanc") as server:
        yield server


# A storescu log written with tests/support/storescu-log.cfg (abridged): one
# success, one warning and one failure with Error Comments, then the
# association is lost while the fourth file is in flight.
_LOG = """\
D: $dcmtk: storescu v3.6.7 2022-04-22 $
I: checking input files ...
I: Requesting Association
I: Association Accepted (Max Send PDV: 16370)
I: Sending file: /data/a.dcm
I: Converting transfer syntax: Little Endian Explicit -> Little Endian Explicit
I: Sending Store Request (MsgID 1, CT)
D: ===================== OUTGOING DIMSE MESSAGE ====================
D: Message Type                  : C-STORE RQ
D: Affected SOP Instance UID     : 1.2.3.1
D: ======================= END DIMSE MESSAGE =======================
I: Received Store Response
D: ===================== INCOMING DIMSE MESSAGE ====================
D: Message Type                  : C-STORE RSP
D: Affected SOP Instance UID     : 1.2.3.1
D: DIMSE Status                  : 0x0000: Success
D: ======================= END DIMSE MESSAGE =======================
I: Sending file: /data/b.dcm
I: Sending Store Request (MsgID 2, MR)
D: Affected SOP Instance UID     : 1.2.3.2
I: Received Store Response
D: DIMSE Status                  : 0xb000: Warning: Coercion of Data Elements
D: Status Detail:
D:
D: # Dicom-Data-Set
D: # Used TransferSyntax: Little Endian Implicit
D: (0000,0902) LO [Patient ID coerced]                     #  18, 1 ErrorComment
D:
I: Sending file: /data/c.dcm
I: Sending Store Request (MsgID 3, CT)
I: Received Store Response
D: DIMSE Status                  : 0xa700: Refused: Out of resources
D: (0000,0902) LO [disk full]                              #  10, 1 ErrorComment
I: Sending file: /data/d.dcm
I: Sending Store Request (MsgID 4, CT)
E: Store Failed, file: /data/d.dcm:
E: 0006:0317 Peer aborted Association (or never connected)
I: Sending file: /data/e.dcm
I: Sending Store Request (MsgID 5, CT)
"""


def test_parse_storescu_log_statuses_and_partial_log() -> None:
    results = parse_storescu_log(_LOG)
    assert [r.path.name for r in results] == ["a.dcm", "b.dcm", "c.dcm", "d.dcm", "e.dcm"]
    a, b, c, d, e = results
    assert (a.status, a.text, a.sop_instance_uid, a.message_id) == (0, "Success", "1.2.3.1", 1)
    assert a.success
    assert a.stored
    assert (b.status, b.error_comment) == (0xB000, "Patient ID coerced")
    assert b.warning
    assert b.stored
    assert not b.success
    assert (c.status, c.text, c.error_comment) == (0xA700, "Refused: Out of resources", "disk full")
    assert c.failure
    assert d.status is None
    assert "Peer aborted Association" in d.text
    assert e.status is None
    assert e.text == "no response received"


def test_parse_storescu_plain_verbose_output() -> None:
    text = (
        "I: Sending file: x.dcm\n"
        "I: Sending Store Request (MsgID 1, CT)\n"
        "I: Received Store Response (Success)\n"
        "I: Sending file: y.dcm\n"
        "I: Received Store Response (Refused: OutOfResources)\n"
    )
    x, y = parse_storescu_log(text)
    assert x.success
    assert y.status is None
    assert y.text == "Refused: OutOfResources"
    assert y.failure


def test_wait_for_port_times_out_with_clear_message() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=rf"127\.0\.0\.1:{port}"):
        wait_for_port(LOOPBACK, port, timeout=0.3)


def test_require_binary_skips_when_missing_off_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-program"):
        require_binary("no-such-program-soi-test")


def test_require_binary_fails_when_missing_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-program"):
        require_binary("no-such-program-soi-test")


def test_find_binary_ignores_virtualenv_scripts() -> None:
    # pynetdicom installs Python scripts named storescu/echoscu into the
    # virtualenv; the harness must run DCMTK's programs instead.
    found = find_binary("storescu")
    assert found is None or found.parent.resolve() != Path(sys.executable).parent.resolve()


@pytest.mark.slow
def test_storescu_to_orthanc_reports_success(
    orthanc: OrthancServer, dicom_files: list[Path]
) -> None:
    expected = {
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in dicom_files
    }

    run = storescu(dicom_files, port=orthanc.dicom_port, called_aet=orthanc.aet)

    assert run.all_succeeded, run.summary()
    assert run.association_accepted
    assert not run.association_rejected
    assert [r.path for r in run.results] == dicom_files
    assert [r.status for r in run.results] == [0, 0]
    assert {r.sop_instance_uid for r in run.results} == expected
    assert orthanc.sop_instance_uids() == expected
    assert len(orthanc.instances()) == 2


@pytest.mark.slow
def test_storescu_reports_connection_failure() -> None:
    run = storescu([_testdata("CT_small.dcm")], port=free_port(), called_aet="NOBODY", timeout=30)
    assert run.returncode != 0
    assert not run.all_succeeded
    assert not run.association_accepted
    assert run.results == []
    assert any("Association Request Failed" in e for e in run.errors), run.stderr


@pytest.mark.slow
def test_echoscu(orthanc: OrthancServer) -> None:
    assert echoscu(LOOPBACK, orthanc.dicom_port, orthanc.aet).ok
    closed = echoscu(LOOPBACK, free_port(), orthanc.aet, timeout=10)
    assert not closed.ok
    assert closed.returncode != 0


@pytest.mark.slow
def test_upload_and_tags(orthanc: OrthancServer) -> None:
    path = _testdata("CT_small.dcm")
    instance_id = orthanc.upload(path)
    tags = orthanc.instance_tags(instance_id)
    assert tags["SOPInstanceUID"] == pydicom.dcmread(path).SOPInstanceUID
    orthanc.delete_all()
    assert orthanc.instances() == []


@pytest.mark.slow
def test_upload_of_non_dicom_file_raises_clear_error(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    junk = tmp_path / "not-dicom.txt"
    junk.write_text("this is not a DICOM file\n")
    with pytest.raises(OrthancError, match=r"not-dicom\.txt: HTTP 400 .*Bad file format") as info:
        orthanc.upload(junk)
    assert info.value.status_code == 400
    assert isinstance(info.value.answer, dict)
    assert info.value.answer["OrthancError"] == "Bad file format"


@pytest.mark.slow
def test_orthanc_store_to_modality(tmp_path: Path, dicom_files: list[Path]) -> None:
    with OrthancServer(tmp_path / "receiver", aet="RECEIVER") as receiver:
        modalities = {"receiver": (receiver.aet, LOOPBACK, receiver.dicom_port)}
        with OrthancServer(tmp_path / "sender", aet="SENDER", modalities=modalities) as sender:
            ids = [sender.upload(f) for f in dicom_files]
            assert sender.echo("receiver")
            answer = sender.store_to("receiver", ids)
            assert answer.get("FailedInstancesCount", 0) == 0, answer
            assert receiver.sop_instance_uids() == sender.sop_instance_uids()
            with pytest.raises(OrthancError, match="unknown modality"):
                sender.echo("nobody")


@pytest.mark.slow
def test_orthanc_with_dicomweb_plugin(tmp_path: Path) -> None:
    plugin = require_path(DICOMWEB_PLUGIN, "Orthanc DICOMweb plugin")
    with OrthancServer(tmp_path / "orthanc", plugins=[plugin]) as orthanc:
        orthanc.upload(_testdata("CT_small.dcm"))
        answer = orthanc.client.get("/dicom-web/studies", headers={"Accept": "application/json"})
        assert answer.status_code == 200, answer.text
        studies = answer.json()
        assert len(studies) == 1
        # 0020000D: Study Instance UID
        uid = studies[0]["0020000D"]["Value"][0]
        assert uid == pydicom.dcmread(_testdata("CT_small.dcm")).StudyInstanceUID


@pytest.mark.slow
def test_dciodvfy() -> None:
    good = dciodvfy(_testdata("CT_small.dcm"))
    assert good.ok, good.output
    assert good.warnings  # CT_small has a few known warnings
    bad = dciodvfy(_testdata("CT_small.dcm").with_name("README.txt"))
    assert not bad.ok

"""Results flow back: SR, heatmaps and PDF to Orthanc by C-STORE, ORU over MLLP to a
python-hl7 peer, through the outbox; a PACS that is down gets everything once it is up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import highdicom
import pydicom
import pytest
from sqlalchemy import select

from reports.outbox import DeliveryReport
from soi.cli import app
from soi.runtime import Runtime
from soi.settings import SHIPPED_SAMPLES_DIR, Settings, load_settings
from store import Delivery, DeliveryState, Finding, utcnow
from tests.support.dcmtk import dciodvfy
from tests.support.hl7_peer import Hl7Peer
from tests.support.net import free_port
from tests.support.orthanc import OrthancServer
from tests.support.store import ingest_datasets

pytestmark = pytest.mark.slow

SAMPLE = SHIPPED_SAMPLES_DIR / "cxr" / "02-cardiomegaly-effusion-pa.dcm"


@pytest.fixture
def his() -> Iterator[Hl7Peer]:
    peer = Hl7Peer().start()
    yield peer
    peer.stop()


def _settings(tmp_path: Path, pacs_port: int, his_port: int) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        min_free_mb=0,
        quiet_period_seconds=0.0,
        delivery_retry_base_seconds=0.05,
        delivery_retry_cap_seconds=0.2,
        destinations=[
            {
                "name": "pacs",
                "kind": "dicom",
                "ae_title": "ORTHANC",
                "host": "127.0.0.1",
                "port": pacs_port,
            },
            {"name": "his", "kind": "mllp", "host": "127.0.0.1", "port": his_port},
        ],
    )


def _run_result(runtime: Runtime) -> int:
    ingest_datasets(runtime.ingestor, [pydicom.dcmread(SAMPLE)])
    runtime.assembler.run_once(now=utcnow() + timedelta(minutes=5))
    report = runtime.workers[0].run_once()
    assert report is not None
    assert report.result_id is not None
    return report.result_id


def _drain(runtime: Runtime, *, rounds: int = 50) -> list[DeliveryReport]:
    """Run the senders (one per destination) until nothing is due (waiting out backoffs)."""
    import time

    reports: list[DeliveryReport] = []
    for _ in range(rounds):
        sent = [r for r in (sender.run_once() for sender in runtime.senders) if r is not None]
        if not sent:
            with runtime.database.read() as session:
                waiting = session.scalars(
                    select(Delivery).where(
                        Delivery.state.in_([DeliveryState.PENDING, DeliveryState.RETRYING])
                    )
                ).all()
            if not waiting:
                break
            time.sleep(0.1)
            continue
        reports += sent
    return reports


def _deliveries(runtime: Runtime) -> list[Delivery]:
    with runtime.database.read() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)).all())


def test_documents_reach_the_pacs_and_the_his(tmp_path: Path, his: Hl7Peer) -> None:
    with OrthancServer(tmp_path / "orthanc") as pacs:
        runtime = Runtime.build(
            _settings(tmp_path, pacs.dicom_port, his.port), with_listener=False, with_workers=True
        )
        try:
            result_id = _run_result(runtime)
            with runtime.database.read() as session:
                positives = [
                    f.label
                    for f in session.scalars(select(Finding).where(Finding.result_id == result_id))
                    if f.positive
                ]
            assert {"cardiomegaly", "pleural_effusion"} <= set(positives)
            kinds = sorted(d.kind for d in _deliveries(runtime))
            # One heatmap picture per positive finding, the SR, the PDF, the HL7 message.
            assert kinds == sorted(
                [f"dicom-heatmap:{key}" for key in positives] + ["dicom-pdf", "dicom-sr", "hl7-oru"]
            )
            _drain(runtime)
            delivered = _deliveries(runtime)
        finally:
            runtime.close()
        assert {d.state for d in delivered} == {DeliveryState.SENT}, [
            (d.kind, d.state, d.last_error) for d in delivered
        ]
        stored = pacs.sop_instance_uids()
        for delivery in delivered:
            if delivery.destination == "pacs":
                assert delivery.document_id in stored
        # The SR came back intact: it validates and reads back as TID 1500.
        sr_uid = next(d.document_id for d in delivered if d.kind == "dicom-sr")
        [sr_id] = [i for i in pacs.instances() if pacs.instance_tags(i)["SOPInstanceUID"] == sr_uid]
        sr_path = tmp_path / "sr.dcm"
        sr_path.write_bytes(pacs.client.get(f"/instances/{sr_id}/file").content)
        assert dciodvfy(sr_path).errors == []
        sr = highdicom.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
        assert sr.CompletionFlag == "PARTIAL"
        assert sr.VerificationFlag == "UNVERIFIED"
    [message] = his.received
    assert "ORU^R01" in message
    assert "cardiomegaly" in message.lower() or "8186001" in message


def test_a_pacs_that_is_down_gets_everything_when_it_is_back(tmp_path: Path, his: Hl7Peer) -> None:
    port = free_port()
    runtime = Runtime.build(
        _settings(tmp_path, port, his.port), with_listener=False, with_workers=True
    )
    try:
        _run_result(runtime)
        assert sorted(name for s in runtime.senders for name in s.channels) == ["his", "pacs"]
        for _ in range(8):  # the PACS is down: every DICOM document waits, none is lost
            for sender in runtime.senders:
                sender.run_once()
        waiting = [d for d in _deliveries(runtime) if d.destination == "pacs"]
        assert {d.state for d in waiting} == {DeliveryState.RETRYING}
        assert all("ORTHANC@127.0.0.1" in d.last_error for d in waiting)
        assert all(d.attempts >= 1 for d in waiting)
        with OrthancServer(tmp_path / "orthanc", dicom_port=port) as pacs:
            _drain(runtime)
            delivered = _deliveries(runtime)
            stored = pacs.sop_instance_uids()
    finally:
        runtime.close()
    assert {d.state for d in delivered} == {DeliveryState.SENT}
    assert {d.document_id for d in delivered if d.destination == "pacs"} <= stored
    assert len(his.received) == 1


def test_a_refused_message_is_a_dead_letter_that_can_be_resent(
    tmp_path: Path, his: Hl7Peer
) -> None:
    from typer.testing import CliRunner

    settings = _settings(tmp_path, free_port(), his.port)
    settings = settings.model_copy(update={"destinations": settings.destinations[1:]})
    runtime = Runtime.build(settings, with_listener=False, with_workers=True)
    try:
        result_id = _run_result(runtime)
        control_id = f"SOI-{result_id}-P"
        his.behaviour[control_id] = "AE"
        _drain(runtime)
        [dead] = _deliveries(runtime)
        assert dead.state is DeliveryState.DEAD
        assert "AE" in dead.last_error
        common = ["--data-dir", str(settings.data_dir)]
        listed = CliRunner().invoke(app, ["deliveries", "--dead", *common])
        assert listed.exit_code == 0, listed.output
        assert "hl7-oru" in listed.output
        assert "dead" in listed.output
        his.behaviour.pop(control_id)
        resent = CliRunner().invoke(app, ["deliveries", "resend", str(dead.id), *common])
        assert resent.exit_code == 0, resent.output
        _drain(runtime)
        [sent] = _deliveries(runtime)
    finally:
        runtime.close()
    assert sent.state is DeliveryState.SENT
    assert sent.document_id == control_id
    assert len(his.received) == 2

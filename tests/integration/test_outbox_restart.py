"""The outbox survives a crash: ``soi serve`` is killed while its PACS is down, started
again, and once the PACS is up every document arrives, each once, and nothing is redone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
from typer.testing import CliRunner

from dicom_gateway import Target, send
from soi.cli import app
from soi.settings import SHIPPED_SAMPLES_DIR
from tests.support.hl7_peer import Hl7Peer
from tests.support.net import LOOPBACK, free_port
from tests.support.orthanc import OrthancServer
from tests.support.soi_process import SoiProcess

pytestmark = pytest.mark.slow

SAMPLE = SHIPPED_SAMPLES_DIR / "cxr" / "03-pneumothorax-pa.dcm"


def _wait(soi: SoiProcess, uid: str, done: Any, what: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        study = soi.study(uid)
        if study is not None and done(study):
            return study
        assert time.monotonic() < deadline, f"{what}: {study}\n{soi.log_tail()}"
        time.sleep(0.3)


def test_killed_while_the_pacs_is_down_then_everything_arrives_once(tmp_path: Path) -> None:
    pacs_port = free_port()
    his = Hl7Peer().start()
    env = {
        "SOI_DESTINATIONS": json.dumps(
            [
                {
                    "name": "pacs",
                    "kind": "dicom",
                    "ae_title": "ORTHANC",
                    "host": LOOPBACK,
                    "port": pacs_port,
                },
                {"name": "his", "kind": "mllp", "host": LOOPBACK, "port": his.port},
            ]
        ),
        "SOI_DELIVERY_RETRY_BASE_SECONDS": "0.2",
        "SOI_DELIVERY_RETRY_CAP_SECONDS": "1",
        "SOI_DELIVERY_INTERVAL_SECONDS": "0.2",
        # A delivery the killed process had claimed waits out its lease.
        "SOI_DELIVERY_LEASE_SECONDS": "3",
    }
    uid = str(pydicom.dcmread(SAMPLE, stop_before_pixels=True).StudyInstanceUID)
    data = tmp_path / "data"
    try:
        soi = SoiProcess(data, quiet_period=0.5, env=env)
        soi.start()
        try:
            sent = send([SAMPLE], Target(soi.ae_title, LOOPBACK, soi.dicom_port))
            assert sent.sent == 1

            def pacs_retrying(study: dict[str, Any]) -> bool:
                pacs = [d for d in study["deliveries"] if d["destination"] == "pacs"]
                return bool(pacs) and all(
                    d["state"] == "retrying" and d["attempts"] >= 2 for d in pacs
                )

            before = _wait(soi, uid, pacs_retrying, "the PACS documents should be retrying")
        finally:
            soi.kill()
        assert {d["state"] for d in before["deliveries"] if d["destination"] == "his"} == {"sent"}
        assert all("ORTHANC@127.0.0.1" in d["last_error"] for d in before["deliveries"]
                   if d["destination"] == "pacs")  # fmt: skip
        with (
            OrthancServer(tmp_path / "orthanc", dicom_port=pacs_port) as pacs,
            SoiProcess(data, quiet_period=0.5, env=env) as again,
        ):
            after = _wait(
                again,
                uid,
                lambda s: all(d["state"] == "sent" for d in s["deliveries"]),
                "every document should be sent after the restart",
            )
            stored = pacs.sop_instance_uids()
    finally:
        his.stop()
    assert len(after["results"]) == 1
    assert [job["attempts"] for job in after["jobs"]] == [1]
    kinds = sorted(d["kind"] for d in after["deliveries"])
    assert kinds == sorted(d["kind"] for d in before["deliveries"])
    assert "dicom-sr" in kinds
    assert "dicom-pdf" in kinds
    assert any(kind.startswith("dicom-heatmap:") for kind in kinds)
    pacs_documents = {d["document_id"] for d in after["deliveries"] if d["destination"] == "pacs"}
    assert pacs_documents == stored
    assert len(his.received) == 1
    shown = CliRunner().invoke(app, ["studies", uid, "--data-dir", str(data)])
    assert shown.exit_code == 0, shown.output
    assert "dicom-sr" in shown.output
    assert "answered C-STORE status 0x0000" in shown.output

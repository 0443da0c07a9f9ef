"""Results to an EMR over FHIR through the outbox, against a Medplum-based FHIR receiver:
retried while it answers 503, refused for good on a 4xx, never sent without an identifier.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from soi.runtime import Runtime
from soi.settings import SHIPPED_SAMPLES_DIR, load_settings
from store import Delivery, DeliveryState, utcnow
from tests.support.fhir_server import FhirReceiver
from tests.support.store import ingest_datasets

pytestmark = pytest.mark.slow

SAMPLE = SHIPPED_SAMPLES_DIR / "cxr" / "03-pneumothorax-pa.dcm"
TOKEN = "emr-secret-token"


def _runtime(tmp_path: Path, url: str, token: str) -> Runtime:
    settings = load_settings(
        data_dir=tmp_path / "data",
        min_free_mb=0,
        quiet_period_seconds=0.0,
        delivery_retry_base_seconds=0.05,
        delivery_retry_cap_seconds=0.2,
        destinations=[{"name": "emr", "kind": "fhir", "url": url, "token": token}],
    )
    return Runtime.build(settings, with_listener=False, with_workers=True)


def _deliver(runtime: Runtime, dataset: pydicom.Dataset) -> tuple[int, Delivery]:
    ingest_datasets(runtime.ingestor, [dataset])
    runtime.assembler.run_once(now=utcnow() + timedelta(minutes=5))
    report = runtime.workers[0].run_once()
    assert report is not None
    assert report.result_id is not None
    [sender] = runtime.senders
    for _ in range(40):
        if sender.run_once() is None:
            with runtime.database.read() as session:
                delivery = session.scalars(select(Delivery)).one()
            if delivery.state in (DeliveryState.SENT, DeliveryState.DEAD):
                return report.result_id, delivery
            time.sleep(0.1)
    with runtime.database.read() as session:
        return report.result_id, session.scalars(select(Delivery)).one()


def test_bundle_reaches_the_emr_after_it_recovers(tmp_path: Path) -> None:
    with FhirReceiver(tmp_path / "emr", token=TOKEN, fail_first=2) as emr:
        runtime = _runtime(tmp_path, emr.base_url, TOKEN)
        try:
            result_id, delivery = _deliver(runtime, pydicom.dcmread(SAMPLE))
        finally:
            runtime.close()
        assert delivery.state is DeliveryState.SENT, delivery.last_error
        assert delivery.attempts == 3  # two 503 answers, then accepted
        reports = emr.search("DiagnosticReport", identifier=f"urn:soi:result|{result_id}")
        assert reports["total"] == 1
        [entry] = reports["entry"]
        assert entry["resource"]["status"] == "preliminary"
        national_id = pydicom.dcmread(SAMPLE).OtherPatientIDsSequence[0].PatientID
        patients = emr.search(
            "Patient", identifier=f"http://fhir.hl7.org.vn/core/sid/cccd|{national_id}"
        )
        assert patients["total"] == 1


def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    with FhirReceiver(tmp_path / "emr", token=TOKEN) as emr:
        runtime = _runtime(tmp_path, emr.base_url, "not-the-token")
        try:
            _, delivery = _deliver(runtime, pydicom.dcmread(SAMPLE))
        finally:
            runtime.close()
    assert delivery.state is DeliveryState.DEAD
    assert delivery.attempts == 1
    assert "HTTP 401" in delivery.last_error


def test_no_patient_identifier_is_never_sent_to_the_emr(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(SAMPLE)
    del dataset.PatientID
    del dataset.OtherPatientIDsSequence
    with FhirReceiver(tmp_path / "emr", token=TOKEN) as emr:
        runtime = _runtime(tmp_path, emr.base_url, TOKEN)
        try:
            _, delivery = _deliver(runtime, dataset)
        finally:
            runtime.close()
        assert emr.search("Patient")["total"] == 0
    assert delivery.state is DeliveryState.DEAD
    assert "not sent to EMR: no patient identifier" in delivery.last_error

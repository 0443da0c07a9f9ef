"""The delivery worker against a real database and real peers on loopback ports (an HTTP
server, python-hl7's MLLP server): what it sends, retries and gives up on, and what each
delivery row and audit event then says."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from reports import NoPatientIdentifierError
from reports.channels import Document, FhirChannel, MllpChannel
from reports.outbox import DeliveryWorker, DocumentUnavailable
from store import (
    AuditOutcome,
    Backoff,
    Database,
    Delivery,
    DeliveryPlan,
    DeliveryState,
    list_audit_events,
    plan_deliveries,
    utcnow,
)
from tests.reports.conftest import DIAGNOSTICS, TIMEOUT, TOKEN, operation_outcome
from tests.support.hl7_peer import Hl7Peer
from tests.support.http_peer import HttpPeer
from tests.support.net import LOOPBACK, free_port
from tests.support.results import record_cxr_result


def _planned(database: Database, uid: str, *plans: DeliveryPlan) -> list[int]:
    study_id, result_id = record_cxr_result(database, uid)
    with database.write() as session:
        plan_deliveries(session, study_id=study_id, result_id=result_id, plans=plans)
    with database.read() as session:
        rows = session.query(Delivery).filter(Delivery.study_id == study_id).all()
        return sorted(row.id for row in rows)


def _row(database: Database, delivery_id: int) -> Delivery:
    with database.read() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


class TestDeliveryWorker:
    def _worker(
        self,
        database: Database,
        channels: dict[str, Any],
        document: Document | Exception,
        *,
        backoff: Backoff | None = None,
    ) -> DeliveryWorker:
        def build(result_id: int, kind: str, destination: str) -> Document:
            if isinstance(document, Exception):
                raise document
            return document

        return DeliveryWorker(
            database=database,
            channels=channels,
            build=build,
            lease=timedelta(minutes=2),
            backoff=backoff or Backoff(base=timedelta(minutes=1), cap=timedelta(minutes=30)),
            rng=random.Random(0),
        )

    def test_a_destination_that_is_down_leaves_the_row_retrying_with_its_message(
        self, database: Database, oru: Document
    ) -> None:
        [delivery_id] = _planned(database, "1.2.840.60", DeliveryPlan("his", "hl7-oru"))
        port = free_port()
        worker = self._worker(database, {"his": MllpChannel(LOOPBACK, port, timeout=TIMEOUT)}, oru)

        before = utcnow()
        report = worker.run_once()

        message = f"cannot connect to MLLP peer {LOOPBACK}:{port}: connection refused"
        assert report is not None
        assert (report.delivery_id, report.outcome, report.attempt) == (delivery_id, "retry", 1)
        assert report.message == message
        row = _row(database, delivery_id)
        assert row.state is DeliveryState.RETRYING
        assert row.last_error == message
        assert row.next_attempt_at is not None
        assert row.next_attempt_at >= before + timedelta(seconds=30)
        assert worker.run_once() is None
        with database.read() as session:
            [event] = list_audit_events(session, action="delivery.retrying")
        assert event.outcome is AuditOutcome.FAILURE
        assert event.detail["message"] == message

    def test_a_destination_back_up_gets_the_document(
        self, database: Database, bundle: Document
    ) -> None:
        [delivery_id] = _planned(database, "1.2.840.61", DeliveryPlan("emr", "fhir-bundle"))
        peer = HttpPeer(port=free_port())
        worker = self._worker(
            database,
            {"emr": FhirChannel(peer.url, token=TOKEN, timeout=TIMEOUT)},
            bundle,
            backoff=Backoff(base=timedelta(milliseconds=20), cap=timedelta(milliseconds=40)),
        )
        first = worker.run_once()
        assert first is not None
        assert first.outcome == "retry"

        peer.start()
        try:
            time.sleep(0.05)
            second = worker.run_once()
        finally:
            peer.stop()

        assert second is not None
        assert (second.outcome, second.attempt) == ("sent", 2)
        row = _row(database, delivery_id)
        assert row.state is DeliveryState.SENT
        assert (row.document_id, row.last_error) == ("bundle-17", "")
        assert row.remote_reply == f"{peer.url} answered HTTP 201"
        assert [r.body for r in peer.received] == [bundle.text.encode("utf-8")]

    def test_a_his_that_accepts_the_message(
        self, database: Database, his: Hl7Peer, oru: Document
    ) -> None:
        [delivery_id] = _planned(database, "1.2.840.62", DeliveryPlan("his", "hl7-oru"))
        worker = self._worker(
            database, {"his": MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT)}, oru
        )

        report = worker.run_once()

        assert report is not None
        assert report.outcome == "sent"
        row = _row(database, delivery_id)
        assert (row.state, row.document_id) == (DeliveryState.SENT, "SOI-17-P")
        assert row.remote_reply == f"{LOOPBACK}:{his.port} answered AA"
        assert row.sent_at is not None
        with database.read() as session:
            [event] = list_audit_events(session, action="delivery.sent")
        assert event.outcome is AuditOutcome.SUCCESS

    def test_a_refusal_is_dead_at_once_with_the_remotes_words(
        self, database: Database, http_peer: HttpPeer, bundle: Document
    ) -> None:
        [delivery_id] = _planned(database, "1.2.840.63", DeliveryPlan("emr", "fhir-bundle"))
        http_peer.status = 422
        http_peer.body = operation_outcome(DIAGNOSTICS)
        worker = self._worker(
            database, {"emr": FhirChannel(http_peer.url, timeout=TIMEOUT)}, bundle
        )

        report = worker.run_once()

        assert report is not None
        assert report.outcome == "refused"
        row = _row(database, delivery_id)
        assert row.state is DeliveryState.DEAD
        assert row.last_error == f"{http_peer.url} answered HTTP 422: {DIAGNOSTICS}"
        assert row.attempts == 1
        assert worker.run_once() is None

    def test_no_patient_identifier_is_dead_at_once(self, database: Database, his: Hl7Peer) -> None:
        [delivery_id] = _planned(database, "1.2.840.64", DeliveryPlan("his", "hl7-oru"))
        error = NoPatientIdentifierError("bệnh nhân không có mã định danh nào cho EMR")
        worker = self._worker(
            database, {"his": MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT)}, error
        )

        report = worker.run_once()

        assert report is not None
        assert (report.outcome, report.message) == ("refused", str(error))
        row = _row(database, delivery_id)
        assert (row.state, row.last_error, row.attempts) == (DeliveryState.DEAD, str(error), 1)
        assert his.received == []

    def test_a_document_not_available_yet_is_retried(
        self, database: Database, his: Hl7Peer
    ) -> None:
        [delivery_id] = _planned(database, "1.2.840.65", DeliveryPlan("his", "hl7-oru"))
        worker = self._worker(
            database,
            {"his": MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT)},
            DocumentUnavailable("the heatmap file is being restored"),
        )

        report = worker.run_once()

        assert report is not None
        assert report.outcome == "retry"
        row = _row(database, delivery_id)
        assert row.state is DeliveryState.RETRYING
        assert row.last_error == "document not available yet: the heatmap file is being restored"
        assert his.received == []

    def test_a_document_that_cannot_be_built_is_dead(
        self, database: Database, his: Hl7Peer
    ) -> None:
        [delivery_id] = _planned(database, "1.2.840.66", DeliveryPlan("his", "hl7-oru"))
        worker = self._worker(
            database,
            {"his": MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT)},
            KeyError("cardiomegaly"),
        )

        worker.run_once()

        row = _row(database, delivery_id)
        assert row.state is DeliveryState.DEAD
        assert row.last_error == "cannot build hl7-oru: KeyError: 'cardiomegaly'"

    def test_destinations_without_a_channel_are_left_alone(
        self, database: Database, his: Hl7Peer, oru: Document
    ) -> None:
        pacs_id, his_id = _planned(
            database,
            "1.2.840.67",
            DeliveryPlan("pacs", "dicom-sr"),
            DeliveryPlan("his", "hl7-oru"),
        )
        worker = self._worker(
            database, {"his": MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT)}, oru
        )

        reports = [worker.run_once(), worker.run_once()]

        assert [r.delivery_id if r else None for r in reports] == [his_id, None]
        untouched = _row(database, pacs_id)
        assert (untouched.state, untouched.attempts) == (DeliveryState.PENDING, 0)
        assert self._worker(database, {}, oru).run_once() is None
        assert _row(database, pacs_id).attempts == 0

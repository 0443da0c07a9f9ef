"""The outbox's channels against real peers on loopback ports (an HTTP server, python-hl7's
MLLP server, pynetdicom Storage SCPs): what is sent, what is retried, what is refused with
the remote's words."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from reports import build_sr
from reports.channels import (
    DicomChannel,
    Document,
    FhirChannel,
    MllpChannel,
    Outcome,
    SendOutcome,
)
from reports.context import ReportContext
from soi.standins import DicomReceiver
from tests.reports.conftest import (
    DIAGNOSTICS,
    SHORT_TIMEOUT,
    TIMEOUT,
    TOKEN,
    operation_outcome,
)
from tests.support.data import make_cr
from tests.support.hl7_peer import Hl7Peer
from tests.support.http_peer import HttpPeer
from tests.support.net import LOOPBACK, free_port

# ------------------------------------------------------------------------ peers


@dataclass
class _StorageScp:
    """A pynetdicom Storage SCP answering every C-STORE with a programmed status."""

    status: int = 0x0000
    comment: str = ""
    hold: float = 0.0
    received: list[str] = field(default_factory=list)
    port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: Any = None

    def start(self) -> _StorageScp:
        ae = AE(ae_title="TEST_PACS")
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self._server = ae.start_server(
            (LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()

    def _on_store(self, event: evt.Event) -> Dataset:
        self.received.append(str(event.dataset.SOPInstanceUID))
        if self.hold:
            self._stop.wait(self.hold)
        status = Dataset()
        status.Status = self.status
        if self.comment:
            status.ErrorComment = self.comment
        return status


@pytest.fixture(scope="module")
def _scp_server() -> Iterator[_StorageScp]:
    peer = _StorageScp().start()
    yield peer
    peer.stop()


@pytest.fixture
def scp(_scp_server: _StorageScp) -> Iterator[_StorageScp]:
    """The module's Storage SCP, answering success until told otherwise."""
    yield _scp_server
    _scp_server._stop.set()
    _scp_server.status, _scp_server.comment, _scp_server.hold = 0x0000, "", 0.0
    _scp_server.received.clear()
    _scp_server._stop.clear()


# -------------------------------------------------------------------- documents


def _image() -> Document:
    dataset = make_cr(patient_name="NGUYỄN^THỊ HƯƠNG")
    return Document("dicom-heatmap:cardiomegaly", str(dataset.SOPInstanceUID), dataset=dataset)


# --------------------------------------------------------------------- channels


class TestFhirChannel:
    @pytest.mark.parametrize("status", [200, 201])
    def test_2xx_is_sent(self, http_peer: HttpPeer, bundle: Document, status: int) -> None:
        http_peer.status = status
        http_peer.body = json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": [
                    {"response": {"status": "201 Created"}},
                    {"response": {"status": "200 OK"}},
                ],
            }
        )

        outcome = FhirChannel(http_peer.url, timeout=TIMEOUT).send(bundle)

        assert outcome == SendOutcome(
            Outcome.SENT,
            f"{http_peer.url} answered HTTP {status}: 2 entries (200 OK, 201 Created)",
            "bundle-17",
        )

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (400, operation_outcome(DIAGNOSTICS)),
            (401, operation_outcome("Token hết hạn", as_details=True)),
            (403, operation_outcome("Không có quyền ghi DiagnosticReport")),
            (404, operation_outcome("Không có endpoint /fhir/R4")),
            (422, operation_outcome(DIAGNOSTICS)),
        ],
    )
    def test_4xx_is_refused_with_the_servers_diagnostics(
        self, http_peer: HttpPeer, bundle: Document, status: int, body: str
    ) -> None:
        http_peer.status = status
        http_peer.body = body
        expected = json.loads(body)["issue"][0]
        said = expected.get("diagnostics") or expected["details"]["text"]

        outcome = FhirChannel(http_peer.url, timeout=TIMEOUT).send(bundle)

        assert outcome.outcome is Outcome.REFUSED
        assert outcome.message == f"{http_peer.url} answered HTTP {status}: {said}"
        assert outcome.document_id == ""

    @pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
    def test_try_later_and_5xx_retry(
        self, http_peer: HttpPeer, bundle: Document, status: int
    ) -> None:
        http_peer.status = status
        http_peer.body = operation_outcome("Máy chủ đang bận")

        outcome = FhirChannel(http_peer.url, timeout=TIMEOUT).send(bundle)

        assert outcome.outcome is Outcome.RETRY
        assert outcome.message == f"{http_peer.url} answered HTTP {status}: Máy chủ đang bận"

    def test_a_body_that_is_not_json_is_kept_as_text(
        self, http_peer: HttpPeer, bundle: Document
    ) -> None:
        http_peer.status = 502
        http_peer.content_type = "text/html"
        http_peer.body = "<html>502 Bad Gateway: " + "upstream EMR down " * 40 + "</html>"

        outcome = FhirChannel(http_peer.url, timeout=TIMEOUT).send(bundle)

        assert outcome.outcome is Outcome.RETRY
        assert outcome.message == f"{http_peer.url} answered HTTP 502: {http_peer.body[:300]}"

    def test_a_server_slower_than_the_timeout_is_retried(
        self, http_peer: HttpPeer, bundle: Document
    ) -> None:
        http_peer.delay = 5.0

        started = time.monotonic()
        outcome = FhirChannel(http_peer.url, timeout=SHORT_TIMEOUT).send(bundle)

        assert time.monotonic() - started < 3.0
        assert outcome.outcome is Outcome.RETRY
        assert outcome.message.startswith(f"{http_peer.url}: ReadTimeout")
        assert len(http_peer.received) == 1

    def test_nothing_listening_is_retried(self, bundle: Document) -> None:
        url = f"http://{LOOPBACK}:{free_port()}/fhir/R4"

        outcome = FhirChannel(url, timeout=TIMEOUT).send(bundle)

        assert outcome.outcome is Outcome.RETRY
        assert outcome.message.startswith(f"{url}: ConnectError")

    def test_the_bundle_goes_as_utf8_with_the_bearer_token(
        self, http_peer: HttpPeer, bundle: Document
    ) -> None:
        FhirChannel(http_peer.url + "/", token=TOKEN, timeout=TIMEOUT).send(bundle)

        [request] = http_peer.received
        assert request.path == "/fhir/R4"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
        assert request.headers["Accept"] == "application/fhir+json"
        assert request.body == bundle.text.encode("utf-8")
        text = request.body.decode("utf-8")
        assert "NGUYỄN" in text
        assert "Bệnh viện Đa khoa tỉnh Hà Giang" in text
        assert json.loads(text)["resourceType"] == "Bundle"

    def test_without_a_token_no_authorization_is_sent(
        self, http_peer: HttpPeer, bundle: Document
    ) -> None:
        FhirChannel(http_peer.url, timeout=TIMEOUT).send(bundle)

        [request] = http_peer.received
        assert "Authorization" not in request.headers


class TestMllpChannel:
    def test_aa_is_sent_under_the_control_id(self, his: Hl7Peer, oru: Document) -> None:
        outcome = MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT).send(oru)

        assert outcome == SendOutcome(
            Outcome.SENT, f"{LOOPBACK}:{his.port} answered AA", "SOI-17-P"
        )
        [message] = his.received
        assert "ORU^R01" in message
        assert "NGUYỄN^THỊ HƯƠNG" in message

    def test_ae_is_refused_with_the_ack_text(self, his: Hl7Peer, oru: Document) -> None:
        his.behaviour["SOI-17-P"] = "AE"

        outcome = MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT).send(oru)

        assert outcome == SendOutcome(
            Outcome.REFUSED,
            f"{LOOPBACK}:{his.port} answered AE: Thiếu mã bệnh nhân (PID-3 | MR); "
            "Required field missing",
        )

    def test_ar_is_retried_with_the_ack_text(self, his: Hl7Peer, oru: Document) -> None:
        his.behaviour["SOI-17-P"] = "AR"

        outcome = MllpChannel(LOOPBACK, his.port, timeout=TIMEOUT).send(oru)

        assert outcome.outcome is Outcome.RETRY
        assert outcome.message.startswith(f"{LOOPBACK}:{his.port} answered AR: Thiếu mã")

    @pytest.mark.parametrize(
        ("behaviour", "said"),
        [
            ("silent", f"did not reply within {SHORT_TIMEOUT:g} s"),
            ("close", "closed the connection without replying"),
            ("partial", "before the end of the MLLP block"),
            ("garbage", "does not begin with the MLLP start block"),
            ("wrong-id", "acknowledged control id 'SOMEONE-ELSE'"),
        ],
    )
    def test_no_acknowledgement_of_the_message_is_retried(
        self, his: Hl7Peer, oru: Document, behaviour: str, said: str
    ) -> None:
        his.behaviour["SOI-17-P"] = behaviour
        timeout = SHORT_TIMEOUT if behaviour == "silent" else TIMEOUT

        started = time.monotonic()
        outcome = MllpChannel(LOOPBACK, his.port, timeout=timeout).send(oru)

        assert time.monotonic() - started < 9.0
        assert outcome.outcome is Outcome.RETRY
        assert said in outcome.message
        assert f"MLLP peer {LOOPBACK}:{his.port}" in outcome.message

    def test_nothing_listening_is_retried(self, oru: Document) -> None:
        port = free_port()

        outcome = MllpChannel(LOOPBACK, port, timeout=TIMEOUT).send(oru)

        assert outcome == SendOutcome(
            Outcome.RETRY, f"cannot connect to MLLP peer {LOOPBACK}:{port}: connection refused"
        )


class TestDicomChannel:
    def test_nothing_listening_is_retried(self) -> None:
        port = free_port()

        outcome = DicomChannel("PACS", LOOPBACK, port, timeout=TIMEOUT).send(_image())

        assert outcome == SendOutcome(Outcome.RETRY, f"PACS@{LOOPBACK}:{port} is not reachable")

    def test_a_storage_scp_gets_the_sr_under_its_sop_instance_uid(
        self, tmp_path: Path, complete_context: ReportContext
    ) -> None:
        sr = build_sr(complete_context)
        document = Document("dicom-sr", str(sr.SOPInstanceUID), dataset=sr)
        with DicomReceiver(tmp_path / "pacs", ae_title="PACS") as receiver:
            channel = DicomChannel("PACS", receiver.host, receiver.port, timeout=5.0)
            first = channel.send(document)
            again = channel.send(document)
            files = receiver.files()

        assert first == again
        assert first == SendOutcome(
            Outcome.SENT,
            f"PACS@{LOOPBACK}:{receiver.port} answered C-STORE status 0x0000",
            str(sr.SOPInstanceUID),
        )
        [kept] = files
        stored = pydicom.dcmread(kept)
        assert stored.SOPInstanceUID == sr.SOPInstanceUID
        assert str(stored.PatientName) == "NGUYỄN^THỊ HƯƠNG"

    @pytest.mark.parametrize(
        ("status", "comment", "outcome"),
        [
            (0x0000, "", Outcome.SENT),
            (0xB000, "Coercion of data elements", Outcome.SENT),
            (0xB007, "", Outcome.SENT),
            (0xA700, "Out of resources", Outcome.RETRY),
            (0xA7FF, "Disk full", Outcome.RETRY),
            (0xA900, "Data set does not match SOP class", Outcome.REFUSED),
            (0xC000, "Cannot understand", Outcome.REFUSED),
            (0xC211, "Unknown patient", Outcome.REFUSED),
            (0x0122, "", Outcome.REFUSED),
        ],
        ids=lambda value: f"0x{value:04X}" if isinstance(value, int) else None,
    )
    def test_the_c_store_status_decides(
        self, scp: _StorageScp, status: int, comment: str, outcome: Outcome
    ) -> None:
        scp.status = status
        scp.comment = comment
        document = _image()

        sent = DicomChannel("TEST_PACS", LOOPBACK, scp.port, timeout=5.0).send(document)

        where = f"TEST_PACS@{LOOPBACK}:{scp.port}"
        said = f"{where} answered C-STORE status 0x{status:04X}" + (
            f": {comment}" if comment else ""
        )
        expected_id = document.document_id if outcome is Outcome.SENT else ""
        assert sent == SendOutcome(outcome, said, expected_id)
        assert scp.received == [document.document_id]

    def test_an_scp_that_does_not_answer_in_time_is_retried(self, scp: _StorageScp) -> None:
        scp.hold = 20.0

        started = time.monotonic()
        sent = DicomChannel("TEST_PACS", LOOPBACK, scp.port, timeout=2.0).send(_image())

        assert time.monotonic() - started < 15.0
        assert sent == SendOutcome(
            Outcome.RETRY,
            f"TEST_PACS@{LOOPBACK}:{scp.port}: no C-STORE response (connection lost or timed out)",
        )

    def test_a_document_without_a_data_set_is_refused(self, scp: _StorageScp) -> None:
        document = Document("hl7-oru", "SOI-17-P", text="MSH|^~\\&|SOI")

        sent = DicomChannel("TEST_PACS", LOOPBACK, scp.port, timeout=TIMEOUT).send(document)

        assert sent == SendOutcome(Outcome.REFUSED, "hl7-oru is not a DICOM document")
        assert scp.received == []

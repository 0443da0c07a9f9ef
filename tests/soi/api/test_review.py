"""``/studies/{uid}/review``: radiologists load, save and sign a review of AI findings;
the signed PDF verifies (pyHanko and poppler's ``pdfsig``); refusals are precise and
audited; a signed version is never changed."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from reports import verify_pdf
from soi.auth import local_caller
from soi.runtime import Runtime
from soi.services import SigningCertificates
from store import (
    AuditEvent,
    AuditOutcome,
    FindingRecord,
    FindingReview,
    Report,
    ResultState,
    ReviewDecision,
    Study,
    ensure_job,
    record_result,
)
from tests.soi.api.conftest import Hospitals
from tests.support.auth import bearer
from tests.support.tools import require_binary
from tests.support.worklist import add_study

PROBLEM = "application/problem+json"
UID, OTHER_UID = "7.1.1", "7.2.1"
PASSPHRASE = "cụm mật khẩu ký số 2026"
IMPRESSION = (
    "Tràn khí màng phổi phải lượng ít.\nBóng tim không to. Nốt mờ thuỳ trên phổi trái, "
    "đề nghị chụp CT ngực liều thấp để đánh giá thêm."
)
#: A decomposed (NFD) spelling: kept exactly, never normalised.
IMPRESSION_NFD = "Phe\u0302\u0309 bi\u0300nh thu\u031bo\u031b\u0300ng."


@dataclass(frozen=True, slots=True)
class Readers:
    """API tokens of the people of the tests."""

    mai: str
    lan: str
    tuan: str
    technician: str
    admin: str
    other: str


def _add_cxr_result(runtime: Runtime, study_id: int) -> None:
    """A result of the shipped ``cxr 0.2.0`` model: pneumothorax positive, two negative."""
    with runtime.database.write() as session:
        study = session.get(Study, study_id)
        assert study is not None
        job = ensure_job(
            session,
            study_id=study_id,
            pipeline="cxr",
            instance_uids=[f"{study.study_instance_uid}.1"],
            available=True,
        )
        record_result(
            session,
            job_id=job.id,
            study_id=study_id,
            model_name="cxr",
            model_version="0.2.0",
            state=ResultState.COMPLETE,
            findings=[
                FindingRecord(label="pneumothorax", probability=0.83, positive=True, threshold=0.5),
                FindingRecord(
                    label="cardiomegaly", probability=0.21, positive=False, threshold=0.5
                ),
                FindingRecord(label="nodule_mass", probability=0.31, positive=False, threshold=0.4),
            ],
        )


@pytest.fixture
def readers(
    runtime: Runtime,
    hospitals: Hospitals,
    person: Callable[..., str],
    token_of: Callable[[str], str],
) -> Readers:
    """Studies at BV-A and BV-B with AI results; radiologists (Mai and Lan with signing
    certificates, Tuấn without), a technician and an admin at BV-A, a radiologist at BV-B."""
    db = runtime.database
    _add_cxr_result(runtime, add_study(db, UID, facility_code="BV-A", patient_name="NGUYỄN^VĂN AN"))
    _add_cxr_result(runtime, add_study(db, OTHER_UID, facility_code="BV-B"))
    person("mai", "radiologist", "BV-A", display_name="BS. Trần Thị Mai")
    person("lan", "radiologist", "BV-A", display_name="BS. Lê Ngọc Lan")
    person("tuan", "radiologist", "BV-A")
    person("kythuat", "technician", "BV-A")
    person("quantri", "admin")
    person("binh", "radiologist", "BV-B")
    certificates = SigningCertificates(db, runtime.data_dir)
    for username in ("mai", "lan"):
        certificates.create(username, PASSPHRASE, actor=local_caller())
    return Readers(
        mai=token_of("mai"),
        lan=token_of("lan"),
        tuan=token_of("tuan"),
        technician=token_of("kythuat"),
        admin=token_of("quantri"),
        other=token_of("binh"),
    )


def _load(client: TestClient, token: str, uid: str = UID) -> dict[str, Any]:
    response = client.get(f"/studies/{uid}/review", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _decisions(review: dict[str, Any]) -> list[dict[str, Any]]:
    """Accept pneumothorax, reject cardiomegaly, edit nothing, add a consolidation."""
    by_label = {f["label"]: f["finding_id"] for f in review["findings"]}
    return [
        {"finding_id": by_label["pneumothorax"], "label": "pneumothorax", "decision": "accepted"},
        {"finding_id": by_label["cardiomegaly"], "label": "cardiomegaly", "decision": "rejected"},
        {
            "finding_id": by_label["nodule_mass"],
            "label": "nodule_mass",
            "decision": "edited",
            "probability_class": "possible",
        },
        {
            "finding_id": None,
            "label": "consolidation",
            "decision": "added",
            "probability_class": "definite",
            "region": {"sop_instance_uid": f"{UID}.1", "box": [10, 20, 110, 140]},
        },
    ]


def _save(
    client: TestClient, token: str, version: int, decisions: list[dict[str, Any]], impression: str
) -> Any:
    return client.put(
        f"/studies/{UID}/review",
        headers=bearer(token),
        json={"version": version, "decisions": decisions, "impression": impression},
    )


def _sign(client: TestClient, token: str, version: int, passphrase: str = PASSPHRASE) -> Any:
    return client.post(
        f"/studies/{UID}/review/sign",
        headers=bearer(token),
        json={"version": version, "passphrase": passphrase},
    )


def _saved_and_signed(client: TestClient, readers: Readers) -> dict[str, Any]:
    review = _load(client, readers.mai)
    saved = _save(client, readers.mai, review["review_version"], _decisions(review), IMPRESSION)
    assert saved.status_code == 200, saved.text
    signed = _sign(client, readers.mai, saved.json()["review_version"])
    assert signed.status_code == 200, signed.text
    body: dict[str, Any] = signed.json()
    return body


def _pdf(client: TestClient, token: str, version: int) -> bytes:
    response = client.get(f"/studies/{UID}/reports/{version}.pdf", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    content: bytes = response.content
    return content


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        [str(require_binary("pdftotext")), "-layout", str(path), "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    return body


class TestFlow:
    def test_load_save_sign_and_read_the_signed_report(
        self, client: TestClient, runtime: Runtime, readers: Readers, tmp_path: Path
    ) -> None:
        review = _load(client, readers.mai)
        assert review["review_state"] == "unread"
        assert review["review_version"] == 0
        assert review["ai_preliminary"] is True
        assert review["decisions"] == []
        assert review["reports"] == []
        finding = {f["label"]: f for f in review["findings"]}
        assert finding["pneumothorax"]["positive"] is True
        assert finding["pneumothorax"]["probability"] == pytest.approx(0.83)
        assert finding["nodule_mass"]["threshold"] == pytest.approx(0.4)
        assert finding["cardiomegaly"]["model_name"] == "cxr"
        assert finding["cardiomegaly"]["model_version"] == "0.2.0"

        saved = _save(client, readers.mai, 0, _decisions(review), IMPRESSION)
        assert saved.status_code == 200, saved.text
        assert saved.json() == {"review_state": "in_review", "review_version": 1}

        loaded = _load(client, readers.mai)
        assert loaded["impression"] == IMPRESSION
        assert [(d["label"], d["decision"]) for d in loaded["decisions"]] == [
            ("pneumothorax", "accepted"),
            ("cardiomegaly", "rejected"),
            ("nodule_mass", "edited"),
            ("consolidation", "added"),
        ]
        assert {d["reader"] for d in loaded["decisions"]} == {"mai"}
        assert loaded["decisions"][3]["region"]["box"] == [10, 20, 110, 140]

        signed = _sign(client, readers.mai, 1)
        assert signed.status_code == 200, signed.text
        body = signed.json()
        assert body["review_state"] == "signed"
        assert body["review_version"] == 2
        report = body["report"]
        assert (report["version"], report["status"]) == (1, "final")
        assert report["signed_by"] == "mai"
        assert report["signer_name"] == "BS. Trần Thị Mai"
        assert report["supersedes_version"] is None

        pdf = _pdf(client, readers.mai, 1)
        assert hashlib.sha256(pdf).hexdigest() == report["document_sha256"]
        trust = SigningCertificates(runtime.database, runtime.data_dir).local_ca_certificate()
        check = verify_pdf(pdf, [trust])
        assert check.ok, check
        assert check.signer_name == "BS. Trần Thị Mai"
        assert "Trần Thị Mai" in check.signer_subject
        path = tmp_path / "signed.pdf"
        path.write_bytes(pdf)
        pdfsig = subprocess.run(
            [str(require_binary("pdfsig")), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "Signature is Valid." in pdfsig.stdout + pdfsig.stderr

        text = _text(pdf, tmp_path)
        assert "CHÍNH THỨC" in text
        assert "SƠ BỘ" not in text
        assert "Ký bởi BS. Trần Thị Mai" in text
        assert "Tràn khí màng phổi phải lượng ít." in text
        assert "Bác sĩ bổ sung" in text
        assert "Không đồng ý" in text

        with runtime.database.read() as session:
            rows = list(session.scalars(select(FindingReview).order_by(FindingReview.id)))
            reports = list(session.scalars(select(Report)))
            study = session.scalars(select(Study).where(Study.study_instance_uid == UID)).one()
            assert (study.review_state.value, study.review_version) == ("signed", 2)
        assert [(r.label, r.decision) for r in rows] == [
            ("pneumothorax", ReviewDecision.ACCEPTED),
            ("cardiomegaly", ReviewDecision.REJECTED),
            ("nodule_mass", ReviewDecision.EDITED),
            ("consolidation", ReviewDecision.ADDED),
        ]
        assert rows[0].ai_probability == pytest.approx(0.83)
        assert rows[3].ai_probability is None
        assert rows[3].finding_id is None
        assert {r.review_version for r in rows} == {1}
        assert len(reports) == 1
        assert reports[0].impression == IMPRESSION

        assert [e.outcome for e in _events(runtime, "review.save")] == [AuditOutcome.SUCCESS]
        sign_events = _events(runtime, "review.sign")
        assert [e.outcome for e in sign_events] == [AuditOutcome.SUCCESS]
        assert sign_events[0].detail["document_sha256"] == report["document_sha256"]
        reads = [e for e in _events(runtime, "document.read") if e.study_instance_uid == UID]
        assert reads[-1].detail == {"kind": "signed-report", "version": 1}

        after = _load(client, readers.admin)
        assert after["ai_preliminary"] is False
        assert [(r["version"], r["status"]) for r in after["reports"]] == [(1, "final")]

    def test_the_impression_is_kept_exactly_as_written(
        self, client: TestClient, readers: Readers
    ) -> None:
        review = _load(client, readers.mai)
        saved = _save(client, readers.mai, 0, [], IMPRESSION_NFD)
        assert saved.status_code == 200, saved.text
        assert _load(client, readers.mai)["impression"] == IMPRESSION_NFD
        assert review["impression"] == ""

    def test_an_amendment_signs_version_2_and_leaves_version_1_as_it_was(
        self, client: TestClient, runtime: Runtime, readers: Readers
    ) -> None:
        first = _saved_and_signed(client, readers)
        original = _pdf(client, readers.mai, 1)

        review = _load(client, readers.lan)
        assert review["review_version"] == 2
        assert len(review["decisions"]) == 4
        decisions = _decisions(review)
        decisions[1]["decision"] = "accepted"
        amended_text = IMPRESSION + "\nBổ sung: bóng tim to nhẹ."
        saved = _save(client, readers.lan, 2, decisions, amended_text)
        assert saved.status_code == 200, saved.text
        assert saved.json() == {"review_state": "in_review", "review_version": 3}

        signed = _sign(client, readers.lan, 3)
        assert signed.status_code == 200, signed.text
        body = signed.json()
        assert body["review_state"] == "amended"
        assert (body["report"]["version"], body["report"]["status"]) == (2, "amended")
        assert body["report"]["supersedes_version"] == 1
        assert body["report"]["signed_by"] == "lan"

        assert _pdf(client, readers.mai, 1) == original
        with runtime.database.read() as session:
            reports = list(session.scalars(select(Report).order_by(Report.version)))
        assert [(r.version, r.status.value) for r in reports] == [(1, "final"), (2, "amended")]
        assert reports[0].document_sha256 == first["report"]["document_sha256"]
        assert reports[0].impression == IMPRESSION
        assert reports[1].impression == amended_text
        assert reports[1].supersedes_report_id == reports[0].id
        loaded = _load(client, readers.mai)
        assert [(r["version"], r["status"]) for r in loaded["reports"]] == [
            (1, "final"),
            (2, "amended"),
        ]


class TestConflicts:
    def test_two_readers_of_the_same_version_the_second_save_is_refused(
        self, client: TestClient, runtime: Runtime, readers: Readers
    ) -> None:
        review = _load(client, readers.mai)
        assert _load(client, readers.lan)["review_version"] == review["review_version"]
        first = _save(client, readers.mai, 0, _decisions(review), "Mai")
        assert first.status_code == 200, first.text
        second = _problem(_save(client, readers.lan, 0, _decisions(review), "Lan"), 409)
        assert "changed by another reader since you opened it" in second["detail"]
        assert "reload" in second["detail"]
        loaded = _load(client, readers.lan)
        assert loaded["impression"] == "Mai"
        assert loaded["review_version"] == 1
        assert [e.outcome for e in _events(runtime, "review.save")] == [
            AuditOutcome.SUCCESS,
            AuditOutcome.REFUSED,
        ]

    def test_a_stale_version_cannot_be_signed(self, client: TestClient, readers: Readers) -> None:
        review = _load(client, readers.mai)
        assert _save(client, readers.mai, 0, _decisions(review), "").status_code == 200
        body = _problem(_sign(client, readers.lan, 0), 409)
        assert "changed by another reader" in body["detail"]

    def test_the_same_version_is_signed_once(
        self, client: TestClient, runtime: Runtime, readers: Readers
    ) -> None:
        signed = _saved_and_signed(client, readers)
        again = _problem(_sign(client, readers.mai, signed["review_version"]), 409)
        assert "already signed" in again["detail"]
        with runtime.database.read() as session:
            assert len(list(session.scalars(select(Report)))) == 1
        assert [e.outcome for e in _events(runtime, "review.sign")] == [
            AuditOutcome.SUCCESS,
            AuditOutcome.REFUSED,
        ]

    def test_every_finding_needs_a_decision_before_signing(
        self, client: TestClient, readers: Readers
    ) -> None:
        review = _load(client, readers.mai)
        assert _save(client, readers.mai, 0, _decisions(review)[:1], "").status_code == 200
        body = _problem(_sign(client, readers.mai, 1), 422)
        assert "cardiomegaly" in body["detail"]
        assert "nodule_mass" in body["detail"]
        assert "pneumothorax" not in body["detail"]

    @pytest.mark.parametrize(
        ("change", "needle"),
        [
            ({"finding_id": 999_999}, "not one of the study's current AI findings"),
            ({"decision": "added"}, "'added' finding is the reader's own"),
        ],
    )
    def test_a_bad_decision_is_refused_and_nothing_is_saved(
        self,
        client: TestClient,
        runtime: Runtime,
        readers: Readers,
        change: dict[str, Any],
        needle: str,
    ) -> None:
        review = _load(client, readers.mai)
        decisions = _decisions(review)
        decisions[0] = {**decisions[0], **change}
        body = _problem(_save(client, readers.mai, 0, decisions, "x"), 422)
        assert needle in body["detail"]
        after = _load(client, readers.mai)
        assert (after["review_version"], after["impression"]) == (0, "")
        with runtime.database.read() as session:
            assert list(session.scalars(select(FindingReview))) == []

    def test_a_duplicate_decision_and_an_oversized_impression_are_refused(
        self, client: TestClient, readers: Readers
    ) -> None:
        review = _load(client, readers.mai)
        twice = [_decisions(review)[0]] * 2
        assert (
            "more than one decision"
            in _problem(_save(client, readers.mai, 0, twice, ""), 422)["detail"]
        )
        _problem(_save(client, readers.mai, 0, [], "á" * 10_001), 422)


class TestAccess:
    def test_a_technician_may_not_load_save_or_sign(
        self, client: TestClient, runtime: Runtime, readers: Readers
    ) -> None:
        _problem(client.get(f"/studies/{UID}/review", headers=bearer(readers.technician)), 403)
        _problem(_save(client, readers.technician, 0, [], ""), 403)
        _problem(_sign(client, readers.technician, 0), 403)
        refused = [e.outcome for e in _events(runtime, "review.read")]
        assert refused == [AuditOutcome.REFUSED]

    def test_an_admin_loads_but_does_not_sign(self, client: TestClient, readers: Readers) -> None:
        assert _load(client, readers.admin)["review_state"] == "unread"
        body = _problem(_sign(client, readers.admin, 0), 403)
        assert "only a radiologist" in body["detail"]

    def test_another_facilitys_radiologist_sees_no_such_study(
        self, client: TestClient, runtime: Runtime, readers: Readers
    ) -> None:
        _saved_and_signed(client, readers)
        _problem(client.get(f"/studies/{UID}/review", headers=bearer(readers.other)), 404)
        _problem(_save(client, readers.other, 2, [], ""), 404)
        _problem(_sign(client, readers.other, 2), 404)
        pdf = client.get(f"/studies/{UID}/reports/1.pdf", headers=bearer(readers.other))
        _problem(pdf, 404)
        assert _load(client, readers.other, OTHER_UID)["study_instance_uid"] == OTHER_UID

    def test_a_missing_report_version_is_not_found(
        self, client: TestClient, readers: Readers
    ) -> None:
        body = _problem(
            client.get(f"/studies/{UID}/reports/1.pdf", headers=bearer(readers.mai)), 404
        )
        assert "no signed report 1" in body["detail"]


class TestSigningIdentity:
    def test_a_wrong_passphrase_is_refused_and_never_logged(
        self, client: TestClient, runtime: Runtime, readers: Readers
    ) -> None:
        review = _load(client, readers.mai)
        assert _save(client, readers.mai, 0, _decisions(review), "").status_code == 200
        wrong = "không đúng mật khẩu"
        body = _problem(_sign(client, readers.mai, 1, passphrase=wrong), 403)
        assert body["detail"] == "wrong passphrase for your signing certificate"
        events = _events(runtime, "review.sign")
        assert [e.outcome for e in events] == [AuditOutcome.REFUSED]
        assert wrong not in str(events[0].detail)
        assert PASSPHRASE not in str(events[0].detail)
        assert _load(client, readers.mai)["review_state"] == "in_review"
        assert _sign(client, readers.mai, 1).status_code == 200

    def test_a_radiologist_without_a_certificate_is_told_how_to_get_one(
        self, client: TestClient, runtime: Runtime, readers: Readers
    ) -> None:
        review = _load(client, readers.tuan)
        assert _save(client, readers.tuan, 0, _decisions(review), "").status_code == 200
        body = _problem(_sign(client, readers.tuan, 1), 403)
        assert "holds no signing certificate" in body["detail"]
        assert "soi users cert create" in body["detail"]
        with runtime.database.read() as session:
            assert list(session.scalars(select(Report))) == []

"""``/studies`` scoped on the server to what the caller may see, every read audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from soi.runtime import Runtime
from store import AuditEvent, AuditOutcome, IdentifierKind, IdentifierRecord, Study
from tests.soi.api.conftest import Hospitals
from tests.support.auth import PASSWORD, bearer
from tests.support.store import index_cxr_study

UID_A = "1.2.826.0.1.3680043.8.498.101"
UID_B = "1.2.826.0.1.3680043.8.498.202"
MISSING = "1.2.826.0.1.3680043.8.498.999"
CCCD_A, CCCD_B = "001099012345", "002088054321"


@dataclass(frozen=True, slots=True)
class Studies:
    """A study of each hospital, with its patient id."""

    a: int
    b: int


@pytest.fixture
def studies(runtime: Runtime, hospitals: Hospitals) -> Studies:
    """A chest X-ray at BV-A (patient CCCD_A) and one at BV-B (patient CCCD_B)."""
    for uid, code, cccd in ((UID_A, "BV-A", CCCD_A), (UID_B, "BV-B", CCCD_B)):
        index_cxr_study(
            runtime.database,
            uid,
            facility_code=code,
            identifier=IdentifierRecord(IdentifierKind.NATIONAL_ID, "urn:vn:cccd", cccd),
        )
    with runtime.database.read() as session:
        patients = dict(session.execute(select(Study.study_instance_uid, Study.patient_id)).all())
    return Studies(a=patients[UID_A], b=patients[UID_B])


def _reads(runtime: Runtime, action: str = "study.read") -> list[AuditEvent]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            ).all()
        )


def _uids(client: TestClient, headers: dict[str, str]) -> tuple[int, list[str]]:
    response = client.get("/studies", headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    return page["total"], [item["study_instance_uid"] for item in page["items"]]


class TestScoping:
    def test_a_technician_sees_only_their_hospital(
        self,
        client: TestClient,
        runtime: Runtime,
        hospitals: Hospitals,
        studies: Studies,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        headers = bearer(token_of(person("lan", "technician", "BV-A")))
        assert _uids(client, headers) == (1, [UID_A])
        own = client.get(f"/studies/{UID_A}", headers=headers)
        assert own.status_code == 200
        assert own.json()["facility"] == "BV-A"

        other = client.get(f"/studies/{UID_B}", headers=headers)
        missing = client.get(f"/studies/{MISSING}", headers=headers)
        assert other.status_code == missing.status_code == 404
        assert other.headers["content-type"] == "application/problem+json"
        assert other.json() == {
            "type": "about:blank",
            "title": "Study not found",
            "status": 404,
            "detail": f"no study {UID_B}",
            "instance": f"/studies/{UID_B}",
        }
        assert missing.json()["detail"] == f"no study {MISSING}"
        assert CCCD_B not in other.text

    def test_an_admin_sees_both_hospitals(
        self,
        client: TestClient,
        studies: Studies,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        headers = bearer(token_of(person("root", "admin")))
        assert _uids(client, headers)[0] == 2
        for uid in (UID_A, UID_B):
            assert client.get(f"/studies/{uid}", headers=headers).status_code == 200

    @pytest.mark.parametrize(
        ("role", "facility", "visible"),
        [
            ("radiologist", "BV-B", [UID_B]),
            ("screening_coordinator", "BV-A", [UID_A]),
            ("integration", "BV-B", [UID_B]),
            ("integration", None, [UID_A, UID_B]),
            ("researcher", None, []),
        ],
    )
    def test_each_role_sees_its_scope(
        self,
        client: TestClient,
        studies: Studies,
        person: Callable[..., str],
        token_of: Callable[[str], str],
        role: str,
        facility: str | None,
        visible: list[str],
    ) -> None:
        extra = {"program": "DR-2026"} if role == "screening_coordinator" else {}
        headers = bearer(token_of(person("someone", role, facility, **extra)))
        total, uids = _uids(client, headers)
        assert (total, sorted(uids)) == (len(visible), visible)
        for uid in (UID_A, UID_B):
            status = client.get(f"/studies/{uid}", headers=headers).status_code
            assert status == (200 if uid in visible else 404)

    def test_a_signed_in_technician_gets_404_too(
        self, client: TestClient, studies: Studies, person: Callable[..., str]
    ) -> None:
        person("lan", "technician", "BV-A")
        login = client.post("/auth/login", json={"username": "lan", "password": PASSWORD})
        assert login.status_code == 200
        assert client.get(f"/studies/{UID_A}").status_code == 200
        assert client.get(f"/studies/{UID_B}").status_code == 404


class TestAudit:
    def test_every_read_is_recorded_with_its_outcome(
        self,
        client: TestClient,
        runtime: Runtime,
        hospitals: Hospitals,
        studies: Studies,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        headers = bearer(token_of(person("lan", "technician", "BV-A")))
        client.get(f"/studies/{UID_A}", headers=headers)
        client.get(f"/studies/{UID_B}", headers=headers)
        client.get(f"/studies/{MISSING}", headers=headers)
        client.get("/studies?limit=10", headers=headers)

        reads = [
            (
                e.actor,
                e.actor_kind,
                e.outcome,
                e.study_instance_uid,
                e.facility_id,
                e.patient_id,
                e.source_address,
            )
            for e in _reads(runtime)
        ]
        assert reads == [
            ("lan", "token", AuditOutcome.SUCCESS, UID_A, hospitals.a, studies.a, "testclient"),
            ("lan", "token", AuditOutcome.REFUSED, UID_B, hospitals.b, studies.b, "testclient"),
            ("lan", "token", AuditOutcome.FAILURE, MISSING, None, None, "testclient"),
        ]
        [listed] = _reads(runtime, "study.list")
        assert listed.actor == "lan"
        assert listed.detail == {
            "count": 1,
            "total": 1,
            "limit": 10,
            "offset": 0,
            "studies": [UID_A],
        }

    def test_the_admin_audit_page_finds_a_patients_reads(
        self,
        client: TestClient,
        studies: Studies,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        technician = bearer(token_of(person("lan", "technician", "BV-A")))
        admin = bearer(token_of(person("root", "admin")))
        client.get(f"/studies/{UID_A}", headers=technician)
        client.get(f"/studies/{UID_B}", headers=technician)

        response = client.get("/admin/audit", params={"patient": CCCD_B}, headers=admin)
        assert response.status_code == 200, response.text
        trail = response.json()
        assert trail["patient_ids"] == [studies.b]
        assert [(e["actor"], e["action"], e["outcome"]) for e in trail["items"]] == [
            ("lan", "study.read", "refused")
        ]
        by_actor = client.get("/admin/audit", params={"actor": "lan"}, headers=admin).json()
        assert [e["study_instance_uid"] for e in by_actor["items"]] == [UID_B, UID_A]
        by_study = client.get("/admin/audit", params={"study": UID_A}, headers=admin).json()
        assert [e["action"] for e in by_study["items"]] == ["study.read"]
        unknown = client.get("/admin/audit", params={"patient": "nobody"}, headers=admin).json()
        assert unknown == {"patient_ids": [], "items": [], "next_before_id": None}

        again = client.get("/admin/audit", params={"patient": CCCD_B}, headers=admin).json()
        assert [e["action"] for e in again["items"]][:1] == ["audit.read"]

    def test_the_audit_page_is_for_admins(
        self,
        client: TestClient,
        hospitals: Hospitals,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        technician = bearer(token_of(person("lan", "technician", "BV-A")))
        response = client.get("/admin/audit", headers=technician)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"

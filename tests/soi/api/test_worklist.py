"""``GET /worklist``: readers only, scoped to their facilities, filtered, paged, audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from soi.runtime import Runtime
from store import AuditEvent, AuditOutcome, ReviewState, Study, User
from tests.soi.api.conftest import Hospitals
from tests.support.auth import bearer
from tests.support.worklist import add_result, add_study, set_review

A_CRITICAL, A_NORMAL, A_SIGNED, B_CRITICAL = "6.1.1", "6.1.2", "6.1.3", "6.2.1"


@pytest.fixture
def studies(runtime: Runtime, hospitals: Hospitals) -> None:
    """Three studies at BV-A (critical, normal DX, signed) and a critical one at BV-B."""
    db = runtime.database
    add_result(db, add_study(db, B_CRITICAL, facility_code="BV-B"), [("pneumothorax", 0.9, True)])
    add_result(
        db,
        add_study(db, A_CRITICAL, facility_code="BV-A", received_minute=1),
        [("pneumothorax", 0.7, True)],
    )
    normal = add_study(
        db, A_NORMAL, facility_code="BV-A", modality="DX", study_date="20261120", received_minute=2
    )
    add_result(db, normal, [("cardiomegaly", 0.1, False)])
    signed = add_study(db, A_SIGNED, facility_code="BV-A", received_minute=3)
    set_review(db, signed, ReviewState.SIGNED)


def _get(client: TestClient, token: str, **params: object) -> dict[str, object]:
    response = client.get("/worklist", headers=bearer(token), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _uids(body: dict[str, object]) -> list[str]:
    items = body["items"]
    assert isinstance(items, list)
    return [item["study_instance_uid"] for item in items]


class TestScope:
    def test_a_radiologist_sees_only_their_facility_in_worklist_order(
        self,
        client: TestClient,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        body = _get(client, token_of(person("mai", "radiologist", "BV-A")))
        assert _uids(body) == [A_CRITICAL, A_NORMAL, A_SIGNED]
        assert body["total"] == 3
        first = body["items"][0]  # type: ignore[index]
        assert first["facility"] == "BV-A"
        assert first["urgency"] == 0
        assert first["ai_preliminary"] is True
        assert first["findings"][0]["label"] == "pneumothorax"
        assert first["patient_identifier"]["kind"] == "national_id"

    def test_an_admin_sees_every_facility(
        self,
        client: TestClient,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        body = _get(client, token_of(person("root", "admin")))
        assert _uids(body) == [B_CRITICAL, A_CRITICAL, A_NORMAL, A_SIGNED]

    @pytest.mark.parametrize("role", ["technician", "screening_coordinator"])
    def test_other_roles_are_forbidden_and_the_refusal_audited(
        self,
        client: TestClient,
        runtime: Runtime,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
        role: str,
    ) -> None:
        fields = {"program": "dr-screening"} if role == "screening_coordinator" else {}
        token = token_of(person("lan", role, "BV-A", **fields))
        response = client.get("/worklist", headers=bearer(token))
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "radiologist or admin" in response.json()["detail"]
        with runtime.database.read() as session:
            [event] = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "worklist.list")
            ).all()
        assert (event.actor, event.outcome) == ("lan", AuditOutcome.REFUSED)

    def test_no_credentials_is_401(self, client: TestClient) -> None:
        assert client.get("/worklist").status_code == 401

    def test_a_read_is_audited_with_the_studies_shown(
        self,
        client: TestClient,
        runtime: Runtime,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        _get(client, token_of(person("mai", "radiologist", "BV-A")), limit=1)
        with runtime.database.read() as session:
            [event] = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "worklist.list")
            ).all()
        assert event.outcome is AuditOutcome.SUCCESS
        assert event.detail["studies"] == [A_CRITICAL]
        assert event.detail["total"] == 3


class TestFiltersAndPages:
    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"modality": "DX"}, [A_NORMAL]),
            ({"review_state": "signed"}, [A_SIGNED]),
            ({"review_state": ["unread", "in_review"]}, [A_CRITICAL, A_NORMAL]),
            ({"study_date_from": "20261115", "study_date_to": "20261125"}, [A_NORMAL]),
            ({"facility": "BV-A", "limit": 2, "offset": 1}, [A_NORMAL, A_SIGNED]),
            ({"assigned_to": "me"}, []),
        ],
    )
    def test_filters_and_pages(
        self,
        client: TestClient,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
        params: dict[str, object],
        expected: list[str],
    ) -> None:
        body = _get(client, token_of(person("mai", "radiologist", "BV-A")), **params)
        assert _uids(body) == expected

    def test_assigned_to_me(
        self,
        client: TestClient,
        runtime: Runtime,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        token = token_of(person("mai", "radiologist", "BV-A"))

        with runtime.database.write() as session:
            user_id = session.scalar(select(User.id).where(User.username == "mai"))
            study = session.scalar(select(Study).where(Study.study_instance_uid == A_NORMAL))
            assert study is not None
            study.assigned_to_user_id = user_id
        body = _get(client, token, assigned_to="me")
        assert _uids(body) == [A_NORMAL]
        assert body["items"][0]["assigned_to"] == "mai"  # type: ignore[index]

    def test_another_facility_is_not_found(
        self,
        client: TestClient,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        token = token_of(person("mai", "radiologist", "BV-A"))
        for code in ("BV-B", "NOWHERE"):
            response = client.get("/worklist", headers=bearer(token), params={"facility": code})
            assert response.status_code == 404
            assert response.json()["detail"] == f"no facility {code}"

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 201},
            {"offset": -1},
            {"review_state": "done"},
            {"study_date_from": "2026-11-01"},
            {"study_date_from": "20261201", "study_date_to": "20261101"},
            {"modality": "cr; drop"},
        ],
    )
    def test_bad_parameters_are_problems(
        self,
        client: TestClient,
        studies: None,
        person: Callable[..., str],
        token_of: Callable[[str], str],
        params: dict[str, object],
    ) -> None:
        token = token_of(person("mai", "radiologist", "BV-A"))
        response = client.get("/worklist", headers=bearer(token), params=params)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 422

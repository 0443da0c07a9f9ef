"""``/admin/agreement``: how often readers accept each model's findings, for administrators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from soi.runtime import Runtime
from store import AuditEvent, Study, wilson_interval
from tests.soi.api.conftest import Hospitals
from tests.support.agreement import add_cases, move_decisions
from tests.support.auth import bearer


def _rows(client: TestClient, headers: dict[str, str], **params: str) -> list[tuple[Any, ...]]:
    response = client.get("/admin/agreement", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [
        (r["model_name"], r["label"], r["facility"], r["accepted"], r["rejected"], r["edited"])
        for r in response.json()["items"]
    ]


@pytest.fixture
def admin(
    runtime: Runtime,
    hospitals: Hospitals,
    person: Callable[..., str],
    token_of: Callable[[str], str],
) -> dict[str, str]:
    """An administrator's headers, with the cases of :func:`add_cases` at BV-A and BV-B."""
    add_cases(runtime.database, local="BV-A", other="BV-B", make_other=False)
    return bearer(token_of(person("root", "admin")))


class TestAgreementRoute:
    def test_rows_carry_counts_rate_and_interval(
        self, client: TestClient, admin: dict[str, str]
    ) -> None:
        response = client.get("/admin/agreement", headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["facility"], body["since"], body["until"]) == (
            None,
            None,
            None,
            None,
        )
        assert [(r["model_name"], r["label"], r["facility"]) for r in body["items"]] == [
            ("cxr-densenet", "cardiomegaly", "BV-A"),
            ("cxr-densenet", "nodule", "BV-A"),
            ("cxr-densenet", "pneumothorax", "BV-A"),
            ("cxr-densenet", "pneumothorax", "BV-B"),
            ("cxr-effnet", "pneumothorax", "BV-B"),
        ]
        cardiomegaly = body["items"][0]
        low, high = wilson_interval(1, 2)
        assert cardiomegaly == {
            "model_name": "cxr-densenet",
            "model_version": "1.0.0",
            "label": "cardiomegaly",
            "facility": "BV-A",
            "accepted": 1,
            "rejected": 1,
            "edited": 0,
            "added": 0,
            "decided": 2,
            "agreement_rate": 0.5,
            "ci95_low": pytest.approx(low),
            "ci95_high": pytest.approx(high),
        }
        nodule = body["items"][1]
        assert (nodule["added"], nodule["agreement_rate"], nodule["ci95_low"]) == (1, None, None)

    def test_filters_by_model_facility_and_days(
        self, client: TestClient, runtime: Runtime, admin: dict[str, str]
    ) -> None:
        assert _rows(client, admin, model="cxr-effnet") == [
            ("cxr-effnet", "pneumothorax", "BV-B", 0, 1, 0)
        ]
        assert _rows(client, admin, facility="BV-B") == [
            ("cxr-densenet", "pneumothorax", "BV-B", 1, 0, 0),
            ("cxr-effnet", "pneumothorax", "BV-B", 0, 1, 0),
        ]
        # Move the decisions of the BV-B study to the last hour of 1 November (UTC).
        with runtime.database.read() as session:
            study_id = session.scalars(
                select(Study.id).where(Study.study_instance_uid == "9.1.3")
            ).one()
        move_decisions(runtime.database, study_id, datetime(2026, 11, 1, 23, 30, tzinfo=UTC))
        on_the_day = _rows(client, admin, since="2026-11-01", until="2026-11-01")
        assert [row[2] for row in on_the_day] == ["BV-B", "BV-B"]
        assert _rows(client, admin, until="2026-10-31") == []
        assert len(_rows(client, admin, since="0001-01-01", until="9999-12-31")) == 5
        # A period that ends before it starts holds no decisions.
        assert _rows(client, admin, since="2026-11-02", until="2026-11-01") == []
        assert all(row[2] == "BV-A" for row in _rows(client, admin, since="2026-11-02"))

    def test_reading_is_audited_with_its_filters(
        self, client: TestClient, runtime: Runtime, admin: dict[str, str]
    ) -> None:
        _rows(client, admin, model="cxr-densenet", facility="BV-A", since="2026-01-01")
        with runtime.database.read() as session:
            [read] = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "agreement.read")
            ).all()
        assert read.actor == "root"
        assert read.detail == {
            "filters": {"model": "cxr-densenet", "facility": "BV-A", "since": "2026-01-01"},
            "count": 3,
        }


class TestAgreementProblems:
    @pytest.mark.parametrize("role", ["radiologist", "technician"])
    def test_other_roles_are_forbidden(
        self,
        client: TestClient,
        hospitals: Hospitals,
        person: Callable[..., str],
        token_of: Callable[[str], str],
        role: str,
    ) -> None:
        headers = bearer(token_of(person("mai", role, "BV-A")))
        response = client.get("/admin/agreement", headers=headers)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "admin role" in response.json()["detail"]

    def test_no_credentials_is_401(self, client: TestClient) -> None:
        assert client.get("/admin/agreement").status_code == 401

    def test_unknown_facility_is_404(self, client: TestClient, admin: dict[str, str]) -> None:
        response = client.get("/admin/agreement", params={"facility": "BV-Z"}, headers=admin)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "no facility BV-Z"

    @pytest.mark.parametrize(
        ("params", "where"),
        [
            ({"since": "2026-13-01"}, "query.since"),
            ({"until": "0"}, "query.until"),
            ({"until": "20261101"}, "query.until"),
            ({"facility": "BV A"}, "query.facility"),
            ({"model": ""}, "query.model"),
        ],
    )
    def test_bad_filters_are_422_naming_the_parameter(
        self, client: TestClient, admin: dict[str, str], params: dict[str, str], where: str
    ) -> None:
        response = client.get("/admin/agreement", params=params, headers=admin)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith(f"{where}: ")

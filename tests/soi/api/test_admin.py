"""``/admin/audit``: pages of the audit log, newest first, for administrators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from soi.runtime import Runtime
from store import AuditEvent, AuditOutcome, record_event
from tests.support.auth import bearer

UID = "1.2.826.0.1.3680043.8.498.303"


def _record(runtime: Runtime, count: int, *, actor: str = "lan") -> list[int]:
    """Record ``count`` reads by ``actor`` (one transaction each); their ids, oldest first."""
    ids = []
    for index in range(count):
        with runtime.database.write() as session:
            event = record_event(
                session,
                actor=actor,
                actor_kind="user",
                action="study.read",
                outcome=AuditOutcome.SUCCESS,
                source_address="10.0.0.7",
                study_instance_uid=UID,
                detail={"n": index},
            )
            session.flush()
            ids.append(event.id)
    return ids


def _page(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/admin/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestAuditPaging:
    def test_pages_follow_next_before_id_to_the_oldest_event(
        self,
        client: TestClient,
        runtime: Runtime,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        admin = bearer(token_of(person("root", "admin")))
        ids = _record(runtime, 5)
        _record(runtime, 2, actor="minh")  # other actors' events are not in the pages

        first = _page(client, admin, actor="lan", limit=2)
        assert [e["id"] for e in first["items"]] == [ids[4], ids[3]]
        assert first["next_before_id"] == ids[3]

        # An event recorded between two pages does not shift the next one.
        late = _record(runtime, 1)
        second = _page(client, admin, actor="lan", limit=2, before_id=first["next_before_id"])
        assert [e["id"] for e in second["items"]] == [ids[2], ids[1]]
        third = _page(client, admin, actor="lan", limit=2, before_id=second["next_before_id"])
        assert [e["id"] for e in third["items"]] == [ids[0]]
        assert third["next_before_id"] is None
        assert [e["detail"] for e in third["items"]] == [{"n": 0}]

        # A page that ends exactly at the oldest event says no page follows.
        exact = _page(client, admin, actor="lan", limit=3, before_id=ids[3])
        assert [e["id"] for e in exact["items"]] == [ids[2], ids[1], ids[0]]
        assert exact["next_before_id"] is None
        newest = _page(client, admin, actor="lan", limit=10)
        assert [e["id"] for e in newest["items"]] == [late[0], *reversed(ids)]
        assert newest["next_before_id"] is None

    def test_reading_a_page_is_audited_with_its_cursor(
        self,
        client: TestClient,
        runtime: Runtime,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        admin = bearer(token_of(person("root", "admin")))
        ids = _record(runtime, 3)
        _page(client, admin, study=UID, limit=1, before_id=ids[2])
        with runtime.database.read() as session:
            [read] = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "audit.read")
            ).all()
        assert read.actor == "root"
        assert read.study_instance_uid == UID
        assert read.detail == {"filters": {"study": UID, "before_id": ids[2]}, "count": 1}

    @pytest.mark.parametrize("before_id", ["0", "-4", "abc"])
    def test_a_bad_cursor_is_a_problem(
        self,
        client: TestClient,
        person: Callable[..., str],
        token_of: Callable[[str], str],
        before_id: str,
    ) -> None:
        admin = bearer(token_of(person("root", "admin")))
        response = client.get("/admin/audit", params={"before_id": before_id}, headers=admin)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"

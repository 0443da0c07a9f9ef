"""``/auth``: sign-in with session cookies and CSRF tokens, bearer tokens, rate limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from soi.api import create_app
from soi.auth import digest, local_caller
from soi.runtime import Runtime
from soi.services import revoke_user_token, set_user_disabled
from store import ApiToken, AuditEvent, AuditOutcome, BrowserSession, utcnow
from tests.soi.api.conftest import Hospitals
from tests.support.auth import PASSWORD, bearer

PROBLEM = "application/problem+json"


def _cookies(response: Response) -> dict[str, dict[str, str]]:
    """The Set-Cookie headers by name: the value and each attribute (lower-case keys)."""
    cookies: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        fields = {"value": value}
        for attribute in attributes:
            key, _, text = attribute.partition("=")
            fields[key.lower()] = text
        cookies[name] = fields
    return cookies


def _events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            ).all()
        )


def _login(client: TestClient, username: str, password: str = PASSWORD) -> Response:
    return client.post("/auth/login", json={"username": username, "password": password})


def _is_problem(response: Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


class TestSignIn:
    def test_login_sets_a_session_and_a_csrf_cookie(
        self,
        client: TestClient,
        runtime: Runtime,
        hospitals: Hospitals,
        person: Callable[..., str],
    ) -> None:
        person("lan", "technician", "BV-A", display_name="Nguyễn Thị Lan")
        response = _login(client, "lan")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["username"] == "lan"
        assert body["role"] == "technician"
        assert body["facility_ids"] == [hospitals.a]
        assert response.headers["cache-control"] == "no-store"

        cookies = _cookies(response)
        session, csrf = cookies["soi_session"], cookies["soi_csrf"]
        assert "httponly" in session
        assert "httponly" not in csrf
        for cookie in (session, csrf):
            assert cookie["samesite"] == "strict"
            assert cookie["path"] == "/"
            assert int(cookie["max-age"]) == 12 * 3600
            assert "secure" not in cookie  # plain HTTP on the loopback address
        assert csrf["value"] == body["csrf_token"]

        me = client.get("/auth/me")
        assert me.status_code == 200, me.text
        assert me.json() == {
            "username": "lan",
            "role": "technician",
            "actor_kind": "user",
            "facility_id": hospitals.a,
            "facility_ids": [hospitals.a],
        }
        [event] = _events(runtime, "auth.login")
        assert (event.actor, event.outcome, event.facility_id) == (
            "lan",
            AuditOutcome.SUCCESS,
            hospitals.a,
        )
        assert event.source_address == "testclient"

    def test_only_digests_are_kept(
        self, client: TestClient, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        person("root", "admin")
        response = _login(client, "root")
        session_id = _cookies(response)["soi_session"]["value"]
        with runtime.database.read() as db_session:
            [row] = db_session.scalars(select(BrowserSession)).all()
        assert row.session_hash == digest(session_id)
        assert row.csrf_hash == digest(response.json()["csrf_token"])

    def test_cookies_are_secure_when_configured(
        self, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        runtime.settings = runtime.settings.model_copy(update={"cookie_secure": True})
        person("root", "admin")
        with TestClient(create_app(runtime)) as client:
            response = _login(client, "root")
        assert response.status_code == 200
        cookies = _cookies(response)
        assert "secure" in cookies["soi_session"]
        assert "secure" in cookies["soi_csrf"]

    def test_a_form_signs_in_too(self, client: TestClient, person: Callable[..., str]) -> None:
        person("root", "admin")
        response = client.post("/auth/login", data={"username": "root", "password": PASSWORD})
        assert response.status_code == 200, response.text
        assert client.get("/auth/me").json()["role"] == "admin"

    @pytest.mark.parametrize(
        ("username", "password"), [("lan", "wrong password!"), ("nobody", PASSWORD)]
    )
    def test_wrong_password_or_unknown_user_is_401(
        self,
        client: TestClient,
        runtime: Runtime,
        person: Callable[..., str],
        username: str,
        password: str,
    ) -> None:
        person("lan", "admin")
        response = _login(client, username, password)
        body = _is_problem(response, 401)
        assert body["detail"] == "wrong username or password"
        assert "soi_session" not in _cookies(response)
        [event] = _events(runtime, "auth.login")
        assert (event.actor, event.outcome) == (username, AuditOutcome.FAILURE)
        assert event.detail["reason"] in {"wrong password", "unknown user"}

    def test_disabled_user_cannot_sign_in_and_loses_the_session(
        self, client: TestClient, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        person("lan", "admin")
        assert _login(client, "lan").status_code == 200
        set_user_disabled(runtime.database, actor=local_caller(), username="lan", disabled=True)
        _is_problem(client.get("/auth/me"), 401)
        body = _is_problem(_login(client, "lan"), 401)
        assert body["detail"] == "the account is disabled"
        assert [e.outcome for e in _events(runtime, "auth.login")] == [
            AuditOutcome.SUCCESS,
            AuditOutcome.REFUSED,
        ]

    def test_service_accounts_have_no_password(
        self, client: TestClient, person: Callable[..., str]
    ) -> None:
        person("ris", "integration")
        _is_problem(_login(client, "ris", "anything at all"), 401)

    def test_logout_ends_the_session(
        self, client: TestClient, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        person("root", "admin")
        csrf = _login(client, "root").json()["csrf_token"]
        response = client.post("/auth/logout", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 204
        cleared = _cookies(response)
        assert cleared["soi_session"]["max-age"] == "0"
        assert cleared["soi_csrf"]["max-age"] == "0"
        assert [e.actor for e in _events(runtime, "auth.logout")] == ["root"]
        _is_problem(client.get("/auth/me"), 401)

    @pytest.mark.parametrize(
        ("content", "content_type", "status"),
        [
            ("username=x", "text/plain", 415),
            ("{not json", "application/json", 400),
            ('{"username": "x"}', "application/json", 422),
            ('{"username": "x", "password": "y", "extra": 1}', "application/json", 422),
        ],
    )
    def test_malformed_sign_in_is_a_problem(
        self, client: TestClient, content: str, content_type: str, status: int
    ) -> None:
        response = client.post(
            "/auth/login", content=content, headers={"Content-Type": content_type}
        )
        _is_problem(response, status)


class TestCsrf:
    def test_unsafe_request_with_a_session_needs_the_csrf_token(
        self, client: TestClient, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        person("root", "admin")
        csrf = _login(client, "root").json()["csrf_token"]
        assert client.get("/auth/me").status_code == 200  # safe: no token needed

        missing = _is_problem(client.post("/auth/logout"), 403)
        assert missing["title"] == "CSRF token missing or wrong"
        _is_problem(client.post("/auth/logout", headers={"X-CSRF-Token": csrf[::-1]}), 403)
        assert client.get("/auth/me").status_code == 200  # the session survived

        assert client.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        refusals = _events(runtime, "auth.csrf")
        assert [(e.actor, e.outcome) for e in refusals] == [("root", AuditOutcome.REFUSED)] * 2
        assert [e.detail["reason"] for e in refusals] == ["missing CSRF token", "wrong CSRF token"]

    def test_the_csrf_token_of_another_session_is_refused(
        self, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        person("root", "admin")
        with TestClient(create_app(runtime)) as first, TestClient(create_app(runtime)) as second:
            token_one = _login(first, "root").json()["csrf_token"]
            _login(second, "root")
            _is_problem(second.post("/auth/logout", headers={"X-CSRF-Token": token_one}), 403)

    def test_bearer_requests_need_no_csrf_token(
        self, client: TestClient, person: Callable[..., str], token_of: Callable[[str], str]
    ) -> None:
        person("ris", "integration")
        assert client.post("/auth/logout", headers=bearer(token_of("ris"))).status_code == 204


class TestCrossSiteSignIn:
    """Login CSRF: another site's page posting a form to sign the browser in."""

    @pytest.mark.parametrize(
        "headers",
        [
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": "http://testserver.evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
        ],
        ids=["other-origin", "opaque-origin", "lookalike-host", "sec-fetch-site"],
    )
    def test_a_form_from_another_site_is_refused(
        self, client: TestClient, person: Callable[..., str], headers: dict[str, str]
    ) -> None:
        person("root", "admin")
        response = client.post(
            "/auth/login", data={"username": "root", "password": PASSWORD}, headers=headers
        )
        body = _is_problem(response, 403)
        assert body["title"] == "Cross-site sign-in refused"
        assert "soi_session" not in response.cookies
        assert client.get("/auth/me").status_code == 401

    def test_soi_s_own_page_and_scripts_sign_in(
        self, client: TestClient, person: Callable[..., str]
    ) -> None:
        person("root", "admin")
        own = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
        response = client.post(
            "/auth/login", json={"username": "root", "password": PASSWORD}, headers=own
        )
        assert response.status_code == 200, response.text
        assert _login(client, "root").status_code == 200  # no Origin: a script


class TestRateLimit:
    def test_five_failures_then_429_with_retry_after(
        self, client: TestClient, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        person("lan", "admin")
        for _ in range(5):
            _is_problem(_login(client, "lan", "wrong password!"), 401)
        response = _login(client, "lan")  # even the right password waits now
        body = _is_problem(response, 429)
        assert body["title"] == "Too many sign-in attempts"
        assert 0 < int(response.headers["retry-after"]) <= 300
        outcomes = [e.outcome for e in _events(runtime, "auth.login")]
        assert outcomes == [AuditOutcome.FAILURE] * 5 + [AuditOutcome.REFUSED]

    def test_failures_from_one_address_block_other_usernames(
        self, runtime: Runtime, person: Callable[..., str]
    ) -> None:
        runtime.settings = runtime.settings.model_copy(update={"login_max_failures_per_address": 3})
        person("lan", "admin")
        with TestClient(create_app(runtime)) as client:
            for name in ("a", "b", "c"):
                _is_problem(_login(client, name, "wrong password!"), 401)
            _is_problem(_login(client, "lan"), 429)


class TestTokens:
    def test_a_token_is_its_user_and_only_its_digest_is_kept(
        self,
        client: TestClient,
        runtime: Runtime,
        hospitals: Hospitals,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        person("pacs-b", "integration", "BV-B")
        token = token_of("pacs-b")
        response = client.get("/auth/me", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "username": "pacs-b",
            "role": "integration",
            "actor_kind": "token",
            "facility_id": hospitals.b,
            "facility_ids": [hospitals.b],
        }
        with runtime.database.read() as session:
            [row] = session.scalars(select(ApiToken)).all()
        assert row.token_hash == digest(token)
        assert token not in {row.token_hash, row.name}
        assert row.last_used_at is not None

    def test_expired_token_is_401_invalid_token(
        self,
        client: TestClient,
        runtime: Runtime,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        person("ris", "integration")
        token = token_of("ris")
        with runtime.database.write() as session:
            row = session.scalars(select(ApiToken)).one()
            row.expires_at = utcnow() - timedelta(seconds=1)
        response = client.get("/studies", headers=bearer(token))
        body = _is_problem(response, 401)
        assert body["detail"] == "the token has expired"
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="soi", error="invalid_token"')
        assert 'error_description="the token has expired"' in challenge

    def test_revoked_unknown_and_disabled(
        self,
        client: TestClient,
        runtime: Runtime,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        person("ris", "integration")
        kept, revoked = token_of("ris"), token_of("ris")
        with runtime.database.read() as session:
            revoked_id = session.scalars(
                select(ApiToken.id).where(ApiToken.token_hash == digest(revoked))
            ).one()
        revoke_user_token(runtime.database, actor=local_caller(), token_id=revoked_id)
        assert _is_problem(client.get("/auth/me", headers=bearer(revoked)), 401)["detail"] == (
            "the token has been revoked"
        )
        unknown = client.get("/auth/me", headers=bearer("soi_" + "x" * 43))
        assert _is_problem(unknown, 401)["detail"] == "the token is not known"

        set_user_disabled(runtime.database, actor=local_caller(), username="ris", disabled=True)
        assert _is_problem(client.get("/auth/me", headers=bearer(kept)), 401)["detail"] == (
            "the token's user is disabled"
        )
        set_user_disabled(runtime.database, actor=local_caller(), username="ris", disabled=False)
        assert client.get("/auth/me", headers=bearer(kept)).status_code == 200

    @pytest.mark.parametrize("header", ["Basic cm9vdDpyb290", "Bearer", "Bearer    "])
    def test_malformed_authorization_is_401_invalid_request(
        self, client: TestClient, header: str
    ) -> None:
        response = client.get("/studies", headers={"Authorization": header})
        _is_problem(response, 401)
        assert 'error="invalid_request"' in response.headers["www-authenticate"]

    @pytest.mark.parametrize("path", ["/studies", "/studies/1.2.3", "/auth/me", "/admin/audit"])
    def test_no_credentials_is_401(self, client: TestClient, path: str) -> None:
        response = client.get(path)
        body = _is_problem(response, 401)
        assert body["title"] == "Not signed in"
        assert response.headers["www-authenticate"] == 'Bearer realm="soi"'

    def test_health_needs_no_credentials(self, client: TestClient) -> None:
        assert client.get("/health").status_code in (200, 503)

"""Bad input and attacks against the HTTP API, in process, on both databases.

Each is answered with a precise 4xx and a problem details body (or, for a STOW-RS
instance, its failure in the response data set), stores nothing it should not, never
shows one hospital's data to the other's staff, and leaves the service answering.

Two hospitals hold a study each, stored over STOW-RS by their technicians; every
request below is sent by hospital A's technician unless it says otherwise, and B's
UIDs, patient ID and name must never come back to it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from pydicom import Dataset
from sqlalchemy import func, select

from soi.api import create_app
from soi.runtime import Runtime
from soi.settings import Settings
from store import ApiToken, AuditEvent, AuditOutcome, Instance, Study, utcnow
from tests.soi.api.conftest import Hospitals
from tests.support.auth import PASSWORD, bearer
from tests.support.data import make_cr

PROBLEM = "application/problem+json"
DICOM_JSON = "application/dicom+json"
BOUNDARY = "soi-attack"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
STUDY_A = "1.2.826.0.1.3680043.8.498.3001"
STUDY_B = "1.2.826.0.1.3680043.8.498.3002"
MISSING = "1.2.826.0.1.3680043.8.498.3999"
CCCD = "001099012345"


def _part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _multipart(*parts: tuple[str, bytes]) -> bytes:
    body = b""
    for content_type, data in parts:
        body += f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def _dicom(*datasets: Dataset) -> bytes:
    return _multipart(*(("application/dicom", _part10(ds)) for ds in datasets))


def _problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def _failures(response: Response) -> list[int]:
    assert response.headers["content-type"] == DICOM_JSON
    return [
        int(item.FailureReason)
        for item in Dataset.from_json(response.json()).get("FailedSOPSequence", [])
    ]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """STOW-RS requests up to 1 MiB."""
    return settings.model_copy(update={"dicomweb_max_request_mb": 1})


@dataclass
class World:
    """What each hospital stored, and its people's credentials."""

    runtime: Runtime
    a: Dataset
    b: Dataset
    headers: dict[str, dict[str, str]]

    @property
    def secrets_of_b(self) -> tuple[str, ...]:
        """What A's staff must never be shown."""
        b = self.b
        return (
            STUDY_B,
            str(b.SeriesInstanceUID),
            str(b.SOPInstanceUID),
            str(b.PatientID),
            "LE^VAN BINH",
            "LE VAN BINH",
        )

    def stored(self) -> int:
        with self.runtime.database.read() as session:
            return int(session.scalar(select(func.count()).select_from(Instance)) or 0)

    def studies(self) -> dict[str, str]:
        """Study UID → facility code of every stored study."""
        with self.runtime.database.read() as session:
            return {s.study_instance_uid: s.facility.code for s in session.scalars(select(Study))}


@pytest.fixture
def world(
    client: TestClient,
    runtime: Runtime,
    hospitals: Hospitals,
    person: Callable[..., str],
    token_of: Callable[[str], str],
) -> World:
    headers = {
        "tech-a": bearer(token_of(person("tech-a", "technician", "BV-A"))),
        "tech-b": bearer(token_of(person("tech-b", "technician", "BV-B"))),
        "admin": bearer(token_of(person("root", "admin"))),
    }
    a = make_cr(study_instance_uid=STUDY_A, patient_id="A-0001", patient_name="TRAN^THI AN", seed=1)
    b = make_cr(study_instance_uid=STUDY_B, patient_id="B-0002", patient_name="LE^VAN BINH", seed=2)
    for user, ds in (("tech-a", a), ("tech-b", b)):
        stored = client.post(
            "/dicomweb/studies",
            content=_dicom(ds),
            headers={**headers[user], "Content-Type": STOW_TYPE},
        )
        assert stored.status_code == 200, stored.text
    return World(runtime, a, b, headers)


def _still_up(client: TestClient, world: World) -> None:
    """The service answers, and A's technician still sees A's studies, and only those."""
    found = client.get("/dicomweb/studies", headers=world.headers["tech-a"])
    assert found.status_code == 200, found.text
    seen = {item["0020000D"]["Value"][0] for item in found.json()}
    stored = world.studies()
    assert STUDY_A in seen
    assert seen == {uid for uid, code in stored.items() if code == "BV-A"}
    assert client.get("/studies", headers=world.headers["admin"]).json()["total"] == len(stored)


class TestQido:
    """SQL-ish and script-ish values in every QIDO-RS parameter, at every level."""

    HOSTILE: ClassVar[tuple[str, ...]] = (
        "' OR 1=1 --",
        "' OR '1'='1",
        "%",
        "_",
        "*' UNION SELECT username, password_hash FROM users --",
        "1; DROP TABLE studies; --",
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "\x00",
        "\\",
        "9" * 30,
        "x" * 3000,
    )
    MATCHING: ClassVar[tuple[str, ...]] = (
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "AccessionNumber",
        "StudyDescription",
        "StudyDate",
        "StudyTime",
        "ModalitiesInStudy",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "00100020",
    )
    OTHERS: ClassVar[tuple[str, ...]] = (
        "includefield",
        "limit",
        "offset",
        "fuzzymatching",
        "emptyvaluematching",
        "' OR 1=1--",
        "<script>",
    )

    @pytest.mark.parametrize(
        "path",
        [
            "/dicomweb/studies",
            "/dicomweb/series",
            "/dicomweb/instances",
            "/dicomweb/studies/{study}/series",
            "/dicomweb/studies/{study}/instances",
            "/dicomweb/studies/{study}/series/{series}/instances",
        ],
    )
    def test_hostile_values_match_nothing_or_are_refused(
        self, client: TestClient, world: World, path: str
    ) -> None:
        path = path.format(study=STUDY_A, series=world.a.SeriesInstanceUID)
        headers = world.headers["tech-a"]
        for name in (*self.MATCHING, *self.OTHERS):
            for value in self.HOSTILE:
                answer = client.get(path, params={name: value}, headers=headers)
                where = (path, name, value[:40], answer.text[:300])
                if answer.status_code == 400:
                    _problem(answer, 400)
                    continue
                if name in self.MATCHING:
                    # A hostile value is a literal: it matches nothing.
                    assert answer.status_code == 204, where
                else:
                    assert answer.status_code in (200, 204), where
                if answer.status_code == 204:
                    assert answer.content == b"", where
                    continue
                assert answer.headers["content-type"] == DICOM_JSON, where
                assert not any(secret in answer.text for secret in world.secrets_of_b), where
        _still_up(client, world)
        assert world.stored() == 2

    def test_a_wildcard_search_stays_within_the_facility(
        self, client: TestClient, world: World
    ) -> None:
        headers = world.headers["tech-a"]
        for path in ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"):
            for params in (
                {"PatientID": "*"},
                {"PatientName": "*"},
                {"PatientID": "B-0002"},
                {"StudyInstanceUID": STUDY_B},
                {"StudyInstanceUID": f"{STUDY_A},{STUDY_B}"},
                {"includefield": "all", "limit": "1000"},
            ):
                answer = client.get(path, params=params, headers=headers)
                assert answer.status_code in (200, 204), answer.text
                assert not any(secret in answer.text for secret in world.secrets_of_b), params

    @pytest.mark.parametrize(
        "path", ["/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"]
    )
    def test_a_study_key_filters_every_level(
        self, client: TestClient, world: World, path: str
    ) -> None:
        """ModalitiesInStudy at the series and instance levels (a series search once
        failed on it)."""
        headers = world.headers["tech-a"]
        found = client.get(path, params={"ModalitiesInStudy": "CR"}, headers=headers)
        assert found.status_code == 200, found.text
        assert {item["0020000D"]["Value"][0] for item in found.json()} == {STUDY_A}
        none = client.get(path, params={"ModalitiesInStudy": "MR"}, headers=headers)
        assert none.status_code == 204, none.text

    @pytest.mark.parametrize(
        "path",
        [
            "/dicomweb/studies/{uid}",
            "/dicomweb/studies/{uid}/metadata",
            "/dicomweb/studies/{uid}/series",
            "/dicomweb/studies/{uid}/instances",
            "/studies/{uid}",
            "/studies/{uid}/results",
        ],
    )
    def test_hostile_and_foreign_paths(self, client: TestClient, world: World, path: str) -> None:
        headers = world.headers["tech-a"]
        for uid in ("1.2.3'--", "1.2.3%20OR%201=1", "%3Cscript%3E", "1." + "9" * 80):
            status = client.get(path.format(uid=uid), headers=headers).status_code
            assert status in (400, 404, 422), (path, uid)
        foreign = client.get(path.format(uid=STUDY_B), headers=headers)
        missing = client.get(path.format(uid=MISSING), headers=headers)
        assert _problem(foreign, 404)["title"] == _problem(missing, 404)["title"]
        assert foreign.json()["detail"] == missing.json()["detail"].replace(MISSING, STUDY_B)


class TestCredentials:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/dicomweb/studies"),
            ("GET", f"/dicomweb/studies/{STUDY_A}/metadata"),
            ("GET", f"/studies/{STUDY_A}/results"),
            ("GET", "/studies"),
            ("POST", "/dicomweb/studies"),
        ],
    )
    def test_an_expired_token_is_401_and_changes_nothing(
        self, client: TestClient, world: World, method: str, path: str
    ) -> None:
        with world.runtime.database.write() as session:
            for row in session.scalars(select(ApiToken)):
                row.expires_at = utcnow() - timedelta(seconds=1)
        answer = client.request(
            method,
            path,
            content=_dicom(make_cr(seed=9)) if method == "POST" else None,
            headers={**world.headers["tech-a"], "Content-Type": STOW_TYPE},
        )
        body = _problem(answer, 401)
        assert body["detail"] == "the token has expired"
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        assert STUDY_A not in answer.text.replace(path, "")
        assert world.stored() == 2

    def test_a_stow_with_a_session_needs_its_own_csrf_token(
        self, runtime: Runtime, world: World
    ) -> None:
        new = make_cr(patient_id="A-0003", seed=3)
        with TestClient(create_app(runtime)) as browser, TestClient(create_app(runtime)) as other:
            mine = browser.post("/auth/login", json={"username": "tech-a", "password": PASSWORD})
            theirs = other.post("/auth/login", json={"username": "tech-a", "password": PASSWORD})
            assert mine.status_code == theirs.status_code == 200
            stow = {"Content-Type": STOW_TYPE}
            missing = browser.post("/dicomweb/studies", content=_dicom(new), headers=stow)
            _problem(missing, 403)
            replayed = browser.post(
                "/dicomweb/studies",
                content=_dicom(new),
                headers={**stow, "X-CSRF-Token": theirs.json()["csrf_token"]},
            )
            _problem(replayed, 403)
            assert world.stored() == 2

            token = mine.json()["csrf_token"]
            accepted = browser.post(
                "/dicomweb/studies", content=_dicom(new), headers={**stow, "X-CSRF-Token": token}
            )
            assert accepted.status_code == 200, accepted.text
            assert world.stored() == 3
            assert browser.post("/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204

            # The same request again, cookie and token as captured: the session is over.
            browser.cookies.set("soi_session", _session_cookie(mine))
            again = browser.post(
                "/dicomweb/studies",
                content=_dicom(make_cr(patient_id="A-0004", seed=4)),
                headers={**stow, "X-CSRF-Token": token},
            )
            _problem(again, 401)
        assert world.stored() == 3
        with runtime.database.read() as session:
            refusals = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "auth.csrf")
            ).all()
        assert [(e.actor, e.outcome) for e in refusals] == [("tech-a", AuditOutcome.REFUSED)] * 2


def _session_cookie(login: Response) -> str:
    for header in login.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "soi_session":
            return rest.split(";", 1)[0]
    raise AssertionError("no soi_session cookie was set")


class TestStow:
    @pytest.mark.parametrize(
        "content_type",
        [
            None,
            "application/dicom",
            "application/json",
            "text/html; charset=utf-8",
            f"multipart/form-data; boundary={BOUNDARY}",
            f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
        ],
    )
    def test_wrong_content_type_is_415(
        self, client: TestClient, world: World, content_type: str | None
    ) -> None:
        headers = dict(world.headers["tech-a"])
        if content_type is not None:
            headers["Content-Type"] = content_type
        answer = client.post("/dicomweb/studies", content=_dicom(make_cr(seed=5)), headers=headers)
        _problem(answer, 415)
        assert world.stored() == 2

    def test_a_multipart_body_without_its_boundary_is_400(
        self, client: TestClient, world: World
    ) -> None:
        answer = client.post(
            "/dicomweb/studies",
            content=_dicom(make_cr(seed=5)),
            headers={
                **world.headers["tech-a"],
                "Content-Type": 'multipart/related; type="application/dicom"',
            },
        )
        assert "boundary" in _problem(answer, 400)["detail"]
        assert world.stored() == 2

    def test_non_dicom_parts_fail_each_and_the_rest_is_stored(
        self, client: TestClient, world: World, tmp_path: Path
    ) -> None:
        good = make_cr(patient_id="A-0005", seed=6)
        hostile_uid = make_cr(patient_id="A-0006", seed=7)
        hostile_uid.SOPInstanceUID = "1.2.3/../../../../tmp/soi-pwned"
        hostile_uid.file_meta.MediaStorageSOPInstanceUID = hostile_uid.SOPInstanceUID
        body = _multipart(
            ("text/plain", b"hello"),
            ("application/dicom", b"<script>alert(1)</script>"),
            ("application/dicom", b"DICM" + b"\0" * 300),
            ("application/dicom", _part10(hostile_uid)),
            ("application/dicom", _part10(good)),
        )
        headers = {**world.headers["tech-a"], "Content-Type": STOW_TYPE}
        answer = client.post("/dicomweb/studies", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        failures = _failures(answer)
        assert len(failures) == 4
        assert all(code >= 0xA000 or code == 0x0124 for code in failures), failures
        stored = Dataset.from_json(answer.json()).ReferencedSOPSequence
        assert [str(item.ReferencedSOPInstanceUID) for item in stored] == [good.SOPInstanceUID]
        assert world.stored() == 3
        assert not Path("/tmp/soi-pwned").exists()

        only_bad = client.post(
            "/dicomweb/studies", content=_multipart(("application/dicom", b"x")), headers=headers
        )
        assert only_bad.status_code == 409
        assert _failures(only_bad) == [0xC210]
        truncated = client.post("/dicomweb/studies", content=body[:-20], headers=headers)
        _problem(truncated, 400)
        assert world.stored() == 3
        _still_up(client, world)

    def test_an_oversized_upload_is_413_and_leaves_nothing(
        self, client: TestClient, world: World
    ) -> None:
        big = _multipart(("application/dicom", b"\0" * (3 << 19)))  # 1.5 MiB; the limit is 1
        headers = {**world.headers["tech-a"], "Content-Type": STOW_TYPE}
        declared = client.post("/dicomweb/studies", content=big, headers=headers)
        assert "1 MiB" in _problem(declared, 413)["detail"] or _problem(declared, 413)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 1 << 16):
                yield big[start : start + (1 << 16)]

        streamed = client.post("/dicomweb/studies", content=chunks(), headers=headers)
        _problem(streamed, 413)
        assert world.stored() == 2
        spool = world.runtime.settings.data_dir / "tmp"
        assert not spool.exists() or list(spool.iterdir()) == []
        _still_up(client, world)

    def test_another_facility_s_study_is_refused(self, client: TestClient, world: World) -> None:
        joining = make_cr(study_instance_uid=STUDY_A, patient_id="B-0009", seed=8)
        headers = {**world.headers["tech-b"], "Content-Type": STOW_TYPE}
        for path in ("/dicomweb/studies", f"/dicomweb/studies/{STUDY_A}"):
            refused = client.post(path, content=_dicom(joining), headers=headers)
            assert refused.status_code == 409, refused.text
            assert _failures(refused) == [0x0124]
            assert "TRAN" not in refused.text
        # B's own study under A's study UID in the path: not that study, refused too.
        own = make_cr(study_instance_uid=STUDY_B, patient_id="B-0002", seed=10)
        crossed = client.post(f"/dicomweb/studies/{STUDY_A}", content=_dicom(own), headers=headers)
        assert crossed.status_code == 409
        assert world.stored() == 2
        assert world.studies() == {STUDY_A: "BV-A", STUDY_B: "BV-B"}
        a_series = client.get(
            f"/dicomweb/studies/{STUDY_A}/series", headers=world.headers["tech-a"]
        )
        assert [s["00201209"]["Value"][0] for s in a_series.json()] == [1]

    def test_a_study_for_a_patient_of_another_facility_stays_with_its_sender(
        self, client: TestClient, world: World
    ) -> None:
        """The same person (one CCCD) at both hospitals: each sees its own study, and
        neither the other's study nor the record number the other issued."""
        at_a = make_cr(patient_id=CCCD, issuer="CCCD", patient_name="PHAM^VAN CUONG", seed=11)
        at_a.OtherPatientIDsSequence = [Dataset()]
        at_a.OtherPatientIDsSequence[0].PatientID = "A-7777"
        at_a.OtherPatientIDsSequence[0].IssuerOfPatientID = ""
        at_b = make_cr(patient_id=CCCD, issuer="CCCD", patient_name="PHAM^VAN CUONG", seed=12)
        for user, ds in (("tech-a", at_a), ("tech-b", at_b)):
            answer = client.post(
                "/dicomweb/studies",
                content=_dicom(ds),
                headers={**world.headers[user], "Content-Type": STOW_TYPE},
            )
            assert answer.status_code == 200, answer.text
        studies = world.studies()
        assert studies[str(at_a.StudyInstanceUID)] == "BV-A"
        assert studies[str(at_b.StudyInstanceUID)] == "BV-B"

        tech_b = world.headers["tech-b"]
        found = client.get("/dicomweb/studies", params={"PatientID": CCCD}, headers=tech_b)
        assert [s["0020000D"]["Value"][0] for s in found.json()] == [at_b.StudyInstanceUID]
        assert (
            client.get(
                "/dicomweb/studies", params={"PatientID": "A-7777"}, headers=tech_b
            ).status_code
            == 204
        )
        for path in (
            f"/studies/{at_b.StudyInstanceUID}",
            f"/studies/{at_b.StudyInstanceUID}/results",
        ):
            own = client.get(path, headers=tech_b)
            assert own.status_code == 200, own.text
            assert "A-7777" not in own.text
            assert "urn:soi:mrn:BV-A" not in own.text
        _problem(client.get(f"/studies/{at_a.StudyInstanceUID}/results", headers=tech_b), 404)


class TestHttp:
    @pytest.mark.parametrize(
        ("path", "allowed"),
        [
            ("/dicomweb/studies", "GET, HEAD, POST"),
            (f"/dicomweb/studies/{STUDY_A}", "GET, HEAD, POST"),
            (f"/studies/{STUDY_A}/results", "GET, HEAD"),
        ],
    )
    def test_an_unknown_method_is_405_naming_every_allowed_one(
        self, client: TestClient, world: World, path: str, allowed: str
    ) -> None:
        for method in ("OPTIONS", "PUT", "DELETE"):
            answer = client.request(method, path, headers=world.headers["tech-a"])
            _problem(answer, 405)
            assert answer.headers["allow"] == allowed
        assert world.stored() == 2

    @pytest.mark.parametrize(
        "params",
        [
            {"offset": str(2**63)},
            {"offset": "-1"},
            {"limit": "0"},
            {"limit": "1e9"},
            {"limit": "' OR 1=1 --"},
        ],
    )
    def test_paging_out_of_range_is_422(
        self, client: TestClient, world: World, params: dict[str, str]
    ) -> None:
        _problem(client.get("/studies", params=params, headers=world.headers["admin"]), 422)
        _still_up(client, world)

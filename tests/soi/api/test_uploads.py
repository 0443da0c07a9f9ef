"""``/uploads``: the tus 1.0.0 routes, keeping what arrives, ZIPs, receipts, scoping.

Every test runs the real app on a real database; instances arrive through the same
STOW-RS service and ingest as DICOMweb. The test that stops Soi mid-upload runs
``soi serve`` as a process and resumes with the ``tuspy`` client.
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom import Dataset
from sqlalchemy import select
from tusclient import client as tus_client

from soi.api import create_app
from soi.runtime import Runtime
from soi.services.upload_store import Upload, UploadState, UploadStore
from store import AuditEvent, AuditOutcome, Instance, utcnow
from tests.soi.api.conftest import Hospitals
from tests.support.auth import PASSWORD, bearer
from tests.support.data import make_cr
from tests.support.soi_process import SoiProcess

PROBLEM = "application/problem+json"
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def _part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _metadata(**values: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def _create(
    client: TestClient, headers: dict[str, str], length: int, **metadata: str
) -> httpx.Response:
    return client.post(
        "/uploads",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": _metadata(**metadata),
        },
    )


def _patch(
    client: TestClient, headers: dict[str, str], location: str, offset: int, data: bytes
) -> httpx.Response:
    return client.patch(
        location,
        content=data,
        headers={**headers, **TUS, "Content-Type": OCTETS, "Upload-Offset": str(offset)},
    )


def _send(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    *,
    name: str,
    batch: str,
    chunk: int = 64 * 1024,
) -> str:
    """Upload ``data`` in chunks; return its location."""
    created = _create(client, headers, len(data), filename=name, relativePath=name, batch=batch)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    offset = 0
    while offset < len(data):
        answer = _patch(client, headers, location, offset, data[offset : offset + chunk])
        assert answer.status_code == 204, answer.text
        offset = int(answer.headers["upload-offset"])
    return location


def _receipt(client: TestClient, headers: dict[str, str], batch: str) -> dict[str, object]:
    answer = client.get(f"/uploads/batches/{batch}", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def _items(receipt: dict[str, object]) -> list[dict[str, str]]:
    uploads = receipt["uploads"]
    assert isinstance(uploads, list)
    return [item for upload in uploads for item in upload["items"]]


def _is_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


def _upload(store: UploadStore, location: str) -> Upload:
    """An upload as its state file records it."""
    upload = store.load(location.rsplit("/", 1)[1])
    assert upload is not None
    return upload


def _kept(runtime: Runtime, sop_instance_uid: str) -> bool:
    with runtime.database.read() as session:
        found = session.scalar(
            select(Instance.id).where(Instance.sop_instance_uid == sop_instance_uid)
        )
    return found is not None


def _events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            ).all()
        )


@pytest.fixture
def lan(
    hospitals: Hospitals, person: Callable[..., str], token_of: Callable[[str], str]
) -> dict[str, str]:
    """A technician of BV-A, by API token."""
    person("lan", "technician", "BV-A")
    return bearer(token_of("lan"))


@pytest.fixture
def minh(
    hospitals: Hospitals, person: Callable[..., str], token_of: Callable[[str], str]
) -> dict[str, str]:
    """A technician of BV-B, by API token."""
    person("minh", "technician", "BV-B")
    return bearer(token_of("minh"))


class TestTusCore:
    def test_options_says_what_the_server_supports(self, client: TestClient) -> None:
        answer = client.options("/uploads")
        assert answer.status_code == 204
        assert answer.headers["tus-version"] == "1.0.0"
        assert set(answer.headers["tus-extension"].split(",")) == {
            "creation",
            "termination",
            "expiration",
        }
        assert int(answer.headers["tus-max-size"]) == 2048 * 1024 * 1024

    def test_a_file_sent_in_pieces_is_kept_and_on_the_receipt(
        self, client: TestClient, runtime: Runtime, hospitals: Hospitals, lan: dict[str, str]
    ) -> None:
        ds = make_cr(rows=128, columns=128)
        data = _part10(ds)
        created = _create(client, lan, len(data), filename="ảnh 1.dcm", batch="b1")
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location.startswith("/uploads/")
        assert created.headers["tus-resumable"] == "1.0.0"
        assert "upload-expires" in created.headers

        head = client.head(location, headers={**lan, **TUS})
        assert head.status_code == 200
        assert (head.headers["upload-offset"], head.headers["upload-length"]) == (
            "0",
            str(len(data)),
        )
        assert head.headers["cache-control"] == "no-store"

        half = len(data) // 2
        first = _patch(client, lan, location, 0, data[:half])
        assert first.status_code == 204, first.text
        assert first.headers["upload-offset"] == str(half)
        assert client.head(location, headers={**lan, **TUS}).headers["upload-offset"] == str(half)
        assert not _kept(runtime, ds.SOPInstanceUID)

        last = _patch(client, lan, location, half, data[half:])
        assert last.status_code == 204, last.text
        assert last.headers["upload-offset"] == str(len(data))
        assert _kept(runtime, ds.SOPInstanceUID)

        receipt = _receipt(client, lan, "b1")
        assert receipt["complete"] is True
        assert receipt["studies"] == [ds.StudyInstanceUID]
        [item] = _items(receipt)
        assert item["name"] == "ảnh 1.dcm"
        assert (item["outcome"], item["sop_instance_uid"]) == ("stored", ds.SOPInstanceUID)
        assert receipt["totals"] == {
            "files": 1,
            "pending": 0,
            "stored": 1,
            "already-stored": 0,
            "refused": 0,
            "skipped": 0,
        }
        study = client.get(f"/studies/{ds.StudyInstanceUID}", headers=lan)
        assert study.status_code == 200
        assert study.json()["facility"] == "BV-A"
        [keep] = _events(runtime, "upload.keep")
        assert (keep.actor, keep.outcome, keep.facility_id) == (
            "lan",
            AuditOutcome.SUCCESS,
            hospitals.a,
        )
        assert keep.study_instance_uid == ds.StudyInstanceUID
        [store] = _events(runtime, "dicomweb.store")
        assert store.sop_instance_uid == ds.SOPInstanceUID

    def test_the_same_file_again_is_already_stored(
        self, client: TestClient, lan: dict[str, str]
    ) -> None:
        data = _part10(make_cr())
        _send(client, lan, data, name="a.dcm", batch="first")
        _send(client, lan, data, name="a.dcm", batch="again")
        [item] = _items(_receipt(client, lan, "again"))
        assert item["outcome"] == "already-stored"

    def test_a_file_that_is_not_dicom_is_refused_with_its_reason(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        _send(client, lan, b"hello, not an image\n" * 20, name="notes.txt", batch="txt")
        receipt = _receipt(client, lan, "txt")
        [item] = _items(receipt)
        assert (item["outcome"], item["code"], item["status"]) == ("refused", "not-dicom", "0xC210")
        assert "not a DICOM file" in item["reason"]
        assert receipt["studies"] == []
        [keep] = _events(runtime, "upload.keep")
        assert keep.outcome == AuditOutcome.REFUSED
        assert keep.detail["refused"][0]["code"] == "not-dicom"

    def test_an_instance_of_another_facilitys_study_is_refused(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str], minh: dict[str, str]
    ) -> None:
        ds = make_cr()
        _send(client, minh, _part10(ds), name="b.dcm", batch="theirs")
        intruder = make_cr(study_instance_uid=ds.StudyInstanceUID)
        _send(client, lan, _part10(intruder), name="a.dcm", batch="mine")
        [item] = _items(_receipt(client, lan, "mine"))
        assert (item["outcome"], item["code"], item["status"]) == (
            "refused",
            "other-facility",
            "0x0124",
        )
        assert not _kept(runtime, intruder.SOPInstanceUID)

    def test_a_dicomdir_is_skipped(self, client: TestClient, lan: dict[str, str]) -> None:
        _send(client, lan, b"\0" * 200, name="DICOMDIR", batch="dir")
        [item] = _items(_receipt(client, lan, "dir"))
        assert (item["outcome"], item["code"]) == ("skipped", "dicomdir")

    def test_an_empty_file_is_refused_at_once(
        self, client: TestClient, lan: dict[str, str]
    ) -> None:
        created = _create(client, lan, 0, filename="empty.dcm", batch="empty")
        assert created.status_code == 201
        [item] = _items(_receipt(client, lan, "empty"))
        assert (item["outcome"], item["reason"]) == ("refused", "the file is empty")

    def test_termination_removes_the_upload(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        location = _create(client, lan, 1000, filename="x.dcm").headers["location"]
        assert _patch(client, lan, location, 0, b"\0" * 100).status_code == 204
        assert client.delete(location, headers={**lan, **TUS}).status_code == 204
        assert client.head(location, headers={**lan, **TUS}).status_code == 404  # HEAD: no body
        assert [p for p in runtime.settings.uploads_dir.rglob("*") if p.is_file()] == []
        assert len(_events(runtime, "upload.terminate")) == 1


class TestDurability:
    """What a crash, or a client that goes away, leaves behind."""

    @staticmethod
    def _store(client: TestClient) -> UploadStore:
        store: UploadStore = client.app.state.uploads  # type: ignore[attr-defined]
        return store

    def test_bytes_that_arrived_before_the_client_went_away_count(
        self, client: TestClient, lan: dict[str, str]
    ) -> None:
        data = _part10(make_cr())
        location = _create(client, lan, len(data), filename="a.dcm").headers["location"]
        store = self._store(client)
        upload = _upload(store, location)

        async def cut_short() -> AsyncIterator[bytes]:  # the body of a dropped connection
            yield data[:1000]
            yield data[1000:3000]

        appended = asyncio.run(store.append(upload, offset=0, chunks=cut_short()))
        assert appended.offset == 3000
        assert client.head(location, headers={**lan, **TUS}).headers["upload-offset"] == "3000"
        assert _patch(client, lan, location, 3000, data[3000:]).status_code == 204

    def test_bytes_past_the_recorded_offset_are_cut_off(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        ds = make_cr()
        data = _part10(ds)
        location = _create(client, lan, len(data), filename="a.dcm", batch="cut").headers[
            "location"
        ]
        assert _patch(client, lan, location, 0, data[:2000]).status_code == 204
        # Soi died while writing the next piece: bytes on disk that were never recorded.
        part = runtime.settings.uploads_dir / f"{location.rsplit('/', 1)[1]}.part"
        with part.open("ab") as handle:
            handle.write(b"\xff" * 5000)
        assert client.head(location, headers={**lan, **TUS}).headers["upload-offset"] == "2000"
        assert _patch(client, lan, location, 2000, data[2000:]).status_code == 204
        [item] = _items(_receipt(client, lan, "cut"))
        assert (item["outcome"], item["sop_instance_uid"]) == ("stored", ds.SOPInstanceUID)

    def test_an_upload_received_but_not_kept_is_kept_by_its_receipt(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        ds = make_cr()
        data = _part10(ds)
        location = _create(client, lan, len(data), filename="a.dcm", batch="late").headers[
            "location"
        ]
        store = self._store(client)
        upload = _upload(store, location)

        async def whole() -> AsyncIterator[bytes]:
            yield data

        # Every byte is in, and Soi stops before keeping the file.
        received = asyncio.run(store.append(upload, offset=0, chunks=whole()))
        assert received.state is UploadState.RECEIVED
        assert not _kept(runtime, ds.SOPInstanceUID)
        receipt = _receipt(client, lan, "late")
        [item] = _items(receipt)
        assert item["outcome"] == "stored"
        assert receipt["complete"] is True
        assert _kept(runtime, ds.SOPInstanceUID)


class TestTusErrors:
    def test_a_patch_that_is_not_offset_octet_stream_is_415(
        self, client: TestClient, lan: dict[str, str]
    ) -> None:
        location = _create(client, lan, 10, filename="x").headers["location"]
        answer = client.patch(
            location,
            content=b"0123456789",
            headers={
                **lan,
                **TUS,
                "Content-Type": "application/octet-stream",
                "Upload-Offset": "0",
            },
        )
        _is_problem(answer, 415)
        assert client.head(location, headers={**lan, **TUS}).headers["upload-offset"] == "0"

    def test_a_patch_at_the_wrong_offset_is_409(
        self, client: TestClient, lan: dict[str, str]
    ) -> None:
        location = _create(client, lan, 10, filename="x").headers["location"]
        assert _patch(client, lan, location, 0, b"01234").status_code == 204
        body = _is_problem(_patch(client, lan, location, 0, b"01234"), 409)
        assert "offset 5" in str(body["detail"])
        _is_problem(_patch(client, lan, location, 7, b"789"), 409)
        assert client.head(location, headers={**lan, **TUS}).headers["upload-offset"] == "5"

    def test_a_body_longer_than_the_upload_is_400_and_nothing_of_it_counts(
        self, client: TestClient, lan: dict[str, str]
    ) -> None:
        location = _create(client, lan, 10, filename="x").headers["location"]
        _is_problem(_patch(client, lan, location, 0, b"0123456789ABC"), 400)
        assert client.head(location, headers={**lan, **TUS}).headers["upload-offset"] == "0"

    def test_an_upload_over_the_limit_is_413(
        self, runtime: Runtime, hospitals: Hospitals, lan: dict[str, str]
    ) -> None:
        runtime.settings = runtime.settings.model_copy(update={"upload_max_mb": 1})
        with TestClient(create_app(runtime)) as client:
            body = _is_problem(_create(client, lan, 1024 * 1024 + 1, filename="big.zip"), 413)
            assert "upload_max_mb" in str(body["detail"])
            assert _create(client, lan, 1024 * 1024, filename="ok.zip").status_code == 201
            assert client.options("/uploads").headers["tus-max-size"] == str(1024 * 1024)

    @pytest.mark.parametrize("version", [None, "0.2.2"])
    def test_another_tus_version_is_412(
        self, client: TestClient, lan: dict[str, str], version: str | None
    ) -> None:
        headers = {**lan, "Upload-Length": "10"}
        if version:
            headers["Tus-Resumable"] = version
        answer = client.post("/uploads", headers=headers)
        _is_problem(answer, 412)
        assert answer.headers["tus-version"] == "1.0.0"

    @pytest.mark.parametrize(
        ("header", "value"),
        [
            ("Upload-Length", "-1"),
            ("Upload-Length", "ten"),
            ("Upload-Metadata", "filename ###"),
            ("Upload-Metadata", "batch " + base64.b64encode(b"../x").decode()),
        ],
    )
    def test_malformed_creation_headers_are_400(
        self, client: TestClient, lan: dict[str, str], header: str, value: str
    ) -> None:
        headers = {**lan, **TUS, "Upload-Length": "10", header: value}
        _is_problem(client.post("/uploads", headers=headers), 400)

    def test_without_credentials_is_401(self, client: TestClient) -> None:
        _is_problem(client.post("/uploads", headers={**TUS, "Upload-Length": "10"}), 401)

    def test_a_researcher_may_not_upload(
        self, client: TestClient, person: Callable[..., str], token_of: Callable[[str], str]
    ) -> None:
        person("hoa", "researcher")
        _is_problem(_create(client, bearer(token_of("hoa")), 10, filename="x"), 403)


class TestScoping:
    def test_another_users_upload_and_batch_are_404(
        self,
        client: TestClient,
        runtime: Runtime,
        lan: dict[str, str],
        minh: dict[str, str],
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        data = _part10(make_cr())
        location = _create(client, lan, len(data), filename="a.dcm", batch="lan-1").headers[
            "location"
        ]
        assert _patch(client, lan, location, 0, data[:100]).status_code == 204
        person("thu", "technician", "BV-A")  # the same hospital, another person
        for other in (minh, bearer(token_of("thu"))):
            assert (
                client.head(location, headers={**other, **TUS}).status_code == 404
            )  # HEAD: no body
            _is_problem(_patch(client, other, location, 100, data[100:]), 404)
            _is_problem(client.delete(location, headers={**other, **TUS}), 404)
            _is_problem(client.get("/uploads/batches/lan-1", headers=other), 404)
        assert client.head(location, headers={**lan, **TUS}).headers["upload-offset"] == "100"

    def test_a_session_needs_the_csrf_token_to_upload(
        self, client: TestClient, hospitals: Hospitals, person: Callable[..., str]
    ) -> None:
        person("lan", "technician", "BV-A")
        signed = client.post("/auth/login", json={"username": "lan", "password": PASSWORD})
        assert signed.status_code == 200
        csrf = signed.json()["csrf_token"]
        _is_problem(_create(client, {}, 10, filename="x"), 403)
        created = _create(client, {"X-CSRF-Token": csrf}, 10, filename="x")
        assert created.status_code == 201
        location = created.headers["location"]
        assert client.head(location, headers=TUS).status_code == 200  # HEAD changes nothing
        _is_problem(_patch(client, {}, location, 0, b"0123456789"), 403)
        _is_problem(client.delete(location, headers=TUS), 403)
        assert _patch(client, {"X-CSRF-Token": csrf}, location, 0, b"01234").status_code == 204

    def test_expired_uploads_are_swept(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        location = _create(client, lan, 10, filename="x").headers["location"]
        assert _patch(client, lan, location, 0, b"01234").status_code == 204
        store: UploadStore = client.app.state.uploads  # type: ignore[attr-defined]
        assert store.sweep(utcnow() + timedelta(hours=23)) == 0
        assert store.sweep(utcnow() + timedelta(hours=25)) == 1
        assert [p for p in runtime.settings.uploads_dir.rglob("*") if p.is_file()] == []
        assert client.head(location, headers={**lan, **TUS}).status_code == 404  # HEAD: no body


class TestZipUploads:
    def test_a_zip_of_a_study_is_kept_entry_by_entry(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        study = make_cr().StudyInstanceUID
        first, second = make_cr(study_instance_uid=study), make_cr(study_instance_uid=study, seed=1)
        data = _zip(
            {
                "CT/IM0001": _part10(first),
                "CT/IM0002": _part10(second),
                "DICOMDIR": b"\0" * 300,
                "README.txt": b"scanned 2026-11-20",
                "CT/": b"",
            }
        )
        _send(client, lan, data, name="study.zip", batch="zip")
        receipt = _receipt(client, lan, "zip")
        outcomes = {item["entry"]: (item["outcome"], item["code"]) for item in _items(receipt)}
        assert outcomes == {
            "CT/IM0001": ("stored", ""),
            "CT/IM0002": ("stored", ""),
            "DICOMDIR": ("skipped", "dicomdir"),
            "README.txt": ("refused", "not-dicom"),
        }
        assert receipt["studies"] == [study]
        assert _kept(runtime, first.SOPInstanceUID)
        assert _kept(runtime, second.SOPInstanceUID)
        assert not runtime.settings.uploads_dir.joinpath(
            receipt["uploads"][0]["id"] + ".part"  # type: ignore[index]
        ).exists()

    def test_path_traversal_entries_are_refused_and_not_stored(
        self, client: TestClient, runtime: Runtime, tmp_path: Path, lan: dict[str, str]
    ) -> None:
        hostile = {
            name: make_cr()
            for name in ("../evil.dcm", "/etc/cron.d/x.dcm", "a/../../b.dcm", "C:/x.dcm")
        }
        good = make_cr()
        data = _zip(
            {**{name: _part10(ds) for name, ds in hostile.items()}, "ok.dcm": _part10(good)}
        )
        _send(client, lan, data, name="hostile.zip", batch="trav")
        items = {item["entry"]: item for item in _items(_receipt(client, lan, "trav"))}
        for name, ds in hostile.items():
            assert (items[name]["outcome"], items[name]["code"]) == ("refused", "path-traversal")
            assert "path traversal" in items[name]["reason"]
            assert not _kept(runtime, ds.SOPInstanceUID)
        assert items["ok.dcm"]["outcome"] == "stored"
        assert not (tmp_path / "evil.dcm").exists()
        assert not (runtime.settings.data_dir / "evil.dcm").exists()

    def test_a_zip_bomb_is_refused_and_the_service_stays_up(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        good = make_cr()
        data = _zip({"bomb.dcm": b"\0" * (64 * 1024 * 1024), "ok.dcm": _part10(good)})
        assert len(data) < 1024 * 1024
        _send(client, lan, data, name="bomb.zip", batch="bomb", chunk=256 * 1024)
        items = {item["entry"]: item for item in _items(_receipt(client, lan, "bomb"))}
        assert (items["bomb.dcm"]["outcome"], items["bomb.dcm"]["code"]) == ("refused", "zip-bomb")
        assert items["ok.dcm"]["outcome"] == "stored"
        assert client.get("/health").status_code in (200, 503)
        assert client.get("/auth/me", headers=lan).status_code == 200

    def test_a_zip_over_the_unpacked_limit_is_refused_whole(
        self, runtime: Runtime, hospitals: Hospitals, lan: dict[str, str]
    ) -> None:
        runtime.settings = runtime.settings.model_copy(update={"upload_zip_max_unpacked_mb": 1})
        ds = make_cr(rows=512, columns=512)  # 512 KiB of pixels each
        second = make_cr(rows=512, columns=512, study_instance_uid=ds.StudyInstanceUID)
        data = _zip({"1.dcm": _part10(ds), "2.dcm": _part10(second)})
        with TestClient(create_app(runtime)) as client:
            _send(client, lan, data, name="big.zip", batch="whole", chunk=1024 * 1024)
            [item] = _items(_receipt(client, lan, "whole"))
        assert (item["outcome"], item["code"]) == ("refused", "zip-bomb")
        assert "refused whole" in item["reason"]
        assert not _kept(runtime, ds.SOPInstanceUID)

    def test_a_nested_archive_is_refused(
        self, client: TestClient, runtime: Runtime, lan: dict[str, str]
    ) -> None:
        inner_ds = make_cr()
        inner = _zip({"inner.dcm": _part10(inner_ds)})
        data = _zip({"more.zip": inner, "renamed.dcm": inner})
        _send(client, lan, data, name="nested.zip", batch="nest")
        items = {item["entry"]: item for item in _items(_receipt(client, lan, "nest"))}
        assert {name: item["code"] for name, item in items.items()} == {
            "more.zip": "nested-archive",
            "renamed.dcm": "nested-archive",
        }
        assert not _kept(runtime, inner_ds.SOPInstanceUID)

    def test_a_damaged_zip_is_refused(self, client: TestClient, lan: dict[str, str]) -> None:
        data = _zip({"a.dcm": _part10(make_cr())})
        _send(client, lan, data[: len(data) // 2], name="cut.zip", batch="cut")
        [item] = _items(_receipt(client, lan, "cut"))
        # Cut before its central directory, the archive is not a ZIP any more; its first
        # bytes are still a ZIP's.
        assert item["outcome"] == "refused"
        assert item["code"] == "damaged"


@pytest.mark.slow
class TestResumeAfterRestart:
    def test_tuspy_resumes_after_soi_is_killed(self, tmp_path: Path) -> None:
        ds = make_cr(rows=1024, columns=1024)  # 2 MiB
        path = tmp_path / "big.dcm"
        path.write_bytes(_part10(ds))
        size = path.stat().st_size
        batch = uuid.uuid4().hex
        chunk = 256 * 1024
        with SoiProcess(tmp_path / "data") as soi:
            client = tus_client.TusClient(f"{soi.url}/uploads", headers=bearer(soi.token))
            uploader = client.uploader(
                str(path),
                chunk_size=chunk,
                metadata={"filename": "big.dcm", "batch": batch},
                store_url=False,
            )
            uploader.upload(stop_at=3 * chunk)
            path_on_server = httpx.URL(uploader.url).path
            assert uploader.offset == 3 * chunk
            soi.kill()
            soi.start()  # same data folder, new ports
            client = tus_client.TusClient(f"{soi.url}/uploads", headers=bearer(soi.token))
            resumed = client.uploader(
                str(path), chunk_size=chunk, url=f"{soi.url}{path_on_server}", store_url=False
            )
            assert resumed.offset == 3 * chunk  # from HEAD: what was fsynced survived SIGKILL
            resumed.upload()
            assert resumed.offset == size
            receipt = soi.client.get(f"/uploads/batches/{batch}").json()
            [upload] = receipt["uploads"]
            [item] = upload["items"]
            assert (item["outcome"], item["sop_instance_uid"]) == ("stored", ds.SOPInstanceUID)
            assert soi.study(ds.StudyInstanceUID) is not None

"""The HTTP API: /health, /studies, /studies/{uid}, problem details."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soi.api import create_app
from soi.auth import local_caller
from soi.runtime import Runtime
from soi.services import service_account_token
from tests.support.data import make_cr, write_dataset
from tests.support.dcmtk import storescu


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """A client of the API that sends an integration account's token (every facility)."""
    issued = service_account_token(
        runtime.database, actor=local_caller(), username="api-tests", name="tests"
    )
    headers = {"Authorization": f"Bearer {issued.token}"}
    with TestClient(create_app(runtime), headers=headers) as test_client:
        yield test_client


class TestHealth:
    def test_all_components_ok(self, client: TestClient, runtime: Runtime) -> None:
        response = client.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert set(body["checks"]) == {"database", "disk", "dimse"}
        assert body["checks"]["dimse"]["data"]["port"] == runtime.listener.port  # type: ignore[union-attr]

    def test_degraded_when_the_listener_stops(self, client: TestClient, runtime: Runtime) -> None:
        assert runtime.listener is not None
        runtime.listener.stop()
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["checks"]["dimse"]["ok"] is False

    def test_degraded_below_the_disk_floor(self, client: TestClient, runtime: Runtime) -> None:
        runtime.files.min_free_bytes = runtime.files.free_bytes() + (1 << 40)
        body = client.get("/health").json()
        assert body["status"] == "degraded"
        assert body["checks"]["disk"]["ok"] is False


class TestStudies:
    def test_list_and_detail(self, client: TestClient, runtime: Runtime, tmp_path: Path) -> None:
        assert client.get("/studies").json() == {"total": 0, "limit": 50, "offset": 0, "items": []}
        study_uid = "1.2.826.0.1.3680043.8.498.10"
        ds = make_cr(study_instance_uid=study_uid, patient_name="Lê^Thị Hoa", issuer="CCCD")
        assert runtime.listener is not None
        run = storescu(
            [write_dataset(ds, tmp_path / "a.dcm")], port=runtime.listener.port, called_aet="SOI"
        )
        assert run.all_succeeded, run.summary()

        page = client.get("/studies").json()
        assert page["total"] == 1
        [item] = page["items"]
        assert item["study_instance_uid"] == study_uid
        assert item["patient_name"] == "Lê^Thị Hoa"
        assert item["state"] == "receiving"
        assert item["facility"] == "LOCAL"

        detail = client.get(f"/studies/{study_uid}").json()
        assert detail["patient_identifiers"] == [
            {"kind": "national_id", "system": "urn:vn:cccd", "value": "MRN-0001"}
        ]
        [series] = detail["series"]
        [instance] = series["instances"]
        assert instance["sop_instance_uid"] == ds.SOPInstanceUID
        assert instance["sop_class_name"] == "Computed Radiography Image Storage"
        assert instance["applicability"] == "applicable"
        assert instance["pipelines"] == ["cxr"]

    def test_unknown_study_is_a_problem_404(self, client: TestClient) -> None:
        response = client.get("/studies/1.2.3.4")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Study not found"

    @pytest.mark.parametrize("uid", ["1.2.3'; DROP TABLE studies;--", "<script>", "1" * 65])
    def test_malformed_uid_is_a_problem_422(self, client: TestClient, uid: str) -> None:
        response = client.get(f"/studies/{uid}")
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"

    def test_paging_bounds(self, client: TestClient) -> None:
        assert client.get("/studies?limit=0").status_code == 422
        assert client.get("/studies?limit=501").status_code == 422
        assert client.get("/studies?offset=-1").status_code == 422

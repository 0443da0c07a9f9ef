"""Orthanc as the hospital PACS, pushing studies to a running Soi over DIMSE.

Orthanc's REST API (``POST /modalities/soi/store``) sends whole studies to ``soi
serve``; the test then checks what Soi kept through its HTTP API, its index and
its files, and how the study assembler routed each study.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from store import Database, Instance, sqlite_url
from tests.support import LOOPBACK, OrthancServer
from tests.support.data import make_cr, pydicom_file, write_dataset
from tests.support.soi_process import SoiProcess

pytestmark = pytest.mark.slow

QUIET_PERIOD = 1.0
CHEST_INSTANCES = 3
OTHER_FILES = ("CT_small.dcm", "MR_small.dcm")


@pytest.fixture
def chest_files(tmp_path: Path) -> list[Path]:
    """Three CR chest instances of one study and one series."""
    study_uid = generate_uid()
    series_uid = generate_uid()
    files = []
    for number in range(1, CHEST_INSTANCES + 1):
        ds = make_cr(
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
            rows=128,
            columns=96,
            seed=number,
        )
        ds.InstanceNumber = number
        files.append(write_dataset(ds, tmp_path / "upload" / f"chest-{number}.dcm"))
    return files


@pytest.fixture
def soi(tmp_path: Path) -> Iterator[SoiProcess]:
    with SoiProcess(tmp_path / "soi-data", quiet_period=QUIET_PERIOD) as process:
        yield process


@pytest.fixture
def pacs(tmp_path: Path, soi: SoiProcess) -> Iterator[OrthancServer]:
    """An Orthanc that knows Soi as the modality ``soi``."""
    modalities = {"soi": (soi.ae_title, LOOPBACK, soi.dicom_port)}
    with OrthancServer(tmp_path / "orthanc", aet="PACS", modalities=modalities) as server:
        yield server


def _store_study_job(
    pacs: OrthancServer, study_ids: list[str], timeout: float = 60.0
) -> dict[str, Any]:
    """Start Orthanc's C-STORE job of whole studies to Soi and wait for its end."""
    started = pacs.store_to("soi", study_ids, synchronous=False)
    job_id = started["ID"]
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = pacs.client.get(f"/jobs/{job_id}").json()
        if job["State"] in {"Success", "Failure"}:
            return job
        assert time.monotonic() < deadline, f"Orthanc job {job_id} still {job['State']}: {job}"
        time.sleep(0.1)


def _orthanc_study_id(pacs: OrthancServer, instance_id: str) -> str:
    body = pacs.client.get(f"/instances/{instance_id}/study").json()
    return str(body["ID"])


def _soi_files(data_dir: Path) -> dict[str, Path]:
    """Return the file of every instance in Soi's index, by SOP Instance UID."""
    database = Database(sqlite_url(data_dir / "soi.db"))
    try:
        with database.read() as session:
            rows = session.execute(select(Instance.sop_instance_uid, Instance.file_path)).all()
    finally:
        database.dispose()
    return {uid: data_dir / "instances" / path for uid, path in rows}


def _stored_file_count(data_dir: Path) -> int:
    root = data_dir / "instances"
    return sum(1 for p in root.rglob("*") if p.is_file() and root / "tmp" not in p.parents)


class TestOrthancPushesStudies:
    """Orthanc sends a chest CR study, a CT and an MR study to Soi."""

    def test_studies_are_kept_routed_and_resent_idempotently(
        self, soi: SoiProcess, pacs: OrthancServer, chest_files: list[Path]
    ) -> None:
        other_files = [pydicom_file(name) for name in OTHER_FILES]
        uploaded = {}
        instance_ids = []
        for path in [*chest_files, *other_files]:
            instance_ids.append(pacs.upload(path))
            ds = pydicom.dcmread(path)
            uploaded[str(ds.SOPInstanceUID)] = ds
        study_ids = sorted({_orthanc_study_id(pacs, i) for i in instance_ids})
        assert len(study_ids) == 3
        assert pacs.echo("soi")

        chest_uid = str(pydicom.dcmread(chest_files[0]).StudyInstanceUID)
        other_uids = {str(pydicom.dcmread(p).StudyInstanceUID) for p in other_files}
        expected_counts = {chest_uid: CHEST_INSTANCES, **dict.fromkeys(other_uids, 1)}

        job = _store_study_job(pacs, study_ids)

        # Orthanc's job reports success for every instance.
        assert job["State"] == "Success", job
        assert job["ErrorCode"] == 0, job
        assert job["Content"]["FailedInstancesCount"] == 0, job
        assert job["Content"]["InstancesCount"] == len(uploaded), job

        # Soi lists the three studies with the right instance counts.
        page = soi.studies()
        assert page["total"] == 3
        counts = {item["study_instance_uid"]: item["num_instances"] for item in page["items"]}
        assert counts == expected_counts

        # Each kept file reads back with the uploaded UID and pixel data.
        files = _soi_files(soi.data_dir)
        assert set(files) == set(uploaded)
        for sop_instance_uid, sent in uploaded.items():
            kept = pydicom.dcmread(files[sop_instance_uid])
            assert kept.SOPInstanceUID == sop_instance_uid
            assert kept.file_meta.MediaStorageSOPInstanceUID == sop_instance_uid
            assert kept.PixelData == sent.PixelData, sop_instance_uid
            assert kept.pixel_array.tobytes() == sent.pixel_array.tobytes()
        assert _stored_file_count(soi.data_dir) == len(uploaded)

        # After the quiet period the chest study waits for the cxr pipeline...
        chest = soi.wait_for_study(chest_uid, timeout=30)
        self._assert_chest_routed(chest)
        # ...and the CT and MR studies are stable with no job.
        for study_uid in other_uids:
            other = soi.wait_for_study(study_uid, timeout=30)
            assert other["jobs"] == []
            instances = [i for s in other["series"] for i in s["instances"]]
            assert len(instances) == 1
            assert [i["applicability"] for i in instances] == ["not_applicable"]
            assert instances[0]["pipelines"] == []
            assert "no pipeline applies" in other["state_reason"]

        # Sending the same studies again keeps every instance once and one job.
        again = _store_study_job(pacs, study_ids)
        assert again["State"] == "Success", again
        assert again["Content"]["FailedInstancesCount"] == 0, again
        assert again["Content"]["InstancesCount"] == len(uploaded), again
        assert soi.log_text().count("duplicate instance acknowledged") == len(uploaded)
        time.sleep(QUIET_PERIOD + 1.5)  # two assembler rounds after the quiet period
        page = soi.studies()
        assert page["total"] == 3
        counts = {item["study_instance_uid"]: item["num_instances"] for item in page["items"]}
        assert counts == expected_counts
        assert set(_soi_files(soi.data_dir)) == set(uploaded)
        assert _stored_file_count(soi.data_dir) == len(uploaded)
        self._assert_chest_routed(soi.wait_for_study(chest_uid, timeout=30))
        for study_uid in other_uids:
            assert soi.wait_for_study(study_uid, timeout=30)["jobs"] == []

    @staticmethod
    def _assert_chest_routed(chest: dict[str, Any]) -> None:
        assert chest["state"] == "stable"
        assert chest["num_instances"] == CHEST_INSTANCES
        assert len(chest["jobs"]) == 1, chest["jobs"]
        (job,) = chest["jobs"]
        assert job["pipeline"] == "cxr"
        # The shipped model makes the pipeline available: the job is queued or has run.
        assert job["state"] in ("queued", "running", "done", "ungradable"), job
        assert job["instances"] == CHEST_INSTANCES
        instances = [i for s in chest["series"] for i in s["instances"]]
        assert [i["instance_number"] for i in instances] == [1, 2, 3]
        assert {i["applicability"] for i in instances} == {"applicable"}
        assert all(i["pipelines"] == ["cxr"] for i in instances)
        assert {i["source_ae"] for i in instances} == {"PACS"}

"""``soi demo`` run as a person runs it: the command, its exit status, what it wrote.

Each run starts real receivers (Orthanc, or Soi's DICOM stand-in; Soi's FHIR and MLLP
stand-ins) and ``soi serve`` as a child process, sends the shipped samples and waits
for every result and delivery.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from soi.demo import DemoDestination
from soi.demo.run import StudyOutcome, _missing
from soi.demo.server import write_toml
from soi.schemas import StudyDetail
from soi.settings import SHIPPED_SAMPLES_DIR, DestinationSettings, load_settings
from tests.support.data import make_cr, write_dataset
from tests.support.dcmtk import dciodvfy
from tests.support.tools import require_binary

SAMPLES = sorted((SHIPPED_SAMPLES_DIR / "cxr").glob("*.dcm"))


def _demo(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "soi", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def _kept_folder(output: str) -> Path:
    match = re.search(r"--data-dir (\S+)/soi-data", output)
    assert match, output
    return Path(match.group(1))


def _dicom_files(folder: Path) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size > 132:
            with path.open("rb") as handle:
                handle.seek(128)
                if handle.read(4) == b"DICM":
                    found.append(path)
    return found


def _check_documents(files: list[Path]) -> dict[str, int]:
    """dciodvfy on every object, SRs read back as TID 1500; counts by modality."""
    modalities: dict[str, int] = {}
    for path in files:
        assert dciodvfy(path).errors == [], path
        dataset = pydicom.dcmread(path)
        modalities[dataset.Modality] = modalities.get(dataset.Modality, 0) + 1
        if dataset.Modality == "SR":
            assert dataset.CompletionFlag == "PARTIAL"
            assert dataset.VerificationFlag == "UNVERIFIED"
            document = hd.sr.srread(path)
            assert isinstance(document, hd.sr.Comprehensive3DSR)
            report = document.content
            assert isinstance(report, hd.sr.MeasurementReport)
    return modalities


@pytest.mark.slow
class TestDemoWithOrthanc:
    def test_every_document_reaches_orthanc_emr_and_his(self, tmp_path: Path) -> None:
        require_binary("Orthanc")
        out = tmp_path / "out"
        done = _demo("--out", str(out), "--keep", "--pacs", "orthanc")
        kept = _kept_folder(done.stdout)
        try:
            assert done.returncode == 0, done.stdout + done.stderr
            assert "Demo complete" in done.stdout
            assert "Orthanc 1." in done.stdout
            assert "PRELIMINARY" in done.stdout
            assert "synthetic phantoms only" in done.stdout
            # Every sample has its PDF; the positives their heatmaps.
            pdfs = sorted(out.glob("*/report.pdf"))
            assert [p.parent.name for p in pdfs] == [p.stem for p in SAMPLES]
            assert all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
            assert list((out / "03-pneumothorax-pa").glob("heatmap-pneumothorax.png"))
            assert not list((out / "05-lateral").glob("heatmap-*.png"))
            # What Orthanc stored is what Soi wrote: valid SR, SC and Encapsulated PDF.
            modalities = _check_documents(_dicom_files(kept / "orthanc" / "storage"))
            assert modalities["SR"] == len(SAMPLES)
            assert modalities["DOC"] == len(SAMPLES)
            assert modalities["OT"] >= 4
            # The EMR has one preliminary report per study, found through the patient.
            reports = [
                json.loads(p.read_text("utf-8"))
                for p in (out / "received" / "emr" / "DiagnosticReport").glob("*.json")
            ]
            assert len(reports) == len(SAMPLES)
            assert {r["status"] for r in reports} == {"preliminary"}
            phr = out / "received" / "phr" / "DiagnosticReport"
            assert len(list(phr.glob("*.json"))) == len(SAMPLES)
            # The commune station hears only of the three studies with a positive finding,
            # each with a notification addressed to it in Vietnamese.
            station = out / "received" / "station"
            assert len(list((station / "DiagnosticReport").glob("*.json"))) == 3
            notes = [json.loads(p.read_text("utf-8")) for p in station.glob("Communication/*")]
            assert len(notes) == 3
            assert {n["recipient"][0]["identifier"]["value"] for n in notes} == {"TYT-DEMO-01"}
            assert not (out / "received" / "emr" / "Communication").exists()
            assert len(list((out / "received" / "his").iterdir())) >= len(SAMPLES)
        finally:
            shutil.rmtree(kept, ignore_errors=True)


@pytest.mark.slow
class TestDemoStandIns:
    def test_stand_in_pacs_and_a_refused_file_make_it_fail_saying_which(
        self, tmp_path: Path
    ) -> None:
        samples = tmp_path / "samples"
        samples.mkdir()
        for sample in SAMPLES[:3]:
            shutil.copy(sample, samples)
        (samples / "09-truncated.dcm").write_bytes(SAMPLES[0].read_bytes()[:4000])
        short = write_dataset(make_cr(rows=256, columns=256), samples / "10-short-pixels.dcm")
        short.write_bytes(short.read_bytes()[:-20000])
        out = tmp_path / "out"
        done = _demo("--out", str(out), "--pacs", "standin", "--samples", str(samples))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Soi DICOM stand-in receiver" in done.stdout
        assert "The demo failed: 2 problem(s)" in done.stdout
        assert "09-truncated.dcm could not be sent: not sent: no data set" in done.stdout
        assert "Soi refused 10-short-pixels.dcm: status 0xC213 Pixel Data holds" in done.stdout
        # The three good studies went everywhere all the same.
        received = sorted((out / "received" / "pacs").glob("*.dcm"))
        modalities = _check_documents(received)
        assert modalities["SR"] == 3
        assert modalities["DOC"] == 3
        assert len(sorted(out.glob("*/report.pdf"))) == 3
        assert "not installed" not in done.stdout

    def test_no_sample_is_a_clear_error(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "notes.txt").write_text("not DICOM", "utf-8")
        done = _demo("--out", str(tmp_path / "out"), "--samples", str(empty), timeout=60)
        assert done.returncode == 1
        assert f"no DICOM study to send in {empty}" in done.stderr


class TestDemoConfig:
    def test_settings_file_reads_back_with_every_destination(self, tmp_path: Path) -> None:
        destinations = [
            DestinationSettings(name="pacs", kind="dicom", ae_title="P", host="h", port=104),
            DestinationSettings(name="emr", kind="fhir", url="http://e/fhir", token='a"b\\c'),
        ]
        path = tmp_path / "soi.toml"
        write_toml(
            path,
            {"data_dir": str(tmp_path / "d"), "dicom_port": 1, "quiet_period_seconds": 1.5},
            {"destinations": [d.model_dump(exclude_none=True, mode="json") for d in destinations]},
        )
        assert tomllib.loads(path.read_text("utf-8"))["quiet_period_seconds"] == 1.5
        settings = load_settings(path)
        assert settings.destinations == destinations
        assert settings.dicom_port == 1


def _destination(kind: str) -> DemoDestination:
    settings = {
        "dicom": DestinationSettings(name="pacs", kind="dicom", ae_title="P", host="h", port=1),
        "fhir": DestinationSettings(name="emr", kind="fhir", url="http://e"),
        "mllp": DestinationSettings(name="his", kind="mllp", host="h", port=1),
    }[kind]
    return DemoDestination(settings, "label", "address", dict)


class TestReceiverCheck:
    @pytest.mark.parametrize(
        ("kind", "held", "sent", "problem"),
        [
            ("dicom", {"SR": 2, "DOC": 2}, 4, False),
            ("dicom", {"SR": 2}, 4, True),
            ("fhir", {"DiagnosticReport": 3, "Patient": 3}, 3, False),
            ("fhir", {"Patient": 3}, 3, True),
            ("mllp", {"ORU^R01": 4}, 3, False),
            ("mllp", {"ORU^R01": 2}, 3, True),
        ],
    )
    def test_receiver_must_hold_what_was_delivered(
        self, kind: str, held: dict[str, int], sent: int, problem: bool
    ) -> None:
        assert bool(_missing(_destination(kind), held, sent)) is problem


def _detail(
    jobs: list[dict[str, object]],
    results: list[dict[str, object]],
    deliveries: list[dict[str, object]],
) -> StudyDetail:
    now = "2026-12-07T10:00:00Z"
    return StudyDetail.model_validate(
        {
            "study_instance_uid": "1.2.3",
            "patient_id": 1,
            "patient_name": "",
            "facility": "LOCAL",
            "accession_number": "",
            "study_date": "",
            "study_description": "",
            "modalities": "DX",
            "state": "stable",
            "state_reason": "",
            "num_instances": 1,
            "first_received_at": now,
            "last_received_at": now,
            "stable_at": now,
            "jobs": jobs,
            "patient_identifiers": [],
            "series": [],
            "results": results,
            "deliveries": deliveries,
        }
    )


def _delivery(state: str, result_id: int = 7) -> dict[str, object]:
    return {
        "id": 1,
        "result_id": result_id,
        "destination": "pacs",
        "kind": "dicom-sr",
        "state": state,
        "attempts": 1,
        "document_id": "",
        "remote_reply": "",
        "last_error": "",
        "next_attempt_at": None,
        "sent_at": None,
    }


_RESULT = {
    "id": 7,
    "pipeline": "cxr",
    "model_name": "cxr",
    "model_version": "0.2.0",
    "state": "complete",
    "status": "preliminary",
    "reason": {"en": "", "vi": ""},
    "created_at": "2026-12-07T10:00:00Z",
    "findings": [],
    "details": {},
}
_JOB = {
    "pipeline": "cxr",
    "state": "failed",
    "state_reason": "workers died",
    "attempts": 3,
    "instances": 1,
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}


class TestStudyOutcome:
    @pytest.mark.parametrize(
        ("jobs", "results", "deliveries", "settled"),
        [
            ([], [], [], False),
            ([_JOB], [], [], True),
            ([], [_RESULT], [_delivery("sent"), _delivery("dead")], True),
            ([], [_RESULT], [_delivery("sent"), _delivery("retrying")], False),
            ([], [_RESULT], [_delivery("retrying", result_id=6), _delivery("sent")], True),
        ],
    )
    def test_settled_once_nothing_more_happens_without_a_person(
        self,
        jobs: list[dict[str, object]],
        results: list[dict[str, object]],
        deliveries: list[dict[str, object]],
        settled: bool,
    ) -> None:
        study = StudyOutcome("s", "1.2.3", _detail(jobs, results, deliveries))
        assert study.settled is settled

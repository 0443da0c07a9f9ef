"""A stored AI result, loaded with everything its documents need."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest

from soi.runtime import Runtime
from soi.services.report_context import load_report_context
from soi.settings import Settings
from store import NotFoundError, Result, utcnow
from tests.support.store import ingest_datasets
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.build(settings, with_listener=False, with_workers=True)
    yield rt
    rt.close()


def test_context_of_a_stored_result(runtime: Runtime) -> None:
    rng = np.random.default_rng(21)
    phantom = generate_cxr(rng, findings={CxrFinding.CARDIOMEGALY}, size=512)
    ds = phantom_to_dicom(phantom, rng, modality="CR")
    ingest_datasets(runtime.ingestor, [ds])
    runtime.assembler.run_once(now=utcnow() + timedelta(minutes=5))
    report = runtime.workers[0].run_once()
    assert report is not None
    assert report.result_id is not None

    context = load_report_context(
        runtime.database,
        report.result_id,
        registry=runtime.registry,
        instance_files=runtime.files,
        result_files=runtime.result_files,
    )

    assert context.state == "complete"
    assert context.preliminary
    assert context.study.study_instance_uid == ds.StudyInstanceUID
    assert context.patient.name == str(ds.PatientName)
    kinds = {identifier.kind for identifier in context.patient.identifiers}
    assert {"national_id", "mrn"} <= kinds
    [image] = context.images
    assert image.sop_instance_uid == ds.SOPInstanceUID
    assert image.path.is_file()
    assert context.model.device_name == "cxr 0.2.0"
    assert context.model.synthetic_training_data
    assert {m.key for m in context.model.metrics} == {str(f) for f in CxrFinding}
    cardiomegaly = next(f for f in context.findings if f.key == "cardiomegaly")
    assert cardiomegaly.positive
    assert cardiomegaly.display_vi == "Bóng tim to"
    assert cardiomegaly.overlay_path is not None
    assert cardiomegaly.overlay_path.is_file()
    assert {gate.gate for gate in context.gates} >= {"modality", "view"}
    with runtime.database.read() as session:
        assert session.get(Result, report.result_id) is not None
    with pytest.raises(NotFoundError):
        load_report_context(
            runtime.database,
            report.result_id + 100,
            registry=runtime.registry,
            instance_files=runtime.files,
            result_files=runtime.result_files,
        )

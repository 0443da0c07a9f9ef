"""Results and findings: recorded with their job, read back per study, on both databases."""

from __future__ import annotations

import pytest

from store import (
    Database,
    FindingRecord,
    ResultReason,
    ResultState,
    ensure_job,
    list_results,
    record_result,
    result_reason,
)
from tests.support.store import index_cxr_study

REASON = ResultReason(
    en="the image is not a frontal chest radiograph (lateral view)",
    vi="Ảnh không phải phim X-quang ngực thẳng (tư thế nghiêng)",
)


def _study_and_job(database: Database, uid: str) -> tuple[int, int]:
    study_id = index_cxr_study(database, uid)
    with database.write() as session:
        job = ensure_job(
            session,
            study_id=study_id,
            pipeline="cxr",
            instance_uids=[f"{uid}.1"],
            available=True,
        )
        return study_id, job.id


def _findings() -> list[FindingRecord]:
    return [
        FindingRecord(
            label="cardiomegaly",
            code_scheme="SCT",
            code_value="8186001",
            code_meaning="Cardiomegaly",
            probability=0.87,
            threshold=0.5,
            positive=True,
            heatmap_path="heatmaps/1.2.3/cardiomegaly.npy",
        ),
        FindingRecord(
            label="effusion",
            code_scheme="SCT",
            code_value="60046008",
            code_meaning="Pleural effusion",
            probability=0.12,
            threshold=0.4,
            positive=False,
        ),
    ]


class TestRecordResult:
    def test_a_complete_result_round_trips_with_its_findings(self, database: Database) -> None:
        study_id, job_id = _study_and_job(database, "1.2.3")
        with database.write() as session:
            result = record_result(
                session,
                job_id=job_id,
                study_id=study_id,
                model_name="cxr",
                model_version="1.0.0",
                state=ResultState.COMPLETE,
                reason=None,
                findings=_findings(),
            )
            assert result.id is not None

        with database.read() as session:
            results = list_results(session, study_id)
            assert len(results) == 1
            stored = results[0]
            assert (stored.job_id, stored.model_name, stored.model_version) == (
                job_id,
                "cxr",
                "1.0.0",
            )
            assert stored.state is ResultState.COMPLETE
            assert result_reason(stored) == ResultReason()
            findings = sorted(stored.findings, key=lambda finding: finding.id)
            assert [
                (f.label, f.code_value, f.probability, f.threshold, f.positive, f.heatmap_path)
                for f in findings
            ] == [
                ("cardiomegaly", "8186001", 0.87, 0.5, True, "heatmaps/1.2.3/cardiomegaly.npy"),
                ("effusion", "60046008", 0.12, 0.4, False, None),
            ]

    @pytest.mark.parametrize("state", [ResultState.UNGRADABLE, ResultState.FAILED])
    def test_reasons_are_kept_in_both_languages(
        self, database: Database, state: ResultState
    ) -> None:
        study_id, job_id = _study_and_job(database, "1.2.4")
        with database.write() as session:
            record_result(
                session,
                job_id=job_id,
                study_id=study_id,
                model_name="cxr",
                model_version="1.0.0",
                state=state.value,
                reason=REASON,
                findings=(),
            )

        with database.read() as session:
            (stored,) = list_results(session, study_id)
            assert stored.state is state
            assert stored.findings == []
            assert result_reason(stored) == REASON
            assert "Ảnh không phải" in stored.reason

    def test_results_are_listed_per_study_oldest_first(self, database: Database) -> None:
        first_study, first_job = _study_and_job(database, "1.2.5")
        other_study, other_job = _study_and_job(database, "1.2.6")
        with database.write() as session:
            for version in ("1.0.0", "1.1.0"):
                record_result(
                    session,
                    job_id=first_job,
                    study_id=first_study,
                    model_name="cxr",
                    model_version=version,
                    state=ResultState.COMPLETE,
                    findings=_findings(),
                )
            record_result(
                session,
                job_id=other_job,
                study_id=other_study,
                model_name="cxr",
                model_version="1.0.0",
                state=ResultState.FAILED,
                reason=REASON,
            )

        with database.read() as session:
            assert [r.model_version for r in list_results(session, first_study)] == [
                "1.0.0",
                "1.1.0",
            ]
            assert [r.state for r in list_results(session, other_study)] == [ResultState.FAILED]
            assert list(list_results(session, 999_999)) == []

    @pytest.mark.parametrize(
        ("state", "reason", "findings", "message"),
        [
            (ResultState.FAILED, None, (), "needs `reason` in English and Vietnamese"),
            (ResultState.UNGRADABLE, ResultReason(en="only English"), (), "needs `reason`"),
            (ResultState.UNGRADABLE, REASON, "findings", "carries no findings"),
            ("maybe", None, (), "'maybe' is not a valid ResultState"),
        ],
        ids=["no-reason", "english-only", "findings", "state"],
    )
    def test_invalid_results_are_refused(
        self,
        database: Database,
        state: str,
        reason: ResultReason | None,
        findings: str,
        message: str,
    ) -> None:
        study_id, job_id = _study_and_job(database, "1.2.7")
        with database.write() as session, pytest.raises(ValueError, match=message):
            record_result(
                session,
                job_id=job_id,
                study_id=study_id,
                model_name="cxr",
                model_version="1.0.0",
                state=state,
                reason=reason,
                findings=_findings() if findings else (),
            )


class TestFindingRecord:
    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"probability": 1.5}, "`probability` must be in \\[0, 1\\]"),
            ({"threshold": -0.1}, "`threshold` must be in \\[0, 1\\]"),
            ({"label": ""}, "`label` must not be empty"),
            ({"label": "x" * 65}, "`label` must be at most 64 characters"),
            ({"code_scheme": "S" * 17}, "`code_scheme` must be at most 16"),
        ],
    )
    def test_invalid_values_are_refused(self, changes: dict[str, object], message: str) -> None:
        values: dict[str, object] = {"label": "nodule", "probability": 0.5, "positive": True}
        values.update(changes)
        with pytest.raises(ValueError, match=message):
            FindingRecord(**values)  # type: ignore[arg-type]


class TestResultReason:
    def test_plain_text_is_read_as_english(self) -> None:
        assert ResultReason.from_text("runner crashed") == ResultReason(en="runner crashed")
        assert ResultReason.from_text("[1, 2]") == ResultReason(en="[1, 2]")
        assert ResultReason.from_text("") == ResultReason()
        assert ResultReason().to_text() == ""

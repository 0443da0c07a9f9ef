"""Studies with results of two models and saved reviews, for the agreement view's tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from store import (
    Database,
    DecisionRecord,
    Finding,
    FindingRecord,
    FindingReview,
    Study,
    add_facility,
    add_user,
    ensure_job,
    record_result,
    save_review,
)
from tests.support.worklist import add_study

__all__ = ["DENSENET", "EFFNET", "Cases", "add_cases", "add_model_result", "move_decisions"]

#: The two models: (name, version, pipeline).
DENSENET = ("cxr-densenet", "1.0.0", "cxr")
EFFNET = ("cxr-effnet", "2.0.0", "cxr-effnet")


@dataclass(frozen=True, slots=True)
class Cases:
    """The studies of :func:`add_cases`, by id; ``first_save`` is the version of study
    one's superseded save."""

    one: int
    two: int
    three: int
    unread: int
    first_save: int


def add_model_result(
    database: Database,
    study_id: int,
    model: tuple[str, str, str],
    labels: Sequence[str],
) -> dict[str, int]:
    """Store a complete result of ``model`` (name, version, pipeline) with one positive
    finding per label; the findings' ids by label."""
    name, version, pipeline = model
    with database.write() as session:
        study = session.get(Study, study_id)
        assert study is not None
        job = ensure_job(
            session,
            study_id=study_id,
            pipeline=pipeline,
            instance_uids=[f"{study.study_instance_uid}.1"],
            available=True,
        )
        result = record_result(
            session,
            job_id=job.id,
            study_id=study_id,
            model_name=name,
            model_version=version,
            state="complete",
            findings=[
                FindingRecord(label=label, probability=0.8, positive=True, threshold=0.5)
                for label in labels
            ],
        )
        session.flush()
        return {
            finding.label: finding.id
            for finding in session.scalars(select(Finding).where(Finding.result_id == result.id))
        }


def _save(
    database: Database, study_id: int, version: int, reader: int, decisions: list[DecisionRecord]
) -> int:
    with database.write() as session:
        return save_review(
            session,
            study_id=study_id,
            version=version,
            reader_user_id=reader,
            decisions=decisions,
            impression="",
        )


def add_cases(database: Database, *, local: str, other: str, make_other: bool = True) -> Cases:
    """Three read studies and one unread, at facilities ``local`` and ``other``.

    - one (``local``, densenet): a first save accepting both findings, superseded by a
      second that accepts pneumothorax, rejects cardiomegaly and adds a nodule;
    - two (``local``, densenet): pneumothorax edited to pleural effusion, cardiomegaly
      accepted;
    - three (``other``): densenet's pneumothorax accepted, effnet's rejected;
    - unread (``local``, densenet): no save.
    """
    with database.write() as session:
        if make_other:
            add_facility(session, code=other, name="Bệnh viện khác")
        reader = add_user(
            session,
            username="mai",
            role="radiologist",
            facility_code=local,
            password_hash="$argon2id$not-used-here",
        ).id
    labels = ("pneumothorax", "cardiomegaly")
    one = add_study(database, "9.1.1", facility_code=local)
    f1 = add_model_result(database, one, DENSENET, labels)
    first = _save(
        database,
        one,
        0,
        reader,
        [
            DecisionRecord(label=label, decision="accepted", finding_id=f1[label])
            for label in labels
        ],
    )
    _save(
        database,
        one,
        first,
        reader,
        [
            DecisionRecord(
                label="pneumothorax", decision="accepted", finding_id=f1["pneumothorax"]
            ),
            DecisionRecord(
                label="cardiomegaly", decision="rejected", finding_id=f1["cardiomegaly"]
            ),
            DecisionRecord(label="nodule", decision="added"),
        ],
    )
    two = add_study(database, "9.1.2", facility_code=local, received_minute=1)
    f2 = add_model_result(database, two, DENSENET, labels)
    _save(
        database,
        two,
        0,
        reader,
        [
            DecisionRecord(
                label="pleural effusion", decision="edited", finding_id=f2["pneumothorax"]
            ),
            DecisionRecord(
                label="cardiomegaly", decision="accepted", finding_id=f2["cardiomegaly"]
            ),
        ],
    )
    three = add_study(database, "9.1.3", facility_code=other, received_minute=2)
    f3 = add_model_result(database, three, DENSENET, ["pneumothorax"])
    e3 = add_model_result(database, three, EFFNET, ["pneumothorax"])
    _save(
        database,
        three,
        0,
        reader,
        [
            DecisionRecord(
                label="pneumothorax", decision="accepted", finding_id=f3["pneumothorax"]
            ),
            DecisionRecord(
                label="pneumothorax", decision="rejected", finding_id=e3["pneumothorax"]
            ),
        ],
    )
    unread = add_study(database, "9.1.4", facility_code=local, received_minute=3)
    add_model_result(database, unread, DENSENET, labels)
    return Cases(one=one, two=two, three=three, unread=unread, first_save=first)


def move_decisions(
    database: Database, study_id: int, when: datetime, *, review_version: int | None = None
) -> None:
    """Set when the study's decisions (only those of ``review_version``, if given) were made."""
    statement = update(FindingReview).where(FindingReview.study_id == study_id)
    if review_version is not None:
        statement = statement.where(FindingReview.review_version == review_version)
    with database.write() as session:
        session.execute(statement.values(created_at=when))

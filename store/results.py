"""Results of inference jobs and their findings.

``Result.reason`` is one text column; it holds the reason in both languages as a
JSON object ``{"en": ..., "vi": ...}`` (empty text for a complete result), read
back with :func:`result_reason`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from store.enums import ResultState, ResultStatus
from store.models import Finding, Result
from store.urgency import DEFAULT_CRITICAL_LABELS, refresh_study_urgency

__all__ = ["FindingRecord", "ResultReason", "list_results", "record_result", "result_reason"]

_LABEL_LENGTH = 64
_CODE_SCHEME_LENGTH = 16
_CODE_VALUE_LENGTH = 64
_CODE_MEANING_LENGTH = 200
_PATH_LENGTH = 255
_UID_LENGTH = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingRecord:
    """One finding to store with a result.

    Raises
    ------
    ValueError
        When a text is longer than its column, ``probability`` or ``threshold`` is
        outside [0, 1].
    """

    label: str
    code_scheme: str = ""
    code_value: str = ""
    code_meaning: str = ""
    probability: float
    threshold: float | None = None
    positive: bool
    sop_instance_uid: str | None = None
    heatmap_path: str | None = None
    overlay_path: str | None = None

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("label", self.label, _LABEL_LENGTH),
            ("code_scheme", self.code_scheme, _CODE_SCHEME_LENGTH),
            ("code_value", self.code_value, _CODE_VALUE_LENGTH),
            ("code_meaning", self.code_meaning, _CODE_MEANING_LENGTH),
            ("sop_instance_uid", self.sop_instance_uid or "", _UID_LENGTH),
            ("heatmap_path", self.heatmap_path or "", _PATH_LENGTH),
            ("overlay_path", self.overlay_path or "", _PATH_LENGTH),
        ):
            if len(value) > limit:
                raise ValueError(
                    f"`{name}` must be at most {limit} characters, {len(value)} are given"
                )
        if not self.label:
            raise ValueError("`label` must not be empty")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"`probability` must be in [0, 1], {self.probability} is given")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"`threshold` must be in [0, 1], {self.threshold} is given")


@dataclass(frozen=True, slots=True)
class ResultReason:
    """Why a result is not complete, in English and Vietnamese."""

    en: str = ""
    vi: str = ""

    def to_text(self) -> str:
        """The column text: empty when there is no reason, else a JSON object."""
        if not (self.en or self.vi):
            return ""
        return json.dumps({"en": self.en, "vi": self.vi}, ensure_ascii=False)

    @classmethod
    def from_text(cls, text: str) -> ResultReason:
        """Read the column text back; plain (non-JSON) text is taken as English."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return cls(en=text)
        if not isinstance(data, dict):
            return cls(en=text)
        return cls(en=str(data.get("en", "")), vi=str(data.get("vi", "")))


def record_result(
    session: Session,
    *,
    job_id: int,
    study_id: int,
    model_name: str,
    model_version: str,
    state: ResultState | str,
    reason: ResultReason | None = None,
    findings: Sequence[FindingRecord] = (),
    status: ResultStatus | str = ResultStatus.PRELIMINARY,
    details: Mapping[str, Any] | None = None,
    critical_labels: Collection[str] = DEFAULT_CRITICAL_LABELS,
) -> Result:
    """Add a result and its findings to the current transaction, and update the study's
    urgency in it (:func:`~store.urgency.refresh_study_urgency`).

    Parameters
    ----------
    session:
        A session inside a write transaction; the result commits with it.
    job_id, study_id:
        The job that produced the result and its study.
    model_name, model_version:
        The model version that ran.
    state:
        ``complete``, ``ungradable`` or ``failed``.
    reason:
        Why the state is not ``complete``, in both languages.
    findings:
        The findings, in the model's target order.
    status:
        ``preliminary`` for every AI result; ``final`` or ``amended`` once signed.
    details:
        JSON-ready facts about how the result was reached (e.g. each instance's
        quality-gate outcomes).
    critical_labels:
        Finding labels whose positive finding makes the study critical.

    Raises
    ------
    ValueError
        When ``state`` is unknown, a result that is not complete has no reason, or
        an ungradable or failed result carries findings.
    """
    result_state = ResultState(state)
    why = reason if reason is not None else ResultReason()
    if result_state is not ResultState.COMPLETE:
        if not (why.en and why.vi):
            raise ValueError(
                f"a {result_state.value!r} result needs `reason` in English and Vietnamese"
            )
        if findings:
            raise ValueError(f"a {result_state.value!r} result carries no findings")
    result = Result(
        job_id=job_id,
        study_id=study_id,
        model_name=model_name,
        model_version=model_version,
        state=result_state,
        reason=why.to_text(),
        status=ResultStatus(status),
        details=dict(details or {}),
        findings=[
            Finding(
                label=record.label,
                code_scheme=record.code_scheme,
                code_value=record.code_value,
                code_meaning=record.code_meaning,
                probability=float(record.probability),
                threshold=None if record.threshold is None else float(record.threshold),
                positive=record.positive,
                sop_instance_uid=record.sop_instance_uid,
                heatmap_path=record.heatmap_path,
                overlay_path=record.overlay_path,
            )
            for record in findings
        ],
    )
    session.add(result)
    session.flush()
    refresh_study_urgency(session, study_id, critical_labels=critical_labels)
    return result


def list_results(session: Session, study_id: int) -> Sequence[Result]:
    """Return the results of a study, oldest first, with their findings loaded."""
    statement = (
        select(Result)
        .where(Result.study_id == study_id)
        .options(selectinload(Result.findings))
        .order_by(Result.id)
    )
    return session.scalars(statement).all()


def result_reason(result: Result) -> ResultReason:
    """The reason stored with ``result``, in both languages."""
    return ResultReason.from_text(result.reason)

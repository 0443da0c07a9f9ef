"""The review API's request and reply bodies (``/studies/{uid}/review``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from store import MAX_IMPRESSION_LENGTH, ReportStatus, ReviewDecision, ReviewState

__all__ = [
    "MAX_DECISIONS",
    "ReviewDecisionIn",
    "ReviewDecisionOut",
    "ReviewFindingOut",
    "ReviewOut",
    "ReviewSaveIn",
    "ReviewSavedOut",
    "ReviewSignIn",
    "ReviewSignedOut",
    "SignedReportOut",
]

#: The most decisions one save takes.
MAX_DECISIONS = 200
_MAX_ID = 2**31 - 1


class ReviewDecisionIn(BaseModel):
    """A reader's decision on one finding."""

    model_config = ConfigDict(extra="forbid")

    finding_id: int | None = Field(
        None, ge=1, le=_MAX_ID, description="the AI finding; null for a finding the reader added"
    )
    label: str = Field(
        min_length=1,
        max_length=64,
        description="the finding's label; for edited or added: the reader's label",
    )
    decision: ReviewDecision = Field(description="accepted, rejected, edited or added")
    probability_class: str | None = Field(
        None, max_length=64, description="the reader's confidence in words, e.g. definite"
    )
    region: dict[str, Any] | None = Field(
        None, description="where the finding lies, e.g. a bounding box on an instance"
    )


class ReviewSaveIn(BaseModel):
    """A review draft: the decisions so far and the impression."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=0, le=_MAX_ID, description="the review_version the reader loaded")
    decisions: list[ReviewDecisionIn] = Field(max_length=MAX_DECISIONS)
    impression: str = Field(
        "", max_length=MAX_IMPRESSION_LENGTH, description="free text, kept exactly as written"
    )


class ReviewSignIn(BaseModel):
    """A signature of the saved review."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=0, le=_MAX_ID, description="the review_version the reader loaded")
    passphrase: SecretStr = Field(
        min_length=1, max_length=1024, description="the passphrase of the signing certificate"
    )


class ReviewFindingOut(BaseModel):
    """An AI finding of the study's current results."""

    finding_id: int
    result_id: int
    model_name: str
    model_version: str
    label: str = Field(description="the model's name for the finding, e.g. pneumothorax")
    probability: float = Field(description="the model's output, 0 to 1")
    threshold: float | None = Field(description="the operating point; positive at or above")
    positive: bool


class ReviewDecisionOut(BaseModel):
    """A decision of the current review round, as saved."""

    finding_id: int | None = Field(description="null for a finding the reader added")
    result_id: int
    label: str
    decision: ReviewDecision
    ai_probability: float | None = Field(description="the model's output for the finding")
    probability_class: str | None
    region: dict[str, Any] | None
    reader: str = Field(description="the username of the reader who decided")
    decided_at: datetime


class SignedReportOut(BaseModel):
    """One signed version of the study's report."""

    version: int
    status: ReportStatus = Field(description="final (first signature) or amended")
    signed_by: str = Field(description="the signer's username")
    signer_name: str = Field(description="the signer's name as printed on the report")
    signed_at: datetime
    document_sha256: str = Field(description="SHA-256 of the signed PDF")
    supersedes_version: int | None
    pdf: str = Field(description="the signed PDF (PAdES)")


class ReviewOut(BaseModel):
    """A study's review as a reader loads it."""

    study_instance_uid: str
    review_state: ReviewState = Field(description="unread, in_review, signed or amended")
    review_version: int = Field(description="send it back with the next save or signature")
    findings: list[ReviewFindingOut] = Field(description="the current AI findings")
    decisions: list[ReviewDecisionOut] = Field(description="the newest saved decisions")
    impression: str = Field(description="the impression draft")
    ai_preliminary: bool = Field(description="no signed report yet")
    reports: list[SignedReportOut] = Field(description="signed versions, oldest first")


class ReviewSavedOut(BaseModel):
    """Where the review stands after a save."""

    review_state: ReviewState
    review_version: int


class ReviewSignedOut(BaseModel):
    """Where the review stands after a signature, and the report signed."""

    review_state: ReviewState
    review_version: int
    report: SignedReportOut

"""The reply of ``GET /admin/agreement``: how often readers agree with each model."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

__all__ = ["AgreementOut", "AgreementRowOut"]


class AgreementRowOut(BaseModel):
    """The current decisions on one model version's findings of one label at one facility."""

    model_name: str
    model_version: str
    label: str = Field(description="the AI finding's label (for added findings: the reader's)")
    facility: str = Field(description="the facility's code")
    accepted: int
    rejected: int
    edited: int
    added: int = Field(description="findings the readers added (not part of the rate)")
    decided: int = Field(description="every current decision, added ones included")
    agreement_rate: float | None = Field(
        description="accepted / (accepted + rejected + edited); null: no AI finding decided"
    )
    ci95_low: float | None = Field(description="the rate's 95 % Wilson score interval, low end")
    ci95_high: float | None = Field(description="the rate's 95 % Wilson score interval, high end")


class AgreementOut(BaseModel):
    """Agreement per model version, label and facility, from each study's newest saved
    review."""

    model: str | None = Field(description="the model asked for (null: every model)")
    facility: str | None = Field(description="the facility asked for (null: every facility)")
    since: date | None = Field(description="decisions made on or after this day (UTC)")
    until: date | None = Field(description="decisions made on or before this day (UTC)")
    items: list[AgreementRowOut]

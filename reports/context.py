"""What every result document is built from: one AI result of one study, with its context.

The document builders (DICOM SR, heatmap secondary captures, PDF, FHIR, HL7 v2) take a
:class:`ReportContext` and nothing else, so they agree on every fact: the patient and
their identifiers, the study and the images read, the result's state and status, each
finding, the quality-gate outcomes and the model that produced it (with the measured
performance its card states). :func:`load_report_context` (in :mod:`reports.loading`)
builds it from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

__all__ = [
    "DecisionInfo",
    "FacilityInfo",
    "FindingInfo",
    "GateInfo",
    "IdentifierInfo",
    "ImageInfo",
    "Language",
    "MetricInfo",
    "ModelInfo",
    "PatientInfo",
    "ReadingInfo",
    "ReportContext",
    "StudyInfo",
]

#: Languages reports are written in.
Language = Literal["vi", "en"]


@dataclass(frozen=True, slots=True)
class IdentifierInfo:
    """One identifier of the patient.

    ``kind`` is ``national_id`` (CCCD), ``health_insurance`` (BHYT), ``health_record``
    (HSSK) or ``mrn`` (the facility's record number); ``system`` a URI
    (``urn:vn:cccd``, ``urn:soi:mrn:BV-DK-HAGIANG``).
    """

    kind: str
    system: str
    value: str


@dataclass(frozen=True, slots=True)
class PatientInfo:
    """The patient as the images name them (DICOM PN ``FAMILY^GIVEN``, DA, CS)."""

    name: str
    birth_date: str
    sex: str
    identifiers: tuple[IdentifierInfo, ...]

    def identifier(self, kind: str) -> IdentifierInfo | None:
        """The first identifier of ``kind``, if any."""
        return next((item for item in self.identifiers if item.kind == kind), None)


@dataclass(frozen=True, slots=True)
class FacilityInfo:
    """The facility the study belongs to, and the language its reports are written in."""

    code: str
    name: str
    language: Language = "vi"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """One source image the model read (its DICOM file lies at ``path``)."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    modality: str
    path: Path


@dataclass(frozen=True, slots=True)
class StudyInfo:
    """The imaging study."""

    study_instance_uid: str
    accession_number: str
    study_date: str
    study_time: str
    study_description: str
    modalities: str


@dataclass(frozen=True, slots=True)
class GateInfo:
    """One quality gate's outcome on one image."""

    sop_instance_uid: str
    gate: str
    passed: bool
    reason_en: str
    reason_vi: str


@dataclass(frozen=True, slots=True)
class FindingInfo:
    """One finding of the result.

    ``probability`` is the model's score in [0, 1]; ``threshold`` the operating point;
    ``positive`` whether the score reaches it. ``heatmap_path`` (float16 ``.npy`` over
    the whole image) and ``overlay_path`` (PNG) are set for positive findings with a
    heatmap; ``sop_instance_uid`` names the image the finding was read on.
    """

    key: str
    display_en: str
    display_vi: str
    code_scheme: str
    code_value: str
    code_meaning: str
    probability: float
    threshold: float | None
    positive: bool
    sop_instance_uid: str | None
    heatmap_path: Path | None = None
    overlay_path: Path | None = None

    def display(self, language: Language) -> str:
        """The finding's name in ``language``."""
        return self.display_vi if language == "vi" else self.display_en


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A measured performance figure of the model for one finding, with its 95 % CI."""

    key: str
    auroc: tuple[float, float, float] | None
    sensitivity: tuple[float, float, float] | None
    specificity: tuple[float, float, float] | None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The model version that produced the result, as its card describes it."""

    name: str
    version: str
    manufacturer: str
    task: str
    synthetic_training_data: bool
    training_data: str
    intended_use: str
    metrics: tuple[MetricInfo, ...] = ()

    @property
    def device_name(self) -> str:
        """``name version``, e.g. ``cxr 0.2.0`` (the observer device in SR, FHIR Device)."""
        return f"{self.name} {self.version}"


@dataclass(frozen=True, slots=True)
class DecisionInfo:
    """A radiologist's decision on one finding.

    ``decision`` is ``accepted``, ``rejected``, ``edited`` or ``added``; ``display_en``
    and ``display_vi`` name the finding (for ``edited`` and ``added``: the reader's
    label); ``ai_probability`` is the model's score (``None`` for an added finding);
    ``probability_class`` the reader's confidence in words.
    """

    display_en: str
    display_vi: str
    decision: str
    ai_probability: float | None
    probability_class: str | None = None

    def display(self, language: Language) -> str:
        """The finding's name in ``language``."""
        return self.display_vi if language == "vi" else self.display_en


@dataclass(frozen=True, slots=True)
class ReadingInfo:
    """The radiologist's signed reading: decisions, impression and signature.

    ``signed_at`` has a time zone; ``signer_name`` is the name printed as the signer.
    """

    decisions: tuple[DecisionInfo, ...]
    impression: str
    signer_name: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class ReportContext:
    """One AI result of one study with everything its documents say.

    Attributes
    ----------
    result_id:
        The stored result's id (documents derive stable identifiers from it).
    pipeline:
        ``cxr``, ...
    state:
        ``complete``, ``ungradable`` or ``failed``.
    status:
        ``preliminary`` (AI, unsigned), ``final`` or ``amended``.
    reason_en, reason_vi:
        Why the state is not ``complete``.
    created_at:
        When the result was stored (UTC).
    findings:
        In the model's target order; empty unless ``complete``.
    gates:
        Quality-gate outcomes per image.
    images:
        The images the study's job read.
    reading:
        The radiologist's signed reading (``None`` for an unsigned AI result).
    """

    result_id: int
    pipeline: str
    state: str
    status: str
    reason_en: str
    reason_vi: str
    created_at: datetime
    facility: FacilityInfo
    patient: PatientInfo
    study: StudyInfo
    model: ModelInfo
    images: tuple[ImageInfo, ...]
    findings: tuple[FindingInfo, ...] = ()
    gates: tuple[GateInfo, ...] = field(default_factory=tuple)
    reading: ReadingInfo | None = None

    @property
    def preliminary(self) -> bool:
        """Whether the result is unsigned AI output."""
        return self.status == "preliminary"

    @property
    def positive_findings(self) -> tuple[FindingInfo, ...]:
        """The findings at or above their operating point."""
        return tuple(finding for finding in self.findings if finding.positive)

    def image(self, sop_instance_uid: str) -> ImageInfo | None:
        """The source image with that UID, if the job read it."""
        return next((i for i in self.images if i.sop_instance_uid == sop_instance_uid), None)

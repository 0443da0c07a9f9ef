"""The AI result as a DICOM Structured Report: a TID 1500 Measurement Report (IHE AIR).

:func:`build_sr` turns a :class:`~reports.context.ReportContext` into a **Comprehensive
3D SR** (1.2.840.10008.5.1.4.1.1.88.34) built with highdicom, in a new series of the
study. Comprehensive 3D SR is the SR SOP class IHE AI Results (AIR) names for AI
results and the one highdicom's TID 1500 support is written for: Enhanced SR admits image
references only as leaves of the tree, which the TID 1600 Image Library entries (IMAGE
items with their descriptors beneath them) are not, and Comprehensive SR admits no
SCOORD3D, which a later result with 3-D regions would need. DCMTK (``dsrdump``),
dicom3tools (``dciodvfy``) and the usual PACS and viewers read it.

Content tree (TID 1500)::

    CONTAINER Imaging Measurement Report                       (TID 1500)
      HAS CONCEPT MOD Language of Content Item and Descendants = English
      HAS OBS CONTEXT Observer Type = Device                   (TID 1002, 1004)
                      Device Observer UID / Name "cxr 0.2.0" / Manufacturer "Soi"
                      / Model Name "cxr"
      HAS CONCEPT MOD Procedure reported = Plain chest X-ray
      CONTAINS Image Library                                   (TID 1600, the images read)
      CONTAINS Imaging Measurements                            (complete results only)
        CONTAINS Measurement Group, one per finding           (TID 1501)
          Tracking Identifier / UID, Finding = <SNOMED concept>,
          Algorithm Name / Version / Manufacturer             (TID 4019)
          NUM Probability = 0.91 {probability}
          NUM Threshold Value = 0.5 {probability}             (the operating point)
          CODE <SNOMED concept> = Present | Absent
          IMAGE Source of Measurement = the radiograph the finding was read on
          IMAGE Best illustration of finding = the heatmap SC (positive findings)
      CONTAINS Qualitative Evaluations                         (TID 1500 row 10)
        CODE CAD Processing and Findings Summary = ...
        CODE Quality Assessment = Unusable ...                 (ungradable results only)
        TEXT Comment = <statement in English>   (Language of Value = English)
        TEXT Comment = <statement in Vietnamese> (Language of Value = Vietnamese)

An ``ungradable`` or ``failed`` result has no Imaging Measurements: TID 1500 asks for
Imaging Measurements, Derived Imaging Measurements *or* Qualitative Evaluations, and the
quality-gate outcome and its reason in both languages are the qualitative evaluations.
highdicom's ``MeasurementReport`` class insists on at least one measurement group, so the
root container is assembled here from highdicom's templates and content items (the same
order ``MeasurementReport`` uses) and read back with ``MeasurementReport.from_sequence``.

Status. A ``preliminary`` result is PARTIAL, UNVERIFIED and PRELIMINARY; ``final`` and
``amended`` are COMPLETE and FINAL, and VERIFIED only when a verifying observer (a person
and their organization) and the time of verification are given.

Identifiers. The series and SOP Instance UIDs are derived (``generate_uid`` with entropy
sources) from the Study Instance UID, the result id, the document kind ``sr`` and the
status (with the verifying observer, when there is one), so building the same document
again gives the same UIDs and a re-sent document replaces itself; a final or verified
document is a new instance. Dates and times (content, series, instance creation) are the
result's ``created_at`` in UTC, so the document's bytes do not change either. (No
Timezone Offset From UTC is written: it would apply to the study date and time copied
from the source image too, which are the modality's local time.)

The patient and study attributes are copied from the (first) source image, so the SR files
into the same patient and study as the images; the facility's name is the Institution
Name. Text is written with Specific Character Set ``ISO_IR 192`` (UTF-8), so Vietnamese
names and statements are stored exactly.

References
----------
DICOM PS3.3 A.35.13 (Comprehensive 3D SR IOD), C.17 (SR Document modules); PS3.16
TID 1500, 1501, 1600, 1001-1004, 4019, CID 6047, 6044, 7003; IHE Radiology Technical
Framework Supplement AI Results (AIR).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import highdicom as hd
import pydicom
from highdicom.sr import CodedConcept, RelationshipTypeValues
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, TM

from reports._dicom import document_uid, long_string, read_source
from reports.context import FindingInfo, GateInfo, ReportContext

__all__ = [
    "ABSENT",
    "BEST_ILLUSTRATION_OF_FINDING",
    "CAD_PROCESSING_AND_FINDINGS_SUMMARY",
    "COMMENT",
    "ENGLISH",
    "IMAGING_MEASUREMENT_REPORT",
    "IMAGING_PROCEDURE",
    "LANGUAGE_OF_VALUE",
    "NO_ALGORITHMS_SUCCEEDED_WITHOUT_FINDINGS",
    "OPERATING_POINT",
    "PLAIN_CHEST_XRAY",
    "PRESENT",
    "PROBABILITY",
    "PROBABILITY_UNIT",
    "QUALITATIVE_EVALUATIONS",
    "QUALITY_ASSESSMENT",
    "SR_SERIES_NUMBER",
    "SUCCEEDED_WITHOUT_FINDINGS",
    "SUCCEEDED_WITH_FINDINGS",
    "UNUSABLE_QUALITY",
    "VIETNAMESE",
    "build_sr",
    "sr_series_description",
]

# ---------------------------------------------------------------------------------------
# Codes used in the document. Scheme designators as in PS3.16 8.1: SCT = SNOMED CT,
# DCM = DICOM Controlled Terminology, UCUM = Unified Code for Units of Measure,
# UMLS = Unified Medical Language System, RFC5646 = IETF language tags.
# ---------------------------------------------------------------------------------------

#: Document title (CID 7021 Measurement Report Document Titles).
IMAGING_MEASUREMENT_REPORT: Final = CodedConcept("126000", "DCM", "Imaging Measurement Report")

#: Procedure reported for the ``cxr`` pipeline (SNOMED CT "Plain chest X-ray (procedure)").
PLAIN_CHEST_XRAY: Final = CodedConcept("399208008", "SCT", "Plain chest X-ray")
#: Procedure reported for any other pipeline (CID 100).
IMAGING_PROCEDURE: Final = CodedConcept("363679005", "SCT", "Imaging procedure")

#: Value of a finding's qualitative evaluation when the score reaches the operating point.
PRESENT: Final = CodedConcept("52101004", "SCT", "Present")
#: Value of a finding's qualitative evaluation when it does not.
ABSENT: Final = CodedConcept("272519000", "SCT", "Absent")

#: The model's score for a finding (NUM), in [0, 1].
PROBABILITY: Final = CodedConcept("122157", "DCM", "Probability")
#: The operating point: the score at or above which the finding is called present (NUM).
OPERATING_POINT: Final = CodedConcept("122411", "DCM", "Threshold Value")
#: Unit of both (a UCUM annotation of the dimensionless unit 1).
PROBABILITY_UNIT: Final = CodedConcept("{probability}", "UCUM", "probability")

#: Purpose of the reference to a finding's heatmap secondary capture (CID 7003).
BEST_ILLUSTRATION_OF_FINDING: Final = CodedConcept("121080", "DCM", "Best illustration of finding")

#: TID 1500 row 10: the container of the document-level qualitative evaluations.
QUALITATIVE_EVALUATIONS: Final = CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
#: Whether the model ran and found anything (CID 6047 values below).
CAD_PROCESSING_AND_FINDINGS_SUMMARY: Final = CodedConcept(
    "111017", "DCM", "CAD Processing and Findings Summary"
)
#: Complete result, at least one finding positive.
SUCCEEDED_WITH_FINDINGS: Final = CodedConcept(
    "111242", "DCM", "All algorithms succeeded; with findings"
)
#: Complete result, no finding positive.
SUCCEEDED_WITHOUT_FINDINGS: Final = CodedConcept(
    "111241", "DCM", "All algorithms succeeded; without findings"
)
#: Ungradable (refused by a quality gate) or failed result.
NO_ALGORITHMS_SUCCEEDED_WITHOUT_FINDINGS: Final = CodedConcept(
    "111245", "DCM", "No algorithms succeeded; without findings"
)
#: The quality gates' verdict on the images of an ungradable result ...
QUALITY_ASSESSMENT: Final = CodedConcept("111050", "DCM", "Quality Assessment")
#: ... from CID 6044 Image Quality Assessment Type.
UNUSABLE_QUALITY: Final = CodedConcept("111235", "DCM", "Unusable - Quality renders image unusable")

#: Name of the free-text statements (the reason, the summary), one per language.
COMMENT: Final = CodedConcept("121106", "DCM", "Comment")
#: Concept modifier giving the language of one TEXT item's value.
LANGUAGE_OF_VALUE: Final = CodedConcept("121047", "DCM", "Language of Value")
#: Languages (RFC 5646 tags): the document's coded content is English.
ENGLISH: Final = CodedConcept("en", "RFC5646", "English")
VIETNAMESE: Final = CodedConcept("vi", "RFC5646", "Vietnamese")

#: Series Number of the AI result SR series (the heatmap SCs are 9002).
SR_SERIES_NUMBER: Final = 9001

_PROCEDURES: Final[Mapping[str, CodedConcept]] = {"cxr": PLAIN_CHEST_XRAY}
_STATES: Final = frozenset({"complete", "ungradable", "failed"})
_STATUSES: Final = frozenset({"preliminary", "final", "amended"})

_SERIES_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "preliminary": "AI results — preliminary / Kết quả AI — sơ bộ",
    "final": "AI results — final / Kết quả AI — chính thức",
    "amended": "AI results — amended / Kết quả AI — đã sửa đổi",
}
_STATUS_EN: Final[Mapping[str, str]] = {
    "preliminary": "AI — preliminary, not reviewed by a physician",
    "final": "AI — final",
    "amended": "AI — amended",
}
_STATUS_VI: Final[Mapping[str, str]] = {
    "preliminary": "AI — sơ bộ, chưa được bác sĩ xem xét",
    "final": "AI — chính thức",
    "amended": "AI — đã sửa đổi",
}

_CONTAINS = RelationshipTypeValues.CONTAINS
_HAS_CONCEPT_MOD = RelationshipTypeValues.HAS_CONCEPT_MOD


def sr_series_description(status: str) -> str:
    """The Series Description of the SR series for a result ``status``, in both languages.

    Raises
    ------
    ValueError
        When ``status`` is not ``preliminary``, ``final`` or ``amended``.
    """
    try:
        return _SERIES_DESCRIPTIONS[status]
    except KeyError:
        raise ValueError(
            f"`status` must be one of {sorted(_STATUSES)}, {status!r} is given"
        ) from None


def build_sr(
    context: ReportContext,
    *,
    heatmap_sc: Mapping[str, pydicom.Dataset] | None = None,
    verifier: tuple[str, str] | None = None,
    verified_at: datetime | None = None,
) -> pydicom.Dataset:
    """Build the AI result's Comprehensive 3D SR (TID 1500 Measurement Report).

    Parameters
    ----------
    context:
        The result and everything it is about. Each image's DICOM file is read (without
        its pixels) for the evidence and the patient and study attributes.
    heatmap_sc:
        Finding key → the heatmap secondary capture built for it
        (:func:`reports.heatmap_sc.build_heatmap_sc`); each positive finding with one
        gets a reference to it, and it is listed as evidence.
    verifier:
        ``(name, organization)`` of the person who verified a ``final`` or ``amended``
        result, the name as a DICOM PN (``FAMILY^GIVEN``); the document is then VERIFIED.
    verified_at:
        When they verified it (timezone-aware); required with ``verifier``.

    Returns
    -------
    pydicom.Dataset
        A :class:`highdicom.sr.Comprehensive3DSR`, with file meta, ready to save.

    Raises
    ------
    ValueError
        When the context is inconsistent (unknown state or status, findings in a result
        that is not complete, no image, an image file or a heatmap SC that does not
        belong to the study, a finding read on an image the job did not read), when a
        heatmap SC is given for a finding that is not positive, or when ``verifier`` and
        ``verified_at`` are not given together, are given for a preliminary result, or
        ``verified_at`` has no timezone.
    OSError
        When an image file cannot be read.
    """
    _check_context(context)
    _check_verification(context, verifier, verified_at)
    sources = _read_sources(context)
    heatmaps = _check_heatmaps(context, heatmap_sc or {})
    content = _report_content(context, sources, heatmaps)
    status_entropy = [context.status, *(verifier or ())]
    created = context.created_at.astimezone(UTC).replace(microsecond=0)
    document = hd.sr.Comprehensive3DSR(
        evidence=[*sources.values(), *heatmaps.values()],
        content=content,
        series_instance_uid=document_uid(context, "sr", *status_entropy, "series"),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=document_uid(context, "sr", *status_entropy, "instance"),
        instance_number=1,
        manufacturer=context.model.manufacturer,
        is_complete=not context.preliminary,
        is_final=not context.preliminary,
        is_verified=verifier is not None,
        institution_name=long_string(context.facility.name),
        verifying_observer_name=verifier[0] if verifier else None,
        verifying_organization=verifier[1] if verifier else None,
        performed_procedure_codes=[_procedure(context)],
        specific_character_set="ISO_IR 192",
        series_description=sr_series_description(context.status),
        manufacturer_model_name=context.model.name,
        software_versions=context.model.version,
        content_date=created.date(),
        content_time=created.time(),
        series_date=created.date(),
        series_time=created.time(),
    )
    document.InstanceCreationDate = DA(created.date())
    document.InstanceCreationTime = TM(created.time())
    for equipment in document.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = created.strftime("%Y%m%d%H%M%S+0000")
    if verifier is not None and verified_at is not None:
        moment = verified_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        document.VerifyingObserverSequence[0].VerificationDateTime = f"{moment}+0000"
    return document


def _check_context(context: ReportContext) -> None:
    if context.state not in _STATES:
        raise ValueError(
            f"`context.state` must be one of {sorted(_STATES)}, {context.state!r} is given"
        )
    if context.status not in _STATUSES:
        raise ValueError(
            f"`context.status` must be one of {sorted(_STATUSES)}, {context.status!r} is given"
        )
    if context.state != "complete" and context.findings:
        raise ValueError(
            f"a {context.state} result has no findings, {len(context.findings)} are given"
        )
    if not context.images:
        raise ValueError("the result names no image: an SR needs the images read as its evidence")
    for finding in context.findings:
        if finding.sop_instance_uid is not None and context.image(finding.sop_instance_uid) is None:
            raise ValueError(
                f"finding {finding.key!r} was read on image {finding.sop_instance_uid}, "
                "which is not among the images of the result"
            )


def _check_verification(
    context: ReportContext, verifier: tuple[str, str] | None, verified_at: datetime | None
) -> None:
    if (verifier is None) != (verified_at is None):
        raise ValueError("`verifier` and `verified_at` must be given together")
    if verifier is None or verified_at is None:
        return
    if context.preliminary:
        raise ValueError("a preliminary result cannot be verified; its status must be final")
    if not all(verifier):
        raise ValueError(f"`verifier` must name a person and an organization, {verifier!r}")
    if verified_at.tzinfo is None:
        raise ValueError(f"`verified_at` must carry a timezone, {verified_at} is given")


def _read_sources(context: ReportContext) -> dict[str, pydicom.Dataset]:
    """The source images' data sets (no pixels), by SOP Instance UID, checked."""
    return {image.sop_instance_uid: read_source(context, image) for image in context.images}


def _check_heatmaps(
    context: ReportContext, heatmap_sc: Mapping[str, pydicom.Dataset]
) -> dict[str, pydicom.Dataset]:
    positive = {finding.key for finding in context.positive_findings}
    for key, dataset in heatmap_sc.items():
        if key not in positive:
            raise ValueError(
                f"a heatmap SC is given for {key!r}, which is not a positive finding of the "
                f"result (positive: {sorted(positive)})"
            )
        study = str(dataset.get("StudyInstanceUID", ""))
        if study != context.study.study_instance_uid:
            raise ValueError(
                f"the heatmap SC of {key!r} belongs to study {study or '(none)'}, "
                f"not {context.study.study_instance_uid}"
            )
        for keyword in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID"):
            if not dataset.get(keyword):
                raise ValueError(f"the heatmap SC of {key!r} has no {keyword}")
    return dict(heatmap_sc)


def _procedure(context: ReportContext) -> CodedConcept:
    return _PROCEDURES.get(context.pipeline, IMAGING_PROCEDURE)


def _report_content(
    context: ReportContext,
    sources: Mapping[str, pydicom.Dataset],
    heatmaps: Mapping[str, pydicom.Dataset],
) -> hd.sr.ContainerContentItem:
    """The root CONTAINER of the TID 1500 tree."""
    items = hd.sr.ContentSequence()
    items.extend(hd.sr.LanguageOfContentItemAndDescendants(ENGLISH))
    items.extend(_observation_context(context))
    items.append(
        hd.sr.CodeContentItem(
            name=codes.DCM.ProcedureReported,
            value=_procedure(context),
            relationship_type=_HAS_CONCEPT_MOD,
        )
    )
    items.extend(hd.sr.ImageLibrary(list(sources.values())))
    if context.findings:
        measurements = hd.sr.ContainerContentItem(
            name=codes.DCM.ImagingMeasurements, relationship_type=_CONTAINS
        )
        groups = hd.sr.ContentSequence()
        for finding in context.findings:
            groups.extend(_finding_group(context, finding, sources, heatmaps.get(finding.key)))
        measurements.ContentSequence = groups
        items.append(measurements)
    items.append(_qualitative_evaluations(context))
    root = hd.sr.ContainerContentItem(name=IMAGING_MEASUREMENT_REPORT, template_id="1500")
    root.ContentSequence = items
    # Read it back as highdicom's Measurement Report: checks the shape of the tree.
    hd.sr.MeasurementReport.from_sequence([root], copy=False)
    return root


def _observation_context(context: ReportContext) -> hd.sr.ObservationContext:
    """The model as the observer (TID 1002 with TID 1004 Device Observer)."""
    model = context.model
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=str(generate_uid(entropy_srcs=["soi", "device", model.name, model.version])),
        name=model.device_name,
        manufacturer_name=model.manufacturer,
        model_name=model.name,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _finding_group(
    context: ReportContext,
    finding: FindingInfo,
    sources: Mapping[str, pydicom.Dataset],
    heatmap: pydicom.Dataset | None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """One finding's measurement group (TID 1501)."""
    concept = CodedConcept(finding.code_value, finding.code_scheme, finding.code_meaning)
    measurements = [
        hd.sr.Measurement(name=PROBABILITY, value=finding.probability, unit=PROBABILITY_UNIT)
    ]
    if finding.threshold is not None:
        measurements.append(
            hd.sr.Measurement(name=OPERATING_POINT, value=finding.threshold, unit=PROBABILITY_UNIT)
        )
    read_on: Iterable[pydicom.Dataset] = (
        [sources[finding.sop_instance_uid]]
        if finding.sop_instance_uid is not None
        else sources.values()
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=document_uid(context, "sr", "tracking", finding.key), identifier=finding.display_en
        ),
        finding_type=concept,
        algorithm_id=hd.sr.AlgorithmIdentification(
            name=context.model.name,
            version=context.model.version,
            manufacturer=context.model.manufacturer,
        ),
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(name=concept, value=PRESENT if finding.positive else ABSENT)
        ],
        source_images=[
            hd.sr.SourceImageForMeasurementGroup.from_source_image(image) for image in read_on
        ],
    )
    if heatmap is not None:
        group[0].ContentSequence.append(
            hd.sr.ImageContentItem(
                name=BEST_ILLUSTRATION_OF_FINDING,
                referenced_sop_class_uid=heatmap.SOPClassUID,
                referenced_sop_instance_uid=heatmap.SOPInstanceUID,
                relationship_type=_CONTAINS,
            )
        )
    return group


def _qualitative_evaluations(context: ReportContext) -> hd.sr.ContainerContentItem:
    """The outcome as a coded summary and a statement in English and in Vietnamese."""
    items = hd.sr.ContentSequence()
    if context.state != "complete":
        summary = NO_ALGORITHMS_SUCCEEDED_WITHOUT_FINDINGS
    elif context.positive_findings:
        summary = SUCCEEDED_WITH_FINDINGS
    else:
        summary = SUCCEEDED_WITHOUT_FINDINGS
    items.append(
        hd.sr.CodeContentItem(
            name=CAD_PROCESSING_AND_FINDINGS_SUMMARY, value=summary, relationship_type=_CONTAINS
        )
    )
    if context.state == "ungradable":
        items.append(
            hd.sr.CodeContentItem(
                name=QUALITY_ASSESSMENT, value=UNUSABLE_QUALITY, relationship_type=_CONTAINS
            )
        )
    english, vietnamese = _statements(context)
    items.append(_text(english, ENGLISH))
    items.append(_text(vietnamese, VIETNAMESE))
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=_CONTAINS
    )
    container.ContentSequence = items
    return container


def _text(value: str, language: CodedConcept) -> hd.sr.TextContentItem:
    item = hd.sr.TextContentItem(name=COMMENT, value=value, relationship_type=_CONTAINS)
    item.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.CodeContentItem(
                name=LANGUAGE_OF_VALUE, value=language, relationship_type=_HAS_CONCEPT_MOD
            )
        ]
    )
    return item


def _statements(context: ReportContext) -> tuple[str, str]:
    """The result in one sentence or two, in English and in Vietnamese."""
    status_en, status_vi = _STATUS_EN[context.status], _STATUS_VI[context.status]
    if context.state == "ungradable":
        gates_en, gates_vi = _failed_gates(context.gates)
        return (
            f"{status_en}. Not gradable by the AI: {context.reason_en}.{gates_en}",
            f"{status_vi}. AI không thể đánh giá: {context.reason_vi}.{gates_vi}",
        )
    if context.state == "failed":
        return (
            f"{status_en}. The AI analysis failed: {context.reason_en}.",
            f"{status_vi}. Phân tích AI thất bại: {context.reason_vi}.",
        )
    positive = context.positive_findings
    if not positive:
        return (
            f"{status_en}. No finding reaches its operating point.",
            f"{status_vi}. Không có dấu hiệu nào đạt ngưỡng.",
        )
    listed_en = ", ".join(f"{f.display_en} {f.probability:.2f}" for f in positive)
    listed_vi = ", ".join(f"{f.display_vi} {_decimal_vi(f.probability)}" for f in positive)
    return (
        f"{status_en}. Positive: {listed_en}.",
        f"{status_vi}. Dương tính: {listed_vi}.",
    )


def _failed_gates(gates: Sequence[GateInfo]) -> tuple[str, str]:
    failed = [gate for gate in gates if not gate.passed]
    if not failed:
        return "", ""
    english = "; ".join(f"{gate.gate}: {gate.reason_en}" for gate in failed)
    vietnamese = "; ".join(f"{gate.gate}: {gate.reason_vi}" for gate in failed)
    return (
        f" Quality gates not passed — {english}.",
        f" Cổng chất lượng không đạt — {vietnamese}.",
    )


def _decimal_vi(value: float) -> str:
    """``0.91`` as Vietnamese writes it, ``0,91``."""
    return f"{value:.2f}".replace(".", ",")

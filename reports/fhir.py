"""The FHIR R4 transaction Bundle of one AI result, for the facility's EMR.

:func:`build_bundle` turns a :class:`~reports.context.ReportContext` into one
``transaction`` Bundle (FHIR R4B models, which an R4 server reads unchanged):

* **Organization**: the facility, the ``performer`` of the report (IHE IMR asks for one
  Organization among the performers) and the assigner of its record numbers.
* **Patient**: every identifier the context knows, under the configured
  :class:`IdentifierSystems` (VN Core's CCCD, BHYT and HSSK systems by default; the
  facility's record number keeps its own system), each with a ``type``; the name as
  the images spell it (DICOM PN ``FAMILY^GIVEN``), birth date and gender.
* **ImagingStudy**: the study UID (``urn:dicom:uid`` / ``urn:oid:...``), the accession
  number, and the series and instances the model read with their SOP classes.
* **Device**: the model version that produced the result, with a note when it was
  trained on synthetic data only.
* **Observation** per finding (complete results), or one Observation of the
  quality-gate outcome (ungradable and failed results).
* **DiagnosticReport**, shaped after the IHE Interactive Multimedia Report (IMR)
  profile: LOINC/RAD category, a LOINC chest X-ray code, the study, the Observations,
  a conclusion in the facility's language (the other language as the standard
  ``translation`` extension), the positive findings' SNOMED CT codes and the PDF.
* For a complete result with a positive finding: a **ServiceRequest** (intent
  ``proposal``) that a clinician review the finding and follow the patient up, a
  **Task** to do it, and, when a commune health station is named, a **Communication**
  to it in Vietnamese.

Everything the model asserted carries the ``AIAST`` (Artificial Intelligence asserted)
security label of HL7's AI Transparency guide. An R4 ``DiagnosticReport.performer``
cannot be a Device, so the report names the model through an extension
(:data:`AI_DEVICE_EXTENSION_URL`) and every Observation through ``Observation.device``.

**Idempotency.** Each entry is a conditional create (``ifNoneExist``) on the
resource's business identifier: the Patient on its CCCD, else BHYT, else HSSK, else
record number; the ImagingStudy on its study UID; the Device on ``name@version``;
the report on ``urn:soi:result|<result_id>`` and the resources derived from it on
``<result_id>-<suffix>`` (``<result_id>-<finding key>`` for findings). ``fullUrl``\\ s
are ``urn:uuid:`` UUIDs derived with :func:`uuid.uuid5` from the result id, so the
same result always gives the same Bundle, and sending it twice creates nothing twice.

A patient with no identifier (or only the placeholder the DICOM gateway gives an
instance without a Patient ID) is never sent: :class:`NoPatientIdentifierError`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from html import escape
from typing import Any, Final
from urllib.parse import quote

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.communication import Communication, CommunicationPayload
from fhir.resources.R4B.device import Device, DeviceDeviceName, DeviceVersion
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.fhirprimitiveextension import FHIRPrimitiveExtension
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.imagingstudy import (
    ImagingStudy,
    ImagingStudySeries,
    ImagingStudySeriesInstance,
)
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.narrative import Narrative
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from reports.context import (
    FindingInfo,
    IdentifierInfo,
    ImageInfo,
    Language,
    ReportContext,
    StudyInfo,
)

__all__ = [
    "AI_DEVICE_EXTENSION_URL",
    "VIETNAM_TIME",
    "IdentifierSystems",
    "InvalidBundleError",
    "NoPatientIdentifierError",
    "OrganizationRef",
    "build_bundle",
    "bundle_json",
]

#: Extension on DiagnosticReport naming the AI model (a Device) that produced it.
AI_DEVICE_EXTENSION_URL: Final = "urn:soi:fhir:StructureDefinition:diagnosticreport-ai-device"

#: Vietnam's one time zone (UTC+07:00, no daylight saving): DICOM study dates and times
#: are local to the facility and FHIR needs an offset on a time of day.
VIETNAM_TIME: Final = timezone(timedelta(hours=7), "ICT")

# Code systems.
_SNOMED: Final = "http://snomed.info/sct"
_LOINC: Final = "http://loinc.org"
_UCUM: Final = "http://unitsofmeasure.org"
_DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
_RFC3986: Final = "urn:ietf:rfc:3986"
_V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
_V2_0074: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"
_V3_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_V3_OBSERVATION_VALUE: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
_OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
_ORGANIZATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/organization-type"
_COMMUNICATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/communication-category"
_TASK_CODE: Final = "http://hl7.org/fhir/CodeSystem/task-code"
_TRANSLATION: Final = "http://hl7.org/fhir/StructureDefinition/translation"
#: Soi's own concepts (operating point, quality-gate outcome): no standard code exists.
_SOI_CODES: Final = "urn:soi:code"

#: Coding scheme designators of the context (DICOM style) to FHIR code system URIs.
_CODE_SCHEMES: Final = {
    "SCT": _SNOMED,
    "SRT": _SNOMED,
    "LN": _LOINC,
    "DCM": _DCM,
    "RADLEX": "http://radlex.org",
}

#: The system the DICOM gateway gives an instance that names no patient: not an
#: identifier of the patient, so never sent to an EMR.
_PLACEHOLDER_SYSTEM_PREFIX: Final = "urn:soi:no-patient-id:"

#: Patient identifiers the conditional create matches on, best first.
_MATCH_ORDER: Final = ("national_id", "health_insurance", "health_record", "mrn")

_UUID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:soi:fhir:bundle")

_STATES: Final = ("complete", "ungradable", "failed")


@dataclass(frozen=True, slots=True)
class IdentifierSystems:
    """The URIs identifiers are sent under; configurable per deployment.

    The national systems default to the draft VN Core FHIR IG of HL7 Vietnam
    (``http://fhir.hl7.org.vn/core``): its NamingSystems ``vn-cccd-ns``
    (``.../sid/cccd``) and the BHYT system its Coverage search parameter uses
    (``.../sid/bhyt``). The draft names no HSSK (electronic health record) system;
    ``.../sid/hssk`` follows the same pattern and should be checked against the
    guide's next version. An earlier draft of the Ministry of Health
    (``http://fhir.ehealth.gov.vn/core``) used ``.../sid/insurance_number`` for BHYT;
    a deployment whose EMR follows it sets that here.

    Attributes
    ----------
    national_id:
        Căn cước công dân (CCCD), the 12-digit citizen identity number.
    health_insurance:
        Bảo hiểm y tế (BHYT) card number.
    health_record:
        Hồ sơ sức khỏe điện tử (HSSK), the national electronic health record number.
    vn_identifier_type:
        VN Core's identifier-type code system (code ``CCCD``), coded next to HL7's
        ``NI`` on the CCCD identifier.
    dicom_uid:
        System of DICOM UIDs (values ``urn:oid:<uid>``).
    result:
        Soi's result identifiers (the report, ``<result_id>``; what derives from it,
        ``<result_id>-<suffix>``).
    facility:
        Soi's facility codes (the facility Organization).
    model:
        Soi's model versions (the Device, ``name@version``).

    Raises
    ------
    ValueError
        When a system is empty.
    """

    national_id: str = "http://fhir.hl7.org.vn/core/sid/cccd"
    health_insurance: str = "http://fhir.hl7.org.vn/core/sid/bhyt"
    health_record: str = "http://fhir.hl7.org.vn/core/sid/hssk"
    vn_identifier_type: str = "http://fhir.hl7.org.vn/core/CodeSystem/vn-identifier-type-cs"
    dicom_uid: str = "urn:dicom:uid"
    result: str = "urn:soi:result"
    facility: str = "urn:soi:facility"
    model: str = "urn:soi:model"

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not getattr(self, name):
                raise ValueError(f"`{name}` must not be empty")


@dataclass(frozen=True, slots=True)
class OrganizationRef:
    """An organisation the Bundle addresses without creating it (a commune health station).

    Attributes
    ----------
    name:
        Its name, the reference's display (``Trạm Y tế xã ...``).
    system, value:
        Its business identifier, when it has one.
    reference:
        Its literal reference on the receiving server (``Organization/123``), if known.

    Raises
    ------
    ValueError
        When neither an identifier (``system`` and ``value``) nor ``reference`` is given,
        or only half of the identifier.
    """

    name: str
    system: str = ""
    value: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        if bool(self.system) != bool(self.value):
            raise ValueError("`system` and `value` must be given together")
        if not (self.value or self.reference):
            raise ValueError("an identifier (`system`, `value`) or a `reference` is needed")

    def to_reference(self) -> Reference:
        """The FHIR Reference to the organisation."""
        return Reference(
            reference=self.reference or None,
            type="Organization",
            identifier=Identifier(system=self.system, value=self.value) if self.value else None,
            display=self.name or None,
        )


class NoPatientIdentifierError(ValueError):
    """The patient has no identifier an EMR could match: the result is not sent."""


class InvalidBundleError(RuntimeError):
    """The Bundle built does not hold together (a bug, never the data's fault)."""


# --------------------------------------------------------------------------- texts

_TEXT: Final[dict[Language, dict[str, str]]] = {
    "vi": {
        "preliminary": "Kết quả AI sơ bộ — không phải chẩn đoán, chưa được bác sĩ xác nhận.",
        "final": "Kết quả AI đã được bác sĩ xác nhận.",
        "amended": "Kết quả AI đã được bác sĩ sửa đổi.",
        "suspected": "Nghi ngờ: {findings}.",
        "none": "Không có dấu hiệu nào đạt ngưỡng trong số các dấu hiệu được đánh giá: {findings}.",
        "ungradable": "AI không đánh giá được phim: {reason}",
        "failed": "AI không xử lý được ca chụp: {reason}",
        "no_reason": "không rõ lý do",
        "quality_code": "Kết quả kiểm tra chất lượng ảnh của AI",
        "state_ungradable": "Không đánh giá được",
        "state_failed": "Không xử lý được",
        "gate_passed": "Đạt",
        "gate_failed": "Không đạt",
        "follow_up": "Bác sĩ xem lại dấu hiệu AI phát hiện và hẹn theo dõi, tái khám",
        "task": "Bác sĩ xem lại kết quả AI và quyết định theo dõi người bệnh: {findings}.",
        "operating_point": "Ngưỡng quyết định của mô hình",
        "pdf_title": "Báo cáo kết quả AI",
        "synthetic": "Mô hình chỉ được huấn luyện trên dữ liệu tổng hợp (synthetic): {data}.",
    },
    "en": {
        "preliminary": "Preliminary AI result — not a diagnosis, not yet confirmed by a clinician.",
        "final": "AI result confirmed by a clinician.",
        "amended": "AI result amended by a clinician.",
        "suspected": "Suspected: {findings}.",
        "none": "No finding reached its operating point among those assessed: {findings}.",
        "ungradable": "Not gradable by AI: {reason}",
        "failed": "AI analysis failed: {reason}",
        "no_reason": "no reason given",
        "quality_code": "AI image quality gate outcome",
        "state_ungradable": "Ungradable",
        "state_failed": "Failed",
        "gate_passed": "Passed",
        "gate_failed": "Failed",
        "follow_up": "Clinician review of AI finding and follow-up",
        "task": "Clinician to review the AI result and decide on follow-up: {findings}.",
        "operating_point": "Model operating point (decision threshold)",
        "pdf_title": "AI result report",
        "synthetic": "Trained on synthetic data only: {data}.",
    },
}


def _other(language: Language) -> Language:
    return "en" if language == "vi" else "vi"


def _score(value: float, language: Language) -> str:
    text = f"{value:.2f}"
    return text.replace(".", ",") if language == "vi" else text


def _report_status(status: str) -> str:
    """``preliminary``, ``final`` or ``amended``; anything else reads as preliminary."""
    return status if status in ("final", "amended") else "preliminary"


def _conclusion(context: ReportContext, language: Language) -> str:
    text = _TEXT[language]
    if context.state != "complete":
        reason = context.reason_vi if language == "vi" else context.reason_en
        return text[context.state].format(reason=reason.strip() or text["no_reason"])
    positive = context.positive_findings
    if positive:
        listed = "; ".join(
            f"{finding.display(language)} ({_score(finding.probability, language)})"
            for finding in positive
        )
        detail = text["suspected"].format(findings=listed)
    else:
        listed = ", ".join(finding.display(language) for finding in context.findings)
        detail = text["none"].format(findings=listed) if listed else ""
    return " ".join(part for part in (text[_report_status(context.status)], detail) if part)


def _commune_message(context: ReportContext) -> str:
    """The Vietnamese notice to the commune health station."""
    findings = ", ".join(finding.display_vi for finding in context.positive_findings)
    opening = _TEXT["vi"][_report_status(context.status)]
    study = context.study.study_description.strip() or "chẩn đoán hình ảnh"
    taken = _dicom_date(context.study.study_date)
    when = f" chụp ngày {taken:%d/%m/%Y}" if taken else ""
    facility = context.facility.name or context.facility.code
    return (
        f"{opening} Phim {study}{when} tại {facility}: AI nghi ngờ {findings}. "
        "Đề nghị trạm y tế liên hệ người bệnh để được bác sĩ khám lại và theo dõi."
    )


# ------------------------------------------------------------------ small helpers


def _coding(system: str, code: str, display: str | None = None) -> Coding:
    return Coding(system=system, code=code, display=display or None)


def _concept(*codings: Coding, text: str | None = None) -> CodeableConcept:
    return CodeableConcept(coding=list(codings) or None, text=text or None)


def _reference(full_url: str, display: str | None = None, type_: str | None = None) -> Reference:
    return Reference(reference=full_url, type=type_, display=display or None)


def _translation(language: Language, content: str) -> FHIRPrimitiveExtension:
    """The standard ``translation`` extension on a string element."""
    return FHIRPrimitiveExtension(
        extension=[
            Extension(
                url=_TRANSLATION,
                extension=[
                    Extension(url="lang", valueCode=language),
                    Extension(url="content", valueString=content),
                ],
            )
        ]
    )


def _ai_meta() -> Meta:
    """The AI-asserted security label (HL7 AI Transparency on FHIR)."""
    return Meta(
        security=[
            _coding(_V3_OBSERVATION_VALUE, "AIAST", "Artificial Intelligence asserted"),
        ]
    )


def _escape_token(value: str) -> str:
    """Escape FHIR search's special characters in a token value."""
    for char in ("\\", "|", ",", "$"):
        value = value.replace(char, "\\" + char)
    return value


def _identifier_query(identifier: Identifier) -> str:
    """``identifier=<system>|<value>``, percent-encoded, for ``ifNoneExist``."""
    system = quote(str(identifier.system), safe=":/@")
    value = quote(_escape_token(str(identifier.value)), safe=":/@")
    return f"identifier={system}|{value}"


def _dicom_date(value: str) -> date | None:
    digits = value.strip().replace("-", "").replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _dicom_time(value: str) -> time | None:
    digits = value.strip().split(".", 1)[0].replace(":", "")
    if len(digits) not in (2, 4, 6) or not digits.isdigit():
        return None
    try:
        return time(int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0))
    except ValueError:
        return None


def _study_datetime(study: StudyInfo) -> datetime | date | None:
    """When the images were taken: a local date and time, or only the date."""
    day = _dicom_date(study.study_date)
    if day is None:
        return None
    moment = _dicom_time(study.study_time)
    return day if moment is None else datetime.combine(day, moment, tzinfo=VIETNAM_TIME)


def _gender(sex: str) -> str:
    return {"M": "male", "F": "female", "O": "other"}.get(sex.strip().upper(), "unknown")


def _human_name(person_name: str) -> HumanName | None:
    """A DICOM PN (``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``, alphabetic group), as spelt."""
    parts = [part.strip() for part in person_name.split("=", 1)[0].split("^")]
    parts += [""] * (5 - len(parts))
    family = parts[0]
    given = parts[1].split() + parts[2].split()
    if not (family or given):
        return None
    return HumanName(
        use="official",
        text=" ".join([family, *given]).strip(),
        family=family or None,
        given=given or None,
        prefix=parts[3].split() or None,
        suffix=parts[4].split() or None,
    )


def _modalities(context: ReportContext) -> list[str]:
    found = [m for m in re.split(r"[\\,/\s]+", context.study.modalities) if m]
    found += [image.modality for image in context.images if image.modality]
    return list(dict.fromkeys(found))


def _concept_of(finding: FindingInfo, language: Language) -> CodeableConcept:
    """The finding's coded concept (SNOMED CT for the chest X-ray findings)."""
    codings = []
    if finding.code_value:
        system = _CODE_SCHEMES.get(
            finding.code_scheme.upper(), f"urn:soi:scheme:{finding.code_scheme}"
        )
        codings.append(_coding(system, finding.code_value, finding.code_meaning))
    return _concept(*codings, text=finding.display(language))


def _decimal(value: float) -> Decimal:
    return Decimal(str(round(value, 4)))


def _probability(value: float) -> Quantity:
    return Quantity(value=_decimal(value), unit="probability", system=_UCUM, code="1")


# ----------------------------------------------------------------------- builder

#: The chest the chest X-ray pipeline reads (SNOMED CT "Thoracic structure").
_CHEST: Final = ("51185008", "Thoracic structure")

#: Report codes per pipeline: one view read, or more.
_REPORT_CODES: Final = {
    "cxr": (("36554-4", "XR Chest Single view"), ("36643-5", "XR Chest 2 Views")),
}
_GENERIC_REPORT_CODE: Final = ("18748-4", "Diagnostic imaging study")


@dataclass(frozen=True, slots=True)
class _Entry:
    full_url: str
    resource: Resource
    identifier: Identifier


class _BundleBuilder:
    """Builds the entries of one result's Bundle (one use)."""

    def __init__(self, context: ReportContext, systems: IdentifierSystems) -> None:
        self.context = context
        self.systems = systems
        self.language: Language = context.facility.language
        self.status = _report_status(context.status)
        self.entries: list[_Entry] = []
        taken = _study_datetime(context.study)
        self.effective: datetime | date = taken if taken is not None else context.created_at
        self.chest = context.pipeline == "cxr"

    # -- plumbing

    def full_url(self, key: str) -> str:
        name = f"{self.systems.result}|{self.context.result_id}|{key}"
        return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, name)}"

    def add(self, key: str, resource: Resource, identifier: Identifier) -> str:
        full_url = self.full_url(key)
        self.entries.append(_Entry(full_url, resource, identifier))
        return full_url

    def result_identifier(self, suffix: str = "") -> Identifier:
        value = str(self.context.result_id)
        return Identifier(
            system=self.systems.result, value=f"{value}-{suffix}" if suffix else value
        )

    def body_site(self) -> CodeableConcept | None:
        return _concept(_coding(_SNOMED, *_CHEST)) if self.chest else None

    # -- resources

    def organization(self) -> Reference:
        facility = self.context.facility
        identifier = Identifier(system=self.systems.facility, value=facility.code)
        resource = Organization(
            identifier=[identifier],
            active=True,
            type=[_concept(_coding(_ORGANIZATION_TYPE, "prov", "Healthcare Provider"))],
            name=facility.name or facility.code,
        )
        url = self.add("organization", resource, identifier)
        return _reference(url, facility.name or facility.code, "Organization")

    def patient_identifier(self, item: IdentifierInfo, facility: Reference) -> Identifier | None:
        value = item.value.strip()
        systems = {
            "national_id": self.systems.national_id,
            "health_insurance": self.systems.health_insurance,
            "health_record": self.systems.health_record,
        }
        system = systems.get(item.kind, item.system.strip())
        if not value or not system or system.startswith(_PLACEHOLDER_SYSTEM_PREFIX):
            return None
        if item.kind == "national_id":
            return Identifier(
                use="official",
                type=_concept(
                    _coding(_V2_0203, "NI", "National unique individual identifier"),
                    _coding(self.systems.vn_identifier_type, "CCCD", "Căn cước công dân"),
                    text="Căn cước công dân (CCCD)",
                ),
                system=system,
                value=value,
            )
        if item.kind == "health_insurance":
            return Identifier(
                type=_concept(
                    _coding(_V2_0203, "MB", "Member Number"), text="Thẻ bảo hiểm y tế (BHYT)"
                ),
                system=system,
                value=value,
            )
        if item.kind == "health_record":
            return Identifier(
                type=_concept(
                    _coding(_V2_0203, "MR", "Medical record number"),
                    text="Hồ sơ sức khỏe điện tử (HSSK)",
                ),
                system=system,
                value=value,
            )
        if item.kind == "mrn":
            return Identifier(
                use="usual",
                type=_concept(
                    _coding(_V2_0203, "MR", "Medical record number"), text="Mã người bệnh (MRN)"
                ),
                system=system,
                value=value,
                assigner=facility,
            )
        return Identifier(system=system, value=value)

    def patient(self, facility: Reference) -> Reference:
        person = self.context.patient
        found: list[tuple[str, Identifier]] = []
        for item in person.identifiers:
            identifier = self.patient_identifier(item, facility)
            if identifier is not None:
                found.append((item.kind, identifier))
        if not found:
            raise NoPatientIdentifierError(
                f"not sent to EMR: no patient identifier (result {self.context.result_id})"
            )
        rank = {kind: index for index, kind in enumerate(_MATCH_ORDER)}
        match = min(found, key=lambda pair: rank.get(pair[0], len(rank)))[1]
        name = _human_name(person.name)
        resource = Patient(
            identifier=[identifier for _, identifier in found],
            name=[name] if name is not None else None,
            gender=_gender(person.sex),
            birthDate=_dicom_date(person.birth_date),
        )
        url = self.add("patient", resource, match)
        return _reference(url, name.text if name is not None else None, "Patient")

    def imaging_study(self, patient: Reference, facility: Reference) -> Reference:
        study = self.context.study
        uid = Identifier(system=self.systems.dicom_uid, value=f"urn:oid:{study.study_instance_uid}")
        identifiers = [uid]
        if study.accession_number.strip():
            identifiers.append(
                Identifier(
                    type=_concept(_coding(_V2_0203, "ACSN", "Accession ID")),
                    value=study.accession_number.strip(),
                    assigner=facility,
                )
            )
        series: dict[str, list[ImageInfo]] = {}
        for image in self.context.images:
            series.setdefault(image.series_instance_uid, []).append(image)
        resource = ImagingStudy(
            identifier=identifiers,
            status="available",
            modality=[_coding(_DCM, modality) for modality in _modalities(self.context)] or None,
            subject=patient,
            started=_study_datetime(study),
            numberOfSeries=len(series) or None,
            numberOfInstances=len(self.context.images) or None,
            description=study.study_description.strip() or None,
            series=[
                ImagingStudySeries(
                    uid=series_uid,
                    modality=_coding(_DCM, images[0].modality),
                    numberOfInstances=len(images),
                    bodySite=_coding(_SNOMED, *_CHEST) if self.chest else None,
                    instance=[
                        ImagingStudySeriesInstance(
                            uid=image.sop_instance_uid,
                            sopClass=_coding(_RFC3986, f"urn:oid:{image.sop_class_uid}"),
                        )
                        for image in images
                    ],
                )
                for series_uid, images in series.items()
            ]
            or None,
        )
        url = self.add("imaging-study", resource, uid)
        return _reference(url, study.study_description.strip() or None, "ImagingStudy")

    def device(self, facility: Reference) -> Reference:
        model = self.context.model
        identifier = Identifier(system=self.systems.model, value=f"{model.name}@{model.version}")
        notes = []
        if model.synthetic_training_data:
            for language in ("en", "vi"):
                template = _TEXT[language]["synthetic"]
                notes.append(Annotation(text=template.format(data=model.training_data or "—")))
        if model.intended_use:
            notes.append(Annotation(text=model.intended_use))
        resource = Device(
            identifier=[identifier],
            status="active",
            manufacturer=model.manufacturer or None,
            deviceName=[
                DeviceDeviceName(name=model.device_name, type="user-friendly-name"),
                DeviceDeviceName(name=model.name, type="model-name"),
            ],
            type=_concept(text=f"AI software: {model.task}" if model.task else "AI software"),
            version=[DeviceVersion(value=model.version)],
            owner=facility,
            note=notes or None,
        )
        url = self.add("device", resource, identifier)
        return _reference(url, model.device_name, "Device")

    def finding_observation(
        self,
        finding: FindingInfo,
        *,
        patient: Reference,
        study: Reference,
        device: Reference,
        facility: Reference,
    ) -> Reference:
        identifier = self.result_identifier(finding.key)
        interpretation = (
            _coding(_V3_INTERPRETATION, "POS", "Positive")
            if finding.positive
            else _coding(_V3_INTERPRETATION, "NEG", "Negative")
        )
        components = None
        if finding.threshold is not None:
            components = [
                ObservationComponent(
                    code=_concept(
                        _coding(_SOI_CODES, "operating-point", _TEXT["en"]["operating_point"]),
                        text=_TEXT[self.language]["operating_point"],
                    ),
                    valueQuantity=_probability(finding.threshold),
                )
            ]
        resource = Observation(
            meta=_ai_meta(),
            identifier=[identifier],
            status=self.status,
            category=self.observation_category(),
            code=_concept_of(finding, self.language),
            subject=patient,
            effectiveDateTime=self.effective,
            issued=self.context.created_at,
            performer=[facility],
            valueQuantity=_probability(finding.probability),
            interpretation=[_concept(interpretation)],
            bodySite=self.body_site(),
            device=device,
            derivedFrom=[study],
            component=components,
        )
        url = self.add(f"observation/{finding.key}", resource, identifier)
        return _reference(url, finding.display(self.language), "Observation")

    def observation_category(self) -> list[CodeableConcept]:
        return [
            _concept(_coding(_OBSERVATION_CATEGORY, "imaging", "Imaging")),
            _concept(_coding(_LOINC, "59776-5", "Procedure Findings")),
        ]

    def quality_observation(
        self, *, patient: Reference, study: Reference, device: Reference, facility: Reference
    ) -> Reference:
        context = self.context
        text = _TEXT[self.language]
        identifier = self.result_identifier("quality-gate")
        several = len({gate.sop_instance_uid for gate in context.gates}) > 1
        components = []
        for gate in context.gates:
            reason = gate.reason_vi if self.language == "vi" else gate.reason_en
            outcome = "passed" if gate.passed else "failed"
            label = gate.gate + (f" ({gate.sop_instance_uid})" if several else "")
            components.append(
                ObservationComponent(
                    code=_concept(_coding(_SOI_CODES, f"gate-{gate.gate}", gate.gate), text=label),
                    valueCodeableConcept=_concept(
                        _coding(_SOI_CODES, f"gate-{outcome}", _TEXT["en"][f"gate_{outcome}"]),
                        text=reason.strip() or text[f"gate_{outcome}"],
                    ),
                )
            )
        reason = context.reason_vi if self.language == "vi" else context.reason_en
        notes = [
            Annotation(text=value.strip())
            for value in (context.reason_vi, context.reason_en)
            if value.strip()
        ]
        resource = Observation(
            meta=_ai_meta(),
            identifier=[identifier],
            status=self.status,
            category=[_concept(_coding(_OBSERVATION_CATEGORY, "imaging", "Imaging"))],
            code=_concept(
                _coding(_SOI_CODES, "quality-gate-outcome", _TEXT["en"]["quality_code"]),
                text=text["quality_code"],
            ),
            subject=patient,
            effectiveDateTime=self.effective,
            issued=context.created_at,
            performer=[facility],
            valueCodeableConcept=_concept(
                _coding(_SOI_CODES, context.state, _TEXT["en"][f"state_{context.state}"]),
                text=reason.strip() or text[f"state_{context.state}"],
            ),
            bodySite=self.body_site(),
            device=device,
            derivedFrom=[study],
            component=components or None,
            note=notes or None,
        )
        url = self.add("observation/quality-gate", resource, identifier)
        return _reference(url, text["quality_code"], "Observation")

    def report_code(self) -> CodeableConcept:
        codes = _REPORT_CODES.get(self.context.pipeline)
        if codes is None:
            code, display = _GENERIC_REPORT_CODE
        else:
            code, display = codes[1] if len(self.context.images) > 1 else codes[0]
        return _concept(_coding(_LOINC, code, display), text=display)

    def diagnostic_report(
        self,
        *,
        patient: Reference,
        study: Reference,
        device: Reference,
        facility: Reference,
        results: list[Reference],
        pdf: bytes | None,
    ) -> Reference:
        context = self.context
        identifier = self.result_identifier()
        conclusion = _conclusion(context, self.language)
        other = _other(self.language)
        conclusion_codes = [
            _concept_of(finding, self.language)
            for finding in context.positive_findings
            if finding.code_value
        ]
        forms = None
        if pdf is not None:
            forms = [
                Attachment(
                    contentType="application/pdf",
                    language=self.language,
                    data=base64.b64encode(pdf),
                    size=len(pdf),
                    hash=base64.b64encode(hashlib.sha1(pdf, usedforsecurity=False).digest()),
                    title=_TEXT[self.language]["pdf_title"],
                    creation=context.created_at,
                )
            ]
        resource = DiagnosticReport(
            meta=_ai_meta(),
            language=self.language,
            text=Narrative(
                status="generated",
                div=f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escape(conclusion)}</p></div>',
            ),
            extension=[Extension(url=AI_DEVICE_EXTENSION_URL, valueReference=device)],
            identifier=[identifier],
            status=self.status,
            category=[
                _concept(
                    _coding(_LOINC, "LP29684-5", "Radiology"),
                    _coding(_V2_0074, "RAD", "Radiology"),
                )
            ],
            code=self.report_code(),
            subject=patient,
            effectiveDateTime=self.effective,
            issued=context.created_at,
            performer=[facility],
            imagingStudy=[study],
            result=results or None,
            conclusion=conclusion,
            conclusion__ext=_translation(other, _conclusion(context, other)),
            conclusionCode=conclusion_codes or None,
            presentedForm=forms,
        )
        url = self.add("diagnostic-report", resource, identifier)
        return _reference(url, None, "DiagnosticReport")

    def follow_up(
        self,
        *,
        patient: Reference,
        device: Reference,
        facility: Reference,
        report: Reference,
        positives: list[Reference],
    ) -> Reference:
        context = self.context
        text = _TEXT[self.language]
        identifier = self.result_identifier("follow-up")
        request = ServiceRequest(
            meta=_ai_meta(),
            identifier=[identifier],
            status="active",
            intent="proposal",
            code=_concept(
                _coding(_SNOMED, "390906007", "Follow-up encounter"), text=text["follow_up"]
            ),
            subject=patient,
            authoredOn=context.created_at,
            requester=device,
            performer=[facility],
            reasonReference=positives,
            supportingInfo=[report],
        )
        request_url = self.add("service-request", request, identifier)
        request_ref = _reference(request_url, text["follow_up"], "ServiceRequest")
        findings = "; ".join(
            finding.display(self.language) for finding in context.positive_findings
        )
        task_identifier = self.result_identifier("follow-up-task")
        task = Task(
            meta=_ai_meta(),
            identifier=[task_identifier],
            basedOn=[request_ref],
            status="requested",
            intent="proposal",
            code=_concept(_coding(_TASK_CODE, "fulfill", "Fulfill the focal request")),
            description=text["task"].format(findings=findings),
            focus=request_ref,
            for_fhir=patient,
            authoredOn=context.created_at,
            requester=device,
            owner=facility,
            reasonReference=report,
        )
        self.add("task", task, task_identifier)
        return request_ref

    def communication(
        self,
        station: OrganizationRef,
        *,
        patient: Reference,
        facility: Reference,
        report: Reference,
        request: Reference,
    ) -> None:
        identifier = self.result_identifier("commune-notification")
        resource = Communication(
            meta=_ai_meta(),
            language="vi",
            identifier=[identifier],
            basedOn=[request],
            status="preparation",
            category=[_concept(_coding(_COMMUNICATION_CATEGORY, "notification", "Notification"))],
            subject=patient,
            about=[report],
            recipient=[station.to_reference()],
            sender=facility,
            payload=[CommunicationPayload(contentString=_commune_message(self.context))],
        )
        self.add("communication", resource, identifier)

    def bundle(self) -> Bundle:
        return Bundle(
            type="transaction",
            entry=[
                BundleEntry(
                    fullUrl=entry.full_url,
                    resource=entry.resource,
                    request=BundleEntryRequest(
                        method="POST",
                        url=entry.resource.get_resource_type(),
                        ifNoneExist=_identifier_query(entry.identifier),
                    ),
                )
                for entry in self.entries
            ],
        )


# ------------------------------------------------------------------- public API


def build_bundle(
    context: ReportContext,
    *,
    systems: IdentifierSystems = IdentifierSystems(),
    pdf: bytes | None = None,
    commune_station: OrganizationRef | None = None,
) -> Bundle:
    """Build the FHIR transaction Bundle of one AI result.

    Each finding is one Observation whose ``code`` is the finding's concept (SNOMED
    CT), ``valueQuantity`` the model's probability (UCUM ``1``), ``interpretation``
    ``POS`` or ``NEG`` (the probability at or above the operating point, or not) and
    one ``component`` the operating point itself. A ``valueCodeableConcept``
    present/absent would state that the finding is there, which is a diagnosis a
    preliminary AI score does not make, and would drop both the score and the point
    it was judged at; a receiver that only wants the yes/no reads ``interpretation``,
    and one that shows the figure (or re-thresholds after local validation) has it.
    Observations and the report are ``preliminary`` until a clinician signs, then
    ``final`` or ``amended``, as ``context.status`` says.

    Parameters
    ----------
    context:
        The result and everything its documents say.
    systems:
        The identifier systems to send identifiers under (VN Core by default).
    pdf:
        The result's PDF report, attached as ``presentedForm`` (``application/pdf``).
    commune_station:
        The commune health station to notify of a positive finding: a Communication in
        Vietnamese addressed to it joins the Bundle.

    Returns
    -------
    Bundle
        A ``transaction`` Bundle of conditional creates, identical for the same inputs.

    Raises
    ------
    NoPatientIdentifierError
        When the patient has no identifier: the result is not sent to an EMR.
    ValueError
        When ``context.state`` is not ``complete``, ``ungradable`` or ``failed``, or
        ``pdf`` is empty.
    InvalidBundleError
        When the Bundle does not hold together (an internal error).
    """
    if context.state not in _STATES:
        raise ValueError(f"unknown result state {context.state!r}; known: {', '.join(_STATES)}")
    if pdf is not None and not pdf:
        raise ValueError("`pdf` is empty")
    builder = _BundleBuilder(context, systems)
    facility = builder.organization()
    patient = builder.patient(facility)
    device = builder.device(facility)
    study = builder.imaging_study(patient, facility)
    linked = {"patient": patient, "study": study, "device": device, "facility": facility}
    results: list[Reference] = []
    positives: list[Reference] = []
    if context.state == "complete":
        for finding in context.findings:
            observation = builder.finding_observation(finding, **linked)
            results.append(observation)
            if finding.positive:
                positives.append(observation)
    else:
        results.append(builder.quality_observation(**linked))
    report = builder.diagnostic_report(**linked, results=results, pdf=pdf)
    if context.state == "complete" and positives:
        request = builder.follow_up(
            patient=patient, device=device, facility=facility, report=report, positives=positives
        )
        if commune_station is not None:
            builder.communication(
                commune_station, patient=patient, facility=facility, report=report, request=request
            )
    return _validated(builder.bundle())


def bundle_json(bundle: Bundle, *, indent: int | None = None) -> str:
    """The Bundle as FHIR JSON text (UTF-8 characters as they are, not ``\\u`` escapes)."""
    return bundle.model_dump_json(indent=indent)


# ------------------------------------------------------------------- validation


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _validated(bundle: Bundle) -> Bundle:
    """Check the Bundle round-trips through validation and its references resolve."""
    data = bundle.model_dump()
    checked = Bundle.model_validate(data)
    if checked.model_dump_json() != bundle.model_dump_json():
        raise InvalidBundleError("the Bundle does not survive a validation round trip")
    full_urls = [entry["fullUrl"] for entry in data.get("entry", [])]
    if len(set(full_urls)) != len(full_urls):
        raise InvalidBundleError("two entries share a fullUrl")
    dangling = sorted(
        ref
        for ref in set(_references(data))
        if ref.startswith("urn:uuid:") and ref not in full_urls
    )
    if dangling:
        raise InvalidBundleError(f"references to no entry: {', '.join(dangling)}")
    return checked

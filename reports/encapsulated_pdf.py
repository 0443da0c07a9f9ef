"""The PDF report as a DICOM Encapsulated PDF instance, in a new series of the study.

:func:`build_encapsulated_pdf` wraps the bytes :func:`reports.pdf.build_pdf` made in an
Encapsulated PDF Storage instance (1.2.840.10008.5.1.4.1.1.104.1), so a PACS files the
printable report with the images it describes and any viewer can open it:

- the patient and study attributes are copied from the source image the job read
  (``context.images[0]``), so the report lands in the same patient and study;
- a new series, number 9003, Modality ``DOC``, "AI report (PDF) / Báo cáo AI (PDF)"
  (the AI result SR is 9001, the heatmap secondary captures 9002);
- Document Title: the report's title in the facility's language, which names its status
  ("Kết quả đọc phim X-quang ngực bằng AI — SƠ BỘ"); Concept Name: LOINC 18748-4
  "Diagnostic imaging study"; Verification Flag UNVERIFIED while preliminary, VERIFIED
  once final or amended; Burned In Annotation YES (the PDF prints the patient's name and
  identifiers); Source Instance Sequence: the images read;
- MIME type ``application/pdf``; the document is padded with one NUL byte when its length
  is odd (DICOM values have even lengths) and Encapsulated Document Length is always the
  PDF's own length, so ``EncapsulatedDocument[:EncapsulatedDocumentLength]`` is the PDF.

Identifiers and times depend on the context only. The SOP Instance UID is
``generate_uid(entropy_srcs=[study UID, result id, "pdf", status])``: building the
document again gives the same UID (a re-sent report replaces itself), while the final
report of the same result is a new instance (Instance Number 1, 2 and 3 for preliminary,
final and amended) in the same series, whose UID is derived from the study, the result and
``"pdf-series"``. Dates and times are the result's ``created_at`` in UTC (as in the SR and
the heatmap secondary captures); text is written with Specific Character Set
``ISO_IR 192`` (UTF-8).

References
----------
DICOM PS3.3 A.45.1 (Encapsulated PDF IOD), C.24.1 (Encapsulated Document Series
module), C.24.2 (Encapsulated Document module), C.8.6.1 (SC Equipment module).
"""

from __future__ import annotations

from datetime import UTC
from typing import Final

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import DA, TM

from reports._dicom import document_uid, read_source
from reports.context import ReportContext
from reports.pdf import report_title

__all__ = [
    "ENCAPSULATED_PDF_STORAGE",
    "PDF_CONCEPT_NAME",
    "PDF_SERIES_DESCRIPTION",
    "PDF_SERIES_NUMBER",
    "build_encapsulated_pdf",
    "encapsulated_pdf_uid",
]

#: Encapsulated PDF Storage SOP Class UID.
ENCAPSULATED_PDF_STORAGE: Final = "1.2.840.10008.5.1.4.1.1.104.1"
#: Series Number of the PDF report series (SR 9001, heatmap SCs 9002).
PDF_SERIES_NUMBER: Final = 9003
#: Series Description of the PDF report series.
PDF_SERIES_DESCRIPTION: Final = "AI report (PDF) / Báo cáo AI (PDF)"
#: Concept Name of the document: (code value, coding scheme, code meaning).
PDF_CONCEPT_NAME: Final = ("18748-4", "LN", "Diagnostic imaging study")

_MIME_TYPE: Final = "application/pdf"
_INSTANCE_NUMBER: Final = {"preliminary": 1, "final": 2, "amended": 3}
_STATUSES: Final = frozenset(_INSTANCE_NUMBER)


def encapsulated_pdf_uid(context: ReportContext) -> str:
    """The SOP Instance UID of the result's PDF report in its current status.

    Parameters
    ----------
    context:
        The result.

    Returns
    -------
    str
        ``generate_uid(entropy_srcs=[study UID, result id, "pdf", status])``.
    """
    return document_uid(context, "pdf", context.status)


def _series_uid(context: ReportContext) -> str:
    """The PDF series of the result (the same for every status)."""
    return document_uid(context, "pdf-series")


def _read_source(context: ReportContext) -> Dataset | None:
    """The first source image's attributes (no pixels), checked against the context."""
    if not context.images:
        return None
    image = context.images[0]
    source = read_source(context, image)
    if "SOPClassUID" not in source:
        raise ValueError(f"{image.path} has no SOP Class UID")
    return source


def build_encapsulated_pdf(context: ReportContext, pdf: bytes) -> Dataset:
    """Wrap the report's PDF in a DICOM Encapsulated PDF instance of the study.

    Parameters
    ----------
    context:
        The result the PDF reports (its study, patient, status and images).
    pdf:
        The PDF's bytes, as :func:`reports.pdf.build_pdf` made them.

    Returns
    -------
    pydicom.Dataset
        With file meta (Explicit VR Little Endian), ready to ``save_as``; the same
        context and PDF give the same dataset.

    Raises
    ------
    ValueError
        When ``pdf`` is not a PDF, the status is not ``preliminary``, ``final`` or
        ``amended``, or the source image belongs to another study.
    OSError
        When the source image cannot be read.
    """
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("`pdf` must be a PDF document (starting with %PDF-)")
    if context.status not in _STATUSES:
        raise ValueError(
            f"`context.status` must be one of {sorted(_STATUSES)}, {context.status!r} is given"
        )
    source = _read_source(context)
    patient, study = context.patient, context.study
    created = context.created_at
    created = (created if created.tzinfo else created.replace(tzinfo=UTC)).astimezone(UTC)
    mrn = patient.identifier("mrn")
    document = hd.SOPClass(
        study_instance_uid=study.study_instance_uid,
        series_instance_uid=_series_uid(context),
        series_number=PDF_SERIES_NUMBER,
        sop_instance_uid=encapsulated_pdf_uid(context),
        sop_class_uid=ENCAPSULATED_PDF_STORAGE,
        instance_number=_INSTANCE_NUMBER[context.status],
        modality="DOC",
        manufacturer=context.model.manufacturer,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        patient_id=mrn.value if mrn is not None else None,
        patient_name=patient.name or None,
        patient_birth_date=patient.birth_date or None,
        patient_sex=patient.sex or None,
        accession_number=study.accession_number or None,
        study_date=study.study_date or None,
        study_time=study.study_time or None,
        series_description=PDF_SERIES_DESCRIPTION,
        manufacturer_model_name=context.model.name,
        software_versions=context.model.version,
        institution_name=context.facility.name,
        content_date=created.date(),
        content_time=created.time().replace(microsecond=0),
        series_date=created.date(),
        series_time=created.time().replace(microsecond=0),
        specific_character_set="ISO_IR 192",
    )
    if source is not None:
        document.copy_patient_and_study_information(source)
    if "StudyDescription" not in document and study.study_description:
        document.StudyDescription = study.study_description
    stamp = created.strftime("%Y%m%d%H%M%S")
    document.InstanceCreationDate = DA(created.date())
    document.InstanceCreationTime = TM(created.time().replace(microsecond=0))

    # SC Equipment: made by software on a workstation.
    document.ConversionType = "WSD"

    # Encapsulated Document.
    document.AcquisitionDateTime = f"{stamp}+0000"
    document.BurnedInAnnotation = "YES"
    document.RecognizableVisualFeatures = "NO"
    document.DocumentTitle = report_title(context, context.facility.language)
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = PDF_CONCEPT_NAME
    document.ConceptNameCodeSequence = [concept]
    document.VerificationFlag = "UNVERIFIED" if context.preliminary else "VERIFIED"
    references = []
    for image in context.images:
        reference = Dataset()
        reference.ReferencedSOPClassUID = image.sop_class_uid
        reference.ReferencedSOPInstanceUID = image.sop_instance_uid
        references.append(reference)
    if references:
        document.SourceInstanceSequence = references
    document.MIMETypeOfEncapsulatedDocument = _MIME_TYPE
    document.EncapsulatedDocument = pdf + b"\x00" if len(pdf) % 2 else pdf
    document.EncapsulatedDocumentLength = len(pdf)
    return document

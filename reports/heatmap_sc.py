"""A finding's heatmap as a DICOM Secondary Capture image, in a new series of the study.

:func:`build_heatmap_sc` stores the overlay PNG of one positive finding (the colour-mapped
heatmap blended over the radiograph, by :func:`inference.explain.heatmap_files`) as a
Secondary Capture Image (1.2.840.10008.5.1.4.1.1.7), RGB, 8 bits a sample, built with
highdicom's ``SCImage``. Its pixels are the PNG's pixels, unchanged and not resized, so
the label the PNG carries, "AI — preliminary · <finding> <score> · <finding in
Vietnamese> — sơ bộ" (:func:`inference.explain.preliminary_label`), is burned in at the
size it was drawn; Burned In Annotation is YES and the Image Comments repeat the label
("AI — preliminary / AI — sơ bộ" ...) for viewers that list them.

Why a Secondary Capture and not a presentation state: every PACS and viewer displays an
SC image as it is, beside the study's images, with no support for anything else; a
Grayscale Softcopy Presentation State cannot carry a colour heatmap at all (its graphic
annotations are outlines and text, its overlays one bit deep), and the colour and
blending presentation states are displayed by few viewers. The SC is a picture for
people to look at, not data: the heatmap values stay in the result's ``.npy`` file, and
the SC has no pixel spacing (it is not for measuring).

The patient and study attributes are copied from the source image the finding was read
on, so the SC files into the same study and patient. Series (number 9002, "AI heatmap —
preliminary / Bản đồ nhiệt AI — sơ bộ") and SOP Instance UIDs are derived with
``generate_uid`` from the Study Instance UID, the result id, the document kind
``heatmap-sc`` and (for the instance) the finding's key: building it again gives the same
UIDs. The status is left out on purpose: the picture is the same whether the result is
preliminary, final or amended, so a final SR refers to the same heatmap instances and a
finalised result does not put a second copy of each heatmap into the PACS. Dates and times
are the result's ``created_at`` in UTC; text is written with Specific Character Set
``ISO_IR 192`` (UTF-8).

References
----------
DICOM PS3.3 A.8.1 (Secondary Capture Image IOD), C.8.6 (SC Equipment and SC Image
modules), C.7.6.1 (General Image module: Burned In Annotation, Image Type).
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Final

import highdicom as hd
import numpy as np
import pydicom
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, TM

from reports._dicom import document_uid, long_string, read_source
from reports.context import FindingInfo, ImageInfo, ReportContext

__all__ = [
    "HEATMAP_SC_SERIES_DESCRIPTION",
    "HEATMAP_SC_SERIES_NUMBER",
    "PRELIMINARY_LABEL",
    "SOURCE_IMAGE_FOR_PROCESSING",
    "build_heatmap_sc",
]

#: Series Number of the heatmap SC series (the AI result SR is 9001).
HEATMAP_SC_SERIES_NUMBER: Final = 9002
#: Series Description of the heatmap SC series.
HEATMAP_SC_SERIES_DESCRIPTION: Final = "AI heatmap — preliminary / Bản đồ nhiệt AI — sơ bộ"
#: What every heatmap says: it is AI output, not a diagnosis (burned into the PNG).
PRELIMINARY_LABEL: Final = "AI — preliminary / AI — sơ bộ"
#: Purpose of the reference to the source radiograph (DCM, CID 7202).
SOURCE_IMAGE_FOR_PROCESSING: Final = hd.sr.CodedConcept(
    "121322", "DCM", "Source image for image processing operation"
)


def build_heatmap_sc(context: ReportContext, finding: FindingInfo) -> pydicom.Dataset:
    """Build the Secondary Capture of one finding's heatmap overlay.

    Parameters
    ----------
    context:
        The result the finding belongs to; the source image's DICOM file is read
        (without its pixels) for the patient and study attributes.
    finding:
        One of ``context.findings``, with an overlay PNG.

    Returns
    -------
    pydicom.Dataset
        A :class:`highdicom.sc.SCImage`, with file meta, ready to save.

    Raises
    ------
    ValueError
        When the finding has no overlay, is not a finding of the result, was read on an
        image the result does not name (or the result names none), or when the source
        file is not that image of the study.
    OSError
        When the overlay or the source image cannot be read (``PIL.UnidentifiedImageError``
        when the overlay is not an image).
    """
    if finding.overlay_path is None:
        raise ValueError(
            f"finding {finding.key!r} has no overlay: only a positive finding with a "
            "heatmap has one, and only it gets a heatmap secondary capture"
        )
    keys = [item.key for item in context.findings]
    if finding.key not in keys:
        raise ValueError(
            f"finding {finding.key!r} is not a finding of result {context.result_id} "
            f"(findings: {keys})"
        )
    source = read_source(context, _source_image(context, finding))
    pixels = _overlay_pixels(finding.overlay_path)
    created = context.created_at.astimezone(UTC).replace(microsecond=0)
    image = hd.sc.SCImage(
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=context.study.study_instance_uid,
        series_instance_uid=document_uid(context, "heatmap-sc", "series"),
        series_number=HEATMAP_SC_SERIES_NUMBER,
        sop_instance_uid=document_uid(context, "heatmap-sc", "instance", finding.key),
        instance_number=keys.index(finding.key) + 1,
        manufacturer=context.model.manufacturer,
        patient_id=source.get("PatientID"),
        patient_name=source.get("PatientName"),
        patient_birth_date=source.get("PatientBirthDate"),
        patient_sex=source.get("PatientSex"),
        accession_number=source.get("AccessionNumber"),
        study_id=source.get("StudyID"),
        study_date=source.get("StudyDate") or None,
        study_time=source.get("StudyTime") or None,
        referring_physician_name=source.get("ReferringPhysicianName"),
        # replaced below by the source's own value, which highdicom's single letters
        # would refuse when compound ("AL") or empty
        patient_orientation=("L", "F"),
        specific_character_set="ISO_IR 192",
        series_description=HEATMAP_SC_SERIES_DESCRIPTION,
        manufacturer_model_name=context.model.name,
        software_versions=context.model.version,
        institution_name=long_string(context.facility.name),
        content_date=created.date(),
        content_time=created.time(),
        series_date=created.date(),
        series_time=created.time(),
    )
    image.copy_patient_and_study_information(source)
    image.PatientOrientation = source.get("PatientOrientation", "")
    if "BodyPartExamined" in source:
        image.BodyPartExamined = source.BodyPartExamined
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.ConversionType = "WSD"  # made by software on a workstation
    image.BurnedInAnnotation = "YES"
    image.LossyImageCompression = "00"
    image.ImageComments = (
        f"{PRELIMINARY_LABEL} · {finding.display_en} / {finding.display_vi} "
        f"{finding.probability:.2f}"
    )
    image.DerivationDescription = (
        f"AI heatmap of {finding.display_en} by {context.model.device_name} "
        f"({context.model.manufacturer}), colour-mapped over the source image; "
        "not for diagnosis"
    )
    image.SourceImageSequence = [_source_reference(source)]
    image.InstanceCreationDate = image.DateOfSecondaryCapture = DA(created.date())
    image.InstanceCreationTime = image.TimeOfSecondaryCapture = TM(created.time())
    for equipment in image.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = created.strftime("%Y%m%d%H%M%S+0000")
    return image


def _source_image(context: ReportContext, finding: FindingInfo) -> ImageInfo:
    if finding.sop_instance_uid is None:
        if not context.images:
            raise ValueError(f"result {context.result_id} names no image")
        return context.images[0]
    image = context.image(finding.sop_instance_uid)
    if image is None:
        raise ValueError(
            f"finding {finding.key!r} was read on image {finding.sop_instance_uid}, "
            "which is not among the images of the result"
        )
    return image


def _overlay_pixels(path: Path) -> NDArray[np.uint8]:
    """The overlay PNG as (rows, columns, 3) RGB bytes."""
    with Image.open(path) as picture:
        rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
        return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _source_reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = [SOURCE_IMAGE_FOR_PROCESSING]
    return item

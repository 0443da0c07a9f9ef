"""Encode a phantom as a chest CR or DX (For Presentation) instance.

The encodings vary the way real modalities do: MONOCHROME1 or MONOCHROME2, 12, 14 or
16 stored bits, with or without a rescale, with one, several or no windows; the
patient has a Vietnamese name (ISO_IR 192) and, besides the facility's Patient ID, a
national citizen identity number (CCCD) in the Other Patient IDs Sequence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from training.phantoms._shapes import resize_bilinear
from training.phantoms.cxr import Phantom, PhantomView

__all__ = [
    "NATIONAL_ID_ISSUER",
    "Modality",
    "PatientIdentity",
    "Photometric",
    "WindowMode",
    "phantom_to_dicom",
    "random_patient",
]

#: Issuer of Patient ID of the national citizen identity number.
NATIONAL_ID_ISSUER: Final = "CCCD"
_FACILITY_ISSUER = "SOI-PHANTOM"
_BITS_STORED = (12, 14, 16)
_VIEW_POSITIONS: Final[dict[str, Code]] = {
    "PA": codes.SCT.PosteroAnterior,
    "AP": codes.SCT.AnteroPosterior,
    "LL": codes.SCT.LeftLateral,
}
_DEFAULT_VIEW_POSITION = {PhantomView.PA: "PA", PhantomView.AP: "AP", PhantomView.LATERAL: "LL"}
# Patient Orientation (row direction, column direction), PS3.3 C.7.6.1.1.1: frontal
# phantoms show the patient's right on the image left, laterals the front on the left.
_PATIENT_ORIENTATION = {"PA": ["L", "F"], "AP": ["L", "F"], "LL": ["P", "F"]}

_FAMILY = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
)
_MIDDLE_MALE = ("Văn", "Hữu", "Đức", "Minh", "Quang", "Công")
_MIDDLE_FEMALE = ("Thị", "Ngọc", "Thu", "Thanh", "Kim", "Mỹ")
_GIVEN_MALE = ("An", "Bình", "Cường", "Dũng", "Hải", "Hùng", "Long", "Nam", "Phúc", "Quân", "Tuấn")
_GIVEN_FEMALE = ("Anh", "Hà", "Hạnh", "Hương", "Lan", "Linh", "Mai", "Nga", "Thảo", "Trang", "Yến")
_PROVINCES = ("001", "031", "048", "079", "092")  # Hà Nội, Hải Phòng, Đà Nẵng, TP.HCM, Cần Thơ


class Photometric(StrEnum):
    """Photometric Interpretation of a grayscale image (PS3.3 C.7.6.3.1.2)."""

    MONOCHROME1 = "MONOCHROME1"
    MONOCHROME2 = "MONOCHROME2"


class Modality(StrEnum):
    """The modality, and with it the IOD: CR Image or DX Image For Presentation."""

    CR = "CR"
    DX = "DX"


class WindowMode(StrEnum):
    """How many VOI windows the header carries."""

    ABSENT = "absent"
    PRESENT = "present"
    MULTIPLE = "multiple"


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """A synthetic patient.

    Attributes
    ----------
    patient_id:
        The facility's medical record number.
    issuer_of_patient_id:
        Who issued ``patient_id``.
    national_id:
        The 12-digit citizen identity number (CCCD): province code, a digit for sex
        and century of birth, the last two digits of the birth year, six digits.
    patient_name:
        DICOM PN, family name then given names, in Vietnamese.
    birth_date:
        The date of birth.
    sex:
        ``"M"`` or ``"F"``.
    """

    patient_id: str
    issuer_of_patient_id: str
    national_id: str
    patient_name: str
    birth_date: dt.date
    sex: str


def _pick(rng: np.random.Generator, values: tuple[str, ...]) -> str:
    return values[int(rng.integers(len(values)))]


def random_patient(rng: np.random.Generator, *, patient_id: str | None = None) -> PatientIdentity:
    """Draw a synthetic Vietnamese patient; ``patient_id`` overrides the drawn MRN."""
    female = bool(rng.integers(2))
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 65)))
    century_digit = (0 if birth.year < 2000 else 2) + int(female)
    national_id = (
        f"{_pick(rng, _PROVINCES)}{century_digit}{birth.year % 100:02d}"
        f"{int(rng.integers(0, 1_000_000)):06d}"
    )
    family = _pick(rng, _FAMILY)
    middle = _pick(rng, _MIDDLE_FEMALE if female else _MIDDLE_MALE)
    given = _pick(rng, _GIVEN_FEMALE if female else _GIVEN_MALE)
    return PatientIdentity(
        patient_id=patient_id or f"PH{int(rng.integers(0, 10**7)):07d}",
        issuer_of_patient_id=_FACILITY_ISSUER,
        national_id=national_id,
        patient_name=f"{family}^{middle} {given}",
        birth_date=birth,
        sex="F" if female else "M",
    )


def _uid(rng: np.random.Generator) -> UID:
    return generate_uid(entropy_srcs=[str(int(rng.integers(0, 2**63 - 1)))])


def _code_item(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def _check(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {options}, {value!r} is given")


def _stored_values(
    phantom: Phantom, *, rows: int, bits_stored: int, photometric: Photometric
) -> np.ndarray:
    if rows == phantom.size:
        image = phantom.image
    elif phantom.size % rows == 0:
        # A whole-number reduction averages blocks, as a detector with larger pixels
        # would: noise falls with the pixel area instead of aliasing.
        factor = phantom.size // rows
        image = phantom.image.reshape(rows, factor, rows, factor).mean(axis=(1, 3))
    else:
        image = resize_bilinear(phantom.image, rows, rows)
    top = (1 << bits_stored) - 1
    scaled = np.clip(np.round(image * (0.9 * top) + 0.05 * top), 0, top).astype(np.uint16)
    if photometric is Photometric.MONOCHROME1:
        scaled = np.uint16(top) - scaled
    return scaled


def phantom_to_dicom(
    phantom: Phantom,
    rng: np.random.Generator,
    *,
    modality: Modality | str = Modality.DX,
    photometric: Photometric | str = Photometric.MONOCHROME2,
    bits_stored: int = 12,
    rescale: tuple[float, float] | None = None,
    window: WindowMode | str = WindowMode.PRESENT,
    rows: int | None = None,
    patient: PatientIdentity | None = None,
    view_position: str | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    study_datetime: dt.datetime | None = None,
) -> Dataset:
    """Encode ``phantom`` as a chest radiograph instance, 16 bits allocated, unsigned.

    Parameters
    ----------
    phantom:
        The image to encode.
    rng:
        Source of the patient (when not given), the UIDs and the study time.
    modality:
        ``"CR"`` (CR Image Storage) or ``"DX"`` (Digital X-Ray Image Storage - For
        Presentation).
    photometric:
        ``"MONOCHROME2"`` stores dense as high values, ``"MONOCHROME1"`` as low.
    bits_stored:
        12, 14 or 16.
    rescale:
        Rescale Slope and Intercept, CR only; None writes no rescale for CR and the
        identity (1, 0) for DX, where the attributes are required and fixed.
    window:
        ``"present"`` (one window), ``"multiple"`` (two, with explanations) or
        ``"absent"`` (CR only: DX For Presentation requires a window).
    rows:
        Rows and columns of the stored image; the phantom is resampled when they
        differ from its size (e.g. 2048 for a full-size detector).
    patient:
        The patient; drawn from ``rng`` when None.
    view_position:
        ``"PA"``, ``"AP"`` or ``"LL"``; by default from the phantom's view.
    study_instance_uid, series_instance_uid:
        Put the instance in a given study or series; new UIDs by default.
    study_datetime:
        Study date and time; drawn in 2025 by default.

    Returns
    -------
    pydicom.Dataset
        With file meta (Explicit VR Little Endian), ready to save.

    Raises
    ------
    ValueError
        When an option is not one of the values listed above, or a rescale or no
        window is asked for DX.

    References
    ----------
    DICOM PS3.3 A.2 (CR Image IOD), A.26 (Digital X-Ray Image IOD), C.8.11 (DX
    modules), C.11.2 (VOI LUT module); PS3.5 6.1.2.3 (ISO_IR 192).
    """
    _check("modality", str(modality), tuple(m.value for m in Modality))
    _check("photometric", str(photometric), tuple(p.value for p in Photometric))
    _check("window", str(window), tuple(w.value for w in WindowMode))
    _check("bits_stored", bits_stored, _BITS_STORED)
    kind, shade, windows = Modality(modality), Photometric(photometric), WindowMode(window)
    position = view_position or _DEFAULT_VIEW_POSITION[phantom.view]
    _check("view_position", position, tuple(_VIEW_POSITIONS))
    size = rows or phantom.size
    if size < 1:
        raise ValueError(f"`rows` must be a positive number, {size} is given")
    if rescale is not None and rescale[0] == 0:
        raise ValueError(f"`rescale` slope must not be 0, {rescale!r} is given")
    if kind is Modality.DX and rescale not in (None, (1.0, 0.0)):
        raise ValueError(
            f"`rescale` must be None or (1, 0) for DX, whose Rescale Slope and Intercept "
            f"are fixed at 1 and 0 (PS3.3 C.8.11.3.1.2), {rescale!r} is given"
        )
    if kind is Modality.DX and windows is WindowMode.ABSENT:
        raise ValueError(
            "`window` must not be 'absent' for DX For Presentation, which requires a VOI "
            "window (PS3.3 C.8.11.3)"
        )
    person = patient or random_patient(rng)
    when = study_datetime or dt.datetime(2025, 1, 1, 7, 0) + dt.timedelta(
        minutes=int(rng.integers(0, 365 * 24 * 60))
    )
    sop_class = (
        DigitalXRayImageStorageForPresentation
        if kind is Modality.DX
        else (ComputedRadiographyImageStorage)
    )
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(rng)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_instance_uid or _uid(rng)
    ds.SeriesInstanceUID = series_instance_uid or _uid(rng)
    _patient(ds, person)
    _study(ds, when, kind)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = position
    ds.PatientOrientation = _PATIENT_ORIENTATION[position]
    spacing = phantom.pixel_spacing_mm * phantom.size / size
    ds.ImagerPixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
    ds.PixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "Synthetic phantom: spacing as drawn"
    if kind is Modality.DX:
        _dx(ds, position)
    pixels = _stored_values(phantom, rows=size, bits_stored=bits_stored, photometric=shade)
    _image_pixel(ds, pixels, bits_stored=bits_stored, photometric=shade)
    slope, intercept = rescale if rescale is not None else (1.0, 0.0)
    if rescale is not None or kind is Modality.DX:
        ds.RescaleSlope = f"{slope:.6g}"
        ds.RescaleIntercept = f"{intercept:.6g}"
        ds.RescaleType = "US"
    _windows(ds, pixels, windows, slope=slope, intercept=intercept)
    return ds


def _patient(ds: Dataset, person: PatientIdentity) -> None:
    ds.PatientName = person.patient_name
    ds.PatientID = person.patient_id
    ds.IssuerOfPatientID = person.issuer_of_patient_id
    ds.TypeOfPatientID = "TEXT"
    national = Dataset()
    national.PatientID = person.national_id
    national.IssuerOfPatientID = NATIONAL_ID_ISSUER
    national.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [national]
    ds.PatientBirthDate = person.birth_date.strftime("%Y%m%d")
    ds.PatientSex = person.sex


def _study(ds: Dataset, when: dt.datetime, kind: Modality) -> None:
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDate = ds.ContentDate
    ds.AcquisitionTime = ds.ContentTime
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.StudyDescription = "X-quang ngực thẳng (phantom)"
    ds.Modality = kind.value
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "Soi"
    ds.ManufacturerModelName = "Synthetic chest phantom"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"


def _dx(ds: Dataset, position: str) -> None:
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.DetectorType = "DIRECT"
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = [_code_item(codes.SCT.Chest)]
    ds.ViewCodeSequence = [_code_item(_VIEW_POSITIONS[position])]
    ds.AcquisitionContextSequence = []
    ds.PositionerType = "NONE"
    ds.DistanceSourceToDetector = "1800"


def _image_pixel(
    ds: Dataset, pixels: np.ndarray, *, bits_stored: int, photometric: Photometric
) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric.value
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if ds.Modality == Modality.DX.value:
        ds.PresentationLUTShape = (
            "INVERSE" if photometric is Photometric.MONOCHROME1 else "IDENTITY"
        )
    ds.PixelData = pixels.astype("<u2").tobytes()


def _windows(
    ds: Dataset, pixels: np.ndarray, mode: WindowMode, *, slope: float, intercept: float
) -> None:
    if mode is WindowMode.ABSENT:
        return
    low, high = np.percentile(pixels, [1.0, 99.0]) * slope + intercept
    low, high = min(low, high), max(low, high)
    centre, width = (low + high) / 2.0, max(high - low, 1.0)
    if mode is WindowMode.PRESENT:
        ds.WindowCenter = f"{centre:.6g}"
        ds.WindowWidth = f"{width:.6g}"
        return
    ds.WindowCenter = [f"{centre:.6g}", f"{centre - 0.1 * width:.6g}"]
    ds.WindowWidth = [f"{width:.6g}", f"{0.6 * width:.6g}"]
    ds.WindowCenterWidthExplanation = ["DEFAULT", "LUNG"]

"""Gates on header attributes: the modality (and SOP class) and the body part."""

from __future__ import annotations

from typing import Final

from pydicom import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)

from inference.gates.base import GateOutcome
from inference.gates.config import CxrGateConfig
from inference.gates.messages import reason
from inference.pixels import DisplayImage

__all__ = ["RADIOGRAPH_SOP_CLASSES", "BodyPartGate", "ModalityGate", "header_text"]

#: CR Image Storage and Digital X-Ray Image Storage (For Presentation, For Processing).
RADIOGRAPH_SOP_CLASSES: Final = frozenset(
    {
        ComputedRadiographyImageStorage,
        DigitalXRayImageStorageForPresentation,
        DigitalXRayImageStorageForProcessing,
    }
)


def header_text(dataset: Dataset, keyword: str) -> str:
    """Return a header attribute as upper-case stripped text; empty when absent."""
    value = dataset.get(keyword)
    if value is None:
        return ""
    return str(value).strip().upper()


class ModalityGate:
    """Modality must be one of the configured ones (CR, DX) with a CR or DX SOP class.

    References
    ----------
    DICOM PS3.3 section C.7.3.1.1.1 (Modality); PS3.4 section B.5 (Standard SOP
    Classes: CR Image Storage, Digital X-Ray Image Storage).
    """

    code: Final = "modality"

    def check(self, dataset: Dataset, display: DisplayImage, config: CxrGateConfig) -> GateOutcome:
        """Refuse a study whose Modality or SOP Class UID is not a radiograph's."""
        modality = header_text(dataset, "Modality")
        sop_class = str(dataset.get("SOPClassUID", "") or "").strip()
        if not modality:
            return GateOutcome.refused(
                self.code, reason("modality_missing"), modality="absent", sop_class=sop_class
            )
        allowed = {item.upper() for item in config.modalities}
        if modality not in allowed:
            return GateOutcome.refused(
                self.code, reason("modality", modality=modality), modality=modality
            )
        if sop_class and sop_class not in RADIOGRAPH_SOP_CLASSES:
            return GateOutcome.refused(
                self.code,
                reason("sop_class", sop_class=sop_class),
                modality=modality,
                sop_class=sop_class,
            )
        return GateOutcome.ok(self.code, modality=modality, sop_class=sop_class or "absent")


class BodyPartGate:
    """Body Part Examined, when present, must be chest-like; absent is allowed.

    References
    ----------
    DICOM PS3.16 CID 4031 (Common Anatomic Regions) for the defined terms.
    """

    code: Final = "body_part"

    def check(self, dataset: Dataset, display: DisplayImage, config: CxrGateConfig) -> GateOutcome:
        """Refuse a study whose Body Part Examined names another region."""
        body_part = header_text(dataset, "BodyPartExamined")
        if not body_part:
            return GateOutcome.ok(self.code, body_part="absent")
        if body_part not in {item.upper() for item in config.chest_body_parts}:
            return GateOutcome.refused(
                self.code, reason("body_part", body_part=body_part), body_part=body_part
            )
        return GateOutcome.ok(self.code, body_part=body_part)

"""The chest X-ray label set, in model output order, with display names and coded concepts.

"Normal" is the absence of every finding; it is not a model output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "CXR_FINDINGS",
    "CXR_LABELS",
    "CodedConcept",
    "CxrFinding",
    "CxrLabel",
    "cxr_label",
    "is_normal",
]


class CxrFinding(StrEnum):
    """Findings the chest X-ray model reports, in model output order."""

    CARDIOMEGALY = "cardiomegaly"
    PLEURAL_EFFUSION = "pleural_effusion"
    PNEUMOTHORAX = "pneumothorax"
    #: Airspace consolidation, the radiographic pattern of pneumonia and of COVID-19.
    CONSOLIDATION = "consolidation"
    NODULE_MASS = "nodule_mass"


#: The model's ``targets``: every finding in output order.
CXR_FINDINGS: Final[tuple[CxrFinding, ...]] = tuple(CxrFinding)


@dataclass(frozen=True, slots=True)
class CodedConcept:
    """A concept coded in SNOMED CT and, where known, RadLex.

    Attributes
    ----------
    snomed_code:
        SNOMED CT concept identifier (coding scheme designator ``SCT``).
    snomed_meaning:
        The concept's preferred term in SNOMED CT.
    radlex_id:
        RadLex identifier (``RID...``, coding scheme designator ``RADLEX``); empty when
        no RadLex term is bound.
    radlex_meaning:
        The RadLex term's preferred name; empty when ``radlex_id`` is empty.
    """

    snomed_code: str
    snomed_meaning: str
    radlex_id: str = ""
    radlex_meaning: str = ""


@dataclass(frozen=True, slots=True)
class CxrLabel:
    """One row of the label table: a finding's names and its coded concept."""

    finding: CxrFinding
    display_en: str
    display_vi: str
    concept: CodedConcept


_TABLE: Final[tuple[CxrLabel, ...]] = (
    CxrLabel(
        CxrFinding.CARDIOMEGALY,
        display_en="Cardiomegaly",
        display_vi="Bóng tim to",
        concept=CodedConcept("8186001", "Cardiomegaly"),
    ),
    CxrLabel(
        CxrFinding.PLEURAL_EFFUSION,
        display_en="Pleural effusion",
        display_vi="Tràn dịch màng phổi",
        concept=CodedConcept("60046008", "Pleural effusion", "RID34539", "pleural effusion"),
    ),
    CxrLabel(
        CxrFinding.PNEUMOTHORAX,
        display_en="Pneumothorax",
        display_vi="Tràn khí màng phổi",
        concept=CodedConcept("36118008", "Pneumothorax", "RID5352", "pneumothorax"),
    ),
    CxrLabel(
        CxrFinding.CONSOLIDATION,
        display_en="Consolidation",
        display_vi="Đông đặc phổi",
        concept=CodedConcept("95436008", "Lung consolidation"),
    ),
    CxrLabel(
        CxrFinding.NODULE_MASS,
        display_en="Nodule / mass",
        display_vi="Nốt / khối u phổi",
        concept=CodedConcept("427359005", "Solitary nodule of lung"),
    ),
)

#: The label table, keyed by finding, in model output order.
CXR_LABELS: Final[MappingProxyType[CxrFinding, CxrLabel]] = MappingProxyType(
    {row.finding: row for row in _TABLE}
)


def cxr_label(finding: CxrFinding | str) -> CxrLabel:
    """Return the table row of ``finding`` (a :class:`CxrFinding` or its value).

    Raises
    ------
    ValueError
        When ``finding`` names no finding of the label set.
    """
    try:
        return CXR_LABELS[CxrFinding(finding)]
    except ValueError:
        known = ", ".join(f.value for f in CxrFinding)
        raise ValueError(f"unknown CXR finding {finding!r}; known: {known}") from None


def is_normal(labels: Mapping[CxrFinding, int | None]) -> bool | None:
    """Return whether ``labels`` describe a normal image (no finding).

    Returns True when every finding is labelled 0, False when any is 1, and None when
    none is positive but some are not labelled.
    """
    values = [labels.get(finding) for finding in CxrFinding]
    if any(value == 1 for value in values):
        return False
    if any(value is None for value in values):
        return None
    return True

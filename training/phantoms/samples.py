"""The sample chest radiographs shipped with Soi (``soi/samples/cxr``), and how they are made.

Each sample is a synthetic phantom (no patient), one study per fictitious patient,
compressed with JPEG 2000 lossless as many PACS send them. ``write_cxr_samples`` is
deterministic: it rewrites the shipped files byte for byte, which a test checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import JPEG2000Lossless

from training.labels import CxrFinding
from training.phantoms.cxr import PhantomView, generate_cxr
from training.phantoms.dicom import Modality, Photometric, phantom_to_dicom

__all__ = ["CXR_SAMPLES", "CxrSample", "write_cxr_samples"]


@dataclass(frozen=True, slots=True)
class CxrSample:
    """One shipped sample: its file name, what it shows and how it is encoded."""

    file_name: str
    seed: int
    findings: frozenset[CxrFinding]
    view: PhantomView = PhantomView.PA
    modality: Modality = Modality.DX
    photometric: Photometric = Photometric.MONOCHROME2
    size: int = 1024


CXR_SAMPLES: tuple[CxrSample, ...] = (
    CxrSample("01-normal-pa.dcm", 101, frozenset()),
    CxrSample(
        "02-cardiomegaly-effusion-pa.dcm",
        102,
        frozenset({CxrFinding.CARDIOMEGALY, CxrFinding.PLEURAL_EFFUSION}),
        modality=Modality.CR,
        photometric=Photometric.MONOCHROME1,
    ),
    CxrSample("03-pneumothorax-pa.dcm", 103, frozenset({CxrFinding.PNEUMOTHORAX})),
    CxrSample(
        "04-consolidation-nodule-ap.dcm",
        104,
        frozenset({CxrFinding.CONSOLIDATION, CxrFinding.NODULE_MASS}),
        view=PhantomView.AP,
        modality=Modality.CR,
    ),
    CxrSample("05-lateral.dcm", 105, frozenset(), view=PhantomView.LATERAL),
)


def write_cxr_samples(folder: Path) -> list[Path]:
    """Write every sample of :data:`CXR_SAMPLES` into ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for sample in CXR_SAMPLES:
        rng = np.random.default_rng(sample.seed)
        phantom = generate_cxr(rng, findings=sample.findings, size=sample.size, view=sample.view)
        dataset = phantom_to_dicom(
            phantom, rng, modality=sample.modality, photometric=sample.photometric
        )
        dataset.compress(JPEG2000Lossless, generate_instance_uid=False)
        path = folder / sample.file_name
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

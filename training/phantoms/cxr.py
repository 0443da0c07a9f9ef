"""Synthetic chest radiographs ("phantoms") that carry the visual signature of each finding.

A phantom is a float image in [0, 1], bright where the body attenuates most, as a
MONOCHROME2 radiograph is displayed. It is drawn from soft geometric layers: body
silhouette, lungs, mediastinum and heart, ribs, clavicles, spine, diaphragm domes,
vessel markings; then the findings; then a smooth illumination gradient, a slight
blur and quantum-like noise.

The generator is split into independent streams (geometry, markings, each finding,
noise), so the same generator state draws the same patient whatever the findings:
a phantom with a pneumothorax differs from its normal twin only where the
pneumothorax is, and an enlarged heart only by the heart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import NDArray

from training.labels import CxrFinding
from training.phantoms._findings import (
    draw_consolidation,
    draw_effusion,
    draw_nodules,
    draw_pneumothorax,
)
from training.phantoms._frontal import draw_frontal, sample_frontal_shape
from training.phantoms._lateral import draw_lateral
from training.phantoms._shapes import FloatImage, Grid, as_image, blur, smooth_noise

__all__ = ["DEFAULT_FIELD_OF_VIEW_MM", "Phantom", "PhantomView", "generate_cxr"]

#: Width of the imaged field (a 43 cm detector), which sets the pixel spacing.
DEFAULT_FIELD_OF_VIEW_MM: Final = 430.0

_STREAM_SHAPE, _STREAM_MARKINGS, _STREAM_NOISE, _STREAM_LATERAL = 0, 1, 2, 3
_STREAM_FINDING: Final = {finding: 10 + index for index, finding in enumerate(CxrFinding)}
_MIN_SIZE = 64

BoolImage = NDArray[np.bool_]


class PhantomView(StrEnum):
    """Projection of a phantom."""

    PA = "PA"
    AP = "AP"
    LATERAL = "LATERAL"

    @property
    def frontal(self) -> bool:
        """Whether the view is frontal (PA or AP)."""
        return self is not PhantomView.LATERAL


@dataclass(frozen=True, slots=True)
class Phantom:
    """A synthetic chest radiograph and the truth it was drawn from.

    Attributes
    ----------
    image:
        ``size`` × ``size`` float32 image in [0, 1]; bright is dense (MONOCHROME2).
    findings:
        The findings drawn; empty for a normal phantom.
    masks:
        For each finding drawn, where its sign is: the heart for cardiomegaly, the
        fluid for an effusion, the air rim for a pneumothorax, the opacity for
        consolidation, the discs for nodules.
    anatomy:
        Masks of the normal structures: ``right_lung`` and ``left_lung`` (air-filled
        lung, heart excluded) and ``heart``.
    cardiothoracic_ratio:
        Transverse heart diameter over the inner thoracic diameter, as drawn.
    view:
        The projection.
    pixel_spacing_mm:
        Physical size of one pixel, from the field of view.
    consolidation_pattern:
        ``"lobar"`` or ``"multifocal"`` when consolidation was drawn, else empty.
    nodule_diameters_mm:
        Diameter of each nodule drawn.
    """

    image: FloatImage
    findings: frozenset[CxrFinding]
    masks: Mapping[CxrFinding, BoolImage]
    anatomy: Mapping[str, BoolImage]
    cardiothoracic_ratio: float
    view: PhantomView
    pixel_spacing_mm: float
    consolidation_pattern: str = ""
    nodule_diameters_mm: tuple[float, ...] = field(default=())

    @property
    def size(self) -> int:
        """Rows (and columns) of the image."""
        return int(self.image.shape[0])

    @property
    def normal(self) -> bool:
        """Whether no finding was drawn."""
        return not self.findings


def _base_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


def _stream(base: int, key: int) -> np.random.Generator:
    return np.random.default_rng([base, key])


def _finish(density: FloatImage, grid: Grid, rng: np.random.Generator) -> FloatImage:
    """Apply a smooth illumination gradient, a slight blur and noise; clip to [0, 1]."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    strength = rng.uniform(0.04, 0.12)
    ramp = (grid.x - 0.5) * np.float32(np.cos(angle)) + (grid.y - 0.5) * np.float32(np.sin(angle))
    vignette = (grid.x - 0.5) ** 2 + (grid.y - 0.5) ** 2
    gain = 1.0 + np.float32(strength) * ramp - np.float32(0.15) * vignette
    image = blur((density * gain).astype(np.float32), max(1, grid.size // 512))
    mottle = smooth_noise(rng, grid.size, 24) * np.float32(0.01)
    sigma = np.float32(rng.uniform(0.006, 0.016))
    noise = rng.standard_normal((grid.size, grid.size), dtype=np.float32) * sigma
    return as_image(np.clip(image + mottle + noise, 0.0, 1.0))


def _findings_set(findings: Iterable[CxrFinding | str]) -> frozenset[CxrFinding]:
    try:
        return frozenset(CxrFinding(f) for f in findings)
    except ValueError as exc:
        known = ", ".join(f.value for f in CxrFinding)
        raise ValueError(f"`findings` holds an unknown finding ({exc}); known: {known}") from None


def generate_cxr(
    rng: np.random.Generator,
    *,
    findings: Iterable[CxrFinding | str] = frozenset(),
    size: int = 512,
    view: PhantomView | str = PhantomView.PA,
    field_of_view_mm: float = DEFAULT_FIELD_OF_VIEW_MM,
) -> Phantom:
    """Draw one synthetic chest radiograph showing ``findings``.

    Parameters
    ----------
    rng:
        The only source of randomness: the same generator state gives the same phantom.
    findings:
        Findings to draw; none draws a normal chest. The cardiothoracic ratio is
        0.40-0.48 without cardiomegaly and 0.55-0.70 with it.
    size:
        Rows and columns of the square image (at least 64).
    view:
        ``"PA"``, ``"AP"`` or ``"LATERAL"``. Findings are drawn on frontal views only.
    field_of_view_mm:
        Physical width of the image; sets the pixel spacing and so the nodule sizes
        (5-40 mm).

    Returns
    -------
    Phantom
        The image with the findings, the masks of their signs and the anatomy.

    Raises
    ------
    ValueError
        When ``size`` is below 64, ``view`` is unknown, a finding is unknown, or
        findings are asked for on a lateral view.
    """
    if size < _MIN_SIZE:
        raise ValueError(f"`size` must be at least {_MIN_SIZE}, {size} is given")
    try:
        projection = PhantomView(str(view).upper())
    except ValueError:
        known = ", ".join(v.value for v in PhantomView)
        raise ValueError(f"`view` must be one of {known}, {view!r} is given") from None
    wanted = _findings_set(findings)
    if wanted and not projection.frontal:
        names = ", ".join(sorted(f.value for f in wanted))
        raise ValueError(f"findings are drawn on frontal views only; {names} asked on LATERAL")
    grid = Grid.square(size)
    spacing = field_of_view_mm / size
    base = _base_seed(rng)
    if not projection.frontal:
        return _lateral(grid, base, spacing)
    return _frontal(grid, base, spacing, wanted, ap=projection is PhantomView.AP)


def _lateral(grid: Grid, base: int, spacing: float) -> Phantom:
    ctr = float(0.40 + 0.08 * _stream(base, _STREAM_SHAPE).uniform())
    density, lungs, heart = draw_lateral(
        grid, _stream(base, _STREAM_LATERAL), cardiothoracic_ratio=ctr
    )
    image = _finish(density, grid, _stream(base, _STREAM_NOISE))
    return Phantom(
        image=image,
        findings=frozenset(),
        masks=MappingProxyType({}),
        anatomy=MappingProxyType({"lungs": lungs > 0.5, "heart": heart > 0.5}),
        cardiothoracic_ratio=ctr,
        view=PhantomView.LATERAL,
        pixel_spacing_mm=spacing,
    )


def _frontal(
    grid: Grid, base: int, spacing: float, wanted: frozenset[CxrFinding], *, ap: bool
) -> Phantom:
    shape = sample_frontal_shape(
        _stream(base, _STREAM_SHAPE), enlarged_heart=CxrFinding.CARDIOMEGALY in wanted, ap=ap
    )
    anatomy = draw_frontal(grid, shape, _stream(base, _STREAM_MARKINGS))
    lungs = anatomy.lungs[0] + anatomy.lungs[1]
    masks: dict[CxrFinding, BoolImage] = {}
    fill = grid.zeros()
    gap = grid.zeros()
    pleural_line = grid.zeros()
    pattern = ""
    diameters: tuple[float, ...] = ()

    def stream(finding: CxrFinding) -> np.random.Generator:
        return _stream(base, _STREAM_FINDING[finding])

    if CxrFinding.CARDIOMEGALY in wanted:
        masks[CxrFinding.CARDIOMEGALY] = anatomy.heart > 0.5
    if CxrFinding.PLEURAL_EFFUSION in wanted:
        effusion = draw_effusion(grid, anatomy, stream(CxrFinding.PLEURAL_EFFUSION))
        masks[CxrFinding.PLEURAL_EFFUSION] = (effusion > 0.5) & (lungs > 0.5)
        fill = np.maximum(fill, effusion)
    if CxrFinding.PNEUMOTHORAX in wanted:
        pneumothorax = draw_pneumothorax(grid, anatomy, stream(CxrFinding.PNEUMOTHORAX))
        gap, pleural_line = pneumothorax.gap, pneumothorax.pleural_line
        masks[CxrFinding.PNEUMOTHORAX] = gap > 0.5
    if CxrFinding.CONSOLIDATION in wanted:
        patch, pattern = draw_consolidation(grid, anatomy, stream(CxrFinding.CONSOLIDATION))
        masks[CxrFinding.CONSOLIDATION] = (patch > 0.5) & (lungs > 0.5)
        fill = np.maximum(fill, patch)
    if CxrFinding.NODULE_MASS in wanted:
        nodules, nodule_mask, diameters = draw_nodules(
            grid, anatomy, stream(CxrFinding.NODULE_MASS), pixel_spacing_mm=spacing
        )
        masks[CxrFinding.NODULE_MASS] = nodule_mask
        fill = np.maximum(fill, nodules)
    if CxrFinding.PNEUMOTHORAX in wanted:
        fill = fill * (1.0 - gap)  # the air rim holds no lung to fill

    height = np.clip(
        (grid.y - np.float32(shape.apex_y)) / np.float32(shape.angle_y[0] - shape.apex_y), 0.0, 1.0
    )
    air_depth = 0.72 + 0.28 * np.sin(np.float32(np.pi) * height)  # denser apices and bases
    air = lungs * (1.0 - 0.95 * fill)
    visible_markings = anatomy.markings * lungs * (1.0 - fill) * (1.0 - gap)
    density = (
        0.04
        + 0.58 * anatomy.body
        - 0.40 * air * air_depth
        + 0.06 * anatomy.heart
        + 0.12 * anatomy.bones * anatomy.body * (0.35 + 0.65 * lungs)
        + 0.16 * visible_markings
        + 0.05 * anatomy.hila
        - 0.14 * anatomy.gastric_bubble
        - 0.10 * gap
        + 0.12 * pleural_line
    ).astype(np.float32)
    image = _finish(density, grid, _stream(base, _STREAM_NOISE))
    return Phantom(
        image=image,
        findings=wanted,
        masks=MappingProxyType(masks),
        anatomy=MappingProxyType(
            {
                "right_lung": anatomy.lungs[0] > 0.5,
                "left_lung": anatomy.lungs[1] > 0.5,
                "heart": anatomy.heart > 0.5,
            }
        ),
        cardiothoracic_ratio=shape.cardiothoracic_ratio,
        view=PhantomView.AP if ap else PhantomView.PA,
        pixel_spacing_mm=spacing,
        consolidation_pattern=pattern,
        nodule_diameters_mm=diameters,
    )

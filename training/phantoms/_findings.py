"""Visual signatures of the findings on a frontal phantom.

Each function returns soft layers (0-1) that :mod:`training.phantoms.cxr` composes with
the anatomy, and the region where the sign was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from training.phantoms._frontal import FrontalAnatomy, lung_shape
from training.phantoms._shapes import FloatImage, Grid, blur, smooth_noise, soft_step

__all__ = [
    "Pneumothorax",
    "draw_consolidation",
    "draw_effusion",
    "draw_nodules",
    "draw_pneumothorax",
]

BoolImage = NDArray[np.bool_]


def _sides(rng: np.random.Generator, both_probability: float) -> tuple[int, ...]:
    if rng.uniform() < both_probability:
        return (0, 1)
    return (int(rng.integers(2)),)


def draw_effusion(grid: Grid, anatomy: FrontalAnatomy, rng: np.random.Generator) -> FloatImage:
    """Fluid filling the lung base up to a meniscus that rises along the lateral wall.

    Returns the fill fraction (0 air, 1 fluid) inside the lungs; it blunts the
    costophrenic angle and hides the hemidiaphragm dome.
    """
    shape = anatomy.shape
    fill = grid.zeros()
    for side in _sides(rng, 0.25):
        sign = shape.side_sign(side)
        t = sign * (grid.x - np.float32(shape.midline))
        medial, lateral = shape.mediastinum_half, shape.thorax_half
        level = shape.dome_y[side] - 0.01 - 0.16 * rng.uniform() ** 1.5
        rise = 0.05 + 0.07 * rng.uniform()
        across = np.clip((t - np.float32(medial)) / np.float32(lateral - medial), 0.0, 1.0)
        top = np.float32(level) - np.float32(rise) * across**2.5
        depth = grid.y - top
        side_fill = soft_step(depth, 0.04) * np.clip(0.8 + depth / np.float32(0.15), 0.0, 1.0)
        fill = np.maximum(fill, side_fill * (anatomy.lungs[side] > 0.01))
    return fill.astype(np.float32)


@dataclass(frozen=True, slots=True)
class Pneumothorax:
    """Layers of a pneumothorax: the air gap without lung markings and the pleural line."""

    gap: FloatImage
    pleural_line: FloatImage


def draw_pneumothorax(
    grid: Grid, anatomy: FrontalAnatomy, rng: np.random.Generator
) -> Pneumothorax:
    """Collapse one lung towards its medial base, leaving an apical and lateral air rim.

    The collapsed lung is the lung outline scaled by 0.6-0.88 about the point where
    the mediastinum meets the diaphragm; the visceral pleura is its edge.
    """
    shape = anatomy.shape
    side = int(rng.integers(2))
    scale = np.float32(0.6 + 0.28 * rng.uniform())
    anchor_y = np.float32(shape.dome_y[side])
    anchor_x = np.float32(shape.midline + shape.side_sign(side) * shape.mediastinum_half)
    edge = 1.2 * grid.pixel
    hemithorax = lung_shape(shape, grid.y, grid.x, side, edge) * (anatomy.lungs[side] > 0.01)
    collapsed = lung_shape(
        shape,
        (grid.y - anchor_y) / scale + anchor_y,
        (grid.x - anchor_x) / scale + anchor_x,
        side,
        edge / float(scale),
    )
    gap = hemithorax * (1.0 - collapsed)
    line = np.float32(4.0) * collapsed * (1.0 - collapsed) * hemithorax
    return Pneumothorax(gap=gap.astype(np.float32), pleural_line=line.astype(np.float32))


def _blob_field(
    grid: Grid, centres: list[tuple[float, float, float]], rng: np.random.Generator
) -> FloatImage:
    field = grid.zeros()
    for cy, cx, radius in centres:
        d2 = ((grid.y - np.float32(cy)) ** 2 + (grid.x - np.float32(cx)) ** 2) / np.float32(
            radius * radius
        )
        field = np.maximum(field, np.exp(-d2))
    texture = smooth_noise(rng, grid.size, 16) + 0.6 * smooth_noise(rng, grid.size, 48)
    patchy = field * (1.0 + 0.9 * texture)
    return np.clip(patchy * 1.2 - 0.1, 0.0, 1.0).astype(np.float32)


def _air_bronchograms(
    grid: Grid, anatomy: FrontalAnatomy, side: int, rng: np.random.Generator
) -> FloatImage:
    """Thin lucent branching tubes running away from the hilum."""
    shape = anatomy.shape
    hy, hx = np.float32(shape.hilum_y), np.float32(shape.hilum_x(side))
    dy, dx = grid.y - hy, grid.x - hx
    radius = np.sqrt(dy * dy + dx * dx)
    lines = grid.zeros()
    base = np.arctan2(0.6, shape.side_sign(side) * 0.5)
    for angle in base + rng.uniform(-0.9, 0.9, size=7):
        across = dx * np.float32(np.sin(angle)) - dy * np.float32(np.cos(angle))
        along = dx * np.float32(np.cos(angle)) + dy * np.float32(np.sin(angle))
        width = 0.0045 * np.exp(-radius / np.float32(0.35))
        tube = np.clip(1.0 - np.abs(across) / np.maximum(width, np.float32(grid.pixel)), 0.0, 1.0)
        lines = np.maximum(lines, tube * soft_step(along - np.float32(0.04), 0.02))
    return lines


def draw_consolidation(
    grid: Grid, anatomy: FrontalAnatomy, rng: np.random.Generator
) -> tuple[FloatImage, str]:
    """Patchy ill-defined airspace opacity with air bronchograms.

    Half the time a lobar pattern (one large patch in one lung), otherwise the
    multifocal, peripheral, lower-zone, bilateral pattern of COVID-19 pneumonia.

    Returns
    -------
    tuple
        The fill fraction inside the lungs and the pattern drawn (``"lobar"`` or
        ``"multifocal"``).
    """
    shape = anatomy.shape
    lung_any = np.maximum(anatomy.lungs[0], anatomy.lungs[1])
    if rng.uniform() < 0.5:
        side = int(rng.integers(2))
        sign = shape.side_sign(side)
        cy = shape.hilum_y + rng.uniform(-0.12, 0.18)
        cx = shape.midline + sign * shape.thorax_half * rng.uniform(0.45, 0.7)
        centres = [(cy, cx, rng.uniform(0.07, 0.11))]
        centres += [
            (cy + rng.uniform(-0.05, 0.05), cx + rng.uniform(-0.05, 0.05), rng.uniform(0.04, 0.07))
            for _ in range(3)
        ]
        patch = _blob_field(grid, centres, rng) * anatomy.lungs[side]
        bronchi = _air_bronchograms(grid, anatomy, side, rng)
        patch = patch * (1.0 - 0.55 * bronchi * soft_step(patch - 0.6, 0.3))
        return blur(patch.astype(np.float32), 1), "lobar"
    centres = []
    for side in (0, 1):
        sign = shape.side_sign(side)
        for _ in range(int(rng.integers(2, 4))):
            cy = rng.uniform(shape.hilum_y - 0.05, shape.dome_y[side] - 0.03)
            cx = shape.midline + sign * (shape.thorax_half - rng.uniform(0.04, 0.09))
            centres.append((cy, cx, rng.uniform(0.05, 0.08)))
    patch = _blob_field(grid, centres, rng) * lung_any
    return blur(patch.astype(np.float32), max(2, grid.size // 128)), "multifocal"


def draw_nodules(
    grid: Grid,
    anatomy: FrontalAnatomy,
    rng: np.random.Generator,
    *,
    pixel_spacing_mm: float,
) -> tuple[FloatImage, BoolImage, tuple[float, ...]]:
    """One to three round opacities of 5-40 mm diameter lying wholly inside a lung.

    Returns
    -------
    tuple
        The fill fraction, the union of the discs, and each nodule's diameter in mm.
    """
    count = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
    lung_core = np.maximum(anatomy.lungs[0], anatomy.lungs[1]) > 0.99
    candidates = np.flatnonzero(lung_core)
    fill = grid.zeros()
    mask = np.zeros((grid.size, grid.size), dtype=bool)
    diameters: list[float] = []
    circle = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    for _ in range(count):
        diameter = float(np.exp(rng.uniform(np.log(5.0), np.log(40.0))))
        for _attempt in range(60):
            radius_px = diameter / 2.0 / pixel_spacing_mm
            row, col = divmod(int(rng.choice(candidates)), grid.size)
            ring_rows = np.round(row + radius_px * np.sin(circle)).astype(np.intp)
            ring_cols = np.round(col + radius_px * np.cos(circle)).astype(np.intp)
            inside = (
                (ring_rows >= 0)
                & (ring_rows < grid.size)
                & (ring_cols >= 0)
                & (ring_cols < grid.size)
            )
            if inside.all() and lung_core[ring_rows, ring_cols].all():
                break
            diameter = max(5.0, diameter * 0.9)
        else:
            continue
        cy, cx = (row + 0.5) / grid.size, (col + 0.5) / grid.size
        radius = radius_px / grid.size
        distance = np.sqrt((grid.y - np.float32(cy)) ** 2 + (grid.x - np.float32(cx)) ** 2)
        disc = soft_step(np.float32(radius) - distance, 1.2 * grid.pixel)
        density = np.float32(rng.uniform(0.8, 1.0))
        dome = np.sqrt(np.clip(1.0 - (distance / np.float32(radius)) ** 2, 0.0, 1.0))
        fill = np.maximum(fill, disc * density * (0.75 + 0.25 * dome))
        mask |= distance <= np.float32(radius)
        diameters.append(round(diameter, 1))
    return fill.astype(np.float32), mask, tuple(diameters)

"""A lateral chest phantom: anterior to the image left, the spine posterior on the right."""

from __future__ import annotations

import numpy as np

from training.phantoms._shapes import FloatImage, Grid, soft_band, soft_ellipse, soft_step

__all__ = ["draw_lateral"]


def draw_lateral(
    grid: Grid, rng: np.random.Generator, *, cardiothoracic_ratio: float
) -> tuple[FloatImage, FloatImage, FloatImage]:
    """Draw the density of a lateral chest and return it with the lung and heart layers.

    The heart's antero-posterior size scales with ``cardiothoracic_ratio`` (0.45 gives
    an average heart).
    """
    u = rng.uniform(size=6)
    edge = 1.5 * grid.pixel
    body = soft_ellipse(grid, cy=0.55, cx=0.52, ry=0.7, rx=0.40 + 0.03 * u[0], edge=0.02)
    arms = soft_ellipse(grid, cy=0.05, cx=0.5, ry=0.2, rx=0.3, edge=0.05)
    chest = soft_ellipse(grid, cy=0.5, cx=0.49, ry=0.37, rx=0.29 + 0.02 * u[1], edge=edge)
    dome_y = 0.70 + 0.03 * u[2]
    dome = np.float32(dome_y) + 0.9 * (grid.x - np.float32(0.42)) ** 2
    second_dome = dome + np.float32(0.02)
    lungs = chest * soft_step(dome - grid.y, edge)
    diaphragm_line = soft_band(grid.y - second_dome, 0.002, edge) * chest
    heart_rx = 0.13 * cardiothoracic_ratio / 0.45
    heart = soft_ellipse(
        grid, cy=dome_y - 0.09, cx=0.24 + heart_rx, ry=0.13 + 0.02 * u[3], rx=heart_rx, edge=edge
    )
    curve = 0.72 + 0.04 * u[4] + 0.12 * (grid.y - np.float32(0.5)) ** 2
    column = soft_band(grid.x - curve, 0.045, 0.008)
    discs = soft_band(np.mod(grid.y, np.float32(0.055)) - np.float32(0.0275), 0.004, 0.004)
    spine = column * (1.0 - 0.45 * discs)
    sternum = soft_band(grid.x - (0.19 + 0.08 * (grid.y - np.float32(0.2))), 0.012, 0.006) * (
        soft_step(grid.y - np.float32(0.2), 0.01) * soft_step(np.float32(0.6) - grid.y, 0.01)
    )
    trachea = soft_band(grid.x - (0.47 + 0.15 * grid.y), 0.018, 0.008) * soft_step(
        np.float32(0.42) - grid.y, 0.03
    )
    ribs = soft_band(
        np.mod(grid.y - 0.5 * grid.x, np.float32(0.07)) - np.float32(0.035), 0.008, 0.006
    ) * soft_step(grid.x - np.float32(0.55), 0.05)
    lung_air = lungs * (1.0 - heart)
    density = (
        0.04
        + 0.56 * body
        + 0.05 * arms * body
        - 0.30 * lung_air
        + 0.03 * heart
        + 0.12 * spine
        + 0.10 * sternum
        + 0.06 * ribs * lungs
        + 0.05 * diaphragm_line
        - 0.12 * trachea
    )
    return density.astype(np.float32), lung_air.astype(np.float32), heart

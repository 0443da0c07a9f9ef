"""Anatomy of a frontal (PA or AP) chest phantom, as soft layers on a normalised grid.

The patient's right is on the image left, as a frontal radiograph is displayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.phantoms._shapes import (
    FloatImage,
    Grid,
    as_image,
    resize_bilinear,
    smooth_noise,
    soft_band,
    soft_ellipse,
    soft_step,
)

__all__ = ["FrontalAnatomy", "FrontalShape", "draw_frontal", "sample_frontal_shape"]

_LEFT_SIDE = 1.0  # the patient's left lung lies at larger x
_RIGHT_SIDE = -1.0


@dataclass(frozen=True, slots=True)
class FrontalShape:
    """The sampled geometry of one frontal phantom, in normalised units."""

    midline: float
    thorax_half: float
    apex_y: float
    dome_y: tuple[float, float]  # right, left hemidiaphragm peak
    angle_y: tuple[float, float]  # right, left costophrenic angle
    mediastinum_half: float
    hilum_y: float
    cardiothoracic_ratio: float
    heart_cy: float
    heart_ry: float
    clavicle_lift: float

    @property
    def heart_width(self) -> float:
        """Transverse diameter of the heart."""
        return self.cardiothoracic_ratio * 2.0 * self.thorax_half

    @property
    def heart_cx(self) -> float:
        """Centre of the heart ellipse; two thirds of the heart lie left of the midline."""
        return self.midline + 0.15 * self.heart_width

    def side_sign(self, side: int) -> float:
        """Return -1 for the right lung (``side`` 0) and +1 for the left (``side`` 1)."""
        return _RIGHT_SIDE if side == 0 else _LEFT_SIDE

    def hilum_x(self, side: int) -> float:
        """Horizontal position of the hilum of lung ``side``."""
        return self.midline + self.side_sign(side) * (self.mediastinum_half + 0.035)


def sample_frontal_shape(
    rng: np.random.Generator, *, enlarged_heart: bool, ap: bool
) -> FrontalShape:
    """Draw the geometry of one patient; the heart size follows ``enlarged_heart``.

    The same generator state gives the same patient whatever ``enlarged_heart`` is: only
    the mapping of one uniform draw to the cardiothoracic ratio changes.
    """
    u = rng.uniform(size=12)
    dome_right = 0.63 + 0.04 * u[3]
    dome_left = dome_right + 0.015 + 0.02 * u[4]
    drop = 0.08 + 0.03 * u[5]
    ctr = 0.55 + 0.15 * u[6] if enlarged_heart else 0.40 + 0.08 * u[6]
    return FrontalShape(
        midline=0.5 + 0.02 * (u[0] - 0.5),
        thorax_half=0.34 + 0.04 * u[1],
        apex_y=0.10 + 0.04 * u[2],
        dome_y=(dome_right, dome_left),
        angle_y=(dome_right + drop, dome_left + drop),
        mediastinum_half=0.05 + 0.015 * u[7],
        hilum_y=0.40 + 0.04 * u[8],
        cardiothoracic_ratio=float(ctr),
        heart_cy=dome_left - 0.035 - 0.015 * u[9],
        heart_ry=0.12 + 0.2 * (ctr - 0.40) + 0.02 * u[10],
        clavicle_lift=0.03 if ap else 0.0,
    )


@dataclass(frozen=True, slots=True)
class FrontalAnatomy:
    """Soft (0-1) layers of the normal anatomy, before findings and noise."""

    shape: FrontalShape
    body: FloatImage
    lungs: tuple[FloatImage, FloatImage]  # right, left; air-filled lung, heart excluded
    heart: FloatImage
    bones: FloatImage
    markings: FloatImage
    hila: FloatImage
    gastric_bubble: FloatImage


def lung_shape(
    shape: FrontalShape, y: FloatImage, x: FloatImage, side: int, edge: float
) -> FloatImage:
    """Return the soft hemithorax air space of lung ``side`` at coordinates ``(y, x)``.

    Bounded by the lateral chest wall (an ellipse whose top is the apex), the
    hemidiaphragm dome, which meets the wall at the costophrenic angle, and the
    mediastinum.
    """
    sign = shape.side_sign(side)
    t = as_image(sign * (x - np.float32(shape.midline)))  # distance into this side
    rx, ry = 0.20, 0.56
    cy = shape.apex_y + ry
    ct = shape.thorax_half - rx
    radius = np.sqrt(
        ((t - np.float32(ct)) / np.float32(rx)) ** 2 + ((y - np.float32(cy)) / np.float32(ry)) ** 2
    )
    wall = soft_step(as_image((1.0 - radius) * np.float32(rx)), edge)
    dome = diaphragm_y(shape, t, side)
    above_diaphragm = soft_step(dome - y, edge)
    lateral_of_mediastinum = soft_step(t - np.float32(shape.mediastinum_half), edge)
    return np.minimum(np.minimum(wall, above_diaphragm), lateral_of_mediastinum)


def diaphragm_y(shape: FrontalShape, t: FloatImage, side: int) -> FloatImage:
    """Height of hemidiaphragm ``side`` at distance ``t`` from the midline.

    A dome that peaks at 45 % of the hemithorax width, falls steeply to the
    costophrenic angle laterally and gently to the cardiophrenic angle medially.
    """
    centre = np.float32(shape.thorax_half * 0.45)
    reach = np.float32(shape.thorax_half) - centre
    peak, angle = np.float32(shape.dome_y[side]), np.float32(shape.angle_y[side])
    lateral = peak + (angle - peak) * ((t - centre) / reach) ** 2
    medial = peak + np.float32(0.025) * ((centre - t) / centre) ** 2
    return np.where(t >= centre, lateral, medial).astype(np.float32)


def chest_wall(shape: FrontalShape, y: FloatImage, x: FloatImage, margin: float) -> FloatImage:
    """Both hemithoraces, ``margin`` wider than the lungs, above the costophrenic angles."""
    t = np.abs(x - np.float32(shape.midline))
    rx, ry = 0.20 + margin, 0.56 + margin
    radius = np.sqrt(
        ((t - np.float32(shape.thorax_half - 0.20)) / np.float32(rx)) ** 2
        + ((y - np.float32(shape.apex_y + 0.56)) / np.float32(ry)) ** 2
    )
    inside = soft_step((1.0 - radius) * np.float32(rx), 0.02) * soft_step(
        np.float32(0.20) - np.abs(t - np.float32(shape.thorax_half - 0.20)) + 0.2, 0.02
    )
    return inside * soft_step(np.float32(max(shape.angle_y) + 0.01) - y, 0.02)


def _ribs(grid: Grid, shape: FrontalShape) -> FloatImage:
    """Posterior ribs (curving down laterally) and fainter anterior ribs."""
    t = np.abs(grid.x - np.float32(shape.midline))
    span = shape.angle_y[0] - shape.apex_y
    spacing = span / 9.5
    lateral_limit = chest_wall(shape, grid.y, grid.x, 0.03)
    posterior_u = grid.y - (0.12 * t + 0.55 * t * t)
    phase = (posterior_u - np.float32(shape.apex_y - 0.05)) / np.float32(spacing)
    distance = (phase - np.round(phase)) * np.float32(spacing)
    in_range = soft_step(phase + 0.3, 0.2) * soft_step(np.float32(10.3) - phase, 0.2)
    posterior = soft_band(distance, 0.014, 0.008) * in_range
    anterior_u = grid.y + 0.9 * (t - np.float32(shape.thorax_half)) ** 2
    anterior_phase = (anterior_u - np.float32(shape.apex_y + 0.06)) / np.float32(spacing * 1.2)
    anterior_distance = (anterior_phase - np.round(anterior_phase)) * np.float32(spacing * 1.2)
    anterior_range = soft_step(anterior_phase + 0.3, 0.2) * soft_step(5.3 - anterior_phase, 0.2)
    anterior = soft_band(anterior_distance, 0.012, 0.01) * anterior_range * np.float32(0.4)
    medial_fade = soft_step(t - np.float32(0.03), 0.03)
    return np.maximum(posterior, anterior) * lateral_limit * medial_fade


def _clavicles(grid: Grid, shape: FrontalShape) -> FloatImage:
    t = np.abs(grid.x - np.float32(shape.midline))
    s = t - np.float32(0.03)
    centre = np.float32(shape.apex_y + 0.08 - shape.clavicle_lift) - 0.28 * s + 0.5 * s * (s - 0.29)
    along = soft_step(s, 0.01) * soft_step(np.float32(0.30) - s, 0.02)
    return soft_band(grid.y - centre, 0.013, 0.006) * along


def _spine(grid: Grid, shape: FrontalShape) -> FloatImage:
    column = soft_band(grid.x - np.float32(shape.midline), 0.03, 0.012)
    discs = soft_band(np.mod(grid.y, np.float32(0.05)) - np.float32(0.025), 0.004, 0.006)
    return (column * (0.5 - 0.25 * discs)).astype(np.float32)


def _markings(grid: Grid, shape: FrontalShape, rng: np.random.Generator) -> FloatImage:
    """Branching vessel markings radiating from both hila, fading towards the periphery."""
    out = grid.zeros()
    for side in (0, 1):
        dy = grid.y - np.float32(shape.hilum_y)
        dx = grid.x - np.float32(shape.hilum_x(side))
        radius = np.sqrt(dy * dy + dx * dx)
        wobble = smooth_noise(rng, grid.size, 30) * np.float32(0.06)
        angle = ((np.arctan2(dy, dx) + wobble) / np.float32(2.0 * np.pi) + 0.5) % 1.0 * 160.0
        table = np.maximum(rng.standard_normal((161, 8)).astype(np.float32), 0.0)
        table[160] = table[0]
        a0 = np.clip(angle.astype(np.intp), 0, 159)
        wa = angle - a0
        r = np.clip(radius / np.float32(0.045), 0.0, 6.99)
        r0 = r.astype(np.intp)
        wr = r - r0
        tex = (table[a0, r0] * (1 - wa) + table[a0 + 1, r0] * wa) * (1 - wr) + (
            table[a0, r0 + 1] * (1 - wa) + table[a0 + 1, r0 + 1] * wa
        ) * wr
        out += tex * np.exp(-radius / np.float32(0.16))
    return as_image(np.clip(out * np.float32(0.7), 0.0, 1.0))


def _half_resolution_markings(
    grid: Grid, shape: FrontalShape, rng: np.random.Generator
) -> FloatImage:
    """Draw the markings at half resolution (they hold no pixel-fine detail) and upsample."""
    half = Grid.square(max(grid.size // 2, 32))
    return resize_bilinear(_markings(half, shape, rng), grid.size, grid.size)


def draw_frontal(grid: Grid, shape: FrontalShape, rng: np.random.Generator) -> FrontalAnatomy:
    """Draw the normal anatomy of ``shape``; ``rng`` only varies the lung markings."""
    edge = 1.5 * grid.pixel
    torso = soft_ellipse(
        grid, cy=0.66, cx=shape.midline, ry=0.68, rx=shape.thorax_half + 0.11, edge=0.03
    )
    shoulders = soft_ellipse(
        grid,
        cy=shape.apex_y + 0.1,
        cx=shape.midline,
        ry=0.09,
        rx=shape.thorax_half + 0.12,
        edge=0.06,
    )
    neck = soft_ellipse(grid, cy=0.0, cx=shape.midline, ry=0.2, rx=0.1, edge=0.02)
    body = np.maximum(np.maximum(torso, shoulders), neck)
    heart = soft_ellipse(
        grid,
        cy=shape.heart_cy,
        cx=shape.heart_cx,
        ry=shape.heart_ry,
        rx=shape.heart_width / 2.0,
        edge=edge,
    )
    t_signed = grid.x - np.float32(shape.midline)
    diaphragm = np.where(
        t_signed < 0,
        diaphragm_y(shape, np.abs(t_signed), 0),
        diaphragm_y(shape, np.abs(t_signed), 1),
    )
    heart = heart * soft_step(diaphragm - grid.y + np.float32(0.01), edge)
    aortic_knob = soft_ellipse(
        grid,
        cy=shape.hilum_y - 0.1,
        cx=shape.midline + shape.mediastinum_half - 0.025,
        ry=0.045,
        rx=0.045,
        edge=edge,
    )
    non_lung = np.maximum(heart, aortic_knob)
    lungs = tuple(
        as_image(lung_shape(shape, grid.y, grid.x, side, edge) * (1.0 - non_lung))
        for side in (0, 1)
    )
    bones = np.maximum(
        np.maximum(0.6 * _ribs(grid, shape), _clavicles(grid, shape)), _spine(grid, shape)
    )
    hila = sum(
        (
            soft_ellipse(
                grid, cy=shape.hilum_y, cx=shape.hilum_x(side), ry=0.05, rx=0.03, edge=0.03
            )
            for side in (0, 1)
        ),
        grid.zeros(),
    )
    bubble = soft_ellipse(
        grid, cy=shape.dome_y[1] + 0.06, cx=shape.midline + 0.17, ry=0.035, rx=0.06, edge=0.015
    )
    return FrontalAnatomy(
        shape=shape,
        body=body,
        lungs=(lungs[0], lungs[1]),
        heart=heart,
        bones=bones,
        markings=_half_resolution_markings(grid, shape, rng),
        hila=hila,
        gastric_bubble=bubble,
    )

"""Explanations of chest X-ray findings: class activation maps and heatmap overlays.

numpy and Pillow only. A class activation map (CAM) weighs the last feature map of a
network by the weights its final linear layer gives one target, so it applies to any
model whose head is global average pooling followed by one linear layer.

References
----------
Zhou B, Khosla A, Lapedriza A, Oliva A, Torralba A. Learning deep features for
discriminative localization. CVPR 2016.
"""

from __future__ import annotations

import io
from functools import cache
from os import PathLike
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "HEATMAP_STORE_SIDE",
    "INFERNO_ANCHORS",
    "OVERLAY_PNG_LEVEL",
    "OVERLAY_SIDE",
    "OverlayFont",
    "apply_colormap",
    "class_activation_map",
    "grad_cam_map",
    "heatmap_files",
    "overlay_font",
    "preliminary_label",
    "render_overlay",
    "save_heatmap",
    "shrink",
]

#: Nine evenly spaced sRGB anchors of the perceptually uniform 'inferno' colour map
#: (black → purple → red → orange → pale yellow); values in between are interpolated.
INFERNO_ANCHORS: NDArray[np.float32] = np.array(
    [
        (0, 0, 4),
        (31, 12, 72),
        (85, 15, 109),
        (136, 34, 106),
        (186, 54, 85),
        (227, 89, 51),
        (249, 140, 10),
        (249, 201, 50),
        (252, 255, 164),
    ],
    dtype=np.float32,
)

_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "NotoSans-Regular.ttf")
_FONT_DIRECTORIES = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
    Path("C:/Windows/Fonts"),
)


def class_activation_map(
    features: NDArray[np.floating], weights: NDArray[np.floating]
) -> NDArray[np.float32]:
    """Return ReLU(Σ_c w_c F_c) scaled to [0, 1].

    Parameters
    ----------
    features:
        The feature map of one image, shape (C, h, w).
    weights:
        The final linear layer's weights for one target, shape (C,).

    Returns
    -------
    NDArray[np.float32]
        (h, w) map in [0, 1]; all zeros when no location has positive evidence
        (never NaN).

    Raises
    ------
    ValueError
        When the shapes do not fit or a value is not finite.
    """
    feature_array = np.asarray(features, dtype=np.float64)
    weight_array = np.asarray(weights, dtype=np.float64)
    if feature_array.ndim != 3 or feature_array.size == 0:
        raise ValueError(
            f"`features` must be a non-empty (C, h, w) array, shape {feature_array.shape} is given"
        )
    if weight_array.shape != (feature_array.shape[0],):
        raise ValueError(
            f"`weights` must have shape ({feature_array.shape[0]},) to match `features` "
            f"{feature_array.shape}, shape {weight_array.shape} is given"
        )
    if not (np.isfinite(feature_array).all() and np.isfinite(weight_array).all()):
        raise ValueError("`features` and `weights` must hold finite values only")
    cam = np.tensordot(weight_array, feature_array, axes=([0], [0]))
    np.maximum(cam, 0.0, out=cam)
    peak = float(cam.max())
    if peak > 0.0:
        cam /= peak
    return cam.astype(np.float32)


def grad_cam_map(
    features: NDArray[np.floating], gradients: NDArray[np.floating]
) -> NDArray[np.float32]:
    """Grad-CAM: ReLU(Σ_c α_c F_c) with α_c the spatial mean of ∂score/∂F_c, scaled to [0, 1].

    Parameters
    ----------
    features:
        The feature map of one image, shape (C, h, w).
    gradients:
        The gradient of one target's score with respect to ``features``, same shape.

    Raises
    ------
    ValueError
        When the shapes differ or a value is not finite.
    """
    gradient_array = np.asarray(gradients, dtype=np.float64)
    if gradient_array.shape != np.shape(features) or gradient_array.ndim != 3:
        raise ValueError(
            f"`gradients` must have the (C, h, w) shape of `features` {np.shape(features)}, "
            f"shape {gradient_array.shape} is given"
        )
    return class_activation_map(features, gradient_array.mean(axis=(1, 2)))


def apply_colormap(
    values: NDArray[np.floating], anchors: NDArray[np.floating] = INFERNO_ANCHORS
) -> NDArray[np.uint8]:
    """Map values in [0, 1] (clipped) to RGB through evenly spaced colour ``anchors``.

    Returns
    -------
    NDArray[np.uint8]
        ``values.shape + (3,)``; NaN maps to the first anchor.
    """
    table = np.asarray(anchors, dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 3 or table.shape[0] < 2:
        raise ValueError(f"`anchors` must have shape (n >= 2, 3), {table.shape} is given")
    scaled = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= np.float32(table.shape[0] - 1)
    lower = np.minimum(np.floor(scaled).astype(np.intp), table.shape[0] - 2)
    fraction = (scaled - lower)[..., None]
    colours = table[lower] * (1.0 - fraction) + table[lower + 1] * fraction
    result: NDArray[np.uint8] = np.clip(np.rint(colours), 0, 255).astype(np.uint8)
    return result


class OverlayFont:
    """The font labels are drawn with, and where it came from.

    Attributes
    ----------
    path:
        The TrueType file found, or ``None`` when Pillow's built-in font is used
        (which may lack Vietnamese diacritics).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @property
    def name(self) -> str:
        """The font file's name, or ``"Pillow default"``."""
        return self.path.name if self.path is not None else "Pillow default"

    def load(self, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        """The font at ``size`` pixels."""
        if self.path is not None:
            return ImageFont.truetype(str(self.path), size)
        return ImageFont.load_default(size)


@cache
def overlay_font() -> OverlayFont:
    """Find a font that renders Vietnamese diacritics (DejaVu Sans first).

    Looks for :data:`_FONT_FILES` through Pillow's own font search, then under the
    usual system font folders; falls back to Pillow's built-in font.
    """
    for file_name in _FONT_FILES:
        try:
            font = ImageFont.truetype(file_name, 12)
        except OSError:
            continue
        found = getattr(font, "path", None)
        if isinstance(found, str) and Path(found).is_file():
            return OverlayFont(Path(found))
    for directory in _FONT_DIRECTORIES:
        if not directory.is_dir():
            continue
        for file_name in _FONT_FILES:
            for candidate in sorted(directory.rglob(file_name)):
                return OverlayFont(candidate)
    return OverlayFont(None)


def render_overlay(
    display_grey: NDArray[np.floating],
    heatmap: NDArray[np.floating],
    *,
    alpha: float = 0.5,
    label: str = "",
) -> Image.Image:
    """Blend a colour-mapped heatmap over a grey image and burn in a label.

    The heat is coloured with the 'inferno' map and blended with opacity
    ``alpha × heat``, so cold regions show the image unchanged. The label is drawn
    white on a dark band in the top-left corner with :func:`overlay_font`, made
    smaller when it would not fit the width.

    Parameters
    ----------
    display_grey:
        (H, W) display image in [0, 1], bright is dense.
    heatmap:
        (H, W) map in [0, 1] on the same grid (e.g. from ``Prepared.to_original``).
    alpha:
        Opacity of the hottest colour, in [0, 1].
    label:
        Text to burn in, e.g. ``"AI — preliminary · Cardiomegaly 0.87"``; none when empty.

    Returns
    -------
    PIL.Image.Image
        An RGB image of (W, H) pixels.

    Raises
    ------
    ValueError
        When the arrays are not 2-D of the same shape, or ``alpha`` is outside [0, 1].
    """
    grey = np.asarray(display_grey, dtype=np.float32)
    heat = np.asarray(heatmap, dtype=np.float32)
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"`display_grey` must be a non-empty (H, W) array, {grey.shape} is given")
    if heat.shape != grey.shape:
        raise ValueError(
            f"`heatmap` must have the shape of `display_grey` {grey.shape}, {heat.shape} is given"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], {alpha} is given")
    heat = np.clip(np.nan_to_num(heat, nan=0.0), 0.0, 1.0)
    base = np.clip(np.nan_to_num(grey, nan=0.0), 0.0, 1.0)[..., None] * np.float32(255.0)
    colour = apply_colormap(heat).astype(np.float32)
    weight = (heat * np.float32(alpha))[..., None]
    blended = base * (1.0 - weight) + colour * weight
    image = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), mode="RGB")
    if label:
        _burn_label(image, label)
    return image


def _burn_label(image: Image.Image, label: str) -> None:
    width, height = image.size
    size = max(10, min(width, height) // 32)
    font = overlay_font().load(size)
    draw = ImageDraw.Draw(image)
    margin = max(2, size // 3)
    _left, _top, right, bottom = draw.textbbox((margin, margin), label, font=font)
    if right + margin > width and size > 8:
        size = max(8, int(size * (width - 2 * margin) / (right - margin)))
        font = overlay_font().load(size)
        _left, _top, right, bottom = draw.textbbox((margin, margin), label, font=font)
    draw.rectangle((0, 0, min(width, right + margin), min(height, bottom + margin)), fill=(0, 0, 0))
    draw.text((margin, margin), label, font=font, fill=(255, 255, 255))


def save_heatmap(path: str | PathLike[str], heatmap: NDArray[np.floating]) -> Path:
    """Save a (H, W) heatmap as a float16 ``.npy`` file and return its path.

    Raises
    ------
    ValueError
        When ``heatmap`` is not 2-D or ``path`` does not end in ``.npy``.
    """
    target = Path(path)
    if target.suffix != ".npy":
        raise ValueError(f"`path` must end in '.npy', {str(target)!r} is given")
    array = np.asarray(heatmap)
    if array.ndim != 2:
        raise ValueError(f"`heatmap` must be a (H, W) array, shape {array.shape} is given")
    np.save(target, array.astype(np.float16), allow_pickle=False)
    return target


#: Longest side of a stored heatmap array: the maps come from a coarse feature grid,
#: so a larger array would hold no more information.
HEATMAP_STORE_SIDE = 512
#: Longest side of an overlay picture (enough to read on a screen, quick to encode).
OVERLAY_SIDE = 1024
#: zlib level of overlay PNGs: level 1 takes a fifth of the time of the default level 6
#: (about 60 against 290 ms for 1024 px) for a file about 15 % larger.
OVERLAY_PNG_LEVEL = 1


def shrink(array: NDArray[np.floating], longest: int) -> NDArray[np.float32]:
    """Area-resample a (H, W) float map so its longer side is at most ``longest``."""
    values = np.asarray(array, dtype=np.float32)
    rows, columns = values.shape
    scale = longest / max(rows, columns)
    if scale >= 1.0:
        return values
    size = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    resized = Image.fromarray(values, mode="F").resize(size, Image.Resampling.BOX)
    return np.asarray(resized, dtype=np.float32)


def heatmap_files(
    display_grey: NDArray[np.floating], heatmap: NDArray[np.floating], *, label: str
) -> tuple[bytes, bytes]:
    """The stored form of one finding's heatmap: a float16 ``.npy`` and an overlay PNG.

    The array is reduced to :data:`HEATMAP_STORE_SIDE` and the overlay (heatmap over
    the image, with ``label`` burned in) to :data:`OVERLAY_SIDE` on the longer side.

    Returns
    -------
    tuple[bytes, bytes]
        The ``.npy`` file and the PNG file, as bytes.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    array_buffer = io.BytesIO()
    np.save(array_buffer, shrink(heat, HEATMAP_STORE_SIDE).astype(np.float16), allow_pickle=False)
    picture = render_overlay(
        shrink(display_grey, OVERLAY_SIDE), shrink(heat, OVERLAY_SIDE), label=label
    )
    png_buffer = io.BytesIO()
    picture.save(png_buffer, format="PNG", optimize=False, compress_level=OVERLAY_PNG_LEVEL)
    return array_buffer.getvalue(), png_buffer.getvalue()


def preliminary_label(display_en: str, display_vi: str, probability: float) -> str:
    """The label burned into every AI overlay, in English and Vietnamese."""
    return f"AI — preliminary · {display_en} {probability:.2f} · {display_vi} — sơ bộ"

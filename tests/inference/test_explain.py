"""Class activation maps, the colour map, overlays with burned-in labels, heatmap files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.explain import (
    INFERNO_ANCHORS,
    apply_colormap,
    class_activation_map,
    overlay_font,
    render_overlay,
    save_heatmap,
)
from inference.pixels import display_array, read_dataset, to_grey
from tests.support.data import pydicom_file

LABEL = "AI — preliminary · Tràn dịch màng phổi 0.87"


class TestClassActivationMap:
    def test_is_the_relu_of_the_weighted_sum_scaled_to_one(self) -> None:
        rng = np.random.default_rng(0)
        features = rng.normal(size=(6, 5, 4))
        weights = rng.normal(size=6)

        cam = class_activation_map(features, weights)

        expected = np.maximum(np.einsum("c,chw->hw", weights, features), 0.0)
        expected /= expected.max()
        assert cam.shape == (5, 4)
        assert cam.dtype == np.float32
        np.testing.assert_allclose(cam, expected, rtol=1e-6, atol=1e-7)
        assert cam.max() == pytest.approx(1.0)
        assert cam.min() == 0.0

    @pytest.mark.parametrize("sign", [0.0, -1.0], ids=["zero", "negative"])
    def test_no_positive_evidence_gives_zeros_not_nan(self, sign: float) -> None:
        cam = class_activation_map(np.ones((3, 4, 4)), np.full(3, sign))

        assert np.array_equal(cam, np.zeros((4, 4), dtype=np.float32))

    @pytest.mark.parametrize(
        ("features", "weights", "message"),
        [
            (np.ones((3, 4)), np.ones(3), "`features` must be"),
            (np.ones((3, 4, 4)), np.ones(2), "`weights` must have shape \\(3,\\)"),
            (np.full((3, 4, 4), np.nan), np.ones(3), "finite"),
        ],
        ids=["rank", "weights", "nan"],
    )
    def test_bad_inputs_are_refused(
        self, features: np.ndarray, weights: np.ndarray, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            class_activation_map(features, weights)


class TestColormap:
    def test_ends_and_anchors_are_the_table(self) -> None:
        steps = np.linspace(0.0, 1.0, len(INFERNO_ANCHORS))

        colours = apply_colormap(steps)

        np.testing.assert_array_equal(colours, INFERNO_ANCHORS.astype(np.uint8))

    def test_is_monotonic_in_lightness_and_clips(self) -> None:
        colours = apply_colormap(np.array([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0, np.nan]))

        lightness = colours.astype(float) @ np.array([0.299, 0.587, 0.114])
        assert np.all(np.diff(lightness[1:6]) > 0)
        np.testing.assert_array_equal(colours[0], colours[1])
        np.testing.assert_array_equal(colours[5], colours[6])
        np.testing.assert_array_equal(colours[7], colours[1])


class TestRenderOverlay:
    def test_cold_regions_keep_the_grey_image_and_hot_ones_are_coloured(self) -> None:
        grey = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (48, 1))
        heat = np.zeros_like(grey)
        heat[30:40, 40:50] = 1.0

        image = render_overlay(grey, heat, alpha=0.6)

        assert image.mode == "RGB"
        assert image.size == (64, 48)
        pixels = np.asarray(image)
        expected_grey = np.rint(grey * 255).astype(np.uint8)
        for channel in range(3):
            np.testing.assert_array_equal(pixels[:20, :, channel], expected_grey[:20])
        hot = pixels[35, 45].astype(float)
        top = INFERNO_ANCHORS[-1]
        assert np.allclose(hot, grey[35, 45] * 255 * 0.4 + top * 0.6, atol=1.0)

    def test_the_label_is_burned_in_the_top_left_corner(self) -> None:
        grey = np.full((200, 300), 0.5, dtype=np.float32)
        heat = np.zeros_like(grey)

        plain = np.asarray(render_overlay(grey, heat, alpha=0.5))
        labelled = np.asarray(render_overlay(grey, heat, alpha=0.5, label=LABEL))

        assert not np.array_equal(plain[:20], labelled[:20])
        assert (labelled[:20] == 255).any()  # white text
        assert (labelled[:20] == 0).any()  # on a dark band
        np.testing.assert_array_equal(plain[100:], labelled[100:])

    def test_renders_a_real_chest_radiograph(self, tmp_path: Path) -> None:
        display = to_grey(display_array(read_dataset(pydicom_file("RG1_UNCR.dcm"))))
        rows, columns = display.array.shape
        y, x = np.mgrid[0:rows, 0:columns]
        heat = np.exp(-(((y - 0.55 * rows) / (0.1 * rows)) ** 2 + ((x - 0.6 * columns) / 200) ** 2))

        image = render_overlay(display.array, heat, alpha=0.6, label=LABEL)
        image.save(tmp_path / "overlay.png")

        with Image.open(tmp_path / "overlay.png") as saved:
            assert saved.size == (columns, rows)
            centre = np.asarray(saved)[int(0.55 * rows), int(0.6 * columns)].astype(int)
        assert centre[0] > centre[2] + 40  # warm colour over the blob

    @pytest.mark.parametrize(
        ("grey", "heat", "alpha", "message"),
        [
            (np.zeros((4, 4)), np.zeros((4, 5)), 0.5, "`heatmap` must have the shape"),
            (np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), 0.5, "`display_grey` must be"),
            (np.zeros((4, 4)), np.zeros((4, 4)), 1.5, "`alpha` must be in"),
        ],
        ids=["shape", "rank", "alpha"],
    )
    def test_bad_inputs_are_refused(
        self, grey: np.ndarray, heat: np.ndarray, alpha: float, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            render_overlay(grey, heat, alpha=alpha)


class TestOverlayFont:
    def test_finds_dejavu_sans_when_the_system_has_it(self) -> None:
        font = overlay_font()

        if not list(Path("/usr/share/fonts").rglob("DejaVuSans.ttf")):
            _no_font("DejaVu Sans is not installed on this machine (Debian: fonts-dejavu-core)")
        assert font.path is not None
        assert font.path.name == "DejaVuSans.ttf"
        assert font.name == "DejaVuSans.ttf"

    def test_the_font_draws_vietnamese_diacritics(self) -> None:
        font = overlay_font().load(24)
        if overlay_font().path is None:
            _no_font("no TrueType font with Vietnamese glyphs (Debian: fonts-dejavu-core)")

        base = font.getmask("a").getbbox()
        accented = font.getmask("ặ").getbbox()

        assert base is not None
        assert accented is not None
        assert accented[3] - accented[1] > base[3] - base[1]  # marks above and below


class TestSaveHeatmap:
    def test_round_trips_as_float16(self, tmp_path: Path) -> None:
        heatmap = np.random.default_rng(1).random((30, 20)).astype(np.float32)

        path = save_heatmap(tmp_path / "cardiomegaly.npy", heatmap)

        loaded = np.load(path, allow_pickle=False)
        assert loaded.dtype == np.float16
        assert loaded.shape == (30, 20)
        np.testing.assert_allclose(loaded, heatmap, atol=1e-3)

    @pytest.mark.parametrize(
        ("name", "array", "message"),
        [
            ("map.png", np.zeros((2, 2)), "must end in '.npy'"),
            ("map.npy", np.zeros((2, 2, 2)), "must be a \\(H, W\\) array"),
        ],
        ids=["suffix", "rank"],
    )
    def test_bad_arguments_are_refused(
        self, tmp_path: Path, name: str, array: np.ndarray, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            save_heatmap(tmp_path / name, array)


def _no_font(reason: str) -> None:
    """Skip where a font is missing; CI installs fonts-dejavu-core, so there it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)

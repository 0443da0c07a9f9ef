"""Tests for :mod:`inference.gates.image`."""

from __future__ import annotations

import numpy as np
import pytest

from inference.gates import (
    ColorGate,
    CxrGateConfig,
    ExposureGate,
    InvertedGate,
    SizeGate,
    image_contrast,
)
from inference.pixels import display_array, read_dataset
from tests.inference.gates.builders import ALL_FINDINGS, chest, grey_dataset, rgb_dataset
from tests.support.data import make_cr, pydicom_file

CONFIG = CxrGateConfig()


class TestSizeGate:
    @pytest.mark.parametrize(
        ("rows", "columns", "passed"),
        [(256, 256, True), (300, 256, True), (255, 400, False), (400, 128, False)],
    )
    def test_shorter_side(self, rows: int, columns: int, passed: bool) -> None:
        ds = make_cr(rows=rows, columns=columns)

        outcome = SizeGate().check(ds, display_array(ds), CONFIG)

        assert outcome.passed is passed
        assert outcome.measurements == {"rows": rows, "columns": columns}
        if not passed:
            assert f"{rows} × {columns} pixels" in outcome.reason_en
            assert f"{rows} × {columns} điểm ảnh" in outcome.reason_vi
            assert "256" in outcome.reason_en

    def test_configurable(self) -> None:
        ds = make_cr(rows=128, columns=128)

        assert SizeGate().check(ds, display_array(ds), CxrGateConfig(min_side=128)).passed


class TestColorGate:
    def test_grey_image_passes(self) -> None:
        ds, display = chest()

        outcome = ColorGate().check(ds, display, CONFIG)

        assert outcome.passed
        assert outcome.measurements["color_fraction"] == 0.0

    def test_colour_encoded_grey_passes(self) -> None:
        _, display = chest()
        grey = np.round(display.array * 255).astype(np.uint8)
        ds = rgb_dataset(np.repeat(grey[:, :, None], 3, axis=2))

        outcome = ColorGate().check(ds, display_array(ds), CONFIG)

        assert outcome.passed
        assert outcome.measurements["photometric_interpretation"] == "RGB"

    def test_colour_image_is_refused(self) -> None:
        ds = read_dataset(pydicom_file("US1_UNCR.dcm"))

        outcome = ColorGate().check(ds, display_array(ds), CONFIG)

        assert not outcome.passed
        assert outcome.reason_en.startswith("Colour image, not a radiograph: ")
        assert outcome.reason_vi.startswith("Ảnh màu, không phải phim X-quang: ")
        assert float(outcome.measurements["color_fraction"]) > 0.01

    def test_tinted_grey_image_is_refused(self) -> None:
        rng = np.random.default_rng(3)
        grey = rng.integers(0, 200, size=(64, 64), dtype=np.uint8)
        rgb = np.stack([grey, grey, grey + 40], axis=2)

        outcome = ColorGate().check(rgb_dataset(rgb), display_array(rgb_dataset(rgb)), CONFIG)

        assert not outcome.passed
        assert "100.0% of pixels have colour" in outcome.reason_en


class TestExposureGate:
    def test_phantom_passes(self) -> None:
        ds, display = chest(findings=ALL_FINDINGS)

        outcome = ExposureGate().check(ds, display, CONFIG)

        assert outcome.passed, outcome.reason_en
        assert float(outcome.measurements["contrast"]) > 0.2

    @pytest.mark.parametrize(
        "pixels",
        [
            np.full((256, 256), 1000, dtype=np.uint16),  # constant: a zero-width window
            np.random.default_rng(0).integers(0, 4096, (256, 256)).astype(np.uint16),  # noise
        ],
        ids=["constant", "noise"],
    )
    def test_blank_images_are_refused(self, pixels: np.ndarray) -> None:
        ds = grey_dataset(pixels)

        outcome = ExposureGate().check(ds, display_array(ds), CONFIG)

        assert not outcome.passed
        assert outcome.reason_en.startswith("Image is almost blank: contrast ")
        assert outcome.reason_vi.startswith("Ảnh gần như trống")

    def test_saturated_image_is_refused(self) -> None:
        pixels = np.zeros((256, 256), dtype=np.uint16)
        pixels[:, 160:] = 4095
        pixels[:, 100:160] = np.linspace(0, 4095, 60, dtype=np.uint16)

        ds = grey_dataset(pixels, WindowCenter=2048, WindowWidth=4096)
        outcome = ExposureGate().check(ds, display_array(ds), CONFIG)

        assert not outcome.passed
        fraction = float(outcome.measurements["saturated_fraction"])
        assert fraction > 0.5
        assert f"{100 * fraction:.1f}% of pixels are pure black or white" in outcome.reason_en
        assert "điểm ảnh hoàn toàn đen hoặc trắng" in outcome.reason_vi

    def test_contrast_ignores_pixel_noise(self) -> None:
        noise = np.random.default_rng(1).uniform(size=(512, 512)).astype(np.float32)
        ramp = np.tile(np.linspace(0.0, 1.0, 512, dtype=np.float32), (512, 1))

        assert image_contrast(noise) < 0.02
        assert image_contrast(ramp) > 0.25


class TestInvertedGate:
    @pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
    @pytest.mark.parametrize("seed", range(4))
    def test_correct_labels_pass(self, photometric: str, seed: int) -> None:
        ds, display = chest(seed=seed, photometric=photometric, findings=ALL_FINDINGS[:seed])

        outcome = InvertedGate().check(ds, display, CONFIG)

        assert outcome.passed, outcome.measurements
        assert float(outcome.measurements["lung_contrast"]) > 0.3

    @pytest.mark.parametrize(
        ("written", "labelled"),
        [("MONOCHROME1", "MONOCHROME2"), ("MONOCHROME2", "MONOCHROME1")],
    )
    @pytest.mark.parametrize("seed", range(4))
    def test_wrong_labels_are_refused(self, written: str, labelled: str, seed: int) -> None:
        ds, _ = chest("AP", seed=seed, photometric=written, findings=ALL_FINDINGS[seed:])
        ds.PhotometricInterpretation = labelled

        outcome = InvertedGate().check(ds, display_array(ds), CONFIG)

        assert not outcome.passed
        assert "lung fields are brighter than the mediastinum" in outcome.reason_en
        assert f"Photometric Interpretation {labelled} is probably wrong" in outcome.reason_en
        assert "phế trường sáng hơn trung thất" in outcome.reason_vi

    def test_real_chest_radiograph_passes(self) -> None:
        ds = read_dataset(pydicom_file("RG1_UNCR.dcm"))  # CR PA, MONOCHROME1

        assert InvertedGate().check(ds, display_array(ds), CONFIG).passed

    def test_real_chest_radiograph_mislabelled_is_refused(self) -> None:
        ds = read_dataset(pydicom_file("RG1_UNCR.dcm"))
        ds.PhotometricInterpretation = "MONOCHROME2"

        assert not InvertedGate().check(ds, display_array(ds), CONFIG).passed

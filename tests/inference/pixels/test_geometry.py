"""Tests for :mod:`inference.pixels.geometry`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference.pixels import Interpolation, Letterbox, letterbox


def _smooth(rows: int, columns: int) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float64)
    image = 0.5 + 0.25 * np.sin(yy / rows * 7.0) + 0.25 * np.cos(xx / columns * 5.0)
    return image.astype(np.float32)


def _hot_square(rows: int, columns: int, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, bottom, right = box
    image = np.zeros((rows, columns), dtype=np.float32)
    image[top:bottom, left:right] = 1.0
    return image


class TestLetterboxFit:
    @pytest.mark.parametrize(
        ("rows", "columns", "size", "expected"),
        [
            (600, 400, 256, (256, 171, 0, 42)),
            (400, 600, 256, (171, 256, 42, 0)),
            (2048, 2048, 224, (224, 224, 0, 0)),
            (64, 48, 320, (320, 240, 0, 40)),
            (5000, 10, 64, (64, 1, 0, 31)),
        ],
    )
    def test_placement(
        self, rows: int, columns: int, size: int, expected: tuple[int, int, int, int]
    ) -> None:
        placement = Letterbox.fit(rows=rows, columns=columns, size=size)

        assert (
            placement.resized_rows,
            placement.resized_columns,
            placement.pad_top,
            placement.pad_left,
        ) == expected
        assert placement.scale == pytest.approx(size / max(rows, columns))


class TestLetterbox:
    @pytest.mark.parametrize(
        ("shape", "size"),
        [((2048, 2048), 256), ((1000, 700), 256), ((333, 517), 224), ((2500, 2048), 320)],
    )
    def test_area_reduction_matches_the_box_filter(self, shape: tuple[int, int], size: int) -> None:
        image = _smooth(*shape)

        square, placement = letterbox(image, size=size)

        target = (placement.resized_columns, placement.resized_rows)
        box = np.asarray(Image.fromarray(image).resize(target, Image.Resampling.BOX))
        inside = square[
            placement.pad_top : placement.pad_top + placement.resized_rows,
            placement.pad_left : placement.pad_left + placement.resized_columns,
        ]
        np.testing.assert_allclose(inside, box, atol=0.01)

    def test_block_mean_is_exact_for_whole_blocks(self) -> None:
        blocks = np.arange(64, dtype=np.float32).reshape(8, 8)
        image = np.kron(blocks, np.ones((32, 32), dtype=np.float32))

        square, _ = letterbox(image, size=32)

        expected = np.kron(blocks, np.ones((4, 4), dtype=np.float32))
        np.testing.assert_allclose(square, expected, rtol=1e-6)

    @pytest.mark.parametrize("interpolation", list(Interpolation))
    @pytest.mark.parametrize("shape", [(300, 200), (40, 90)])
    def test_padding_and_shape(self, interpolation: Interpolation, shape: tuple[int, int]) -> None:
        image = np.full(shape, 0.5, dtype=np.float32)

        square, placement = letterbox(image, size=128, interpolation=interpolation, pad_value=1.0)

        assert square.shape == (128, 128)
        assert square.dtype == np.float32
        mask = np.ones((128, 128), dtype=bool)
        mask[
            placement.pad_top : placement.pad_top + placement.resized_rows,
            placement.pad_left : placement.pad_left + placement.resized_columns,
        ] = False
        assert mask.any()
        assert np.all(square[mask] == 1.0)
        np.testing.assert_allclose(square[~mask], 0.5, atol=1e-5)

    def test_is_deterministic(self) -> None:
        image = _smooth(1111, 987)

        first, _ = letterbox(image, size=256)
        second, _ = letterbox(image.copy(), size=256)

        assert first.tobytes() == second.tobytes()


class TestToOriginal:
    @pytest.mark.parametrize("heatmap_side", [256, 64, 16])
    @pytest.mark.parametrize(
        ("rows", "columns", "square"),
        [(600, 400, (200, 100, 300, 200)), (480, 1000, (40, 700, 200, 900))],
    )
    def test_hot_square_lands_where_it_came_from(
        self,
        rows: int,
        columns: int,
        square: tuple[int, int, int, int],
        heatmap_side: int,
    ) -> None:
        model_input, placement = letterbox(_hot_square(rows, columns, square), size=256)
        heatmap = np.asarray(
            Image.fromarray(model_input).resize((heatmap_side, heatmap_side), Image.Resampling.BOX)
        )

        back = placement.to_original(heatmap)

        assert back.shape == (rows, columns)
        assert back.dtype == np.float32
        top, left, bottom, right = square
        hot_rows, hot_columns = np.nonzero(back >= 0.5 * back.max())
        tolerance = 2 + 256 / heatmap_side * max(rows, columns) / 256
        assert abs(hot_rows.mean() - (top + bottom - 1) / 2) < tolerance
        assert abs(hot_columns.mean() - (left + right - 1) / 2) < tolerance
        assert abs(hot_rows.min() - top) < tolerance
        assert abs(hot_columns.max() - (right - 1)) < tolerance

    @pytest.mark.parametrize("heatmap", [np.zeros((4, 4, 3)), np.zeros((0, 5)), np.zeros(7)])
    def test_refuses_what_is_not_a_map(self, heatmap: np.ndarray) -> None:
        placement = Letterbox.fit(rows=100, columns=80, size=64)

        with pytest.raises(ValueError, match="`heatmap` must be a non-empty 2-D array"):
            placement.to_original(heatmap)

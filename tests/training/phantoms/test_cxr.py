"""Phantom generation: shape, determinism, errors, and that each finding's sign is real."""

from __future__ import annotations

import time

import numpy as np
import pytest

from training.labels import CxrFinding
from training.phantoms import Phantom, PhantomView, generate_cxr

SIZE = 256


def _phantom(seed: int, *findings: CxrFinding, size: int = SIZE) -> Phantom:
    return generate_cxr(np.random.default_rng(seed), findings=frozenset(findings), size=size)


def _measured_ctr(phantom: Phantom) -> float:
    """Widest heart row over the widest extent of both lungs, in pixels."""
    heart_columns = np.flatnonzero(phantom.anatomy["heart"].any(axis=0))
    lungs = phantom.anatomy["right_lung"] | phantom.anatomy["left_lung"]
    lung_columns = np.flatnonzero(lungs.any(axis=0))
    heart_width = max(int(row.sum()) for row in phantom.anatomy["heart"])
    assert heart_columns.size
    return heart_width / float(lung_columns[-1] - lung_columns[0] + 1)


class TestGenerateCxr:
    def test_image(self) -> None:
        phantom = _phantom(0)
        assert phantom.image.shape == (SIZE, SIZE)
        assert phantom.image.dtype == np.float32
        assert phantom.image.min() >= 0.0
        assert phantom.image.max() <= 1.0
        assert phantom.normal
        assert phantom.view is PhantomView.PA
        assert phantom.pixel_spacing_mm == pytest.approx(430.0 / SIZE)

    def test_same_seed_same_phantom(self) -> None:
        every = tuple(CxrFinding)
        a, b = _phantom(11, *every), _phantom(11, *every)
        np.testing.assert_array_equal(a.image, b.image)
        for finding in every:
            np.testing.assert_array_equal(a.masks[finding], b.masks[finding])

    def test_different_seeds_differ(self) -> None:
        assert not np.array_equal(_phantom(1).image, _phantom(2).image)

    def test_lungs_dark_and_heart_bright(self) -> None:
        phantom = _phantom(3)
        lungs = phantom.anatomy["right_lung"] | phantom.anatomy["left_lung"]
        assert phantom.image[lungs].mean() + 0.15 < phantom.image[phantom.anatomy["heart"]].mean()

    def test_masks_only_for_drawn_findings(self) -> None:
        phantom = _phantom(4, CxrFinding.PNEUMOTHORAX, CxrFinding.NODULE_MASS)
        assert set(phantom.masks) == {CxrFinding.PNEUMOTHORAX, CxrFinding.NODULE_MASS}
        assert all(mask.any() for mask in phantom.masks.values())

    def test_every_finding_is_drawn_at_512(self) -> None:
        phantom = _phantom(5, *CxrFinding, size=512)
        assert phantom.findings == frozenset(CxrFinding)
        assert all(phantom.masks[f].any() for f in CxrFinding)

    def test_lateral(self) -> None:
        phantom = generate_cxr(np.random.default_rng(0), size=SIZE, view="lateral")
        assert phantom.view is PhantomView.LATERAL
        assert phantom.normal
        assert not phantom.masks
        assert phantom.anatomy["lungs"].any()

    def test_fast_enough(self) -> None:
        generate_cxr(np.random.default_rng(0))
        start = time.perf_counter()
        for seed in range(5):
            generate_cxr(np.random.default_rng(seed), findings=frozenset(CxrFinding))
        assert (time.perf_counter() - start) / 5 < 0.5

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"size": 32}, "`size` must be at least 64, 32 is given"),
            ({"view": "oblique"}, "`view` must be one of PA, AP, LATERAL, 'oblique' is given"),
            ({"findings": {"edema"}}, "unknown finding"),
            (
                {"view": "LATERAL", "findings": {"pneumothorax"}},
                "frontal views only; pneumothorax asked on LATERAL",
            ),
        ],
    )
    def test_errors(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            generate_cxr(np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]


class TestSignatures:
    @pytest.mark.parametrize("seed", range(6))
    def test_normal_cardiothoracic_ratio(self, seed: int) -> None:
        phantom = _phantom(seed)
        assert 0.40 <= phantom.cardiothoracic_ratio <= 0.48
        assert _measured_ctr(phantom) == pytest.approx(phantom.cardiothoracic_ratio, abs=0.02)

    @pytest.mark.parametrize("seed", range(6))
    def test_cardiomegaly_ratio(self, seed: int) -> None:
        phantom = _phantom(seed, CxrFinding.CARDIOMEGALY)
        assert 0.55 <= phantom.cardiothoracic_ratio <= 0.70
        assert _measured_ctr(phantom) == pytest.approx(phantom.cardiothoracic_ratio, abs=0.02)
        np.testing.assert_array_equal(
            phantom.masks[CxrFinding.CARDIOMEGALY], phantom.anatomy["heart"]
        )

    @pytest.mark.parametrize("seed", range(6))
    def test_effusion_lies_in_the_lower_lung(self, seed: int) -> None:
        phantom = _phantom(seed, CxrFinding.PLEURAL_EFFUSION)
        mask = phantom.masks[CxrFinding.PLEURAL_EFFUSION]
        lungs = phantom.anatomy["right_lung"] | phantom.anatomy["left_lung"]
        rows = np.flatnonzero(lungs.any(axis=1))
        middle = (rows[0] + rows[-1]) / 2
        assert mask.any()
        assert not (mask & ~lungs).any()
        assert np.nonzero(mask)[0].mean() > middle
        twin = _phantom(seed)
        assert phantom.image[mask].mean() > twin.image[mask].mean() + 0.1

    @pytest.mark.parametrize("seed", range(6))
    def test_pneumothorax_is_darker_than_its_twin(self, seed: int) -> None:
        phantom = _phantom(seed, CxrFinding.PNEUMOTHORAX)
        twin = _phantom(seed)
        mask = phantom.masks[CxrFinding.PNEUMOTHORAX]
        assert mask.sum() > 50
        assert phantom.image[mask].mean() < twin.image[mask].mean() - 0.02
        # the rim lies at the apex or laterally: above the lung's middle height
        lungs = phantom.anatomy["right_lung"] | phantom.anatomy["left_lung"]
        rows = np.flatnonzero(lungs.any(axis=1))
        assert np.nonzero(mask)[0].min() < (rows[0] + rows[-1]) / 2

    @pytest.mark.parametrize("seed", range(6))
    def test_nodules_are_round_and_sized(self, seed: int) -> None:
        phantom = _phantom(seed, CxrFinding.NODULE_MASS, size=512)
        mask = phantom.masks[CxrFinding.NODULE_MASS]
        diameters = phantom.nodule_diameters_mm
        assert diameters
        assert all(5.0 <= d <= 40.0 for d in diameters)
        expected = sum(np.pi * (d / 2 / phantom.pixel_spacing_mm) ** 2 for d in diameters)
        assert mask.sum() == pytest.approx(expected, rel=0.25, abs=20)
        if len(diameters) == 1:
            rows, cols = np.nonzero(mask)
            height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
            assert abs(height - width) <= 1
            assert mask.sum() == pytest.approx(np.pi * height * width / 4, rel=0.2)

    @pytest.mark.parametrize("seed", range(4))
    def test_consolidation_is_an_opacity_in_the_lungs(self, seed: int) -> None:
        phantom = _phantom(seed, CxrFinding.CONSOLIDATION)
        twin = _phantom(seed)
        mask = phantom.masks[CxrFinding.CONSOLIDATION]
        lungs = phantom.anatomy["right_lung"] | phantom.anatomy["left_lung"]
        assert mask.any()
        assert not (mask & ~lungs).any()
        assert phantom.consolidation_pattern in {"lobar", "multifocal"}
        assert phantom.image[mask].mean() > twin.image[mask].mean() + 0.08

    def test_a_finding_changes_nothing_far_from_its_sign(self) -> None:
        phantom = _phantom(8, CxrFinding.NODULE_MASS)
        twin = _phantom(8)
        changed = np.abs(phantom.image - twin.image) > 0.02
        rows, cols = np.nonzero(phantom.masks[CxrFinding.NODULE_MASS])
        near = np.zeros_like(phantom.masks[CxrFinding.NODULE_MASS])
        near[max(rows.min() - 8, 0) : rows.max() + 8, max(cols.min() - 8, 0) : cols.max() + 8] = (
            True
        )
        assert not (changed & ~near).any()

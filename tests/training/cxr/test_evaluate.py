"""Metric code of :mod:`training.cxr.evaluate` against hand-computed cases (no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.cxr.evaluate import (
    ConfidenceInterval,
    auroc,
    bootstrap_interval,
    evaluate_labels,
    operating_threshold,
    sensitivity_specificity,
)


class TestAuroc:
    @pytest.mark.parametrize(
        ("labels", "scores", "expected"),
        [
            ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),  # perfect ranking
            ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),  # inverted ranking
            ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),  # all tied
            # pairs (pos, neg): (0.4>0.1) (0.4<0.5) (0.8>0.1) (0.8>0.5) -> 3/4
            ([0, 1, 0, 1], [0.1, 0.4, 0.5, 0.8], 0.75),
            # one tie between classes counts 1/2: (0.5=0.5) 0.5 + (0.5>0.2) 1 -> 1.5/2
            ([0, 1, 0], [0.2, 0.5, 0.5], 0.75),
            # ties inside a class do not matter
            ([1, 1, 0, 0], [0.7, 0.7, 0.3, 0.3], 1.0),
        ],
    )
    def test_hand_computed(self, labels: list[int], scores: list[float], expected: float) -> None:
        assert auroc(np.array(labels), np.array(scores)) == pytest.approx(expected)

    def test_random_ranking_is_near_one_half(self) -> None:
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, size=20_000)
        assert auroc(labels, rng.uniform(size=labels.size)) == pytest.approx(0.5, abs=0.01)

    def test_matches_pairwise_definition(self) -> None:
        rng = np.random.default_rng(1)
        labels = rng.integers(0, 2, size=60)
        scores = rng.integers(0, 6, size=60).astype(float)  # many ties
        pos, neg = scores[labels == 1], scores[labels == 0]
        pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        assert auroc(labels, scores) == pytest.approx(pairs.mean())

    def test_one_class_is_nan(self) -> None:
        assert math.isnan(auroc(np.array([1, 1]), np.array([0.1, 0.2])))

    def test_rejects_bad_labels_and_lengths(self) -> None:
        with pytest.raises(ValueError, match="only 0 and 1"):
            auroc(np.array([0, 2]), np.array([0.1, 0.2]))
        with pytest.raises(ValueError, match="same length"):
            auroc(np.array([0, 1]), np.array([0.1]))


class TestOperatingPoint:
    def test_threshold_reaches_sensitivity_with_margin(self) -> None:
        labels = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
        scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.05, 0.2, 0.1])
        # 9 of 10 positives must score >= threshold: the 9th highest positive scores 0.3,
        # the highest negative below it scores 0.2 -> halfway.
        assert operating_threshold(labels, scores, sensitivity=0.9) == pytest.approx(0.25)
        # Only the 0.05 positive lies below the lowest one: halfway to it.
        assert operating_threshold(labels, scores, sensitivity=1.0) == pytest.approx(0.05)
        # The top positive must stay: the gap runs down to the highest negative (0.2),
        # past the positives in between, which are kept too.
        assert operating_threshold(labels, scores, sensitivity=0.1) == pytest.approx(0.575)

    def test_positives_between_edge_and_negatives_do_not_shrink_the_margin(self) -> None:
        labels = np.array([1, 1, 1, 1, 0, 0])
        scores = np.array([0.99, 0.98, 0.979, 0.978, 0.2, 0.1])
        # The next lower score (a positive at 0.979) is not the margin; the negative is.
        threshold = operating_threshold(labels, scores, sensitivity=0.5)
        assert threshold == pytest.approx((0.98 + 0.2) / 2)
        assert sensitivity_specificity(labels, scores, threshold) == pytest.approx((1.0, 1.0))

    def test_no_negative_below_the_edge(self) -> None:
        labels = np.array([1, 1, 1, 0])
        scores = np.array([0.6, 0.5, 0.1, 0.9])
        # Nothing negative below 0.5: halfway to the lowest score (0.1).
        assert operating_threshold(labels, scores, sensitivity=0.6) == pytest.approx(0.3)
        # Nothing at all below the lowest positive: its own score.
        assert operating_threshold(labels, scores, sensitivity=1.0) == pytest.approx(0.1)

    def test_sensitivity_is_kept_on_the_same_data(self) -> None:
        rng = np.random.default_rng(3)
        labels = rng.integers(0, 2, size=300)
        scores = labels * 0.4 + rng.uniform(size=300) * 0.6
        for target in (0.8, 0.9, 0.95):
            threshold = operating_threshold(labels, scores, sensitivity=target)
            sensitivity, _ = sensitivity_specificity(labels, scores, threshold)
            assert sensitivity >= target

    def test_sensitivity_specificity(self) -> None:
        labels = np.array([1, 1, 0, 0, 0])
        scores = np.array([0.9, 0.4, 0.5, 0.2, 0.1])
        assert sensitivity_specificity(labels, scores, 0.5) == pytest.approx((0.5, 2 / 3))
        assert sensitivity_specificity(labels, scores, 0.4) == pytest.approx((1.0, 2 / 3))

    def test_rejects_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="`sensitivity` must be in"):
            operating_threshold(np.array([1]), np.array([0.5]), sensitivity=0.0)
        with pytest.raises(ValueError, match="no positive"):
            operating_threshold(np.array([0, 0]), np.array([0.5, 0.2]))


class TestBootstrap:
    def test_seeded_and_brackets_the_estimate(self) -> None:
        rng = np.random.default_rng(2)
        labels = rng.integers(0, 2, size=200)
        scores = labels * 0.3 + rng.uniform(size=200)
        first = bootstrap_interval(labels, scores, auroc, resamples=300, seed=5)
        again = bootstrap_interval(labels, scores, auroc, resamples=300, seed=5)
        assert first == again
        assert first.low <= first.value <= first.high
        assert 0.0 < first.high - first.low < 0.3

    def test_constant_statistic_has_zero_width(self) -> None:
        interval = bootstrap_interval(
            np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]), auroc, resamples=50
        )
        assert interval == ConfidenceInterval(1.0, 1.0, 1.0)

    def test_rejects_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="`resamples` must be a positive number, 0"):
            bootstrap_interval(np.array([0, 1]), np.array([0.1, 0.2]), auroc, resamples=0)
        with pytest.raises(ValueError, match="`level` must be in"):
            bootstrap_interval(np.array([0, 1]), np.array([0.1, 0.2]), auroc, level=1.0)


class TestEvaluateLabels:
    def test_threshold_from_validation_measured_on_test(self) -> None:
        nan = np.nan
        validation_labels = np.array([[1, 0], [1, 1], [0, nan], [0, 0]])
        validation_scores = np.array([[0.9, 0.2], [0.6, 0.7], [0.4, 0.99], [0.1, 0.3]])
        test_labels = np.array([[1, 1], [0, 0], [1, 0], [0, nan]])
        test_scores = np.array([[0.7, 0.8], [0.65, 0.1], [0.5, 0.75], [0.2, 0.9]])
        first, second = evaluate_labels(
            ["a", "b"],
            validation_labels=validation_labels,
            validation_scores=validation_scores,
            test_labels=test_labels,
            test_scores=test_scores,
            target_sensitivity=0.9,
            resamples=50,
        )
        # edge positive 0.6, next lower validation score 0.4 -> 0.5
        assert first.threshold == pytest.approx(0.5)
        assert first.sensitivity.value == pytest.approx(1.0)  # 0.7 and 0.5 >= 0.5
        assert first.specificity.value == pytest.approx(0.5)  # 0.65 >= 0.5, 0.2 < 0.5
        assert first.auroc.value == pytest.approx(0.75)
        assert (first.positives, first.negatives) == (2, 2)
        # the unknown label (nan) is left out: 3 known test cases for "b"
        # edge positive 0.7, next lower known validation score 0.3 -> 0.5
        assert second.threshold == pytest.approx(0.5)
        assert (second.positives, second.negatives) == (1, 2)
        assert second.sensitivity.value == pytest.approx(1.0)
        assert second.specificity.value == pytest.approx(0.5)
        assert first.to_dict()["auroc"]["value"] == 0.75

    def test_rejects_wrong_shapes(self) -> None:
        with pytest.raises(ValueError, match=r"\(cases, 2\)"):
            evaluate_labels(
                ["a", "b"],
                validation_labels=np.zeros((3, 1)),
                validation_scores=np.zeros((3, 2)),
                test_labels=np.zeros((3, 2)),
                test_scores=np.zeros((3, 2)),
            )

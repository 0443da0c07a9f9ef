"""Evaluation of a multi-label classifier: AUROC, operating points, bootstrap intervals.

numpy only. The AUROC is the Mann-Whitney rank statistic (ties count one half);
operating points are chosen on the validation split and measured on the test split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ConfidenceInterval",
    "LabelMetrics",
    "Statistic",
    "auroc",
    "bootstrap_interval",
    "evaluate_labels",
    "operating_threshold",
    "sensitivity_specificity",
]

#: A statistic of (labels, scores), e.g. :func:`auroc`; ``nan`` when undefined.
Statistic = Callable[[NDArray[Any], NDArray[Any]], float]


@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    """A point estimate with a percentile bootstrap interval (``nan`` when undefined)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready values; ``nan`` becomes ``None``."""
        return {k: (None if np.isnan(v) else round(float(v), 4)) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class LabelMetrics:
    """Test-split metrics of one label at the operating point chosen on validation."""

    key: str
    auroc: ConfidenceInterval
    threshold: float
    target_sensitivity: float
    sensitivity: ConfidenceInterval
    specificity: ConfidenceInterval
    positives: int
    negatives: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values for the manifest's ``eval_metrics``."""
        return {
            "auroc": self.auroc.to_dict(),
            "threshold": round(self.threshold, 6),
            "target_sensitivity": self.target_sensitivity,
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
            "test_positives": self.positives,
            "test_negatives": self.negatives,
        }


def _binary(labels: NDArray[Any], scores: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(
            f"`labels` and `scores` must have the same length, {y.size} and {s.size} are given"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("`labels` must hold only 0 and 1")
    return y.astype(bool), s


def auroc(labels: NDArray[Any], scores: NDArray[Any]) -> float:
    """Area under the ROC curve by the rank statistic; ties between classes count 1/2.

    Returns ``nan`` when ``labels`` lacks positives or negatives.

    Raises
    ------
    ValueError
        If the lengths differ or a label is not 0 or 1.
    """
    y, s = _binary(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_scores = s[order]
    # average ranks of tied runs (1-based)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], s.size]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    rank_sum = float(ranks[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def sensitivity_specificity(
    labels: NDArray[Any], scores: NDArray[Any], threshold: float
) -> tuple[float, float]:
    """Sensitivity and specificity when ``score >= threshold`` is called positive.

    Either is ``nan`` when its denominator is zero.
    """
    y, s = _binary(labels, scores)
    called = s >= threshold
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    sens = float((called & y).sum() / n_pos) if n_pos else float("nan")
    spec = float((~called & ~y).sum() / n_neg) if n_neg else float("nan")
    return sens, spec


def operating_threshold(
    labels: NDArray[Any], scores: NDArray[Any], *, sensitivity: float = 0.9
) -> float:
    """A threshold whose sensitivity (``score >= threshold``) reaches ``sensitivity``, with margin.

    Take the positive case whose score is the lowest that must still count as positive
    (the ``ceil(sensitivity × positives)``-th highest); the threshold is halfway between its
    score and the highest **negative** score below it. Every threshold in that gap has the
    same specificity on these cases, so the middle of the gap is the one with the most
    margin on both sides: a threshold that sits on a positive's score loses sensitivity on
    new data, and positives between the edge and that negative are kept as well.
    With no negative below, it is halfway between the edge and the lowest score (or the
    edge itself when nothing scores lower).

    Raises
    ------
    ValueError
        If ``sensitivity`` is not in (0, 1] or there is no positive case.
    """
    if not 0.0 < sensitivity <= 1.0:
        raise ValueError(f"`sensitivity` must be in (0, 1], {sensitivity} is given")
    y, s = _binary(labels, scores)
    positives = np.sort(s[y])[::-1]
    if positives.size == 0:
        raise ValueError("`labels` has no positive case to set an operating point on")
    needed = int(np.ceil(sensitivity * positives.size - 1e-9))
    edge = float(positives[max(needed, 1) - 1])
    negatives_below = s[~y & (s < edge)]
    if negatives_below.size:
        return (edge + float(negatives_below.max())) / 2.0
    below = s[s < edge]
    if below.size == 0:
        return edge
    return (edge + float(below.min())) / 2.0


def bootstrap_interval(
    labels: NDArray[Any],
    scores: NDArray[Any],
    statistic: Statistic,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of ``statistic(labels, scores)`` over cases.

    Resamples whose statistic is ``nan`` (e.g. no positive drawn) are left out; the
    interval is ``nan`` when none remain.

    Raises
    ------
    ValueError
        If ``resamples`` < 1 or ``level`` is not in (0, 1).
    """
    if resamples < 1:
        raise ValueError(f"`resamples` must be a positive number, {resamples} is given")
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be in (0, 1), {level} is given")
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    value = float(statistic(y, s))
    rng = np.random.default_rng(seed)
    values = np.empty(resamples, dtype=np.float64)
    for i in range(resamples):
        index = rng.integers(0, y.size, size=y.size)
        values[i] = statistic(y[index], s[index])
    values = values[~np.isnan(values)]
    if values.size == 0:
        return ConfidenceInterval(value, float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return ConfidenceInterval(value, float(low), float(high))


def evaluate_labels(
    keys: Sequence[str],
    *,
    validation_labels: NDArray[Any],
    validation_scores: NDArray[Any],
    test_labels: NDArray[Any],
    test_scores: NDArray[Any],
    target_sensitivity: float = 0.9,
    resamples: int = 1000,
    seed: int = 0,
) -> list[LabelMetrics]:
    """Per-label test metrics at operating points chosen on validation.

    Labels are (cases, labels) arrays of 0, 1 or ``nan`` (unknown: the case is left
    out for that label); scores are probabilities of the same shape.

    Raises
    ------
    ValueError
        If shapes disagree with ``keys``, or a label has no validation positive.
    """
    arrays = (validation_labels, validation_scores, test_labels, test_scores)
    for array in arrays:
        if array.ndim != 2 or array.shape[1] != len(keys):
            raise ValueError(
                f"label and score arrays must be (cases, {len(keys)}), {array.shape} is given"
            )
    results: list[LabelMetrics] = []
    for column, key in enumerate(keys):
        vy, vs = _known(validation_labels[:, column], validation_scores[:, column])
        ty, ts = _known(test_labels[:, column], test_scores[:, column])
        threshold = operating_threshold(vy, vs, sensitivity=target_sensitivity)
        seed_k = seed + column

        def sens(y: NDArray[Any], s: NDArray[Any], t: float = threshold) -> float:
            return sensitivity_specificity(y, s, t)[0]

        def spec(y: NDArray[Any], s: NDArray[Any], t: float = threshold) -> float:
            return sensitivity_specificity(y, s, t)[1]

        results.append(
            LabelMetrics(
                key=key,
                auroc=bootstrap_interval(ty, ts, auroc, resamples=resamples, seed=seed_k),
                threshold=threshold,
                target_sensitivity=target_sensitivity,
                sensitivity=bootstrap_interval(ty, ts, sens, resamples=resamples, seed=seed_k),
                specificity=bootstrap_interval(ty, ts, spec, resamples=resamples, seed=seed_k),
                positives=int(ty.sum()),
                negatives=int(ty.size - ty.sum()),
            )
        )
    return results


def _known(labels: NDArray[Any], scores: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    known = ~np.isnan(np.asarray(labels, dtype=np.float64))
    return np.asarray(labels)[known].astype(np.int64), np.asarray(scores)[known]

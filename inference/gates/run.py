"""Running the chest X-ray gates in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pydicom import Dataset

from inference.gates.base import Gate, GateOutcome, GateReport
from inference.gates.config import CxrGateConfig
from inference.gates.header import BodyPartGate, ModalityGate
from inference.gates.image import ColorGate, ExposureGate, InvertedGate, SizeGate
from inference.gates.view import ViewGate
from inference.pixels import DisplayImage

__all__ = ["CXR_GATES", "run_gates"]

#: The gates of a frontal chest radiograph, in the order they run.
CXR_GATES: Final[tuple[Gate, ...]] = (
    ModalityGate(),
    BodyPartGate(),
    SizeGate(),
    ColorGate(),
    ExposureGate(),
    ViewGate(),
    InvertedGate(),
)


def run_gates(
    dataset: Dataset,
    display: DisplayImage,
    *,
    config: CxrGateConfig | None = None,
    gates: Sequence[Gate] | None = None,
) -> GateReport:
    """Run the chest X-ray gates in order and stop at the first failure.

    Stopping early is deliberate: each gate assumes the ones before it passed (the
    image measures assume a grey image of usable size and exposure; the inversion
    check assumes a frontal chest), so a later gate's verdict on an image an
    earlier one refused would be noise, and the first reason is the one to act on.

    Parameters
    ----------
    dataset:
        The instance (header attributes are read from it).
    display:
        Its display image from :func:`inference.pixels.display_array`.
    config:
        Thresholds; the defaults of :class:`CxrGateConfig` when None.
    gates:
        The gates to run; :data:`CXR_GATES` when None.

    Returns
    -------
    GateReport
        The outcomes of the gates that ran and the codes of those skipped.
    """
    chosen = tuple(CXR_GATES if gates is None else gates)
    settings = config if config is not None else CxrGateConfig()
    outcomes: list[GateOutcome] = []
    for index, gate in enumerate(chosen):
        outcome = gate.check(dataset, display, settings)
        outcomes.append(outcome)
        if not outcome.passed:
            return GateReport(tuple(outcomes), tuple(g.code for g in chosen[index + 1 :]))
    return GateReport(tuple(outcomes))

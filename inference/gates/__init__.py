"""Quality gates: whether a study may be read by a chest X-ray model at all.

A study that fails a gate gets the state ``ungradable`` with the gate's reason in
Vietnamese and English; gates run in the order of :data:`CXR_GATES` and stop at
the first failure (see :func:`run_gates`).
"""

from inference.gates.base import Gate, GateOutcome, GateReport, Measurements
from inference.gates.config import CxrGateConfig
from inference.gates.header import RADIOGRAPH_SOP_CLASSES, BodyPartGate, ModalityGate
from inference.gates.image import (
    ColorGate,
    ExposureGate,
    InvertedGate,
    SizeGate,
    color_fraction,
    image_contrast,
    saturated_fraction,
)
from inference.gates.messages import REASONS, Reason
from inference.gates.run import CXR_GATES, run_gates
from inference.gates.view import FrontalPattern, ViewGate, measure_frontal_pattern

__all__ = [
    "CXR_GATES",
    "RADIOGRAPH_SOP_CLASSES",
    "REASONS",
    "BodyPartGate",
    "ColorGate",
    "CxrGateConfig",
    "ExposureGate",
    "FrontalPattern",
    "Gate",
    "GateOutcome",
    "GateReport",
    "InvertedGate",
    "Measurements",
    "ModalityGate",
    "Reason",
    "SizeGate",
    "ViewGate",
    "color_fraction",
    "image_contrast",
    "measure_frontal_pattern",
    "run_gates",
    "saturated_fraction",
]

"""Soi's inference engine: pixel pipeline, quality gates, runners, batching, explanations.

Depends on :mod:`store` and :mod:`models`. No pipeline is built into this version yet:
:func:`available_pipelines` says so, and jobs routed to a pipeline wait in the queue
with that reason until one is.
"""

from inference.batching import BatcherClosed, BatcherStats, DynamicBatcher
from inference.errors import InferenceError, PixelDataError
from inference.gates import CXR_GATES, CxrGateConfig, Gate, GateOutcome, GateReport, run_gates
from inference.pipelines import available_pipelines
from inference.pixels import (
    DisplayImage,
    InputSpec,
    Interpolation,
    Prepared,
    display_array,
    prepare,
    read_dataset,
    to_grey,
)
from inference.runners import (
    Runner,
    RunnerError,
    RunnerInputError,
    RunnerUnavailable,
    available_backends,
    make_runner,
    missing_dependencies,
)

__all__ = [
    "CXR_GATES",
    "BatcherClosed",
    "BatcherStats",
    "CxrGateConfig",
    "DisplayImage",
    "DynamicBatcher",
    "Gate",
    "GateOutcome",
    "GateReport",
    "InferenceError",
    "InputSpec",
    "Interpolation",
    "PixelDataError",
    "Prepared",
    "Runner",
    "RunnerError",
    "RunnerInputError",
    "RunnerUnavailable",
    "available_backends",
    "available_pipelines",
    "display_array",
    "make_runner",
    "missing_dependencies",
    "prepare",
    "read_dataset",
    "run_gates",
    "to_grey",
]

"""Soi's inference engine: pixel pipeline, quality gates, runners, batching, explanations.

Depends on :mod:`store` and :mod:`models`. :class:`CxrPipeline` analyses chest
radiographs with a registered model, but no job worker runs it yet:
:func:`available_pipelines` lists none, and jobs routed to a pipeline wait in the queue
with that reason until one does.
"""

from inference.batching import BatcherClosed, BatcherStats, DynamicBatcher
from inference.cxr import CxrAnalysis, CxrPipeline, ModelFinding
from inference.errors import InferenceError, PixelDataError
from inference.explain import (
    class_activation_map,
    overlay_font,
    render_overlay,
    save_heatmap,
)
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
    "CxrAnalysis",
    "CxrGateConfig",
    "CxrPipeline",
    "DisplayImage",
    "DynamicBatcher",
    "Gate",
    "GateOutcome",
    "GateReport",
    "InferenceError",
    "InputSpec",
    "Interpolation",
    "ModelFinding",
    "PixelDataError",
    "Prepared",
    "Runner",
    "RunnerError",
    "RunnerInputError",
    "RunnerUnavailable",
    "available_backends",
    "available_pipelines",
    "class_activation_map",
    "display_array",
    "make_runner",
    "missing_dependencies",
    "overlay_font",
    "prepare",
    "read_dataset",
    "render_overlay",
    "run_gates",
    "save_heatmap",
    "to_grey",
]

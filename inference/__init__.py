"""Soi's inference engine: pixel pipeline, quality gates, runners, batching, explanations.

Depends on :mod:`store` and :mod:`models`. :class:`CxrPipeline` analyses chest
radiographs with a registered model; :class:`JobWorker` claims the jobs routing
created and runs them through the handlers :func:`build_handlers` loads for the
pipelines whose model is registered (:func:`available_pipelines`).
"""

from inference.batching import BatcherClosed, BatcherStats, DynamicBatcher
from inference.cxr import CxrAnalysis, CxrPipeline, ModelFinding
from inference.cxr_job import CxrJobHandler
from inference.errors import InferenceError, PixelDataError
from inference.explain import (
    class_activation_map,
    overlay_font,
    render_overlay,
    save_heatmap,
)
from inference.gates import CXR_GATES, CxrGateConfig, Gate, GateOutcome, GateReport, run_gates
from inference.loading import load_runner
from inference.pipelines import PIPELINE_MODELS, available_pipelines, build_handlers
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
from inference.worker import JobHandler, JobInput, JobOutput, JobWorker, WorkerReport

__all__ = [
    "CXR_GATES",
    "PIPELINE_MODELS",
    "BatcherClosed",
    "BatcherStats",
    "CxrAnalysis",
    "CxrGateConfig",
    "CxrJobHandler",
    "CxrPipeline",
    "DisplayImage",
    "DynamicBatcher",
    "Gate",
    "GateOutcome",
    "GateReport",
    "InferenceError",
    "InputSpec",
    "Interpolation",
    "JobHandler",
    "JobInput",
    "JobOutput",
    "JobWorker",
    "ModelFinding",
    "PixelDataError",
    "Prepared",
    "Runner",
    "RunnerError",
    "RunnerInputError",
    "RunnerUnavailable",
    "WorkerReport",
    "available_backends",
    "available_pipelines",
    "build_handlers",
    "class_activation_map",
    "display_array",
    "load_runner",
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

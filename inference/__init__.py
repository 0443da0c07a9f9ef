"""Soi's inference engine: pixel pipeline, quality gates, runners, batching, explanations.

Depends on :mod:`store` and :mod:`models`. No pipeline is built into this version yet:
:func:`available_pipelines` says so, and jobs routed to a pipeline wait in the queue
with that reason until one is.
"""

from inference.errors import InferenceError, PixelDataError
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

__all__ = [
    "DisplayImage",
    "InferenceError",
    "InputSpec",
    "Interpolation",
    "PixelDataError",
    "Prepared",
    "available_pipelines",
    "display_array",
    "prepare",
    "read_dataset",
    "to_grey",
]

"""The pipelines this installation runs, and the handlers that run them.

A pipeline is available when the model it needs is registered in the model registry
(the shipped one, or ``SOI_MODELS_DIR``). Routing sends a study to a pipeline; jobs of
an unavailable pipeline wait in the queue with that reason until it is.
"""

from __future__ import annotations

from collections.abc import Collection

from inference.batching import BatchedRunner
from inference.cxr import CxrPipeline
from inference.cxr_job import CxrJobHandler
from inference.loading import load_runner
from inference.worker import JobHandler
from models import ModelError, ModelRegistry

__all__ = ["PIPELINE_MODELS", "available_pipelines", "build_handlers"]

#: Pipeline → the registered model it runs (its active version).
PIPELINE_MODELS: dict[str, str] = {"cxr": "cxr"}


def available_pipelines(registry: ModelRegistry) -> frozenset[str]:
    """The pipelines whose model has a registered version in ``registry``."""
    registered = set(registry.list())
    return frozenset(
        pipeline
        for pipeline, model in PIPELINE_MODELS.items()
        if model in registered and registry.versions(model)
    )


def build_handlers(
    registry: ModelRegistry,
    *,
    pipelines: Collection[str] | None = None,
    backend: str = "onnx",
    threads: int = 1,
    device: str = "auto",
    max_batch: int = 8,
    batch_wait_ms: float | None = None,
) -> dict[str, JobHandler]:
    """Load a handler for each available pipeline (or each of ``pipelines``).

    With ``batch_wait_ms``, the model runs behind a :class:`DynamicBatcher` so that
    several worker threads sharing the handler have their images run together (up to
    ``max_batch`` images, or what arrived within ``batch_wait_ms``).

    Raises
    ------
    models.ModelError
        A registered model's files do not verify.
    RunnerUnavailable, RunnerError
        The backend is not installed, or the model cannot be loaded.
    """
    wanted = available_pipelines(registry) if pipelines is None else frozenset(pipelines)
    handlers: dict[str, JobHandler] = {}
    for pipeline in sorted(wanted):
        model_name = PIPELINE_MODELS.get(pipeline)
        if model_name is None:
            raise ModelError(f"no pipeline named {pipeline!r} (known: {sorted(PIPELINE_MODELS)})")
        model = registry.get(model_name)
        runner = load_runner(
            model, backend=backend, threads=threads, device=device, max_batch=max_batch
        )
        if batch_wait_ms is not None:
            runner = BatchedRunner(runner, max_batch=max_batch, max_wait_ms=batch_wait_ms)
        handlers[pipeline] = CxrJobHandler(CxrPipeline(model, runner=runner, owns_runner=True))
    return handlers

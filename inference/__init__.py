"""Soi's inference engine: pixel pipeline, quality gates, runners, batching, explanations.

Depends on :mod:`store` and :mod:`models`. No pipeline is built into this version yet:
:func:`available_pipelines` says so, and jobs routed to a pipeline wait in the queue
with that reason until one is.
"""

from inference.pipelines import available_pipelines

__all__ = ["available_pipelines"]

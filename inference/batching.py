"""Dynamic batching: many callers, one runner, batches formed as requests arrive.

Callers submit single items from any thread; one background thread collects up to
``max_batch`` items, or whatever arrived within ``max_wait_ms`` of the first, whichever
comes first, runs the runner once on the stacked batch and hands each caller its own
slice of the outputs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from inference.errors import InferenceError
from inference.runners.base import Runner, RunnerError, check_input

__all__ = ["BatchedRunner", "BatcherClosed", "BatcherStats", "DynamicBatcher"]

Outputs = dict[str, npt.NDArray[Any]]


class BatcherClosed(InferenceError):
    """The batcher is closed and takes no more items."""


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """What a batcher has run so far.

    Attributes
    ----------
    batches:
        Batches run (including failed ones).
    items:
        Items run.
    failed_batches:
        Batches whose run raised; every caller in them got the error.
    sizes:
        Batch size → how many batches had that size.
    """

    batches: int = 0
    items: int = 0
    failed_batches: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    @property
    def mean_batch_size(self) -> float:
        """Average items per batch (0 before the first batch)."""
        return self.items / self.batches if self.batches else 0.0


@dataclass(slots=True)
class _Item:
    array: npt.NDArray[Any]
    future: Future[Outputs]
    enqueued: float


class DynamicBatcher:
    """Groups single-item requests into batches for one :class:`~inference.runners.Runner`.

    Parameters
    ----------
    runner:
        The runner to feed; the batcher does not close it.
    max_batch:
        Most items per batch; at most ``runner.max_batch``.
    max_wait_ms:
        How long the first item of a batch waits for company before the batch runs.

    Raises
    ------
    ValueError
        If ``max_batch`` or ``max_wait_ms`` is out of range.
    """

    def __init__(self, runner: Runner, *, max_batch: int, max_wait_ms: float) -> None:
        if not 1 <= max_batch <= runner.max_batch:
            raise ValueError(
                f"`max_batch` must be between 1 and the runner's {runner.max_batch}, "
                f"{max_batch} is given"
            )
        if not max_wait_ms >= 0:
            raise ValueError(f"`max_wait_ms` must be zero or positive, {max_wait_ms} is given")
        self.runner = runner
        self.max_batch = max_batch
        self.max_wait_ms = float(max_wait_ms)
        self._item_shape = runner.input_shape[1:]
        self._queue: deque[_Item] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._batches = 0
        self._items = 0
        self._failed = 0
        self._sizes: dict[int, int] = {}
        self._thread = threading.Thread(target=self._loop, name="soi-batcher", daemon=True)
        self._thread.start()

    def submit(self, array: npt.NDArray[Any]) -> Future[Outputs]:
        """Queue one item (the model input without the batch axis).

        Returns
        -------
        Future
            Resolves to this item's outputs by name (batch axis removed), or to the
            runner's error for the batch it ran in.

        Raises
        ------
        RunnerInputError
            If ``array`` does not fit the model input; checked here, so one bad item
            never fails the batch it would have joined.
        BatcherClosed
            If :meth:`close` was called.
        """
        item = check_input(
            array,
            dtype=self.runner.input_dtype,
            shape=self._item_shape,
            max_batch=None,
            what=f"item for input {self.runner.input_name!r}",
        ).copy()
        future: Future[Outputs] = Future()
        with self._condition:
            if self._closed:
                raise BatcherClosed("the batcher is closed and takes no more items")
            self._queue.append(_Item(item, future, time.monotonic()))
            self._condition.notify_all()
        return future

    def infer(self, array: npt.NDArray[Any], *, timeout: float | None = None) -> Outputs:
        """Submit one item and wait for its outputs (see :meth:`submit`).

        Raises
        ------
        TimeoutError
            If ``timeout`` seconds pass first.
        """
        return self.submit(array).result(timeout=timeout)

    def stats(self) -> BatcherStats:
        """A snapshot of what has been run so far."""
        with self._condition:
            return BatcherStats(
                batches=self._batches,
                items=self._items,
                failed_batches=self._failed,
                sizes=dict(sorted(self._sizes.items())),
            )

    def close(self, *, timeout: float | None = None) -> None:
        """Stop taking items, run every item already queued, then stop the thread.

        Raises
        ------
        TimeoutError
            If the queued items are not done within ``timeout`` seconds.
        """
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the batcher did not drain within {timeout} s")

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[_Item] | None:
        with self._condition:
            while not self._queue and not self._closed:
                self._condition.wait()
            if not self._queue:
                return None
            deadline = self._queue[0].enqueued + self.max_wait_ms / 1000.0
            while len(self._queue) < self.max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            count = min(len(self._queue), self.max_batch)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self, batch: list[_Item]) -> None:
        live = [item for item in batch if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        failed = False
        try:
            outputs = self.runner.run(np.stack([item.array for item in live]))
            for name, value in outputs.items():
                if value.ndim == 0 or value.shape[0] != len(live):
                    raise RunnerError(
                        f"output {name!r} has shape {list(value.shape)}, "
                        f"not a batch of {len(live)} items"
                    )
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            failed = True
            for item in live:
                item.future.set_exception(exc)
        else:
            for index, item in enumerate(live):
                item.future.set_result(
                    {name: value[index].copy() for name, value in outputs.items()}
                )
        with self._condition:
            self._batches += 1
            self._items += len(live)
            self._failed += int(failed)
            self._sizes[len(live)] = self._sizes.get(len(live), 0) + 1


class BatchedRunner(Runner):
    """A :class:`Runner` whose batches go through a :class:`DynamicBatcher`.

    Several job worker threads share one model this way: each thread's images join
    the same queue, and the batcher runs them together (up to ``max_batch`` images,
    or what arrived within ``max_wait_ms``). :meth:`run` returns the same outputs as
    the wrapped runner. Grad-CAM (``gradients``), when the wrapped runner offers it,
    goes to it directly.

    Parameters
    ----------
    runner:
        The loaded runner; closed by :meth:`close`.
    max_batch, max_wait_ms:
        As :class:`DynamicBatcher`.
    """

    def __init__(self, runner: Runner, *, max_batch: int, max_wait_ms: float) -> None:
        self.inner = runner
        self.batcher = DynamicBatcher(runner, max_batch=max_batch, max_wait_ms=max_wait_ms)
        self.input_name = runner.input_name
        self.input_dtype = runner.input_dtype
        self.input_shape = runner.input_shape
        self.output_names = runner.output_names
        self.max_batch = runner.max_batch
        gradients = getattr(runner, "gradients", None)
        if callable(gradients):
            self.gradients = gradients

    def run(self, batch: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        """Queue each image, wait for all, and stack the outputs back in order.

        Raises
        ------
        RunnerInputError
            If an image does not fit the model input.
        RunnerError
            If the batch an image ran in failed.
        """
        array = check_input(
            batch,
            dtype=self.input_dtype,
            shape=self.input_shape,
            max_batch=self.max_batch,
            what=f"input {self.input_name!r}",
        )
        futures = [self.batcher.submit(item) for item in array]
        results = [future.result() for future in futures]
        return {name: np.stack([result[name] for result in results]) for name in self.output_names}

    def close(self) -> None:
        """Stop the batcher, then close the wrapped runner."""
        self.batcher.close()
        self.inner.close()

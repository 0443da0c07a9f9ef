"""Tests for :mod:`inference.batching` with a real ONNX Runtime runner."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from inference.batching import BatchedRunner, BatcherClosed, DynamicBatcher
from inference.runners import Runner, RunnerError, RunnerInputError
from inference.runners.onnx import OnnxRunner
from tests.inference.runners.builders import build_tiny_cnn, images


class WrappedRunner(Runner):
    """Runs the real ONNX runner, optionally slowly, failing, or breaking the batch axis."""

    def __init__(
        self,
        inner: OnnxRunner,
        *,
        delay: float = 0.0,
        failures: int = 0,
        drop_batch_axis: bool = False,
    ) -> None:
        self.inner = inner
        self.input_name = inner.input_name
        self.input_dtype = inner.input_dtype
        self.input_shape = inner.input_shape
        self.output_names = inner.output_names
        self.max_batch = inner.max_batch
        self.delay = delay
        self.failures = failures
        self.drop_batch_axis = drop_batch_axis
        self.calls: list[int] = []

    def run(self, batch: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        self.calls.append(len(batch))
        time.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise RunnerError("the accelerator fell over")
        outputs = self.inner.run(batch)
        if self.drop_batch_axis:
            return {name: value.sum(axis=0) for name, value in outputs.items()}
        return outputs


@pytest.fixture(scope="module")
def onnx_runner(tmp_path_factory: pytest.TempPathFactory) -> OnnxRunner:
    path = build_tiny_cnn(tmp_path_factory.mktemp("batching") / "tiny.onnx")
    return OnnxRunner(path, threads=1, max_batch=16)


@pytest.fixture
def make_batcher(onnx_runner: OnnxRunner) -> Iterator[Any]:
    made: list[DynamicBatcher] = []

    def make(runner: Runner | None = None, **kwargs: Any) -> DynamicBatcher:
        batcher = DynamicBatcher(runner or onnx_runner, **kwargs)
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close(timeout=5)


class TestDynamicBatcher:
    def test_concurrent_callers_get_their_own_results(
        self, onnx_runner: OnnxRunner, make_batcher: Any
    ) -> None:
        batcher: DynamicBatcher = make_batcher(max_batch=8, max_wait_ms=200)
        items = images(20, seed=42)
        expected = [onnx_runner.run(items[i : i + 1]) for i in range(20)]
        barrier = threading.Barrier(20)

        def call(index: int) -> dict[str, npt.NDArray[Any]]:
            barrier.wait()
            return batcher.infer(items[index], timeout=10)

        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(call, range(20)))
        for index, result in enumerate(results):
            assert result["logits"].shape == (5,)
            assert result["features"].shape == (4, 8, 8)
            for name in ("logits", "features"):
                np.testing.assert_allclose(result[name], expected[index][name][0], atol=1e-6)
        stats = batcher.stats()
        assert stats.items == 20
        assert sum(size * count for size, count in stats.sizes.items()) == 20
        assert max(stats.sizes) == 8
        assert stats.batches == sum(stats.sizes.values()) < 20
        assert stats.failed_batches == 0

    def test_lone_item_runs_after_max_wait(self, make_batcher: Any) -> None:
        batcher: DynamicBatcher = make_batcher(max_batch=8, max_wait_ms=50)
        start = time.monotonic()
        batcher.infer(images(1)[0], timeout=5)
        elapsed = time.monotonic() - start
        assert 0.045 <= elapsed < 1.0
        assert batcher.stats().sizes == {1: 1}

    def test_zero_wait_runs_at_once(self, make_batcher: Any) -> None:
        batcher: DynamicBatcher = make_batcher(max_batch=8, max_wait_ms=0)
        start = time.monotonic()
        batcher.infer(images(1)[0], timeout=5)
        assert time.monotonic() - start < 0.5

    def test_full_batch_does_not_wait(self, onnx_runner: OnnxRunner, make_batcher: Any) -> None:
        runner = WrappedRunner(onnx_runner)
        batcher: DynamicBatcher = make_batcher(runner, max_batch=4, max_wait_ms=10_000)
        start = time.monotonic()
        futures = [batcher.submit(item) for item in images(4)]
        for future in futures:
            future.result(timeout=5)
        assert time.monotonic() - start < 2.0
        assert runner.calls == [4]

    def test_runner_error_reaches_every_caller(
        self, onnx_runner: OnnxRunner, make_batcher: Any
    ) -> None:
        runner = WrappedRunner(onnx_runner, failures=1)
        batcher: DynamicBatcher = make_batcher(runner, max_batch=8, max_wait_ms=300)
        futures = [batcher.submit(item) for item in images(5)]
        for future in futures:
            with pytest.raises(RunnerError, match="fell over"):
                future.result(timeout=5)
        assert runner.calls == [5]
        assert batcher.stats().failed_batches == 1
        assert batcher.infer(images(1)[0], timeout=5)["logits"].shape == (5,)

    def test_output_without_batch_axis_is_an_error(
        self, onnx_runner: OnnxRunner, make_batcher: Any
    ) -> None:
        runner = WrappedRunner(onnx_runner, drop_batch_axis=True)
        batcher: DynamicBatcher = make_batcher(runner, max_batch=8, max_wait_ms=100)
        futures = [batcher.submit(item) for item in images(2)]
        for future in futures:
            with pytest.raises(RunnerError, match="not a batch of 2 items"):
                future.result(timeout=5)

    def test_bad_item_refused_at_submit(self, make_batcher: Any) -> None:
        batcher: DynamicBatcher = make_batcher(max_batch=8, max_wait_ms=50)
        good = batcher.submit(images(1)[0])
        with pytest.raises(RunnerInputError, match="must have dtype float32, float64"):
            batcher.submit(images(1)[0].astype(np.float64))
        with pytest.raises(RunnerInputError, match=r"must have 3 axes \[1, 16, 16\]"):
            batcher.submit(images(1))
        assert good.result(timeout=5)["logits"].shape == (5,)

    def test_item_copied_at_submit(self, onnx_runner: OnnxRunner, make_batcher: Any) -> None:
        batcher: DynamicBatcher = make_batcher(max_batch=8, max_wait_ms=100)
        item = images(1)[0]
        expected = onnx_runner.run(item[None])["logits"][0]
        future = batcher.submit(item)
        item[...] = 0
        np.testing.assert_allclose(future.result(timeout=5)["logits"], expected, atol=1e-6)

    def test_close_drains_pending(self, onnx_runner: OnnxRunner) -> None:
        runner = WrappedRunner(onnx_runner, delay=0.05)
        batcher = DynamicBatcher(runner, max_batch=2, max_wait_ms=10_000)
        futures = [batcher.submit(item) for item in images(6)]
        batcher.close(timeout=5)
        assert all(future.done() for future in futures)
        assert [future.result()["logits"].shape for future in futures] == [(5,)] * 6
        assert sum(runner.calls) == 6
        assert max(runner.calls) <= 2
        assert batcher.closed
        with pytest.raises(BatcherClosed):
            batcher.submit(images(1)[0])

    def test_cancelled_item_is_skipped(self, onnx_runner: OnnxRunner) -> None:
        runner = WrappedRunner(onnx_runner)
        with DynamicBatcher(runner, max_batch=8, max_wait_ms=200) as batcher:
            cancelled = batcher.submit(images(1)[0])
            kept = batcher.submit(images(1)[0])
            assert cancelled.cancel()
        assert kept.result(timeout=0)["logits"].shape == (5,)
        assert runner.calls == [1]

    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"max_batch": 0, "max_wait_ms": 1}, "between 1 and the runner's 16, 0 is given"),
            ({"max_batch": 17, "max_wait_ms": 1}, "between 1 and the runner's 16, 17 is given"),
            ({"max_batch": 4, "max_wait_ms": -1}, "zero or positive, -1 is given"),
            ({"max_batch": 4, "max_wait_ms": float("nan")}, "zero or positive, nan is given"),
        ],
    )
    def test_refuses_bad_arguments(
        self, onnx_runner: OnnxRunner, kwargs: dict[str, Any], needle: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            DynamicBatcher(onnx_runner, **kwargs)
        assert needle in str(info.value)

    def test_context_manager_and_stats(self, onnx_runner: OnnxRunner) -> None:
        with DynamicBatcher(onnx_runner, max_batch=2, max_wait_ms=0) as batcher:
            assert batcher.stats().mean_batch_size == 0.0
            future = batcher.submit(images(1)[0])
            assert isinstance(future, Future)
            future.result(timeout=5)
        assert batcher.closed
        assert batcher.stats().mean_batch_size == 1.0


class TestBatchedRunner:
    def test_threads_share_batches_and_get_their_own_outputs(self, onnx_runner: OnnxRunner) -> None:
        slow = WrappedRunner(onnx_runner, delay=0.05)
        shared = BatchedRunner(slow, max_batch=8, max_wait_ms=30)
        batches = [images(2, seed=seed) for seed in range(4)]
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                answers = list(pool.map(shared.run, batches))
            stats = shared.batcher.stats()
        finally:
            shared.batcher.close(timeout=5)
        for batch, answer in zip(batches, answers, strict=True):
            expected = onnx_runner.run(batch)
            assert set(answer) == set(expected)
            for name, value in expected.items():
                np.testing.assert_allclose(answer[name], value, rtol=1e-5, atol=1e-6)
        # Four threads' eight images ran in fewer model runs than one per thread.
        assert stats.items == 8
        assert stats.batches < 4
        assert shared.output_names == onnx_runner.output_names

    def test_a_failed_run_reaches_the_caller(self, onnx_runner: OnnxRunner) -> None:
        shared = BatchedRunner(WrappedRunner(onnx_runner, failures=1), max_batch=4, max_wait_ms=0)
        try:
            with pytest.raises(RunnerError, match="fell over"):
                shared.run(images(1))
            assert shared.run(images(1))[onnx_runner.output_names[0]].shape[0] == 1
        finally:
            shared.batcher.close(timeout=5)

"""ONNX Runtime runner for the CPU: the default backend, needing no PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from inference.runners.base import Runner, RunnerError, check_input

__all__ = ["OnnxRunner"]

_ORT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}
_ORT_ERRORS: tuple[type[Exception], ...] = (
    _ort_state.Fail,
    _ort_state.InvalidArgument,
    _ort_state.InvalidGraph,
    _ort_state.InvalidProtobuf,
    _ort_state.NoSuchFile,
    _ort_state.RuntimeException,
)


class OnnxRunner(Runner):
    """Runs an ONNX model with ONNX Runtime on the CPU.

    The session runs operators sequentially with ``threads`` intra-op threads and one
    inter-op thread, after all graph optimisations.

    Parameters
    ----------
    model_path:
        The ``.onnx`` file; it must have exactly one input.
    threads:
        Intra-op thread count (at least 1).
    device:
        ``cpu``, or ``auto`` (which is the CPU for this runner).
    max_batch:
        The largest batch :meth:`run` accepts; a model with a fixed batch axis caps it.

    Raises
    ------
    ValueError
        If an argument is out of range.
    FileNotFoundError
        If ``model_path`` does not exist.
    RunnerError
        If ONNX Runtime cannot load the model or it has more than one input.
    """

    def __init__(
        self, model_path: Path, *, threads: int = 1, device: str = "cpu", max_batch: int = 32
    ) -> None:
        if threads < 1:
            raise ValueError(f"`threads` must be a positive number, {threads} is given")
        if max_batch < 1:
            raise ValueError(f"`max_batch` must be a positive number, {max_batch} is given")
        if device not in ("cpu", "auto"):
            raise ValueError(
                f"`device` must be 'cpu' or 'auto' for the ONNX runner, {device!r} is given"
            )
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"ONNX model {model_path} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except _ORT_ERRORS as exc:
            raise RunnerError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            names = [node.name for node in inputs]
            raise RunnerError(f"{model_path} must have exactly one input, it has {names}")
        node = inputs[0]
        if node.type not in _ORT_TYPES:
            raise RunnerError(f"{model_path} input {node.name!r} has unsupported type {node.type}")
        self.model_path = model_path
        self.input_name = node.name
        self.input_dtype = _ORT_TYPES[node.type]
        self.input_shape = tuple(axis if isinstance(axis, int) else None for axis in node.shape)
        fixed_batch = self.input_shape[0] if self.input_shape else None
        self.max_batch = min(max_batch, fixed_batch) if fixed_batch is not None else max_batch
        self.output_names = tuple(output.name for output in self._session.get_outputs())

    @property
    def session_options(self) -> ort.SessionOptions:
        """The options the session runs with, as ONNX Runtime reports them."""
        return self._live_session().get_session_options()

    def run(self, batch: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        """Run the model on ``batch`` and return its outputs by name.

        Raises
        ------
        RunnerInputError
            If ``batch`` has the wrong type, dtype, rank, axis sizes or batch size.
        RunnerError
            If the runner is closed or ONNX Runtime fails.
        """
        session = self._live_session()
        batch = check_input(
            batch,
            dtype=self.input_dtype,
            shape=self.input_shape,
            max_batch=self.max_batch,
            what=f"input {self.input_name!r}",
        )
        try:
            outputs = session.run(list(self.output_names), {self.input_name: batch})
        except _ORT_ERRORS as exc:
            raise RunnerError(f"ONNX Runtime failed on {self.model_path}: {exc}") from exc
        return {
            name: np.asarray(value) for name, value in zip(self.output_names, outputs, strict=True)
        }

    def close(self) -> None:
        """Drop the ONNX Runtime session."""
        self._session = None

    def _live_session(self) -> ort.InferenceSession:
        if self._session is None:
            raise RunnerError(f"the runner for {self.model_path} is closed")
        return self._session

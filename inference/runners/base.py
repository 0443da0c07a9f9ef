"""The base every model runner shares, and the registry of runner backends.

A runner holds one loaded model and runs whole batches: :meth:`Runner.run` takes an
array whose first axis is the batch and returns the model's outputs by name. Each
backend lives in its own module (``onnx``, ``torch``) and is imported only when asked
for, so a box with only ONNX Runtime installed imports and serves without PyTorch.
:func:`available_backends` and :func:`missing_dependencies` say what each backend
needs and which of it is missing, in the manner of pydicom's ``pixels/common.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from inference.errors import InferenceError

__all__ = [
    "Runner",
    "RunnerError",
    "RunnerInputError",
    "RunnerUnavailable",
    "available_backends",
    "check_input",
    "make_runner",
    "missing_dependencies",
]


class RunnerError(InferenceError):
    """A model could not be loaded or run."""


class RunnerInputError(RunnerError, ValueError):
    """An input array does not fit the model's input (dtype, rank, axis sizes or batch)."""


class RunnerUnavailable(RunnerError):
    """A runner backend cannot be used because an optional dependency is missing.

    Parameters
    ----------
    backend:
        The backend asked for (``onnx``, ``torch``).
    missing:
        One line per missing dependency, each with the command that installs it.
    """

    def __init__(self, backend: str, missing: Sequence[str]) -> None:
        super().__init__(f"runner backend {backend!r} is unavailable: " + "; ".join(missing))
        self.backend = backend
        self.missing = list(missing)


class Runner(ABC):
    """One loaded model that runs batches and returns named outputs.

    Attributes
    ----------
    input_name:
        Name of the model's single input.
    input_dtype:
        The dtype the input must have; inputs are never cast silently.
    input_shape:
        The input's shape with the batch axis first; ``None`` marks a free axis.
    output_names:
        Output names, in the model's order.
    max_batch:
        The largest batch :meth:`run` accepts.
    """

    input_name: str
    input_dtype: np.dtype[Any]
    input_shape: tuple[int | None, ...]
    output_names: tuple[str, ...]
    max_batch: int

    @abstractmethod
    def run(self, batch: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        """Run the model on ``batch`` (batch axis first) and return its outputs by name.

        Raises
        ------
        RunnerInputError
            If ``batch`` does not fit the model's input.
        RunnerError
            If the backend fails while running the model.
        """

    def close(self) -> None:  # noqa: B027 - backends without resources need no close
        """Release the model's resources; the runner must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def check_input(
    array: object,
    *,
    dtype: np.dtype[Any],
    shape: Sequence[int | None],
    max_batch: int | None,
    what: str = "input",
) -> npt.NDArray[Any]:
    """Check that ``array`` fits a model input and return it C-contiguous.

    Parameters
    ----------
    array:
        The array to check.
    dtype:
        The exact dtype required; no silent casts.
    shape:
        The required shape; ``None`` marks an axis of any size.
    max_batch:
        When given, ``shape[0]`` is the batch axis and must hold 1 to ``max_batch`` items.
    what:
        How to name the array in messages (e.g. the model input's name).

    Raises
    ------
    RunnerInputError
        Saying what differs: type, dtype, rank, which axis, or the batch size.
    """
    if not isinstance(array, np.ndarray):
        raise RunnerInputError(f"{what} must be a numpy array, {type(array).__name__} is given")
    if array.dtype != dtype:
        raise RunnerInputError(
            f"{what} must have dtype {dtype}, {array.dtype} is given (convert it explicitly)"
        )
    expected = "[" + ", ".join("?" if axis is None else str(axis) for axis in shape) + "]"
    if array.ndim != len(shape):
        raise RunnerInputError(
            f"{what} must have {len(shape)} axes {expected}, "
            f"{array.ndim} are given with shape {list(array.shape)}"
        )
    for index, (size, wanted) in enumerate(zip(array.shape, shape, strict=True)):
        if wanted is not None and size != wanted:
            raise RunnerInputError(
                f"{what} axis {index} must have size {wanted} (shape {expected}), "
                f"shape {list(array.shape)} is given"
            )
    if max_batch is not None and not 1 <= array.shape[0] <= max_batch:
        raise RunnerInputError(
            f"{what} batch size must be between 1 and {max_batch}, {array.shape[0]} is given"
        )
    return np.ascontiguousarray(array)


@dataclass(frozen=True, slots=True)
class _Backend:
    module: str
    factory: str
    dependencies: tuple[tuple[str, str], ...]


_BACKENDS: dict[str, _Backend] = {
    "onnx": _Backend(
        module="inference.runners.onnx",
        factory="OnnxRunner",
        dependencies=(("onnxruntime", "ONNX Runtime is not installed: pip install onnxruntime"),),
    ),
    "torch": _Backend(
        module="inference.runners.torch",
        factory="TorchRunner",
        dependencies=(("torch", "PyTorch is not installed: pip install -e '.[train]'"),),
    ),
}


def _backend(backend: str) -> _Backend:
    try:
        return _BACKENDS[backend]
    except KeyError:
        raise ValueError(
            f"`backend` must be one of {sorted(_BACKENDS)}, {backend!r} is given"
        ) from None


def missing_dependencies(backend: str) -> list[str]:
    """What ``backend`` needs and is not installed, one line each with its install command.

    Raises
    ------
    ValueError
        If ``backend`` is not a known backend.
    """
    return [
        hint
        for module, hint in _backend(backend).dependencies
        if importlib.util.find_spec(module) is None
    ]


def available_backends() -> dict[str, bool]:
    """Each known backend and whether all its dependencies are installed."""
    return {name: not missing_dependencies(name) for name in _BACKENDS}


def make_runner(
    backend: str,
    model_path: Path,
    *,
    threads: int = 1,
    device: str = "auto",
    max_batch: int = 32,
    **options: Any,
) -> Runner:
    """Load the model at ``model_path`` with ``backend``.

    Parameters
    ----------
    backend:
        ``onnx`` (ONNX Runtime, CPU) or ``torch`` (TorchScript, CUDA or CPU).
    model_path:
        The model file.
    threads:
        Threads for the operators inside one run (intra-op).
    device:
        ``auto`` (CUDA when the backend can use it), ``cpu`` or ``cuda``; the ONNX backend
        runs on the CPU.
    max_batch:
        The largest batch the runner accepts.
    options:
        Backend-specific keyword arguments (the ``torch`` backend needs ``input_shape``
        and ``output_names``, which a TorchScript file does not record).

    Raises
    ------
    ValueError
        If ``backend`` is unknown or an argument is out of range.
    RunnerUnavailable
        If the backend's optional dependencies are missing, with how to install them.
    RunnerError
        If the model cannot be loaded.
    """
    spec = _backend(backend)
    missing = missing_dependencies(backend)
    if missing:
        raise RunnerUnavailable(backend, missing)
    factory = getattr(importlib.import_module(spec.module), spec.factory)
    runner: Runner = factory(
        Path(model_path), threads=threads, device=device, max_batch=max_batch, **options
    )
    return runner

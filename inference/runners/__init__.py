"""Model runners: one module per backend behind one base.

``onnx`` (ONNX Runtime, CPU) is always installed; ``torch`` (TorchScript, CUDA or CPU)
needs the ``train`` extra. Backend modules are imported only through
:func:`make_runner`, so importing this package never needs PyTorch.
"""

from inference.runners.base import (
    Runner,
    RunnerError,
    RunnerInputError,
    RunnerUnavailable,
    available_backends,
    check_input,
    make_runner,
    missing_dependencies,
)

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

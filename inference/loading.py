"""Loading a registered model version into a runner of the chosen backend."""

from __future__ import annotations

from inference.runners import Runner, RunnerError, make_runner
from models import RegisteredModel

__all__ = ["BACKEND_RUNTIMES", "load_runner"]

#: Backend → the manifest runtime (artifact kind) it loads.
BACKEND_RUNTIMES = {"onnx": "onnx", "torch": "torchscript"}


def load_runner(
    model: RegisteredModel,
    *,
    backend: str = "onnx",
    threads: int = 1,
    device: str = "auto",
    max_batch: int = 32,
) -> Runner:
    """A runner for ``model`` on ``backend`` (``onnx`` or ``torch``).

    The ``torch`` backend loads the version's TorchScript artifact; its input shape and
    output names come from the manifest, which a TorchScript file does not record.

    Raises
    ------
    ValueError
        If ``backend`` is unknown or an argument is out of range.
    RunnerUnavailable
        If the backend's optional dependencies are missing (with how to install them).
    RunnerError
        If the version has no artifact for the backend, or it cannot be loaded.
    """
    if backend not in BACKEND_RUNTIMES:
        raise ValueError(
            f"`backend` must be one of {sorted(BACKEND_RUNTIMES)}, {backend!r} is given"
        )
    manifest = model.manifest
    runtime = BACKEND_RUNTIMES[backend]
    try:
        path = model.runtime_path(runtime)
    except KeyError:
        raise RunnerError(
            f"{manifest.name} {manifest.version} has no {runtime} artifact for the {backend!r} "
            f"backend (runtimes: {sorted(manifest.runtime)})"
        ) from None
    if backend == "onnx":
        return make_runner("onnx", path, threads=threads, device=device, max_batch=max_batch)
    network = manifest.network_data_format
    first = network.inputs[0]
    return make_runner(
        "torch",
        path,
        threads=threads,
        device=device,
        max_batch=max_batch,
        input_shape=[axis if isinstance(axis, int) else None for axis in first.shape],
        output_names=[output.name for output in network.outputs],
        input_name=first.name,
    )

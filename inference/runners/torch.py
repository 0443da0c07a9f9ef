"""PyTorch runner for TorchScript files, on CUDA when present.

PyTorch is optional (the ``train`` extra): this module imports without it, and
:class:`TorchRunner` raises :class:`~inference.runners.base.RunnerUnavailable`, with the
install command, when it is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.runners.base import Runner, RunnerError, RunnerUnavailable, check_input

__all__ = ["TorchRunner"]

_INSTALL_HINT = "PyTorch is not installed: pip install -e '.[train]'"
_DEVICES = ("auto", "cpu", "cuda")


def _import_torch() -> Any:
    if importlib.util.find_spec("torch") is None:
        raise RunnerUnavailable("torch", [_INSTALL_HINT])
    return importlib.import_module("torch")


class TorchRunner(Runner):
    """Runs a TorchScript model with PyTorch; :meth:`gradients` serves Grad-CAM.

    A TorchScript file records neither its input shape nor its output names, so both
    come from the model's manifest (``network_data_format``).

    Parameters
    ----------
    model_path:
        The TorchScript file (``torch.jit.save``).
    input_shape:
        The input shape with the batch axis first; ``None`` marks a free axis.
    output_names:
        Names of the outputs in the order the model returns them (a tensor, or a tuple
        or list of tensors); a model returning a dict of tensors is read by key.
    input_name:
        The input's name, for messages.
    threads:
        CPU threads PyTorch may use (``torch.set_num_threads``, process-wide).
    device:
        ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.
    max_batch:
        The largest batch :meth:`run` accepts.

    Raises
    ------
    RunnerUnavailable
        If PyTorch is not installed.
    ValueError
        If an argument is out of range, or ``cuda`` is asked for and not available.
    FileNotFoundError
        If ``model_path`` does not exist.
    RunnerError
        If PyTorch cannot load the file.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        input_shape: Sequence[int | None],
        output_names: Sequence[str],
        input_name: str = "image",
        threads: int = 1,
        device: str = "auto",
        max_batch: int = 32,
    ) -> None:
        torch = _import_torch()
        if threads < 1:
            raise ValueError(f"`threads` must be a positive number, {threads} is given")
        if max_batch < 1:
            raise ValueError(f"`max_batch` must be a positive number, {max_batch} is given")
        if device not in _DEVICES:
            raise ValueError(f"`device` must be one of {list(_DEVICES)}, {device!r} is given")
        if not input_shape:
            raise ValueError("`input_shape` must list the input's axes, batch axis first")
        if not output_names:
            raise ValueError("`output_names` must name at least one output")
        cuda = bool(torch.cuda.is_available())
        if device == "cuda" and not cuda:
            raise ValueError("`device` 'cuda' is asked for but PyTorch sees no CUDA device")
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"TorchScript model {model_path} not found")
        self._torch = torch
        self._device = torch.device(
            "cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu"
        )
        if self._device.type == "cpu":
            torch.set_num_threads(threads)
        try:
            with warnings.catch_warnings():
                # PyTorch 2.14 marks TorchScript deprecated in favour of torch.export;
                # it still loads and runs these files (see training.cxr.export).
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(model_path), map_location=self._device)
        except (RuntimeError, ValueError) as exc:
            raise RunnerError(f"PyTorch cannot load {model_path}: {exc}") from exc
        module.eval()
        self._module: Any = module
        self.model_path = model_path
        self.input_name = input_name
        self.input_dtype = np.dtype(np.float32)
        self.input_shape = tuple(input_shape)
        self.output_names = tuple(output_names)
        fixed_batch = self.input_shape[0]
        self.max_batch = min(max_batch, fixed_batch) if fixed_batch is not None else max_batch

    @property
    def device(self) -> str:
        """The device the model runs on (``cpu`` or ``cuda``)."""
        return str(self._device.type)

    def run(self, batch: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        """Run the model on ``batch`` and return its outputs by name, as numpy arrays.

        Raises
        ------
        RunnerInputError
            If ``batch`` has the wrong type, dtype, rank, axis sizes or batch size.
        RunnerError
            If the runner is closed, the model fails, or its outputs do not match
            ``output_names``.
        """
        if self._module is None:
            raise RunnerError(f"the runner for {self.model_path} is closed")
        batch = check_input(
            batch,
            dtype=self.input_dtype,
            shape=self.input_shape,
            max_batch=self.max_batch,
            what=f"input {self.input_name!r}",
        )
        torch = self._torch
        try:
            with torch.inference_mode():
                result = self._module(torch.from_numpy(batch).to(self._device))
        except RuntimeError as exc:
            raise RunnerError(f"PyTorch failed on {self.model_path}: {exc}") from exc
        if isinstance(result, dict):
            missing = [name for name in self.output_names if name not in result]
            if missing:
                raise RunnerError(
                    f"{self.model_path} returned outputs {sorted(result)}, missing {missing}"
                )
            tensors = [result[name] for name in self.output_names]
        else:
            tensors = list(result) if isinstance(result, tuple | list) else [result]
            if len(tensors) != len(self.output_names):
                raise RunnerError(
                    f"{self.model_path} returned {len(tensors)} outputs, "
                    f"{len(self.output_names)} are named: {list(self.output_names)}"
                )
        return {
            name: tensor.detach().to("cpu").numpy()
            for name, tensor in zip(self.output_names, tensors, strict=True)
        }

    def gradients(
        self,
        batch: npt.NDArray[Any],
        *,
        score_output: str,
        feature_output: str,
        targets: Sequence[int],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Feature maps and the gradients of target scores with respect to them (for Grad-CAM).

        Runs the model with autograd on, then differentiates, for each index in
        ``targets``, the batch sum of that column of ``score_output`` with respect to
        ``feature_output`` (images do not interact in evaluation mode, so each image
        gets its own gradient).

        Returns
        -------
        tuple
            ``features`` (N, C, h, w) and ``gradients`` (N, len(targets), C, h, w), float32.

        Raises
        ------
        RunnerInputError
            As :meth:`run`.
        RunnerError
            If an output name is not one of ``output_names``, an output has the wrong
            rank, a target index is out of range, or PyTorch fails.
        """
        if self._module is None:
            raise RunnerError(f"the runner for {self.model_path} is closed")
        for name in (score_output, feature_output):
            if name not in self.output_names:
                raise RunnerError(
                    f"{name!r} is not an output of {self.model_path} ({list(self.output_names)})"
                )
        batch = check_input(
            batch,
            dtype=self.input_dtype,
            shape=self.input_shape,
            max_batch=self.max_batch,
            what=f"input {self.input_name!r}",
        )
        torch = self._torch
        try:
            with torch.enable_grad():
                image = torch.from_numpy(batch).to(self._device).requires_grad_(True)
                result = self._module(image)
                named = (
                    result
                    if isinstance(result, dict)
                    else dict(zip(self.output_names, result, strict=False))
                )
                scores, features = named[score_output], named[feature_output]
                if scores.ndim != 2 or features.ndim != 4:
                    raise RunnerError(
                        f"{self.model_path}: {score_output!r} must be (N, targets) and "
                        f"{feature_output!r} (N, C, h, w), shapes {list(scores.shape)} and "
                        f"{list(features.shape)} are given"
                    )
                bad = [t for t in targets if not 0 <= t < scores.shape[1]]
                if bad:
                    raise RunnerError(
                        f"target indices {bad} are out of range for {scores.shape[1]} scores"
                    )
                grads = [
                    torch.autograd.grad(scores[:, t].sum(), features, retain_graph=True)[0]
                    for t in targets
                ]
        except RuntimeError as exc:
            raise RunnerError(f"PyTorch failed on {self.model_path}: {exc}") from exc
        feature_array = features.detach().to("cpu").numpy().astype(np.float32, copy=False)
        if not grads:
            empty = np.zeros((len(batch), 0, *feature_array.shape[1:]), dtype=np.float32)
            return feature_array, empty
        stacked = torch.stack(grads, dim=1).detach().to("cpu").numpy()
        return feature_array, stacked.astype(np.float32, copy=False)

    def close(self) -> None:
        """Drop the model (and free its CUDA memory once nothing else holds it)."""
        self._module = None

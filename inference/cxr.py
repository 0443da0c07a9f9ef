"""The chest X-ray pipeline: gates, model input, runner, thresholds, findings, heatmaps.

One instance in, one :class:`CxrAnalysis` out. A study that fails a quality gate is
``ungradable`` and never reaches the model; pixel data that cannot be used, or a
model output that is not finite, makes it ``failed`` with the reason in Vietnamese
and English. Every finding is preliminary until a clinician signs it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset

from inference.errors import PixelDataError
from inference.explain import class_activation_map, grad_cam_map
from inference.gates import CxrGateConfig, GateReport, run_gates
from inference.loading import load_runner
from inference.pixels import DisplayImage, InputSpec, Prepared, display_array, prepare_display
from inference.runners import Runner, RunnerError
from models import ModelManifest, RegisteredModel, Target
from store import ResultState

__all__ = ["CxrAnalysis", "CxrPipeline", "ModelFinding"]

_FAILED_VI = "Mô hình trả về giá trị không hợp lệ (NaN hoặc vô cực); kết quả không dùng được"


@dataclass(frozen=True, slots=True)
class ModelFinding:
    """One target's score on one image, against its operating point.

    Attributes
    ----------
    key, display_en, display_vi:
        The target's key and its names for people.
    code_scheme, code_value, code_meaning:
        The coded concept of the finding (e.g. SNOMED CT ``SCT``).
    probability:
        The sigmoid of the model's logit, in [0, 1].
    threshold:
        The operating point from the manifest.
    positive:
        Whether ``probability >= threshold``.
    """

    key: str
    display_en: str
    display_vi: str
    code_scheme: str
    code_value: str
    code_meaning: str
    probability: float
    threshold: float
    positive: bool

    @classmethod
    def from_target(cls, target: Target, probability: float) -> ModelFinding:
        """The finding of ``target`` at ``probability``."""
        return cls(
            key=target.key,
            display_en=target.display_en,
            display_vi=target.display_vi,
            code_scheme=target.code_scheme,
            code_value=target.code_value,
            code_meaning=target.code_meaning,
            probability=probability,
            threshold=target.threshold,
            positive=probability >= target.threshold,
        )

    def to_json(self) -> dict[str, Any]:
        """The finding as JSON-ready values."""
        return {
            "key": self.key,
            "display_en": self.display_en,
            "display_vi": self.display_vi,
            "code": {
                "scheme": self.code_scheme,
                "value": self.code_value,
                "meaning": self.code_meaning,
            },
            "probability": self.probability,
            "threshold": self.threshold,
            "positive": self.positive,
        }


@dataclass(frozen=True, slots=True, eq=False)
class CxrAnalysis:
    """What the chest X-ray pipeline concluded about one instance, or why it could not.

    Attributes
    ----------
    state:
        ``complete``, ``ungradable`` (a quality gate refused the image) or ``failed``
        (the pixels or the model output could not be used).
    reason_en, reason_vi:
        Why the state is not ``complete``; empty when it is.
    findings:
        One per target in the manifest's order; empty unless ``complete``.
    heatmaps:
        Target key → (rows, columns) float32 map in [0, 1] on the original image grid,
        for positive findings when the model has a feature output and class weights.
    model_name, model_version:
        The model version that was asked.
    gate_report:
        The gates' outcomes; ``None`` when the pixels could not be displayed.
    explanation:
        How the heatmaps were made: ``grad-cam`` (PyTorch runner), ``cam`` (feature map
        and class weights, no PyTorch) or empty when there are none.
    display:
        The image as displayed (for overlays); ``None`` when it could not be decoded.
    """

    state: ResultState
    model_name: str
    model_version: str
    reason_en: str = ""
    reason_vi: str = ""
    findings: tuple[ModelFinding, ...] = ()
    heatmaps: Mapping[str, NDArray[np.float32]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    gate_report: GateReport | None = None
    explanation: str = ""
    display: DisplayImage | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", ResultState(self.state))
        object.__setattr__(self, "heatmaps", MappingProxyType(dict(self.heatmaps)))
        if self.state is not ResultState.COMPLETE and not (self.reason_en and self.reason_vi):
            raise ValueError(
                f"a {self.state.value!r} analysis must carry `reason_en` and `reason_vi`"
            )

    @property
    def positive_findings(self) -> tuple[ModelFinding, ...]:
        """The findings at or above their threshold."""
        return tuple(finding for finding in self.findings if finding.positive)

    def to_json(self) -> dict[str, Any]:
        """The analysis as JSON-ready values (heatmaps by shape only), marked preliminary."""
        gates: list[dict[str, Any]] = []
        skipped: list[str] = []
        if self.gate_report is not None:
            skipped = list(self.gate_report.skipped)
            for outcome in self.gate_report.outcomes:
                gates.append(
                    {
                        "gate": outcome.gate,
                        "passed": outcome.passed,
                        "reason_en": outcome.reason_en,
                        "reason_vi": outcome.reason_vi,
                        "measurements": {
                            name: _json_value(value) for name, value in outcome.measurements.items()
                        },
                    }
                )
        return {
            "state": self.state.value,
            "preliminary": True,
            "reason": {"en": self.reason_en, "vi": self.reason_vi},
            "model": {"name": self.model_name, "version": self.model_version},
            "findings": [finding.to_json() for finding in self.findings],
            "heatmaps": {key: list(value.shape) for key, value in self.heatmaps.items()},
            "explanation": self.explanation,
            "gates": gates,
            "skipped_gates": skipped,
        }


class CxrPipeline:
    """Runs one registered chest X-ray model over instances, with its gates and heatmaps.

    Parameters
    ----------
    model:
        The registered model version; its manifest gives the input spec, targets,
        thresholds and the names of the logits and feature outputs.
    runner:
        A loaded runner for the model; by default one made by
        :func:`~inference.loading.load_runner` for ``backend``. The pipeline does not
        close a runner it was given, unless ``owns_runner``.
    gate_config:
        Gate thresholds; the defaults of :class:`CxrGateConfig` when None.
    backend:
        ``onnx`` (ONNX Runtime, CPU; heatmaps from the feature map and class weights)
        or ``torch`` (TorchScript on CUDA when present; Grad-CAM heatmaps).
    threads:
        Intra-op threads of the default runner.
    device:
        ``auto``, ``cpu`` or ``cuda`` for the default runner.
    max_batch:
        Largest batch the default runner takes.
    owns_runner:
        Close the given ``runner`` in :meth:`close`.

    Raises
    ------
    ValueError
        When the manifest's input spec is not valid or ``backend`` is unknown.
    RunnerUnavailable
        When the backend's dependencies are not installed.
    RunnerError
        When the model cannot be loaded, lacks an output the manifest names, or the
        class weights do not fit the targets.
    """

    def __init__(
        self,
        model: RegisteredModel,
        *,
        runner: Runner | None = None,
        gate_config: CxrGateConfig | None = None,
        backend: str = "onnx",
        threads: int = 1,
        device: str = "auto",
        max_batch: int = 8,
        owns_runner: bool = False,
    ) -> None:
        manifest = model.manifest
        self.manifest: ModelManifest = manifest
        self.spec = InputSpec.from_dict(manifest.input)
        self.gate_config = gate_config if gate_config is not None else CxrGateConfig()
        nd = manifest.network_data_format
        self._logits = nd.logits
        self._features = nd.features
        self._owns_runner = runner is None or owns_runner
        self.runner: Runner = (
            runner
            if runner is not None
            else load_runner(
                model, backend=backend, threads=threads, device=device, max_batch=max_batch
            )
        )
        wanted = [name for name in (nd.logits, nd.features) if name is not None]
        missing = [name for name in wanted if name not in self.runner.output_names]
        if missing:
            raise RunnerError(
                f"{manifest.name} {manifest.version}: the model has no output {missing} "
                f"named in the manifest (outputs: {list(self.runner.output_names)})"
            )
        self._class_weights: NDArray[np.float64] | None = None
        if nd.class_weights is not None:
            self._class_weights = _load_class_weights(
                model.artifact_path(nd.class_weights), len(manifest.targets)
            )
        gradients = getattr(self.runner, "gradients", None)
        self._gradients: Any = gradients if callable(gradients) else None
        self.explanation = (
            ""
            if self._features is None
            else "grad-cam"
            if self._gradients is not None
            else "cam"
            if self._class_weights is not None
            else ""
        )

    def close(self) -> None:
        """Close the runner if the pipeline made it."""
        if self._owns_runner:
            self.runner.close()

    def analyse(self, dataset: Dataset) -> CxrAnalysis:
        """Analyse one instance; see :meth:`analyse_many`."""
        return self.analyse_many([dataset])[0]

    def analyse_many(self, datasets: Iterable[Dataset]) -> list[CxrAnalysis]:
        """Analyse instances, running the model in batches of up to ``runner.max_batch``.

        Each instance is displayed and gated; those that pass are prepared with the
        manifest's input spec and run together. The result for each instance is the
        same as analysing it alone.

        Returns
        -------
        list[CxrAnalysis]
            One per instance, in order.

        Raises
        ------
        RunnerError
            When the runner fails (a problem of the model or the machine, not of an
            instance: the caller retries or reports it).
        """
        results: list[CxrAnalysis | None] = []
        pending: list[tuple[int, Prepared, GateReport, DisplayImage]] = []
        for dataset in datasets:
            index = len(results)
            try:
                display = display_array(dataset)
            except PixelDataError as exc:
                results.append(self._refused(ResultState.FAILED, exc.reason, exc.reason_vi))
                continue
            report = run_gates(dataset, display, config=self.gate_config)
            if not report.passed:
                failure = report.failures[0] if report.failures else None
                reason_en = failure.reason_en if failure else "the quality gates did not all run"
                reason_vi = failure.reason_vi if failure else "Không chạy đủ các bước kiểm tra ảnh"
                results.append(self._refused(ResultState.UNGRADABLE, reason_en, reason_vi, report))
                continue
            prepared = prepare_display(display, self.spec)
            results.append(None)
            pending.append((index, prepared, report, display))
        step = max(1, self.runner.max_batch)
        for start in range(0, len(pending), step):
            chunk = pending[start : start + step]
            batch = np.stack([prepared.array for _, prepared, _, _ in chunk])
            batch = batch.astype(self.runner.input_dtype, copy=False)
            outputs = self.runner.run(batch)
            grad_cams = self._grad_cams(batch, outputs)
            for row, (index, prepared, report, display) in enumerate(chunk):
                results[index] = self._conclude(
                    outputs, row, prepared, report, display, grad_cams.get(row, {})
                )
        return [result for result in results if result is not None]

    def _grad_cams(
        self, batch: NDArray[Any], outputs: Mapping[str, NDArray[Any]]
    ) -> dict[int, dict[int, NDArray[np.float32]]]:
        """Row → target index → Grad-CAM map, for the positive findings of each row."""
        if self._gradients is None or self._features is None:
            return {}
        logits = np.asarray(outputs[self._logits], dtype=np.float64)
        if logits.ndim != 2 or logits.shape[1] != len(self.manifest.targets):
            return {}
        thresholds = np.array([t.threshold for t in self.manifest.targets])
        with np.errstate(invalid="ignore"):
            positive = _sigmoid(logits) >= thresholds
        wanted = sorted({int(i) for i in np.flatnonzero(positive.any(axis=0))})
        if not wanted:
            return {}
        features, gradients = self._gradients(
            batch, score_output=self._logits, feature_output=self._features, targets=wanted
        )
        maps: dict[int, dict[int, NDArray[np.float32]]] = {}
        for row in range(len(batch)):
            for column, target in enumerate(wanted):
                if not positive[row, target]:
                    continue
                try:
                    cam = grad_cam_map(features[row], gradients[row, column])
                except ValueError:  # not finite: that finding fails, see _conclude
                    continue
                maps.setdefault(row, {})[target] = cam
        return maps

    def _refused(
        self,
        state: ResultState,
        reason_en: str,
        reason_vi: str,
        report: GateReport | None = None,
    ) -> CxrAnalysis:
        return CxrAnalysis(
            state=state,
            model_name=self.manifest.name,
            model_version=self.manifest.version,
            reason_en=reason_en,
            reason_vi=reason_vi,
            gate_report=report,
        )

    def _conclude(
        self,
        outputs: Mapping[str, NDArray[Any]],
        row: int,
        prepared: Prepared,
        report: GateReport,
        display: DisplayImage,
        grad_cams: Mapping[int, NDArray[np.float32]],
    ) -> CxrAnalysis:
        targets = self.manifest.targets
        logits = np.asarray(outputs[self._logits][row], dtype=np.float64).reshape(-1)
        if logits.shape != (len(targets),):
            return self._refused(
                ResultState.FAILED,
                f"model output {self._logits!r} has {logits.size} scores per image, "
                f"the manifest lists {len(targets)} targets",
                "Số điểm đầu ra của mô hình không khớp với danh sách chẩn đoán",
                report,
            )
        bad = [t.key for t, v in zip(targets, logits, strict=True) if not math.isfinite(v)]
        if bad:
            return self._refused(
                ResultState.FAILED,
                f"model output {self._logits!r} is not finite (NaN or infinity) for {bad}",
                _FAILED_VI,
                report,
            )
        probabilities = _sigmoid(logits)
        findings = tuple(
            ModelFinding.from_target(target, float(p))
            for target, p in zip(targets, probabilities, strict=True)
        )
        heatmaps: dict[str, NDArray[np.float32]] = {}
        positives = [i for i, finding in enumerate(findings) if finding.positive]
        if positives and self.explanation == "grad-cam":
            missing = [findings[i].key for i in positives if i not in grad_cams]
            if missing:
                return self._refused(
                    ResultState.FAILED,
                    f"Grad-CAM of {missing} is not finite (NaN or infinity)",
                    _FAILED_VI,
                    report,
                )
            for i in positives:
                original = np.clip(prepared.to_original(grad_cams[i]), 0.0, 1.0)
                heatmaps[findings[i].key] = original.astype(np.float32, copy=False)
        elif (
            positives
            and self.explanation == "cam"
            and self._class_weights is not None
            and self._features is not None
        ):
            features = np.asarray(outputs[self._features][row], dtype=np.float64)
            if features.ndim != 3 or features.shape[0] != self._class_weights.shape[1]:
                return self._refused(
                    ResultState.FAILED,
                    f"model output {self._features!r} has shape {list(features.shape)} per "
                    f"image, the class weights need ({self._class_weights.shape[1]}, h, w)",
                    "Bản đồ đặc trưng của mô hình không khớp với trọng số lớp",
                    report,
                )
            if not np.isfinite(features).all():
                return self._refused(
                    ResultState.FAILED,
                    f"model output {self._features!r} is not finite (NaN or infinity)",
                    _FAILED_VI,
                    report,
                )
            for i in positives:
                cam = class_activation_map(features, self._class_weights[i])
                original = np.clip(prepared.to_original(cam), 0.0, 1.0)
                heatmaps[findings[i].key] = original.astype(np.float32, copy=False)
        return CxrAnalysis(
            state=ResultState.COMPLETE,
            model_name=self.manifest.name,
            model_version=self.manifest.version,
            findings=findings,
            heatmaps=heatmaps,
            gate_report=report,
            explanation=self.explanation if heatmaps else "",
            display=display,
        )


def _sigmoid(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """Logistic function without overflow warnings for large magnitudes."""
    result: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * logits))
    return result


def _load_class_weights(path: Path, targets: int) -> NDArray[np.float64]:
    try:
        weights = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RunnerError(f"class weights {path} cannot be read: {exc}") from None
    if weights.ndim != 2 or weights.shape[0] != targets:
        raise RunnerError(
            f"class weights {path} must have shape [{targets}, C], "
            f"shape {list(weights.shape)} is given"
        )
    array = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(array).all():
        raise RunnerError(f"class weights {path} hold values that are not finite")
    return array


def _json_value(value: float | str) -> float | str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

"""Running the chest X-ray pipeline on local files, without a server (``soi infer``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicom_gateway import collect_files
from inference import CxrAnalysis, CxrPipeline, PixelDataError, read_dataset
from inference.explain import heatmap_files, preliminary_label
from inference.pixels import display_array, to_grey
from models import ModelManifest, ModelRegistry

__all__ = [
    "METRIC_TOLERANCES",
    "InferredInstance",
    "InferredStudy",
    "MetricDifference",
    "compare_metrics",
    "infer_files",
]

#: How far a retrained model's test metric may lie from the registered one and still
#: count as reproduced (run-to-run noise of CPU kernels; the split and seeds are fixed).
METRIC_TOLERANCES = {"auroc": 0.02, "sensitivity": 0.05, "specificity": 0.05}


@dataclass
class InferredInstance:
    """One file's analysis and where its heatmaps were written."""

    path: Path
    sop_instance_uid: str
    analysis: CxrAnalysis | None
    error: str = ""
    heatmap_files: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values: the analysis plus the heatmap files per finding."""
        body: dict[str, Any] = {"path": str(self.path), "sop_instance_uid": self.sop_instance_uid}
        if self.analysis is None:
            body.update({"state": "failed", "reason_en": self.error, "reason_vi": self.error})
            return body
        body.update(self.analysis.to_json())
        for finding in body.get("findings", []):
            finding["heatmap"] = self.heatmap_files.get(finding["key"])
        return body


@dataclass
class InferredStudy:
    """The instances of one study, as ``soi infer --json`` prints them."""

    study_instance_uid: str
    instances: list[InferredInstance]

    def to_json(self) -> dict[str, Any]:
        """One JSON object per study."""
        return {
            "study_instance_uid": self.study_instance_uid,
            "instances": [instance.to_json() for instance in self.instances],
        }


def infer_files(
    paths: Sequence[Path],
    *,
    registry_root: Path,
    heatmap_dir: Path,
    model_name: str = "cxr",
    version: str | None = None,
    threads: int = 2,
) -> list[InferredStudy]:
    """Analyse DICOM files (and folders of them) with a registered model.

    Raises
    ------
    models.ModelError
        No such model or version in the registry, or its files do not verify.
    """
    model = ModelRegistry(registry_root).get(model_name, version)
    pipeline = CxrPipeline(model, threads=threads)
    studies: dict[str, list[InferredInstance]] = {}
    try:
        for path in collect_files(paths):
            instance, study_uid = _infer_one(pipeline, path, heatmap_dir)
            studies.setdefault(study_uid, []).append(instance)
    finally:
        pipeline.close()
    return [InferredStudy(uid, items) for uid, items in studies.items()]


def _infer_one(
    pipeline: CxrPipeline, path: Path, heatmap_dir: Path
) -> tuple[InferredInstance, str]:
    try:
        dataset = read_dataset(path)
    except PixelDataError as exc:
        return InferredInstance(path, "", None, error=exc.reason), ""
    uid = str(dataset.get("SOPInstanceUID", ""))
    analysis = pipeline.analyse(dataset)
    instance = InferredInstance(path, uid, analysis)
    if analysis.heatmaps:
        folder = heatmap_dir / (uid or path.stem)
        instance.heatmap_files = _write_heatmaps(dataset, analysis, folder)
    return instance, str(dataset.get("StudyInstanceUID", ""))


def _write_heatmaps(dataset: Any, analysis: CxrAnalysis, folder: Path) -> dict[str, dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    display = analysis.display if analysis.display is not None else display_array(dataset)
    grey = to_grey(display).array
    written: dict[str, dict[str, str]] = {}
    by_key = {finding.key: finding for finding in analysis.findings}
    for key, heatmap in analysis.heatmaps.items():
        finding = by_key[key]
        label = preliminary_label(finding.display_en, finding.display_vi, finding.probability)
        array_bytes, png_bytes = heatmap_files(grey, heatmap, label=label)
        png, npy = folder / f"{key}.png", folder / f"{key}.npy"
        png.write_bytes(png_bytes)
        npy.write_bytes(array_bytes)
        written[key] = {"overlay": str(png), "array": str(npy)}
    return written


@dataclass(frozen=True, slots=True)
class MetricDifference:
    """One test metric of one finding: registered, retrained, and whether they agree."""

    key: str
    metric: str
    registered: float
    retrained: float
    tolerance: float

    @property
    def within(self) -> bool:
        """Whether the difference is within the tolerance."""
        return abs(self.retrained - self.registered) <= self.tolerance


def compare_metrics(reference: ModelManifest, metrics: Sequence[Any]) -> list[MetricDifference]:
    """Compare retrained test metrics (``LabelMetrics``) with a registered manifest's.

    A finding or metric the manifest lacks counts as a difference (``nan`` registered).
    """
    per_target = reference.eval_metrics.get("per_target", {})
    rows: list[MetricDifference] = []
    for metric in metrics:
        registered = per_target.get(metric.key, {})
        for name, tolerance in METRIC_TOLERANCES.items():
            value = (registered.get(name) or {}).get("value")
            rows.append(
                MetricDifference(
                    key=metric.key,
                    metric=name,
                    registered=float("nan") if value is None else float(value),
                    retrained=float(getattr(metric, name).value),
                    tolerance=tolerance,
                )
            )
    return rows

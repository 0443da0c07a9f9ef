"""``soi train`` and ``soi infer``: the models, from the command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from inference import InferenceError
from models import ModelError, ModelManifest, ModelRegistry
from soi.cli.options import fail
from soi.services.infer import MetricDifference, compare_metrics, infer_files
from soi.settings import SHIPPED_MODELS_DIR

__all__ = ["infer_command", "train_app"]

train_app = typer.Typer(help="Train and register a model version.", no_args_is_help=True)

RegistryOpt = Annotated[
    Path,
    typer.Option(
        "--registry", help="Model registry folder.", envvar="SOI_MODELS_DIR", show_default=False
    ),
]


@train_app.command("cxr")
def train_cxr_command(
    work_dir: Annotated[Path, typer.Option(help="Folder for phantoms and checkpoints.")] = Path(
        "soi-train"
    ),
    registry: RegistryOpt = SHIPPED_MODELS_DIR,
    size: Annotated[str, typer.Option(help="tiny (a minute) or shipped (about 15 min).")] = (
        "shipped"
    ),
    version: Annotated[
        str | None, typer.Option(help="Version to register (default: the configuration's).")
    ] = None,
    reproduce: Annotated[
        bool,
        typer.Option(
            "--reproduce",
            help="Retrain the registry's active version without registering it and compare "
            "its test metrics with the registered ones; exit 1 if they differ.",
        ),
    ] = False,
) -> None:
    """Train the chest X-ray model on Soi's synthetic phantoms and register it."""
    try:
        from training.cxr import CxrTrainConfig, train_cxr
    except ImportError as exc:
        raise fail(
            f"training needs PyTorch and MONAI ({exc.name} is missing): pip install -e '.[train]'"
        ) from None
    if size not in ("tiny", "shipped"):
        raise fail(f"--size must be tiny or shipped, {size!r} is given")
    make = CxrTrainConfig.tiny if size == "tiny" else CxrTrainConfig.shipped
    config = make(work_dir, registry_root=None if reproduce else registry)
    reference: ModelManifest | None = None
    if reproduce:
        try:
            reference = ModelRegistry(registry).get(config.model_name).manifest
        except ModelError as exc:
            raise fail(f"nothing to reproduce: {exc}") from None
    if version is not None:
        config = dataclasses.replace(config, version=version)
    try:
        result = train_cxr(config)
    except (ModelError, ValueError) as exc:
        raise fail(str(exc)) from None
    table = Table("Finding", "AUROC (95 % CI)", "Threshold", "Sensitivity", "Specificity")
    for metric in result.metrics:
        table.add_row(
            metric.key,
            _ci(metric.auroc),
            f"{metric.threshold:.4f}",
            _ci(metric.sensitivity),
            _ci(metric.specificity),
        )
    Console(width=160).print(table)
    if reference is not None:
        differences = compare_metrics(reference, result.metrics)
        _print_comparison(reference, differences)
        if any(not row.within for row in differences):
            raise fail("the retrained model does not reproduce the registered metrics")
        typer.echo(
            f"Reproduced {reference.name} {reference.version}: every test metric within "
            "tolerance (nothing registered)."
        )
        return
    typer.echo(
        f"Registered {config.model_name} {config.version} in {result.registered_dir} "
        f"(ONNX parity max abs diff {result.parity_max_abs_diff:.2e}). "
        "Trained and evaluated on synthetic phantoms only: no clinical performance is claimed."
    )


def _print_comparison(reference: ModelManifest, rows: list[MetricDifference]) -> None:
    table = Table(
        "Finding", "Metric", f"{reference.version} (registered)", "Retrained", "Δ", "Tolerance"
    )
    for row in rows:
        table.add_row(
            row.key,
            row.metric,
            f"{row.registered:.4f}",
            f"{row.retrained:.4f}",
            f"{row.retrained - row.registered:+.4f}",
            f"±{row.tolerance:g}" + ("" if row.within else "  ✗"),
        )
    Console(width=160).print(table)


def _ci(interval: Any) -> str:
    return f"{interval.value:.3f} ({interval.low:.3f}–{interval.high:.3f})"


def infer_command(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders.", exists=True)],
    registry: RegistryOpt = SHIPPED_MODELS_DIR,
    model: Annotated[str, typer.Option(help="Model name.")] = "cxr",
    version: Annotated[str | None, typer.Option(help="Model version (default: active).")] = None,
    heatmaps: Annotated[Path, typer.Option(help="Folder for heatmap overlays.")] = Path(
        "soi-heatmaps"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per study.")] = False,
) -> None:
    """Run the chest X-ray pipeline on local files, without a server."""
    try:
        studies = infer_files(
            paths, registry_root=registry, heatmap_dir=heatmaps, model_name=model, version=version
        )
    except (ModelError, InferenceError) as exc:
        raise fail(f"{exc}; train and register one with `soi train cxr`") from None
    if as_json:
        for study in studies:
            typer.echo(json.dumps(study.to_json(), ensure_ascii=False))
        return
    table = Table("File", "State", "Finding", "Probability", "Threshold", "Positive", "Heatmap")
    for study in studies:
        for instance in study.instances:
            analysis = instance.analysis
            if analysis is None or not analysis.findings:
                reason = instance.error if analysis is None else analysis.reason_en
                state = "failed" if analysis is None else analysis.state.value
                table.add_row(instance.path.name, state, reason, "", "", "", "")
                continue
            for finding in analysis.findings:
                files = instance.heatmap_files.get(finding.key, {})
                table.add_row(
                    instance.path.name,
                    analysis.state.value,
                    finding.display_en,
                    f"{finding.probability:.3f}",
                    f"{finding.threshold:.3f}",
                    "yes" if finding.positive else "no",
                    files.get("overlay", ""),
                )
    Console(width=200).print(table)
    typer.echo("AI results are preliminary: not a diagnosis until a clinician signs.")

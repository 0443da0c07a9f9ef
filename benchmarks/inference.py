"""Inference speed and memory of the shipped chest X-ray model, ONNX Runtime against PyTorch.

The machine this runs on is shared and noisy, so every comparison is measured in
one go, on the same model, the same inputs and the same cores, interleaving the
contenders round by round; medians are reported.  What it measures:

1. the model alone, on the CPU with 2 threads, at batch 1 and batch 8: images/s
   and p50/p95 latency per call for ONNX Runtime (the ``onnx`` runner), PyTorch
   eager (``training.cxr.network.CxrNet`` of the shipped configuration with the
   weights of the registered TorchScript file, checked to give the same outputs
   within 1e-4 before anything is timed) and TorchScript (the ``torch`` runner);
2. the pixel pipeline on 2048 x 2048, 16-bit DICOM files (``read_dataset`` then
   ``prepare``), per image;
3. one chest radiograph's full inference with its heatmaps, as the job worker
   does it: ``read_dataset``, ``CxrPipeline.analyse`` (gates, model, heatmaps:
   CAM on ONNX Runtime, Grad-CAM on PyTorch) and ``heatmap_files`` (stored
   ``.npy`` and overlay PNG) for every positive finding;
4. the peak resident memory of ``soi serve`` with the model loaded, after it has
   received a few studies from DCMTK ``storescu`` and finished their jobs.

The inputs are synthetic chest radiographs (``training.phantoms``), DX For
Presentation, 2048 x 2048, 16 bits allocated, written to disk once and read from
the page cache.

Usage::

    .venv/bin/python benchmarks/inference.py              # full run, a few minutes
    .venv/bin/python benchmarks/inference.py --quick      # under 2 minutes
    .venv/bin/python benchmarks/inference.py --repeats 40 --serve-backends onnx

MiB are 2**20 bytes; ms are milliseconds of wall-clock time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# torch.jit.load warns that it is deprecated on every load; the figures do not care.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)

import torch  # noqa: E402

from benchmarks.soi_server import SoiServer, benchmark_folder  # noqa: E402
from inference.cxr import CxrPipeline  # noqa: E402
from inference.explain import (  # noqa: E402
    HEATMAP_STORE_SIDE,
    OVERLAY_PNG_LEVEL,
    OVERLAY_SIDE,
    heatmap_files,
    preliminary_label,
    render_overlay,
    shrink,
)
from inference.loading import load_runner  # noqa: E402
from inference.pixels import InputSpec, prepare, read_dataset, to_grey  # noqa: E402
from models import ModelRegistry, RegisteredModel  # noqa: E402
from tests.support.dcmtk import storescu  # noqa: E402
from tests.support.tools import MissingBinaryError, find_binary  # noqa: E402
from training.cxr.config import CxrTrainConfig  # noqa: E402
from training.cxr.network import CxrNet  # noqa: E402
from training.labels import CxrFinding  # noqa: E402
from training.phantoms import generate_cxr, phantom_to_dicom  # noqa: E402

MIB = 2**20
GIB = 2**30
THREADS = 2
SIZE = 2048
BATCHES = (1, 8)
PARITY_TOLERANCE = 1e-4
MODEL_NAME = "cxr"
REGISTRY = REPO_ROOT / "models" / "registry"
CALLING_AET = "STORESCU"
#: The job states that end a study's wait; ``failed`` ends it too, as a failure.
DONE_STATES = frozenset({"done", "ungradable"})
TERMINAL_STATES = DONE_STATES | {"failed"}

#: The issue's targets.
TARGET_RATIO = 2.0
TARGET_PIXELS_MS = 20.0
TARGET_FULL_P95_MS = 500.0
TARGET_RSS_BYTES = GIB

#: Findings drawn on the synthetic radiographs, cycled over the images.
FINDING_SETS: tuple[frozenset[CxrFinding], ...] = (
    frozenset({CxrFinding.CARDIOMEGALY}),
    frozenset({CxrFinding.PLEURAL_EFFUSION}),
    frozenset({CxrFinding.PNEUMOTHORAX}),
    frozenset({CxrFinding.CONSOLIDATION, CxrFinding.CARDIOMEGALY}),
)

Batch = npt.NDArray[np.float32]
ModelFn = Callable[[Batch], Mapping[str, npt.NDArray[Any]]]

# A wide table even when the output is a file or a pipe.
console = Console() if sys.stdout.isatty() else Console(width=140)


# -- figures ------------------------------------------------------------------


@dataclass
class Timings:
    """Wall-clock durations of repeated runs of one thing, in seconds."""

    seconds: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        """Record one run."""
        self.seconds.append(seconds)

    def percentile_ms(self, q: float) -> float | None:
        """The ``q``-th percentile in milliseconds (linear interpolation), None if empty."""
        if not self.seconds:
            return None
        return float(np.percentile(np.asarray(self.seconds), q)) * 1e3

    @property
    def p50_ms(self) -> float | None:
        """Median in milliseconds."""
        return self.percentile_ms(50.0)

    @property
    def p95_ms(self) -> float | None:
        """95th percentile in milliseconds."""
        return self.percentile_ms(95.0)


@dataclass
class ModelFigures:
    """One backend at one batch size: per-call latencies and per-round throughput."""

    backend: str
    batch: int
    calls: Timings = field(default_factory=Timings)
    rounds_images_per_s: list[float] = field(default_factory=list)

    @property
    def images_per_s(self) -> float | None:
        """Median over rounds of images per second."""
        return _median(self.rounds_images_per_s)


@dataclass
class FullFigures:
    """Full inference with heatmaps on one backend, over every image and repeat."""

    backend: str
    explanation: str = ""
    total: Timings = field(default_factory=Timings)
    read: Timings = field(default_factory=Timings)
    analyse: Timings = field(default_factory=Timings)
    heatmaps: Timings = field(default_factory=Timings)
    per_heatmap: Timings = field(default_factory=Timings)
    per_image: dict[str, Timings] = field(default_factory=dict)
    positives: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class ServeFigures:
    """One ``soi serve`` run: start-up, memory and the studies' jobs."""

    backend: str
    startup_s: float | None = None
    idle_rss: int | None = None
    peak_rss: int | None = None
    sent: int = 0
    finished: dict[str, str] = field(default_factory=dict)
    seconds_to_result: list[float] = field(default_factory=list)
    positives: int = 0
    overlays: int = 0
    explanation: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every study was stored and its job ended done or ungradable."""
        return (
            not self.problems
            and len(self.finished) == self.sent
            and all(state in DONE_STATES for state in self.finished.values())
        )


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _rotated(names: Sequence[str], shift: int) -> list[str]:
    """``names`` starting at ``shift`` (so no contender always runs first)."""
    shift %= len(names)
    return [*names[shift:], *names[:shift]]


# -- inputs -------------------------------------------------------------------


def generate_images(folder: Path, count: int, seed: int = 20261123) -> list[Path]:
    """Write ``count`` synthetic 2048 x 2048 DX chest radiographs, each its own study.

    Parameters
    ----------
    folder : pathlib.Path
        Destination (created if needed).
    count : int
        Number of files; the findings drawn cycle through :data:`FINDING_SETS`.
    seed : int, optional
        Seed of the random generator.

    Returns
    -------
    list of pathlib.Path
        The files, about 8.4 MB each.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for index in range(count):
        findings = FINDING_SETS[index % len(FINDING_SETS)]
        phantom = generate_cxr(rng, findings=findings, size=SIZE)
        dataset = phantom_to_dicom(phantom, rng, modality="DX")
        names = "+".join(sorted(f.value for f in findings)) or "normal"
        path = folder / f"cxr-{index + 1:02d}-{names}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def image_label(path: Path) -> str:
    """Short name of a generated image for the report (``01 cardiomegaly``)."""
    parts = path.stem.split("-", 2)
    return f"{parts[1]} {parts[2]}" if len(parts) == 3 else path.stem


def model_inputs(files: Sequence[Path], spec: InputSpec) -> dict[int, Batch]:
    """The model inputs of the images, as one batch per size in :data:`BATCHES`."""
    prepared = [prepare(read_dataset(path), spec).array for path in files]
    return {
        size: np.ascontiguousarray(
            np.stack([prepared[i % len(prepared)] for i in range(size)]), dtype=np.float32
        )
        for size in BATCHES
    }


# -- 1. the model alone ---------------------------------------------------------


def eager_network(model: RegisteredModel) -> CxrNet:
    """The shipped network in eager mode, with the weights of the registered TorchScript file.

    Raises
    ------
    RuntimeError
        If the TorchScript file's parameters do not fit the shipped configuration.
    """
    config = CxrTrainConfig.shipped(Path(tempfile.gettempdir())).net
    path = str(model.runtime_path("torchscript"))
    scripted = torch.jit.load(path, map_location="cpu")  # type: ignore[no-untyped-call]
    network = CxrNet(config)
    network.load_state_dict(scripted.state_dict(), strict=True)
    network.eval()
    return network


def eager_fn(network: CxrNet) -> ModelFn:
    """Run ``network`` the way the runners run their models: no autograd, numpy out."""

    def run(batch: Batch) -> dict[str, npt.NDArray[Any]]:
        with torch.inference_mode():
            logits, features = network(torch.from_numpy(batch))
        return {"logits": logits.numpy(), "features": features.numpy()}

    return run


def _first_call(fn: ModelFn, batch: Batch) -> float:
    """Seconds of one call (the first after loading, when called first)."""
    t0 = time.perf_counter()
    fn(batch)
    return time.perf_counter() - t0


def parity(
    reference: ModelFn, others: Mapping[str, ModelFn], batch: Batch
) -> dict[str, dict[str, float]]:
    """Largest absolute difference of each output of each of ``others`` from ``reference``."""
    expected = reference(batch)
    result: dict[str, dict[str, float]] = {}
    for name, fn in others.items():
        got = fn(batch)
        result[name] = {
            output: float(np.max(np.abs(np.asarray(got[output]) - np.asarray(value))))
            for output, value in expected.items()
        }
    return result


def time_models(
    fns: Mapping[str, ModelFn], batches: Mapping[int, Batch], rounds: int, warmup: int = 10
) -> dict[tuple[str, int], ModelFigures]:
    """Time each model function at each batch size, interleaved round by round.

    Each round runs, per batch size and per backend (in an order rotated every
    round), a block of calls worth 32 images; the block's images per second is one
    throughput sample and each call one latency sample.  ``warmup`` untimed calls
    per backend and batch size come first: TorchScript's profiling executor needs a
    few calls per input shape before it runs at its steady speed.
    """
    figures = {
        (name, size): ModelFigures(backend=name, batch=size) for name in fns for size in batches
    }
    for batch in batches.values():
        for fn in fns.values():
            for _ in range(warmup):
                fn(batch)
    names = list(fns)
    for round_no in range(rounds):
        for size, batch in batches.items():
            calls = max(2, 32 // size)
            for name in _rotated(names, round_no):
                fn = fns[name]
                figure = figures[(name, size)]
                block = 0.0
                for _ in range(calls):
                    t0 = time.perf_counter()
                    fn(batch)
                    elapsed = time.perf_counter() - t0
                    figure.calls.add(elapsed)
                    block += elapsed
                figure.rounds_images_per_s.append(calls * size / block)
    return figures


# -- 2. the pixel pipeline --------------------------------------------------------


def time_pixels(
    files: Sequence[Path], spec: InputSpec, runs: int
) -> tuple[Timings, Timings, Timings]:
    """Time ``read_dataset`` + ``prepare`` on the files, cycling through them.

    Returns
    -------
    tuple of Timings
        Both together, ``read_dataset`` alone and ``prepare`` alone.
    """
    for path in files[:2]:
        prepare(read_dataset(path), spec)
    total, read, prep = Timings(), Timings(), Timings()
    for index in range(runs):
        path = files[index % len(files)]
        t0 = time.perf_counter()
        dataset = read_dataset(path)
        t1 = time.perf_counter()
        prepare(dataset, spec)
        t2 = time.perf_counter()
        total.add(t2 - t0)
        read.add(t1 - t0)
        prep.add(t2 - t1)
    return total, read, prep


# -- 3. one radiograph, with its heatmaps ---------------------------------------------


def full_inference(pipeline: CxrPipeline, path: Path) -> tuple[float, float, float, list[str]]:
    """Read, analyse and render every positive finding's heatmap files, like the job worker.

    Returns
    -------
    tuple
        Seconds to read, to analyse and to make the heatmap files, and the keys of
        the positive findings that got files.
    """
    t0 = time.perf_counter()
    dataset = read_dataset(path)
    t1 = time.perf_counter()
    analysis = pipeline.analyse(dataset)
    t2 = time.perf_counter()
    keys: list[str] = []
    for finding in analysis.positive_findings:
        heatmap = analysis.heatmaps.get(finding.key)
        if heatmap is None or analysis.display is None:
            continue
        grey = to_grey(analysis.display).array
        label = preliminary_label(finding.display_en, finding.display_vi, finding.probability)
        heatmap_files(grey, heatmap, label=label)
        keys.append(finding.key)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, keys


def time_full(
    pipelines: Mapping[str, CxrPipeline], files: Sequence[Path], repeats: int, warmup: int = 3
) -> dict[str, FullFigures]:
    """Time :func:`full_inference` on every image, ``repeats`` times per backend, interleaved.

    ``warmup`` untimed runs per image and backend come first (TorchScript compiles
    its graph for gradients on the first calls).
    """
    figures = {name: FullFigures(backend=name) for name in pipelines}
    for name, pipeline in pipelines.items():
        figure = figures[name]
        figure.explanation = pipeline.explanation
        for path in files:
            analysis = pipeline.analyse(read_dataset(path))
            if analysis.state.value != "complete":
                figure.problems.append(
                    f"{image_label(path)}: {analysis.state.value} ({analysis.reason_en})"
                )
            elif not analysis.positive_findings:
                figure.problems.append(f"{image_label(path)}: no positive finding")
            for _ in range(warmup):
                full_inference(pipeline, path)
    names = list(pipelines)
    for round_no in range(repeats):
        for path in files:
            label = image_label(path)
            for name in _rotated(names, round_no):
                read, analyse, heat, keys = full_inference(pipelines[name], path)
                figure = figures[name]
                figure.total.add(read + analyse + heat)
                figure.read.add(read)
                figure.analyse.add(analyse)
                figure.heatmaps.add(heat)
                if keys:
                    figure.per_heatmap.add(heat / len(keys))
                figure.per_image.setdefault(label, Timings()).add(read + analyse + heat)
                figure.positives[label] = keys
    return figures


def time_heatmap_parts(pipeline: CxrPipeline, path: Path, runs: int) -> dict[str, Timings] | None:
    """Split ``heatmap_files`` of one finding into its steps (resampling, overlay, PNG)."""
    analysis = pipeline.analyse(read_dataset(path))
    finding = next(iter(analysis.positive_findings), None)
    if finding is None or analysis.display is None or finding.key not in analysis.heatmaps:
        return None
    heat = np.asarray(analysis.heatmaps[finding.key], dtype=np.float32)
    label = preliminary_label(finding.display_en, finding.display_vi, finding.probability)
    parts = {name: Timings() for name in ("to_grey", "shrink", "npy", "overlay", "png")}
    for run in range(runs + 1):
        t0 = time.perf_counter()
        grey = to_grey(analysis.display).array
        t1 = time.perf_counter()
        small_grey, small_heat = shrink(grey, OVERLAY_SIDE), shrink(heat, OVERLAY_SIDE)
        stored = shrink(heat, HEATMAP_STORE_SIDE).astype(np.float16)
        t2 = time.perf_counter()
        np.save(io.BytesIO(), stored, allow_pickle=False)
        t3 = time.perf_counter()
        picture = render_overlay(small_grey, small_heat, label=label)
        t4 = time.perf_counter()
        picture.save(io.BytesIO(), format="PNG", optimize=False, compress_level=OVERLAY_PNG_LEVEL)
        t5 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            if run > 0:  # the first run is a warm-up
                parts[name].add(seconds)
    return parts


# -- 4. soi serve ---------------------------------------------------------------------


def wait_for_job(
    server: SoiServer, study_uid: str, timeout: float
) -> tuple[str | None, dict[str, Any] | None]:
    """Poll the study until its ``cxr`` job ends; return the job state and the study."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        body = server.study(study_uid)
        jobs = [j for j in (body or {}).get("jobs", []) if j.get("pipeline") == MODEL_NAME]
        if jobs and all(j.get("state") in TERMINAL_STATES for j in jobs):
            return str(jobs[-1]["state"]), body
        time.sleep(0.1)
    return None, body


def run_serve(
    executable: Path, backend: str, files: Sequence[Path], folder: Path, timeout: float
) -> ServeFigures:
    """Start ``soi serve``, send each file (its own study) and wait for its job, then stop."""
    figures = ServeFigures(backend=backend)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        serve = SoiServer(
            executable,
            folder,
            args=("--quiet-period", "1"),
            env={
                "SOI_MODELS_DIR": str(REGISTRY),
                "SOI_INFERENCE_BACKEND": backend,
                "SOI_INFERENCE_DEVICE": "cpu",
                "SOI_INFERENCE_THREADS": str(THREADS),
            },
        )
        with serve as server:
            figures.startup_s = server.startup_s
            time.sleep(1.0)
            figures.idle_rss = server.rss_bytes()
            for path in files:
                study_uid = str(read_dataset(path).StudyInstanceUID)
                run = storescu(
                    [path],
                    port=server.dicom_port,
                    called_aet=server.aet,
                    calling_aet=CALLING_AET,
                    extra=("-R",),
                    timeout=timeout,
                )
                figures.sent += 1
                sent_at = time.perf_counter()
                if not run.all_succeeded:
                    figures.problems.append(f"{path.name}: {run.summary()}")
                    continue
                state, body = wait_for_job(server, study_uid, timeout)
                if state is None:
                    figures.problems.append(
                        f"{path.name}: no finished {MODEL_NAME} job within {timeout:.0f} s"
                    )
                    continue
                figures.seconds_to_result.append(time.perf_counter() - sent_at)
                figures.finished[study_uid] = state
                results = (body or {}).get("results", [])
                if results:
                    current = results[-1]
                    findings = [f for f in current.get("findings", []) if f.get("positive")]
                    figures.positives += len(findings)
                    figures.overlays += sum(1 for f in findings if f.get("overlay"))
                    figures.explanation = str(
                        current.get("details", {}).get("explanation", figures.explanation)
                    )
            figures.peak_rss = server.peak_rss_bytes()
    except (RuntimeError, OSError, MissingBinaryError) as exc:
        figures.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def soi_available(executable: Path) -> tuple[bool, str]:
    """Tell whether ``soi serve`` and DCMTK ``storescu`` can be run, and if not, why."""
    if not executable.exists():
        return False, f"{executable} does not exist"
    if find_binary("storescu") is None:
        return False, "DCMTK storescu not found"
    return True, ""


# -- driver -----------------------------------------------------------------------------


@contextmanager
def _section(title: str) -> Iterator[None]:
    """Print ``title``, run the block, then how long it took."""
    console.print(title)
    t0 = time.perf_counter()
    yield
    console.print(f"  [dim]{time.perf_counter() - t0:.1f} s[/dim]")


def _backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - {"onnx", "torch"})
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {unknown}; use onnx and/or torch")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a run of under 2 minutes: 5 repeats, 2 images, soi serve on onnx only",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="rounds of the model comparison and timed runs per image of the full "
        "inference (default 20; 5 with --quick); the pixel pipeline runs 5 x this",
    )
    parser.add_argument(
        "--images", type=int, default=None, help="synthetic radiographs (default 4; 2 with --quick)"
    )
    parser.add_argument(
        "--serve-backends",
        type=_backends,
        default=None,
        help="backends to run soi serve with (default onnx,torch; onnx with --quick)",
    )
    parser.add_argument("--skip-serve", action="store_true", help="do not start soi serve")
    parser.add_argument(
        "--soi",
        type=Path,
        default=Path(sys.executable).parent / "soi",
        help="the soi console script (default: next to this interpreter)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="parent folder of the benchmark's temporary folder (default: the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 20)
    n_images = args.images if args.images is not None else (2 if args.quick else 4)
    serve_backends: list[str] = (
        args.serve_backends
        if args.serve_backends is not None
        else (["onnx"] if args.quick else ["onnx", "torch"])
    )
    if repeats < 1 or n_images < 1:
        parser.error("--repeats and --images must be positive")

    torch.set_num_threads(THREADS)
    model = ModelRegistry(REGISTRY).get(MODEL_NAME)
    manifest = model.manifest
    spec = InputSpec.from_dict(manifest.input)
    console.print(
        f"Model {manifest.name} {manifest.version} ({REGISTRY.relative_to(REPO_ROOT)}); "
        f"torch {torch.__version__}, {THREADS} threads; CPU: {os.cpu_count()} logical cores"
    )
    summary: dict[str, Any] = {
        "model": f"{manifest.name} {manifest.version}",
        "threads": THREADS,
        "repeats": repeats,
        "images": n_images,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    ok = True
    t_start = time.perf_counter()

    with benchmark_folder(
        args.workdir, args.keep, prefix="soi-inference-bench-", say=console.print
    ) as folder:
        console.print(f"Generating {n_images} DX radiographs ({SIZE}x{SIZE}, 16-bit) ...")
        t0 = time.perf_counter()
        files = generate_images(folder / "images", n_images)
        console.print(
            f"  {n_images} files, {files[0].stat().st_size / 1e6:.1f} MB each, "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        # 1. The model alone.
        batches = model_inputs(files, spec)
        onnx_runner = load_runner(model, backend="onnx", threads=THREADS, device="cpu", max_batch=8)
        torch_runner = load_runner(
            model, backend="torch", threads=THREADS, device="cpu", max_batch=8
        )
        torch.set_num_threads(THREADS)
        eager = eager_fn(eager_network(model))
        fns: dict[str, ModelFn] = {
            "onnx": onnx_runner.run,
            "torch eager": eager,
            "torchscript": torch_runner.run,
        }
        first_call = {name: _first_call(fn, batches[1]) for name, fn in fns.items()}
        console.print(
            "First call after loading, batch 1 (PyTorch's first includes its one-time set-up): "
            + ", ".join(f"{name} {seconds * 1e3:.0f} ms" for name, seconds in first_call.items())
        )
        summary["first_call_b1_ms"] = {k: round(v * 1e3, 1) for k, v in first_call.items()}
        diffs = parity(
            eager, {"onnx": onnx_runner.run, "torchscript": torch_runner.run}, batches[8]
        )
        parity_ok = all(v <= PARITY_TOLERANCE for d in diffs.values() for v in d.values())
        worst = {name: max(d.values()) for name, d in diffs.items()}
        console.print(
            "Eager CxrNet (shipped configuration, weights from model.pt) against "
            + ", ".join(f"{name}: max |diff| {value:.2e}" for name, value in worst.items())
            + f" on 8 prepared images: {'match' if parity_ok else 'MISMATCH'} "
            f"(tolerance {PARITY_TOLERANCE:g})"
        )
        summary["parity_max_abs_diff"] = {k: float(f"{v:.3g}") for k, v in worst.items()}
        summary["parity_ok"] = parity_ok
        if not parity_ok:
            ok = False
            console.print("[red]outputs differ: the eager figures are not of the same model[/red]")
        with _section(f"Timing the model: {repeats} rounds of 32 images per backend and batch"):
            model_figures = time_models(fns, batches, repeats)

        # 2. The pixel pipeline.
        with _section(f"Timing the pixel pipeline: {5 * repeats} runs"):
            pixels_total, pixels_read, pixels_prepare = time_pixels(files, spec, 5 * repeats)

        # 3. Full inference of one radiograph with heatmaps.
        pipelines = {
            backend: CxrPipeline(model, backend=backend, threads=THREADS, device="cpu")
            for backend in ("onnx", "torch")
        }
        torch.set_num_threads(THREADS)
        with _section(f"Timing full inference with heatmaps: {repeats} runs per image and backend"):
            full = time_full(pipelines, files, repeats)
            heat_parts = time_heatmap_parts(pipelines["onnx"], files[0], max(5, repeats))
        for pipeline in pipelines.values():
            pipeline.close()
        onnx_runner.close()
        torch_runner.close()

        # 4. soi serve.
        serve: list[ServeFigures] = []
        serve_note = ""
        if args.skip_serve:
            serve_note = "skipped (--skip-serve)"
        else:
            available, why = soi_available(args.soi)
            if not available:
                serve_note = why
            for backend in serve_backends if available else []:
                title = f"soi serve ({backend}): sending {len(files)} studies with storescu"
                with _section(title):
                    figures = run_serve(
                        args.soi, backend, files, folder / f"serve-{backend}", 180.0
                    )
                serve.append(figures)
                for problem in figures.problems:
                    console.print(f"  [red]{problem}[/red]")

    ok = (
        report(
            summary,
            model_figures,
            (pixels_total, pixels_read, pixels_prepare),
            full,
            heat_parts,
            serve,
            serve_note,
        )
        and ok
    )
    summary["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(summary, sort_keys=True))
    return 0 if ok else 1


def _met(value: float | None, target: float, *, below: bool) -> str:
    if value is None:
        return "-"
    passed = value <= target if below else value >= target
    return "[green]yes[/green]" if passed else "[red]no[/red]"


def report(
    summary: dict[str, Any],
    model_figures: Mapping[tuple[str, int], ModelFigures],
    pixels: tuple[Timings, Timings, Timings],
    full: Mapping[str, FullFigures],
    heat_parts: Mapping[str, Timings] | None,
    serve: Sequence[ServeFigures],
    serve_note: str,
) -> bool:
    """Print the tables, fill ``summary``; return False when a run went wrong.

    A missed target is reported, not counted as a run that went wrong.
    """
    _report_model(summary, model_figures)
    _report_per_image(summary, pixels, full, heat_parts)
    ok = _report_serve(summary, serve, serve_note)
    _report_targets(summary, pixels[0], full, serve)
    return ok


def _report_model(
    summary: dict[str, Any], model_figures: Mapping[tuple[str, int], ModelFigures]
) -> None:
    table = Table(title=f"Model only: CPU, {THREADS} threads (images/s: median of rounds)")
    for column in ("backend", "batch", "images/s", "p50 ms/call", "p95 ms/call", "onnx ×"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for batch in BATCHES:
        onnx_rate = model_figures[("onnx", batch)].images_per_s
        for (name, size), figure in model_figures.items():
            if size != batch:
                continue
            rate = figure.images_per_s
            ratio = onnx_rate / rate if onnx_rate and rate and name != "onnx" else None
            table.add_row(
                name,
                str(batch),
                _fmt(rate),
                _fmt(figure.calls.p50_ms, 2),
                _fmt(figure.calls.p95_ms, 2),
                _fmt(ratio, 2) if ratio is not None else "",
            )
            key = f"model_{name.replace(' ', '_')}_b{batch}"
            summary[f"{key}_images_per_s"] = _round(rate, 1)
            summary[f"{key}_p50_ms"] = _round(figure.calls.p50_ms, 2)
            summary[f"{key}_p95_ms"] = _round(figure.calls.p95_ms, 2)
            if ratio is not None:
                summary[f"onnx_over_{name.replace(' ', '_')}_b{batch}"] = _round(ratio, 2)
    console.print(table)


def _report_per_image(
    summary: dict[str, Any],
    pixels: tuple[Timings, Timings, Timings],
    full: Mapping[str, FullFigures],
    heat_parts: Mapping[str, Timings] | None,
) -> None:
    total, read, prep = pixels
    table = Table(title=f"Per image ({SIZE}x{SIZE} 16-bit DX, file in the page cache)")
    for column in ("measure", "p50 ms", "p95 ms", "breakdown (p50 ms)"):
        table.add_column(column, justify="right" if column.startswith("p") else "left")
    table.add_row(
        "pixel pipeline: read_dataset + prepare",
        _fmt(total.p50_ms),
        _fmt(total.p95_ms),
        f"read {_fmt(read.p50_ms)}, prepare {_fmt(prep.p50_ms)}",
    )
    summary["pixels_p50_ms"] = _round(total.p50_ms)
    summary["pixels_p95_ms"] = _round(total.p95_ms)
    summary["pixels_read_p50_ms"] = _round(read.p50_ms)
    summary["pixels_prepare_p50_ms"] = _round(prep.p50_ms)
    for name, figure in full.items():
        table.add_row(
            f"full inference + heatmaps, {name} ({figure.explanation or 'no heatmaps'})",
            _fmt(figure.total.p50_ms, 0),
            _fmt(figure.total.p95_ms, 0),
            f"read {_fmt(figure.read.p50_ms)}, "
            f"analyse {_fmt(figure.analyse.p50_ms, 0)} (p95 {_fmt(figure.analyse.p95_ms, 0)}), "
            f"heatmap files {_fmt(figure.heatmaps.p50_ms, 0)} "
            f"({_fmt(figure.per_heatmap.p50_ms, 0)} per finding, "
            f"p95 {_fmt(figure.per_heatmap.p95_ms, 0)})",
        )
        key = f"full_{name}"
        summary[f"{key}_p50_ms"] = _round(figure.total.p50_ms, 1)
        summary[f"{key}_p95_ms"] = _round(figure.total.p95_ms, 1)
        summary[f"{key}_analyse_p50_ms"] = _round(figure.analyse.p50_ms, 1)
        summary[f"{key}_analyse_p95_ms"] = _round(figure.analyse.p95_ms, 1)
        summary[f"{key}_heatmap_files_per_finding_p50_ms"] = _round(figure.per_heatmap.p50_ms, 1)
        summary[f"{key}_heatmap_files_per_finding_p95_ms"] = _round(figure.per_heatmap.p95_ms, 1)
        summary[f"{key}_per_image_p50_p95_ms"] = {
            label: [_round(t.p50_ms, 1), _round(t.p95_ms, 1)]
            for label, t in figure.per_image.items()
        }
        summary[f"{key}_positives"] = figure.positives
        if figure.problems:
            summary[f"{key}_problems"] = figure.problems
    console.print(table)
    for name, figure in full.items():
        for problem in figure.problems:
            console.print(f"[yellow]{name}: {problem}[/yellow]")
        rows = []
        for label, timings in figure.per_image.items():
            keys = ", ".join(figure.positives.get(label, [])) or "-"
            rows.append(f"{label}: {_fmt(timings.p50_ms, 0)} / {_fmt(timings.p95_ms, 0)} ({keys})")
        console.print(
            f"  {name} per image, p50 / p95 ms (positive findings with heatmap files): "
            + "; ".join(rows)
        )
    if heat_parts is not None:
        console.print(
            "  heatmap_files of one finding, p50 ms: "
            + ", ".join(f"{name} {_fmt(t.p50_ms)}" for name, t in heat_parts.items())
            + f" (overlay {OVERLAY_SIDE} px, stored array {HEATMAP_STORE_SIDE} px; "
            "to_grey is the worker's call before it)"
        )
        summary["heatmap_parts_p50_ms"] = {k: _round(t.p50_ms, 1) for k, t in heat_parts.items()}


def _mib(value: int | None) -> float | None:
    return value / MIB if value else None


def _report_serve(summary: dict[str, Any], serve: Sequence[ServeFigures], serve_note: str) -> bool:
    ok = True
    if serve:
        table = Table(title="soi serve with the CXR model loaded (one study per radiograph)")
        for column in (
            "backend",
            "start s",
            "RSS idle MiB",
            "peak RSS MiB",
            "jobs",
            "positives / overlays",
            "s to result (median)",
        ):
            table.add_column(column, justify="left" if column == "backend" else "right")
        for figure in serve:
            states = ", ".join(sorted(set(figure.finished.values()))) or "-"
            table.add_row(
                f"{figure.backend} ({figure.explanation or '-'})",
                _fmt(figure.startup_s),
                _fmt(_mib(figure.idle_rss), 0),
                _fmt(_mib(figure.peak_rss), 0),
                f"{len(figure.finished)}/{figure.sent} {states}",
                f"{figure.positives} / {figure.overlays}",
                _fmt(_median(figure.seconds_to_result)),
            )
            key = f"serve_{figure.backend}"
            summary[f"{key}_startup_s"] = _round(figure.startup_s, 1)
            summary[f"{key}_idle_rss_mib"] = _round(_mib(figure.idle_rss), 0)
            summary[f"{key}_peak_rss_mib"] = _round(_mib(figure.peak_rss), 0)
            summary[f"{key}_jobs"] = sorted(figure.finished.values())
            summary[f"{key}_seconds_to_result_median"] = _round(
                _median(figure.seconds_to_result), 1
            )
            if not figure.ok:
                ok = False
                summary[f"{key}_problems"] = figure.problems[:5] or ["not every job ended done"]
        console.print(table)
        console.print(
            "  s to result: from storescu's end to the job's end, including the 1 s quiet "
            "period and the assembler's and worker's 1 s polls"
        )
    if serve_note:
        console.print(f"[yellow]soi serve not measured: {serve_note}[/yellow]")
        summary["serve_skipped"] = serve_note
    return ok


def _report_targets(
    summary: dict[str, Any],
    pixels: Timings,
    full: Mapping[str, FullFigures],
    serve: Sequence[ServeFigures],
) -> None:
    table = Table(title="Targets")
    for column in ("target", "measured", "met"):
        table.add_column(column, justify="left" if column == "target" else "right")
    met: dict[str, bool | None] = {}
    for batch in BATCHES:
        ratio = summary.get(f"onnx_over_torch_eager_b{batch}")
        table.add_row(
            f"ONNX Runtime ≥ {TARGET_RATIO:g}× PyTorch eager images/s, batch {batch}",
            f"{_fmt(ratio, 2)}×",
            _met(ratio, TARGET_RATIO, below=False),
        )
        met[f"ratio_b{batch}"] = None if ratio is None else ratio >= TARGET_RATIO
    table.add_row(
        f"pixel pipeline ≤ {TARGET_PIXELS_MS:g} ms per image (p50 / p95)",
        f"{_fmt(pixels.p50_ms)} / {_fmt(pixels.p95_ms)} ms",
        _met(pixels.p95_ms, TARGET_PIXELS_MS, below=True),
    )
    met["pixels"] = None if pixels.p95_ms is None else pixels.p95_ms <= TARGET_PIXELS_MS
    for name, figure in full.items():
        p95 = figure.total.p95_ms
        table.add_row(
            f"full inference + heatmaps ≤ {TARGET_FULL_P95_MS:g} ms p95, {name}",
            f"{_fmt(p95, 0)} ms",
            _met(p95, TARGET_FULL_P95_MS, below=True),
        )
        met[f"full_{name}"] = None if p95 is None else p95 <= TARGET_FULL_P95_MS
    for served in serve:
        peak = _mib(served.peak_rss)
        table.add_row(
            f"soi serve peak RSS < 1 GiB, {served.backend}",
            f"{_fmt(peak, 0)} MiB",
            _met(peak, TARGET_RSS_BYTES / MIB, below=True),
        )
        met[f"serve_{served.backend}_rss"] = None if peak is None else peak < TARGET_RSS_BYTES / MIB
    console.print(table)
    summary["targets_met"] = met


if __name__ == "__main__":
    sys.exit(main())

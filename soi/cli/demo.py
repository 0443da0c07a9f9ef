"""``soi demo``: run Soi end to end on the sample studies and show what happened."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from soi.cli.options import fail
from soi.settings import SHIPPED_SAMPLES_DIR

if TYPE_CHECKING:
    from soi.demo import DemoReport, PacsChoice, StudyOutcome

__all__ = ["demo_command"]

_console = Console(width=160)


class _Progress:
    """Shows the current step with a spinner and a bar; finished steps stay as ✓ lines."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: object | None = None
        self._text = ""

    def step(self, text: str) -> None:
        self._finish()
        self._text = text
        self._task = self._progress.add_task(text, total=None)

    def update(self, text: str, done: int, total: int) -> None:
        if self._task is not None:
            self._progress.update(
                self._task,  # type: ignore[arg-type]
                description=f"{self._text}: {text}",
                completed=done,
                total=max(total, 1),
            )

    def note(self, text: str) -> None:
        self._progress.console.print(f"  [dim]{text}[/dim]", highlight=False)

    def _finish(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)  # type: ignore[arg-type]
            self._progress.console.print(f"[green]✓[/green] {self._text}", highlight=False)
            self._task = None

    def close(self) -> None:
        self._finish()


def demo_command(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the PDF reports, heatmaps and receipts.")
    ] = Path("soi-demo"),
    samples: Annotated[
        list[Path] | None,
        typer.Option(
            "--samples",
            exists=True,
            help="DICOM files or folders to send (default: the shipped synthetic CXRs).",
            show_default=False,
        ),
    ] = None,
    pacs: Annotated[
        str,
        typer.Option(help="auto: Orthanc when installed, else Soi's stand-in; orthanc; standin."),
    ] = "auto",
    timeout: Annotated[
        float, typer.Option(min=5, help="Seconds to wait for results and deliveries.")
    ] = 300.0,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep Soi's temporary data folder afterwards.")
    ] = False,
) -> None:
    """Start Soi with a PACS, an EMR and a HIS, send the samples, show results and deliveries."""
    from soi.demo import DemoError, DemoOptions, run_demo  # the receivers load only here

    if pacs not in ("auto", "orthanc", "standin"):
        raise fail(f"--pacs must be auto, orthanc or standin, {pacs!r} is given")
    choice: PacsChoice = pacs  # type: ignore[assignment]
    options = DemoOptions(
        out_dir=out,
        samples=tuple(samples) if samples else (SHIPPED_SAMPLES_DIR / "cxr",),
        pacs=choice,
        timeout=timeout,
        keep=keep,
    )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=_console,
        transient=True,
    ) as bar:
        progress = _Progress(bar)
        try:
            report = run_demo(options, progress)
        except DemoError as exc:
            bar.stop()
            raise fail(str(exc)) from None
        finally:
            progress.close()
    _show(report)
    if not report.ok:
        _console.print(f"[bold red]The demo failed: {len(report.failures)} problem(s)[/]")
        for failure in report.failures:
            _console.print(f"  [red]✗[/red] {failure}", highlight=False)
        raise typer.Exit(code=1)
    _console.print("[bold green]Demo complete: every study read, every document delivered.[/]")


def _show(report: DemoReport) -> None:
    names = [destination.name for destination, _ in report.destinations]
    studies = Table(title="Studies (AI results are PRELIMINARY until a clinician signs)")
    for column in ("Sample", "Quality gate", "Findings above the operating point", *names):
        studies.add_column(column)
    for study in report.studies:
        studies.add_row(study.sample, _gate(study), _findings(study), *_states(study, names))
    _console.print(studies)

    documents = Table(title="Documents and where they went")
    for column in ("Sample", "Destination", "Document", "State", "Tries", "Remote answer"):
        documents.add_column(column, overflow="fold")
    for study in report.studies:
        for document in study.documents:
            documents.add_row(
                study.sample,
                document.destination,
                document.kind,
                document.state,
                str(document.attempts),
                (document.last_error or document.remote_reply)[:90],
            )
    _console.print(documents)

    receivers = Table(title="What each receiving system holds now")
    for column in ("Destination", "System", "Holds"):
        receivers.add_column(column)
    for destination, held in report.destinations:
        holds = ", ".join(f"{count} {kind}" for kind, count in sorted(held.items())) or "nothing"
        receivers.add_row(destination.name, destination.label, holds)
    _console.print(receivers)

    written = Counter(path.suffix for study in report.studies for path in study.outputs)
    _console.print(
        f"Written to {report.out_dir.resolve()}: {written.get('.pdf', 0)} PDF report(s), "
        f"{written.get('.png', 0)} heatmap overlay(s); what the receivers got is in "
        f"{(report.out_dir / 'received').resolve()}, Soi's log in soi.log."
    )
    if report.kept_data_dir is not None:
        kept = report.kept_data_dir / "soi-data"
        _console.print(f"Soi's data folder was kept: soi studies --data-dir {kept}")
    _console.print(
        "[yellow]The chest X-ray model was trained on synthetic phantoms only; "
        "no clinical performance is claimed.[/]"
    )


def _gate(study: StudyOutcome) -> str:
    if study.detail is None or not study.detail.results:
        return "no result"
    result = study.detail.results[-1]
    if result.state == "complete":
        return "passed"
    return f"{result.state}: {result.reason.get('en', '')}"


def _findings(study: StudyOutcome) -> str:
    if study.detail is None or not study.detail.results:
        return ""
    result = study.detail.results[-1]
    positive = [
        f"{f.label} {f.probability:.2f}" + (f" (≥ {f.threshold:.2f})" if f.threshold else "")
        for f in sorted(result.findings, key=lambda f: -f.probability)
        if f.positive
    ]
    if result.state != "complete":
        return ""
    return "\n".join(positive) or "none"


def _states(study: StudyOutcome, names: list[str]) -> list[str]:
    cells = []
    for name in names:
        states = Counter(d.state for d in study.documents if d.destination == name)
        cells.append(", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "—")
    return cells

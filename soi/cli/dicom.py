"""``soi echo`` and ``soi send``: talk DIMSE to another application entity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dicom_gateway import FileResult, GatewayError, Target, collect_files, echo, send

__all__ = ["echo_command", "send_command"]

CallingAeOpt = Annotated[
    str, typer.Option("--calling-ae", help="AE title to call as.", envvar="SOI_CALLING_AE")
]


def _target(text: str) -> Target:
    try:
        return Target.parse(text)
    except ValueError as exc:
        typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None


def echo_command(
    target: Annotated[str, typer.Argument(help="AE@host:port")],
    calling_ae: CallingAeOpt = "SOI-SCU",
) -> None:
    """Check that a DICOM peer answers (C-ECHO)."""
    peer = _target(target)
    try:
        status = echo(peer, calling_ae=calling_ae)
    except GatewayError as exc:
        typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from None
    if status != 0:
        typer.secho(f"C-ECHO to {peer}: status 0x{status:04X}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1)
    typer.echo(f"C-ECHO to {peer}: success")


def send_command(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders.", exists=True)],
    to: Annotated[str, typer.Option("--to", help="AE@host:port")],
    calling_ae: CallingAeOpt = "SOI-SCU",
) -> None:
    """Send DICOM files and folders with C-STORE, showing progress."""
    peer = _target(to)
    total = sum(1 for _ in collect_files(paths))
    with Progress(
        TextColumn("[bold]Sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        transient=False,
    ) as progress:
        task = progress.add_task("send", total=total, last="")

        def on_file(result: FileResult) -> None:
            progress.update(task, advance=1, last=result.path.name)

        try:
            report = send(paths, peer, calling_ae=calling_ae, on_file=on_file)
        except GatewayError as exc:
            progress.stop()
            typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=1) from None
    for result in report.failed:
        status = "not sent" if result.status is None else f"0x{result.status:04X}"
        typer.secho(f"  refused {result.path}: {status} {result.comment}", fg=typer.colors.RED)
    for skipped in report.skipped:
        typer.secho(f"  skipped {skipped.path}: {skipped.comment}", fg=typer.colors.YELLOW)
    typer.echo(
        f"Sent {report.sent} of {len(report.results)} DICOM file(s) to {peer}; "
        f"{len(report.failed)} refused, {len(report.skipped)} skipped (not DICOM)."
    )
    if report.failed:
        raise typer.Exit(code=1)

"""``soi``: serve, send and inspect studies, manage peers and the database."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from dicom_gateway import GatewayError
from inference import InferenceError
from models import ModelError
from soi import __version__
from soi.cli import ai, audit, db, deliveries, demo, dicom, peers, studies, users
from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, fail, settings_or_exit
from soi.logs import configure_logging
from soi.server import run_workers
from soi.server import serve as run_server
from store import StoreError

__all__ = ["app", "main"]

app = typer.Typer(
    name="soi",
    help="Soi: AI-assisted diagnostic imaging service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(peers.app, name="peers")
app.add_typer(peers.facilities_app, name="facilities")
app.add_typer(db.app, name="db")
app.add_typer(ai.train_app, name="train")
app.add_typer(deliveries.app, name="deliveries")
app.add_typer(users.app, name="users")
app.command("infer")(ai.infer_command)
app.command("echo")(dicom.echo_command)
app.command("send")(dicom.send_command)
app.command("studies")(studies.studies_command)
app.command("audit")(audit.audit_command)
app.command("demo")(demo.demo_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soi {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Soi: AI-assisted diagnostic imaging service."""


@app.command()
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    dicom_port: Annotated[
        int | None,
        typer.Option(
            help="DIMSE port (default: 11112).", envvar="SOI_DICOM_PORT", show_default=False
        ),
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(help="HTTP port (default: 8000).", envvar="SOI_HTTP_PORT", show_default=False),
    ] = None,
    ae_title: Annotated[
        str | None,
        typer.Option(
            help="Soi's AE title (default: SOI).", envvar="SOI_AE_TITLE", show_default=False
        ),
    ] = None,
    http_host: Annotated[
        str | None,
        typer.Option(
            help="HTTP bind address (default: 127.0.0.1).",
            envvar="SOI_HTTP_HOST",
            show_default=False,
        ),
    ] = None,
    quiet_period: Annotated[
        float | None,
        typer.Option(
            "--quiet-period",
            help="Seconds without a new instance before a study is stable (default: 30).",
            envvar="SOI_QUIET_PERIOD_SECONDS",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run Soi: DIMSE listener, HTTP API and background workers in one process."""
    settings = settings_or_exit(
        config,
        data_dir=data_dir,
        database_url=database_url,
        dicom_port=dicom_port,
        http_port=http_port,
        ae_title=ae_title,
        http_host=http_host,
        quiet_period_seconds=quiet_period,
    )
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        run_server(settings, echo=typer.echo)
    except _START_ERRORS as exc:
        raise fail(f"cannot start: {exc}") from None


_START_ERRORS = (
    OSError,
    GatewayError,
    StoreError,
    SQLAlchemyError,
    ValueError,
    ModelError,
    InferenceError,
)


@app.command()
def worker(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker threads (default: 1).", envvar="SOI_WORKERS", show_default=False),
    ] = None,
) -> None:
    """Run inference job workers only (national mode: on inference nodes)."""
    settings = settings_or_exit(
        config, data_dir=data_dir, database_url=database_url, workers=workers
    )
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        run_workers(settings, echo=typer.echo)
    except _START_ERRORS as exc:
        raise fail(f"cannot start: {exc}") from None


def main() -> None:
    """Entry point of the ``soi`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

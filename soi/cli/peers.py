"""``soi peers`` and ``soi facilities``: who may send, and for whom."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from soi.cli.options import (
    ConfigOpt,
    DatabaseUrlOpt,
    DataDirOpt,
    cli_database,
    fail,
    settings_or_exit,
)
from soi.runtime import open_database
from store import (
    REPORT_LANGUAGES,
    DuplicateError,
    NotFoundError,
    add_facility,
    add_peer,
    list_facilities,
    list_peers,
    remove_peer,
    set_facility_language,
)

__all__ = ["app", "facilities_app"]

app = typer.Typer(help="DICOM peers allowed to send to Soi.", no_args_is_help=True)
facilities_app = typer.Typer(help="Hospitals, stations and programs.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the peer, e.g. the PACS's.")],
    ae: Annotated[str, typer.Option("--ae", help="Its calling AE title.")],
    host: Annotated[str, typer.Option("--host", help="The address it connects from.")],
    facility: Annotated[str, typer.Option("--facility", help="Code of its facility.")],
    port: Annotated[int | None, typer.Option(help="Its own DIMSE port, to send back.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Allow an AE title calling from an address to send for a facility."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                peer = add_peer(
                    session, name=name, ae_title=ae, host=host, facility_code=facility, port=port
                )
                summary = f"{peer.name}: AE {peer.ae_title} from {peer.host} for {facility}"
        except NotFoundError as exc:
            hint = f"add it first with `soi facilities add {facility} --name NAME`"
            raise fail(f"{exc}; {hint}") from None
        except (DuplicateError, ValueError) as exc:
            raise fail(str(exc)) from None
    typer.echo(f"Peer added: {summary}")


@app.command("list")
def list_(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None
) -> None:
    """List the peers allowed to send."""
    table = Table("Name", "AE title", "Host", "Port", "Facility")
    with (
        cli_database(config, data_dir=data_dir, database_url=database_url) as database,
        database.read() as session,
    ):
        peers = list_peers(session)
        for peer in peers:
            table.add_row(
                peer.name, peer.ae_title, peer.host, str(peer.port or ""), peer.facility.code
            )
    if not peers:
        typer.echo("No peer registered: only the loopback address (this box) may send.")
        return
    Console(width=120).print(table)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The peer's name.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Stop accepting a peer."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                remove_peer(session, name)
        except NotFoundError as exc:
            raise fail(str(exc)) from None
    typer.echo(f"Peer removed: {name}")


#: What ``soi facilities set-language`` takes to leave the language to the setting.
_DEFAULT_LANGUAGE = "default"


def _report_language(value: str, *, allow_default: bool = False) -> str | None:
    """The facility language a command's argument names (``None``: the setting's)."""
    if allow_default and value == _DEFAULT_LANGUAGE:
        return None
    if value not in REPORT_LANGUAGES:
        choices = [*REPORT_LANGUAGES, _DEFAULT_LANGUAGE] if allow_default else REPORT_LANGUAGES
        named = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise fail(f"the report language must be {named}, {value!r} is given")
    return value


@facilities_app.command("add")
def facilities_add(
    code: Annotated[str, typer.Argument(help="Short code, e.g. BV-HAGIANG.")],
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    kind: Annotated[str, typer.Option(help="hospital, station or program.")] = "hospital",
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            help="Language of its reports: vi or en (default: the report_language setting).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Add a facility (an existing one is left as it is: see set-language)."""
    report_language = None if language is None else _report_language(language)
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                add_facility(
                    session, code=code, name=name, kind=kind, report_language=report_language
                )
        except DuplicateError as exc:
            if language is None:
                raise fail(str(exc)) from None
            hint = f"soi facilities set-language {code} {language}"
            raise fail(f"{exc}; change its report language with `{hint}`") from None
        except ValueError as exc:
            raise fail(str(exc)) from None
    written_in = f", reports in {report_language}" if report_language else ""
    typer.echo(f"Facility added: {code} ({name}){written_in}")


@facilities_app.command("set-language")
def facilities_set_language(
    code: Annotated[str, typer.Argument(help="The facility's code.")],
    language: Annotated[
        str,
        typer.Argument(
            help="vi, en, or default (the report_language setting).", show_default=False
        ),
    ],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Choose the language of a facility's reports."""
    report_language = _report_language(language, allow_default=True)
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                set_facility_language(session, code, report_language=report_language)
        except NotFoundError as exc:
            raise fail(f"{exc}; add it with `soi facilities add {code} --name NAME`") from None
    chosen = report_language or "the report_language setting's language"
    typer.echo(f"Facility {code}: reports in {chosen}")


@facilities_app.command("list")
def facilities_list(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None
) -> None:
    """List facilities and the language of their reports."""
    settings = settings_or_exit(config, data_dir=data_dir, database_url=database_url)
    default = f"{_DEFAULT_LANGUAGE} ({settings.report_language})"
    table = Table("Code", "Name", "Kind", "Language")
    database = open_database(settings)
    try:
        with database.read() as session:
            for facility in list_facilities(session):
                table.add_row(
                    facility.code, facility.name, facility.kind, facility.report_language or default
                )
    finally:
        database.dispose()
    Console(width=120).print(table)

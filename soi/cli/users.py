"""``soi users``: people, service accounts and their API tokens."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from soi.auth import MIN_PASSWORD_LENGTH, local_caller
from soi.cli.certificates import cert_app
from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, cli_database, fail
from soi.services import (
    MAX_TOKEN_DAYS,
    change_password,
    create_user,
    issue_token,
    list_user_summaries,
    list_user_tokens,
    revoke_user_token,
    set_user_disabled,
)
from store import PASSWORDLESS_ROLES, DuplicateError, NotFoundError, UserRole

__all__ = ["app"]

app = typer.Typer(help="Users, service accounts and API tokens.", no_args_is_help=True)
app.add_typer(cert_app, name="cert")

PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (no prompt).",
    ),
]


def _read_password(from_stdin: bool) -> str:
    """The new password: from standard input's first line, or typed twice."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise fail("no password on standard input")
        return line
    password: str = typer.prompt(
        f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
        hide_input=True,
        confirmation_prompt=True,
    )
    return password


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Sign-in name, e.g. lan.nguyen.")],
    role: Annotated[
        UserRole,
        typer.Option("--role", help="What the user may do and see.", case_sensitive=False),
    ],
    facility: Annotated[
        str | None,
        typer.Option(
            "--facility",
            help="Code of the facility the user works for (radiologist, technician, "
            "screening_coordinator: required).",
            show_default=False,
        ),
    ] = None,
    program: Annotated[
        str | None,
        typer.Option(
            "--program", help="Screening program (screening_coordinator).", show_default=False
        ),
    ] = None,
    display_name: Annotated[str, typer.Option("--display-name", help="Name as shown.")] = "",
    password_stdin: PasswordStdinOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Add a person (asks for a password) or a service account (integration: tokens only)."""
    password: str | None = None
    if role in PASSWORDLESS_ROLES:
        if password_stdin:
            raise fail(f"a {role.value} account has no password: issue it a token instead")
    else:
        password = _read_password(password_stdin)
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            user = create_user(
                database,
                actor=local_caller(),
                username=username,
                role=role,
                password=password,
                facility_code=facility,
                program=program,
                display_name=display_name,
            )
        except NotFoundError as exc:
            hint = f"add it first with `soi facilities add {facility} --name NAME`"
            raise fail(f"{exc}; {hint}") from None
        except (DuplicateError, ValueError) as exc:
            raise fail(str(exc)) from None
    where = f" at {user.facility}" if user.facility else ""
    typer.echo(f"User added: {user.username} ({user.role}{where})")
    if role in PASSWORDLESS_ROLES:
        typer.echo(f"Issue it a token with `soi users token {user.username}`.")


@app.command("list")
def list_(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None
) -> None:
    """List users: role, facility, program, whether disabled, usable tokens."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        users = list_user_summaries(database)
    if not users:
        typer.echo("No user yet: add the first with `soi users add NAME --role admin`.")
        return
    table = Table("Name", "Display name", "Role", "Facility", "Program", "Disabled", "Tokens")
    for user in users:
        table.add_row(
            user.username,
            user.display_name,
            user.role,
            user.facility or "",
            user.program or "",
            "yes" if user.disabled else "no",
            str(user.active_tokens),
        )
    Console(width=160).print(table)


def _set_disabled(
    username: str,
    disabled: bool,
    config: ConfigOpt,
    *,
    data_dir: DataDirOpt,
    database_url: DatabaseUrlOpt,
) -> None:
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            set_user_disabled(database, actor=local_caller(), username=username, disabled=disabled)
        except NotFoundError as exc:
            raise fail(str(exc)) from None


@app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The user.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Disable a user: no sign-in, no token accepted, browser sessions end."""
    _set_disabled(username, True, config, data_dir=data_dir, database_url=database_url)
    typer.echo(f"User disabled: {username}")


@app.command("enable")
def enable(
    username: Annotated[str, typer.Argument(help="The user.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Enable a disabled user again (their unexpired, unrevoked tokens work again)."""
    _set_disabled(username, False, config, data_dir=data_dir, database_url=database_url)
    typer.echo(f"User enabled: {username}")


@app.command("password")
def password(
    username: Annotated[str, typer.Argument(help="The user.")],
    password_stdin: PasswordStdinOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Set a person's password; their browser sessions end."""
    new_password = _read_password(password_stdin)
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            change_password(
                database, actor=local_caller(), username=username, password=new_password
            )
        except (NotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
    typer.echo(f"Password changed: {username}")


@app.command("token")
def token(
    username: Annotated[str, typer.Argument(help="The user or service account.")],
    days: Annotated[
        float, typer.Option(min=0.001, max=MAX_TOKEN_DAYS, help="Days until it expires.")
    ] = 90,
    name: Annotated[str, typer.Option("--name", help="A label: which system uses it.")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Issue an API token: printed once on standard output, only its digest is kept."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            issued = issue_token(
                database, actor=local_caller(), username=username, days=days, name=name
            )
        except (NotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
    typer.echo(
        f"Token {issued.id} for {issued.username}, valid until {_when(issued.expires_at)}. "
        "It is shown this once: keep it where its system reads it. "
        "Send it as 'Authorization: Bearer TOKEN'.",
        err=True,
    )
    typer.echo(issued.token)


@app.command("tokens")
def tokens(
    username: Annotated[str, typer.Argument(help="The user or service account.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """List a user's tokens (never the tokens themselves): id, label, dates, state."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            rows = list_user_tokens(database, username)
        except NotFoundError as exc:
            raise fail(str(exc)) from None
    if not rows:
        typer.echo(f"{username} has no token.")
        return
    table = Table("ID", "Name", "Created", "Expires", "Last used", "State")
    for row in rows:
        table.add_row(
            str(row.id),
            row.name,
            _when(row.created_at),
            _when(row.expires_at),
            _when(row.last_used_at),
            row.state,
        )
    Console(width=160).print(table)


@app.command("revoke-token")
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="The token's ID (see `soi users tokens`).")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Revoke an API token for good."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            revoked = revoke_user_token(database, actor=local_caller(), token_id=token_id)
        except NotFoundError as exc:
            raise fail(str(exc)) from None
    typer.echo(f"Token {revoked.id} of {revoked.username} revoked.")

"""``cairn alias``: set, move, roll back, delete and trace aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from cairn.cli.common import Json, Yes, as_of_option, client, confirm, in_utc
from cairn.cli.output import message, show_alias_events, show_version

app = typer.Typer(help="Point aliases (@champion, @production) at versions.", no_args_is_help=True)


@app.command("set")
def set_(
    ctx: typer.Context,
    name: str,
    alias: str,
    version: int,
    expect: Annotated[
        int | None,
        typer.Option(min=0, help="Only move if the alias points at this version now (0: not set)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Point ALIAS of model NAME at VERSION (every move is kept in the history)."""
    show_version(client(ctx).set_alias(name, alias, version, expect=expect), as_json)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: str,
    alias: str,
    as_of: Annotated[
        datetime | None,
        as_of_option("Back to the version it pointed at then (UTC if no zone)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Move ALIAS of model NAME back to the version it pointed at before its last move.

    A deleted alias is set again. The move is like `alias set` with --expect its current
    version: audited and kept in the history, so a second rollback undoes the first, and
    refused if the alias moves meanwhile or a protected alias's policy forbids it.
    """
    as_of = in_utc(as_of)
    sdk = client(ctx)
    moved = sdk.rollback_alias(name, alias, as_of=as_of)
    show_version(moved, as_json)
    message(f"@{alias} of {name!r} now points at version {moved.version}")


@app.command("delete")
def delete(ctx: typer.Context, name: str, alias: str, yes: Yes = False) -> None:
    """Remove ALIAS from model NAME (`alias rollback` sets it again)."""
    sdk = client(ctx)
    model = sdk.get_model(name)
    name, pointed = model.name, model.aliases.get(alias)  # the name as the registry spells it
    if pointed is not None:  # else: the delete says the alias does not exist
        confirm(f"Delete alias @{alias} of {name!r} (version {pointed})?", yes)
    sdk.delete_alias(name, alias)
    message(f"deleted @{alias} of {name!r}")


@app.command("history")
def history(
    ctx: typer.Context,
    name: str,
    alias: Annotated[str | None, typer.Argument(help="One alias; all when omitted.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Most recent N events.")] = None,
    as_json: Json = False,
) -> None:
    """Who moved an alias, when, from which version to which; newest first."""
    show_alias_events(client(ctx).alias_history(name, alias, limit=limit), as_json)

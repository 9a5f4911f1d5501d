"""``cairn alias``: set, move, delete and trace aliases."""

from __future__ import annotations

from typing import Annotated

import typer

from cairn.cli.common import Json, client
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
        typer.Option(help="Only move if the alias points at this version now (0: not set)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Point ALIAS of model NAME at VERSION (every move is kept in the history)."""
    show_version(client(ctx).set_alias(name, alias, version, expect=expect), as_json)


@app.command("delete")
def delete(ctx: typer.Context, name: str, alias: str) -> None:
    """Remove ALIAS from model NAME."""
    client(ctx).delete_alias(name, alias)
    message(f"deleted @{alias} of {name!r}")


@app.command("history")
def history(
    ctx: typer.Context,
    name: str,
    alias: Annotated[str | None, typer.Argument(help="One alias; all when omitted.")] = None,
    limit: Annotated[int | None, typer.Option(help="Most recent N events.")] = None,
    as_json: Json = False,
) -> None:
    """Who moved an alias, when, from which version to which; newest first."""
    show_alias_events(client(ctx).alias_history(name, alias, limit=limit), as_json)

"""``cairn models``: registered models."""

from __future__ import annotations

from typing import Annotated

import typer

from cairn.cli.common import (
    AllPages,
    Json,
    MaxResults,
    PageToken,
    Yes,
    client,
    confirm,
    every_page,
    parse_pairs,
)
from cairn.cli.output import message, show_model, show_models

app = typer.Typer(help="Create, read, change and delete registered models.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    description: Annotated[str, typer.Option(help="Markdown description.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    exist_ok: Annotated[
        bool,
        typer.Option(
            "--exist-ok", help="Show the model as it is if it exists, instead of an error."
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Register a new model NAME."""
    sdk, tags = client(ctx), parse_pairs("tag", tag)
    if exist_ok:
        model = sdk.ensure_model(name, description=description, tags=tags)
    else:
        model = sdk.create_model(name, description=description, tags=tags)
    show_model(model, as_json)


@app.command("get")
def get(ctx: typer.Context, name: str, as_json: Json = False) -> None:
    """Show one registered model."""
    show_model(client(ctx).get_model(name), as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    filter: Annotated[str | None, typer.Option(help="e.g. \"name LIKE 'risk.%'\".")] = None,
    order_by: Annotated[
        list[str] | None, typer.Option(help="FIELD [ASC|DESC]; repeatable.")
    ] = None,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    include_deleted: Annotated[bool, typer.Option(help="Show soft-deleted models too.")] = False,
    as_json: Json = False,
) -> None:
    """List registered models, optionally filtered."""
    sdk = client(ctx)
    page = every_page(
        lambda token: sdk.search_models(
            filter,
            order_by=order_by,
            max_results=max_results,
            page_token=token,
            include_deleted=include_deleted,
        ),
        page_token,
        all_pages,
    )
    show_models(page.items, as_json, page.next_page_token)


@app.command("update")
def update(
    ctx: typer.Context,
    name: str,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    as_json: Json = False,
) -> None:
    """Change a model's description."""
    show_model(client(ctx).update_model(name, description=description), as_json)


@app.command("rename")
def rename(ctx: typer.Context, name: str, new_name: str, as_json: Json = False) -> None:
    """Rename NAME to NEW_NAME (versions and aliases follow)."""
    show_model(client(ctx).rename_model(name, new_name), as_json)


@app.command("tag")
def tag(ctx: typer.Context, name: str, key_value: str, as_json: Json = False) -> None:
    """Set a tag: cairn models tag NAME KEY=VALUE."""
    ((key, value),) = parse_pairs("tag", [key_value]).items()
    show_model(client(ctx).set_model_tag(name, key, value), as_json)


@app.command("untag")
def untag(ctx: typer.Context, name: str, key: str, as_json: Json = False) -> None:
    """Delete a tag."""
    show_model(client(ctx).delete_model_tag(name, key), as_json)


@app.command("delete")
def delete(ctx: typer.Context, name: str, yes: Yes = False) -> None:
    """Soft-delete a model and its versions (restore brings them back)."""
    name = client(ctx).get_model(name).name  # as the registry spells it
    confirm(f"Delete registered model {name!r}?", yes)
    client(ctx).delete_model(name)
    message(f"deleted {name!r} (cairn models restore {name!r} brings it back)")


@app.command("restore")
def restore(ctx: typer.Context, name: str, as_json: Json = False) -> None:
    """Restore a soft-deleted model."""
    show_model(client(ctx).restore_model(name), as_json)

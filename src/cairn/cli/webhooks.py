"""``cairn webhooks``: signed push events (the secret is printed once)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from cairn.cli.common import (
    AllPages,
    Json,
    MaxResults,
    PageToken,
    Quiet,
    Yes,
    client,
    confirm,
    every_page,
    quiet,
)
from cairn.cli.output import columns_table, err, message, out, print_json, stamp, yes_no

app = typer.Typer(
    help="Webhooks: signed POSTs of the changes to a scope of models (docs/webhooks.md).",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(metavar="NAME", help="The webhook's name.")]
Events = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        help="An event to send: '*' (all), a family such as 'alias.*', or a name such as "
        "'version.finalize' (repeatable).",
    ),
]
Scope = Annotated[
    str | None,
    typer.Option(
        "--scope",
        help="Models: '*' (the whole registry, instance admin), a prefix such as 'risk.*', "
        "or a model name.",
    ),
]
Secret = Annotated[
    str | None,
    typer.Option(
        "--secret", help="The signing secret (16-256 characters); default: Cairn makes one."
    ),
]
JsonWithSecret = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON: the record with the secret.")
]


def _show(webhook: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(webhook)
        return
    table = Table(show_header=False, box=None)
    table.add_row("name", webhook["name"])
    table.add_row("url", webhook["url"])
    table.add_row("scope", webhook["scope"])
    table.add_row("events", ", ".join(webhook["events"]))
    table.add_row("active", yes_no(webhook["active"]))
    table.add_row("created", f"{stamp(webhook['created_at'])} by {webhook['created_by']}")
    out.print(table)


def _print_secret(made: dict[str, Any], as_json: bool, silent: bool, what: str) -> None:
    if as_json:
        print_json(made)
        return
    if not silent:
        message(f"{what} webhook {made['name']!r}: {made['url']} (scope {made['scope']})")
    sys.stdout.write(made["secret"] + "\n")
    sys.stdout.flush()
    if not silent:
        err.print("[bold yellow]Copy this signing secret now: it is shown only once.[/bold yellow]")


def _show_delivery(delivery: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json(delivery)
    else:
        message(f"{what} delivery {delivery['id']} ({delivery['event']}) to {delivery['webhook']}")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    url: Annotated[str, typer.Option("--url", help="Where events are POSTed (http or https).")],
    event: Events = None,
    scope: Scope = None,
    secret: Secret = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    as_json: JsonWithSecret = False,
    quiet_flag: Quiet = False,
) -> None:
    """Create a webhook and print its signing secret, once.

    The secret alone goes to stdout (SECRET=$(cairn -q webhooks create hook --url ...)).
    """
    made = client(ctx).create_webhook(
        name,
        url,
        events=event or ["*"],
        scope=scope or "*",
        secret=secret,
        active=not paused,
    )
    _print_secret(made, as_json, quiet(ctx), "created")


@app.command("list")
def list_webhooks(ctx: typer.Context, as_json: Json = False) -> None:
    """The webhooks you manage (never their secrets)."""
    hooks = client(ctx).list_webhooks()
    if as_json:
        print_json(hooks)
        return
    table = columns_table("name", "url", "scope", "events", "active", keep=("name",))
    for w in hooks:
        events = ", ".join(w["events"]) if len(w["events"]) < 6 else f"{len(w['events'])} events"
        table.add_row(w["name"], w["url"], w["scope"], events, yes_no(w["active"]))
    out.print(table)


@app.command("get")
def get(ctx: typer.Context, name: Name, as_json: Json = False) -> None:
    """One webhook (never its secret)."""
    _show(client(ctx).get_webhook(name), as_json)


@app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    url: Annotated[str | None, typer.Option("--url", help="A new URL.")] = None,
    event: Events = None,
    scope: Scope = None,
    pause: Annotated[
        bool, typer.Option("--pause", help="Queue nothing more; what is queued waits.")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Deliver again.")] = False,
    as_json: Json = False,
) -> None:
    """Change a webhook's URL, events or scope; pause or resume it."""
    if pause and resume:
        raise typer.BadParameter("give --pause or --resume, not both")
    active = False if pause else True if resume else None
    webhook = client(ctx).update_webhook(name, url=url, events=event, scope=scope, active=active)
    _show(webhook, as_json)


@app.command("delete")
def delete(ctx: typer.Context, name: Name, yes: Yes = False) -> None:
    """Delete a webhook and its delivery log."""
    confirm(f"Delete webhook {name!r} and its delivery log?", yes)
    client(ctx).delete_webhook(name)
    message(f"deleted webhook {name!r}")


@app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    name: Name,
    secret: Secret = None,
    as_json: JsonWithSecret = False,
    quiet_flag: Quiet = False,
) -> None:
    """Give a webhook a new signing secret and print it, once."""
    _print_secret(
        client(ctx).rotate_webhook_secret(name, secret=secret), as_json, quiet(ctx), "rotated"
    )


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    name: Name,
    status: Annotated[
        str | None, typer.Option(help="Only pending, succeeded or failed deliveries.")
    ] = None,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    as_json: Json = False,
) -> None:
    """A webhook's delivery log, newest first."""
    sdk = client(ctx)
    page = every_page(
        lambda token: sdk.list_webhook_deliveries(
            name, status=status, max_results=max_results, page_token=token
        ),
        page_token,
        all_pages,
    )
    if as_json:
        print_json(page.items)
    else:
        table = columns_table(
            "id", "event", "status", "attempts", "last", "created", "delivered", keep=("id",)
        )
        for d in page.items:
            last = str(d["last_status_code"] or d["last_error"] or "-")
            table.add_row(
                d["id"],
                d["event"],
                d["status"],
                str(d["attempts"]),
                last,
                stamp(d["created_at"]),
                stamp(d["delivered_at"]),
            )
        out.print(table)
    if page.next_page_token:
        message(f"more results: --page-token {page.next_page_token}")


@app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    name: Name,
    delivery_id: Annotated[
        str, typer.Argument(metavar="DELIVERY", help="The id from `webhooks deliveries`.")
    ],
    as_json: Json = False,
) -> None:
    """Send a delivery's payload again (a new delivery)."""
    _show_delivery(client(ctx).redeliver_webhook(name, delivery_id), as_json, "queued")


@app.command("ping")
def ping(ctx: typer.Context, name: Name, as_json: Json = False) -> None:
    """Queue a ping event, to check the receiver and its signature check."""
    _show_delivery(client(ctx).ping_webhook(name), as_json, "queued")


@app.command("reencrypt")
def reencrypt(ctx: typer.Context, as_json: Json = False) -> None:
    """Seal every webhook secret with the server's current key (instance admin).

    Secrets still in the clear are sealed, and those sealed with an older key are sealed
    again with the first of CAIRN_SECRET_KEYS: run it after adding a new first key, before
    dropping the old one. Idempotent; all or nothing.
    """
    report = client(ctx).reencrypt_webhook_secrets()
    if as_json:
        print_json(report)
        return
    message(
        f"{report['webhooks']} webhook secret(s) under key {report['key']}: "
        f"{report['encrypted']} sealed from the clear, {report['reencrypted']} re-encrypted "
        f"from an older key, {report['unchanged']} already current"
    )

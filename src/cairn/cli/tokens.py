"""``cairn whoami`` and ``cairn tokens``: who you are, and API tokens (the secret is
printed once)."""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cairn.cli.common import Json, Quiet, Yes, client, confirm, quiet
from cairn.cli.output import columns_table, err, message, out, print_json, stamp, yes_no
from cairn.domain.access import Scope
from cairn.domain.codec import parse_time
from cairn.domain.tokens import MAX_TOKEN_DAYS
from cairn.errors import InvalidParameter

tokens_app = typer.Typer(
    help="API tokens: create (the secret is shown once), list, revoke.", no_args_is_help=True
)
_EXPIRES = re.compile(r"(\d+)\s*([dhw])", re.IGNORECASE)
_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def parse_expires(value: str) -> int | None:
    """``--expires`` as whole days for the API: ``30d``, ``4w``, ``12h``, or ``never`` (None).

    Tokens expire in whole days, so hours round up: ``12h`` is 1 day, ``36h`` 2 days.
    """
    text = value.strip()
    if text.lower() == "never":
        return None
    match = _EXPIRES.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise InvalidParameter(
            f"--expires {value!r}: use a number of days, weeks or hours (30d, 4w, 12h) or never"
        )
    hours = int(match.group(1)) * _HOURS[match.group(2).lower()]
    days = math.ceil(hours / 24)
    if days > MAX_TOKEN_DAYS:
        raise InvalidParameter(
            f"--expires {value!r} is too long: at most {MAX_TOKEN_DAYS}d "
            f"({MAX_TOKEN_DAYS // 365} years), or never"
        )
    return days


# -- cairn whoami ----------------------------------------------------------------------------


def _grant_target(grant: dict[str, Any]) -> str:
    if grant.get("model") is not None:
        return f"model {grant['model']}"
    if grant.get("model_id") is not None:
        return f"model id {grant['model_id']}"
    return f"pattern {grant.get('pattern')}"


def whoami(ctx: typer.Context, as_json: Json = False) -> None:
    """Who the token (or local mode) stands for: user, admin, token scope and grants."""
    me = client(ctx).whoami()
    if as_json:
        print_json(me)
        return
    table = Table(show_header=False, box=None)
    table.add_row("user", str(me["user"]))
    table.add_row("instance admin", yes_no(me["is_admin"]))
    table.add_row("token scope", str(me["scope"]))
    grants = [f"{g['role']} on {_grant_target(g)}" for g in me.get("grants", [])]
    table.add_row("grants", ", ".join(grants) if grants else "-")
    out.print(table)


# -- cairn tokens ----------------------------------------------------------------------------


@tokens_app.command("create")
def create_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the token is for (e.g. ci).")] = "",
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help="read, write or admin: caps what the token may do, whatever its user "
            "holds. A token cannot create one with more scope than itself.",
        ),
    ] = "read",
    expires: Annotated[
        str,
        typer.Option(
            "--expires",
            help="Lifetime: 30d, 4w, 12h (hours round up to whole days), or never.",
        ),
    ] = "90d",
    user: Annotated[
        str | None,
        typer.Option("--user", help="Make it for another user or service account (admin)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON: the record with the secret.")
    ] = False,
    quiet_flag: Quiet = False,
) -> None:
    """Create an API token and print its secret, once: it cannot be shown again.

    The secret alone goes to stdout (capture it: TOKEN=$(cairn -q tokens create --name ci));
    what it is goes to stderr, unless --quiet. --json prints the record with the secret.
    """
    days = parse_expires(expires)
    wanted = Scope.parse(scope).value
    created = client(ctx).create_token(name=name, scope=wanted, expires_days=days, user=user)
    if as_json:
        print_json(created)
        return
    silent = quiet(ctx)
    if not silent:
        label = f" {created['name']!r}" if created["name"] else ""
        until = stamp(created["expires_at"], "never")
        if days is not None and expires.strip().lower().endswith("h"):
            until += f" ({expires.strip()} rounded up to {days} day{'s' if days > 1 else ''})"
        message(
            f"created token {created['id']}{label} for {created['user']}: "
            f"scope {created['scope']}, expires {until}"
        )
    sys.stdout.write(created["token"] + "\n")
    sys.stdout.flush()
    if not silent:
        err.print(
            "[bold yellow]Copy this token now: it is shown only once and cannot be recovered."
            "[/bold yellow]"
        )


@tokens_app.command("list")
def list_tokens(
    ctx: typer.Context,
    all_users: Annotated[
        bool, typer.Option("--all", help="Every user's tokens (admin), not just yours.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Your API tokens (never their secrets): prefix, scope, expiry, last use, revoked."""
    tokens = client(ctx).list_tokens(all_users=all_users)
    if as_json:
        print_json(tokens)
        return
    now = datetime.now(UTC)
    table = columns_table(
        "id",
        "user",
        "name",
        "prefix",
        "scope",
        "created",
        "expires",
        "last used",
        "revoked",
        keep=("id", "user", "prefix"),
    )
    for t in tokens:  # to the minute: last use is only recorded every few minutes
        expires: str | Text = stamp(t["expires_at"], "never", seconds=False)
        expires_at = parse_time(t["expires_at"])
        if expires_at is not None and expires_at <= now:
            expires = Text(f"{expires} (expired)", style="red")
        table.add_row(
            str(t["id"]),
            t["user"],
            t["name"],
            t["prefix"],
            t["scope"],
            stamp(t["created_at"], seconds=False),
            expires,
            stamp(t["last_used_at"], seconds=False),
            Text("yes", style="red") if t["revoked"] else "no",
        )
    out.print(table)


@tokens_app.command("revoke")
def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The id from `tokens list`.")],
    yes: Yes = False,
) -> None:
    """Revoke a token at once (your own, or any as admin); it cannot be undone."""
    confirm(f"Revoke token {token_id}? Anything using it stops working.", yes)
    client(ctx).revoke_token(token_id)
    message(f"revoked token {token_id}")

"""``cairn whoami``, ``cairn tokens``, ``cairn users``, ``cairn groups``, ``cairn grants``.

Who you are, API tokens (the secret is printed once), and the instance admin's tools:
users and service accounts, groups, and roles on models or name patterns.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cairn.cli.common import Json, Yes, client, confirm
from cairn.cli.output import err, message, out, print_json
from cairn.domain.access import Role, Scope
from cairn.domain.codec import parse_time
from cairn.errors import InvalidParameter

tokens_app = typer.Typer(
    help="API tokens: create (the secret is shown once), list, revoke.", no_args_is_help=True
)
users_app = typer.Typer(
    help="Users and service accounts (instance admin): create, list, change.",
    no_args_is_help=True,
)
groups_app = typer.Typer(
    help="Groups of users (instance admin): grants to a group hold for its members.",
    no_args_is_help=True,
)
grants_app = typer.Typer(
    help="Roles (READ < WRITE < MANAGE) of users and groups on a model or a name pattern.",
    no_args_is_help=True,
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
    return math.ceil(hours / 24)


def _when(value: str | None, missing: str = "-", *, seconds: bool = True) -> str:
    parsed = parse_time(value)
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return missing if parsed is None else parsed.astimezone(UTC).strftime(shape)


def _quiet(ctx: typer.Context) -> bool:
    return bool(ctx.find_root().obj.get("quiet"))


def _table(*columns: str, keep: tuple[str, ...] = ()) -> Table:
    """A table whose ``keep`` columns (names, ids) never wrap: the others give way."""
    table = Table()
    for column in columns:
        table.add_column(column, no_wrap=column in keep)
    return table


def _yes_no(value: object) -> str:
    return "yes" if value else "no"


def _read_password(from_stdin: bool, prompt: bool) -> str | None:
    """A password from standard input or a hidden prompt; never from a flag's value."""
    if from_stdin and prompt:
        raise InvalidParameter("give one of --password-stdin or --password-prompt, not both")
    if from_stdin:
        if sys.stdin.isatty():  # typing it here would echo it on the screen
            raise InvalidParameter(
                "--password-stdin reads a pipe; at a terminal use --password-prompt"
            )
        text = sys.stdin.read()
        password = text.removesuffix("\n").removesuffix("\r")  # `echo` adds a newline
        if not password:
            raise InvalidParameter("--password-stdin: standard input is empty")
        return password
    if prompt:
        typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        return typed
    return None


Record = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON answer instead of a message.")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from standard input (one line; for the UI login).",
    ),
]
PasswordPrompt = Annotated[
    bool,
    typer.Option("--password-prompt", help="Ask for the password (hidden, typed twice)."),
]


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
    table.add_row("instance admin", _yes_no(me["is_admin"]))
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
    quiet = _quiet(ctx)
    if not quiet:
        label = f" {created['name']!r}" if created["name"] else ""
        until = _when(created["expires_at"], "never")
        if days is not None and expires.strip().lower().endswith("h"):
            until += f" ({expires.strip()} rounded up to {days} day{'s' if days > 1 else ''})"
        message(
            f"created token {created['id']}{label} for {created['user']}: "
            f"scope {created['scope']}, expires {until}"
        )
    sys.stdout.write(created["token"] + "\n")
    sys.stdout.flush()
    if not quiet:
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
    table = _table(
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
        expires: str | Text = _when(t["expires_at"], "never", seconds=False)
        expires_at = parse_time(t["expires_at"])
        if expires_at is not None and expires_at <= now:
            expires = Text(f"{expires} (expired)", style="red")
        table.add_row(
            str(t["id"]),
            t["user"],
            t["name"],
            t["prefix"],
            t["scope"],
            _when(t["created_at"], seconds=False),
            expires,
            _when(t["last_used_at"], seconds=False),
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


# -- cairn users -----------------------------------------------------------------------------


def _show_user(user: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print_json(user)
        return
    what = "service account" if user["kind"] == "service" else "user"
    flags = [f for f, on in (("admin", user["is_admin"]), ("disabled", user["disabled"])) if on]
    extra = f" ({', '.join(flags)})" if flags else ""
    message(f"{verb} {what} {user['name']!r}{extra}")


@users_app.command("create")
def create_user(
    ctx: typer.Context,
    name: str,
    password_stdin: PasswordStdin = False,
    password_prompt: PasswordPrompt = False,
    service: Annotated[
        bool,
        typer.Option("--service", help="A service account: tokens only, never a password."),
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make it an instance admin.")] = False,
    as_json: Record = False,
) -> None:
    """Create a user (or a service account). It can do nothing until granted a role.

    A password (12 characters or more) is only for the UI login; tokens come from
    `cairn tokens create --user NAME`. It is never given as an option value.
    """
    password = _read_password(password_stdin, password_prompt)
    user = client(ctx).create_user(name, password=password, service=service, admin=admin)
    _show_user(user, as_json, "created")


@users_app.command("list")
def list_users(ctx: typer.Context, as_json: Json = False) -> None:
    """Every user and service account, with their groups."""
    users = client(ctx).list_users()
    if as_json:
        print_json(users)
        return
    table = _table(
        "name", "kind", "admin", "password", "disabled", "groups", "created", "by", keep=("name",)
    )
    for u in users:
        table.add_row(
            u["name"],
            u["kind"],
            _yes_no(u["is_admin"]),
            _yes_no(u["has_password"]),
            Text("yes", style="red") if u["disabled"] else "no",
            ", ".join(u["groups"]),
            _when(u["created_at"]),
            u["created_by"] or "",
        )
    out.print(table)


@users_app.command("set")
def update_user(
    ctx: typer.Context,
    name: str,
    admin: Annotated[
        bool | None,
        typer.Option(
            "--admin/--no-admin", help="Make or unmake an instance admin.", show_default=False
        ),
    ] = None,
    disable: Annotated[
        bool | None,
        typer.Option(
            "--disable/--enable",
            help="Disable (revokes every token and session of the user) or enable again.",
            show_default=False,
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
    password_prompt: PasswordPrompt = False,
    as_json: Record = False,
) -> None:
    """Change a user: admin flag, disabled, password (yours without being admin)."""
    password = _read_password(password_stdin, password_prompt)
    if admin is None and disable is None and password is None:
        raise InvalidParameter(
            "nothing to change: give --admin/--no-admin, --disable/--enable, "
            "--password-stdin or --password-prompt"
        )
    user = client(ctx).update_user(name, password=password, admin=admin, disabled=disable)
    _show_user(user, as_json, "updated")


# -- cairn groups ----------------------------------------------------------------------------


@groups_app.command("create")
def create_group(ctx: typer.Context, name: str) -> None:
    """Create an empty group."""
    client(ctx).create_group(name)
    message(f"created group {name!r}")


@groups_app.command("delete")
def delete_group(ctx: typer.Context, name: str, yes: Yes = False) -> None:
    """Delete a group; the grants it held go with it."""
    confirm(f"Delete group {name!r} and the grants it holds?", yes)
    client(ctx).delete_group(name)
    message(f"deleted group {name!r}")


@groups_app.command("add")
def add_member(ctx: typer.Context, group: str, user: str) -> None:
    """Add USER to GROUP."""
    client(ctx).add_member(group, user)
    message(f"added {user!r} to group {group!r}")


@groups_app.command("remove")
def remove_member(ctx: typer.Context, group: str, user: str) -> None:
    """Remove USER from GROUP."""
    client(ctx).remove_member(group, user)
    message(f"removed {user!r} from group {group!r}")


@groups_app.command("list")
def list_groups(ctx: typer.Context, as_json: Json = False) -> None:
    """Every group and its members."""
    groups = client(ctx).list_groups()
    if as_json:
        print_json(groups)
        return
    table = _table("group", "members", keep=("group",))
    for g in groups:
        table.add_row(g["name"], ", ".join(g["members"]))
    out.print(table)


# -- cairn grants ----------------------------------------------------------------------------

Subject = Annotated[
    str,
    typer.Argument(metavar="SUBJECT", help="user:NAME, group:NAME, or a bare NAME (a user)."),
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="One model, by name (MANAGE on it, or admin).")
]
PatternOption = Annotated[
    str | None,
    typer.Option(
        "--pattern", help="A name pattern: '*', a prefix such as 'risk.*', or a name (admin)."
    ),
]


def _one_target(model: str | None, pattern: str | None) -> None:
    if (model is None) == (pattern is None):
        raise InvalidParameter("give exactly one of --model NAME or --pattern PATTERN")


def _on(model: str | None, pattern: str | None) -> str:
    return f"model {model!r}" if model is not None else f"pattern {pattern!r}"


@grants_app.command("set")
def set_grant(
    ctx: typer.Context,
    subject: Subject,
    role: Annotated[str, typer.Argument(metavar="ROLE", help="READ, WRITE or MANAGE.")],
    model: ModelOption = None,
    pattern: PatternOption = None,
    as_json: Record = False,
) -> None:
    """Give SUBJECT a ROLE on a model or a name pattern (replacing the one it had there)."""
    _one_target(model, pattern)
    parsed = Role.parse(role.upper()).name
    grant = client(ctx).grant(subject, parsed, model=model, pattern=pattern)
    if as_json:
        print_json(grant)
        return
    target = _on(grant["model"], grant["pattern"])
    message(f"granted {grant['role']} on {target} to {grant['subject']}")


@grants_app.command("revoke")
def revoke_grant(
    ctx: typer.Context,
    subject: Subject,
    model: ModelOption = None,
    pattern: PatternOption = None,
) -> None:
    """Take back what SUBJECT holds on a model or a name pattern."""
    _one_target(model, pattern)
    client(ctx).revoke(subject, model=model, pattern=pattern)
    message(f"revoked {subject}'s role on {_on(model, pattern)}")


@grants_app.command("list")
def list_grants(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Grants on this model (MANAGE on it is enough)."),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="Grants held by user:NAME or group:NAME (admin)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Grants: on one model, held by one subject, or (admin) all of them."""
    grants = client(ctx).list_grants(model=model, subject=subject)
    if as_json:
        print_json(grants)
        return
    table = _table("subject", "role", "on", "created", "by", keep=("subject", "role"))
    for g in grants:
        table.add_row(
            g["subject"],
            g["role"],
            _on(g["model"], g["pattern"]),
            _when(g["created_at"]),
            g["created_by"] or "",
        )
    out.print(table)

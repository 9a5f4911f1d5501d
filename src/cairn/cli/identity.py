"""``cairn users``, ``cairn groups``, ``cairn grants``: the instance admin's tools.

Users and service accounts, groups, and roles on models or name patterns. Who you are
and API tokens are in ``tokens.py``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from cairn.cli.common import Json, Yes, client, confirm
from cairn.cli.output import columns_table, message, out, print_json, stamp, yes_no
from cairn.domain.access import Role
from cairn.errors import InvalidParameter

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
    table = columns_table(
        "name", "kind", "admin", "password", "disabled", "groups", "created", "by", keep=("name",)
    )
    for u in users:
        table.add_row(
            u["name"],
            u["kind"],
            yes_no(u["is_admin"]),
            yes_no(u["has_password"]),
            Text("yes", style="red") if u["disabled"] else "no",
            ", ".join(u["groups"]),
            stamp(u["created_at"]),
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
    table = columns_table("group", "members", keep=("group",))
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
    table = columns_table("subject", "role", "on", "created", "by", keep=("subject", "role"))
    for g in grants:
        table.add_row(
            g["subject"],
            g["role"],
            _on(g["model"], g["pattern"]),
            stamp(g["created_at"]),
            g["created_by"] or "",
        )
    out.print(table)

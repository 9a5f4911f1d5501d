"""The ``cairn`` command. Thin over ``cairn.Client``; one handler turns errors into one line."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from cairn import __version__
from cairn.cli import (
    aliases,
    audit,
    deployments,
    diff,
    identity,
    lineage,
    models,
    portability,
    promotion,
    scans,
    serve,
    server,
    signatures,
    tokens,
    transfer,
    versions,
    webhooks,
)
from cairn.cli.output import err
from cairn.client import DEFAULT_URI
from cairn.errors import CairnError

app = typer.Typer(
    name="cairn",
    help="Cairn: a model registry. Versions you can always recover, with the trail that made them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models.app, name="models")
app.add_typer(versions.app, name="versions")
app.add_typer(aliases.app, name="alias")
app.add_typer(server.db_app, name="db")
app.command("server")(server.server)
app.command("serve")(serve.serve)
app.command("push")(transfer.push)
app.command("pull")(transfer.pull)
app.command("gc")(transfer.gc)
app.command("verify")(transfer.verify)
app.command("diff")(diff.diff)
app.command("export", help=portability.EXPORT_HELP)(portability.export)
app.add_typer(portability.import_app, name="import")
app.add_typer(audit.app, name="audit")
app.command("promote")(promotion.promote)
app.add_typer(promotion.approvals_app, name="approvals")
app.add_typer(promotion.policies_app, name="policies")
app.add_typer(lineage.app, name="lineage")
app.add_typer(signatures.signers_app, name="signers")
app.add_typer(signatures.sign_app, name="sign")
app.add_typer(scans.app, name="scan")
app.command("whoami")(tokens.whoami)
app.add_typer(tokens.tokens_app, name="tokens")
app.add_typer(identity.users_app, name="users")
app.add_typer(identity.groups_app, name="groups")
app.add_typer(identity.grants_app, name="grants")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(deployments.deployments_app, name="deployments")
app.add_typer(deployments.feedback_app, name="feedback")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cairn {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    uri: Annotated[
        str,
        typer.Option(
            envvar="CAIRN_URI", help="Server (http://…) or local data directory.", show_default=True
        ),
    ] = DEFAULT_URI,
    token: Annotated[
        str | None, typer.Option(envvar="CAIRN_TOKEN", help="API token.", show_default=False)
    ] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    ctx.obj = {"uri": uri, "token": token, "debug": debug, "quiet": quiet, "client": None}
    ctx.call_on_close(lambda: ctx.obj["client"] and ctx.obj["client"].close())


def main() -> None:
    debug = "--debug" in sys.argv or os.environ.get("CAIRN_DEBUG") == "1"
    try:
        code = app(standalone_mode=False)
    except CairnError as exc:
        if debug:
            raise
        err.print(f"[red]error[/red] ({exc.error_code}): {escape(exc.message)}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors (typer vendors its own click) and the rest
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if debug:
            raise
        err.print(f"[red]error[/red]: {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)

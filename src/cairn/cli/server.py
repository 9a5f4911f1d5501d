"""``cairn server`` and ``cairn db``: run the registry, manage its database."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import SecretStr

from cairn.cli.output import message, print_json

if TYPE_CHECKING:  # loaded by the commands that need it: other commands start faster
    from cairn.settings import Settings

db_app = typer.Typer(help="The metadata database: migrate, inspect.", no_args_is_help=True)


def _settings(**flags: object) -> Settings:
    """Settings from CAIRN_* variables, with the flags that were given on top."""
    from cairn.settings import Settings

    given: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    return Settings(**given)


def server(
    host: Annotated[
        str | None, typer.Option(help="Bind address (env CAIRN_HOST, default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (env CAIRN_PORT, default 8080).")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (env CAIRN_DATA_DIR, default ./cairn-data).")
    ] = None,
    backend_uri: Annotated[
        str | None,
        typer.Option(help="Metadata DB: sqlite:///PATH or postgresql://… (env CAIRN_BACKEND_URI)."),
    ] = None,
    artifacts_uri: Annotated[
        str | None, typer.Option(help="Blob store: file://PATH or s3://BUCKET/PREFIX.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (env CAIRN_WORKERS, default 1).")
    ] = None,
    no_webhooks: Annotated[
        bool, typer.Option("--no-webhooks", help="Deliver no webhooks (env CAIRN_WEBHOOKS=false).")
    ] = False,
) -> None:
    """Run the Cairn server (API, docs at /docs)."""
    from cairn.api.middleware import HostRules
    from cairn.app import SERVE_COMMAND, ensure_admin, seal_secrets_in_the_clear
    from cairn.service.factory import build_service
    from cairn.settings import misspelt_variables

    for warning in misspelt_variables(os.environ):
        message(warning)
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        backend_uri=backend_uri,
        artifacts_uri=artifacts_uri,
        workers=workers,
        webhooks=False if no_webhooks else None,
    )
    # what every worker's create_app checks, checked once here: a bad entry there would
    # kill each worker at start, and uvicorn restart them forever
    HostRules(settings.resolved_allowed_hosts())
    service = build_service(settings)  # migrate once, before any worker starts
    token_file = ensure_admin(service, settings)
    sealed = seal_secrets_in_the_clear(service)
    service.db.dispose()
    if token_file is not None:
        message(f"created user admin; its token is in {token_file} (mode 0600)")
    if sealed:
        message(f"sealed {sealed} webhook secret(s) stored in the clear ({service.keyring.source})")
    if settings.secret_keys is None and not settings.resolved_backend_uri().startswith("sqlite"):
        message(
            f"webhook secrets are sealed with {service.keyring.source}: servers sharing this "
            "database need the same key; set CAIRN_SECRET_KEYS on every one "
            "(docs/security.md#secrets-at-rest)"
        )
    # secrets stay in the variables they came from: a dump would write "**********" over them
    secret = {key for key, value in settings if isinstance(value, SecretStr)}
    for key, value in settings.model_dump(mode="json", exclude=secret).items():
        if isinstance(value, list):  # the workers read them back comma-separated
            os.environ[f"CAIRN_{key.upper()}"] = ",".join(map(str, value))
        elif value is not None:
            os.environ[f"CAIRN_{key.upper()}"] = str(value)
    os.environ["CAIRN_DATA_DIR"] = str(settings.data_dir.resolve())
    message(
        f"Cairn on http://{settings.host}:{settings.port} (data: {settings.data_dir.resolve()}, "
        f"metadata: {settings.resolved_backend_uri().split('@')[-1]}, workers: {settings.workers})"
    )
    if settings.host in ("0.0.0.0", "::", "[::]") and not settings.allowed_hosts:  # noqa: S104
        message(
            "answering only Host: localhost/127.0.0.1/::1; set CAIRN_ALLOWED_HOSTS to the names "
            "clients use to reach this server (docs/security.md#http-hardening)"
        )
    # the serving process starts afresh: what this one loaded to check, migrate and talk
    # (the command line's libraries, Alembic) would otherwise stay in its memory for good
    sys.stdout.flush()
    sys.stderr.flush()
    # the words after the code are not read: they say in ps and top which server this is
    # (the command line's own words may hold a database password, these hold none)
    shown = ["cairn-server", f"{settings.host}:{settings.port}", os.environ["CAIRN_DATA_DIR"]]
    os.execv(sys.executable, [sys.executable, *SERVE_COMMAND, *shown])  # noqa: S606


@db_app.command("upgrade")
def upgrade(
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
    backend_uri: Annotated[str | None, typer.Option(help="Metadata database URI.")] = None,
) -> None:
    """Migrate the metadata database to this version of Cairn."""
    from cairn.store.metadata import migrate
    from cairn.store.metadata.database import Database

    settings = _settings(data_dir=data_dir, backend_uri=backend_uri)
    if not settings.backend_uri:  # the database is the data directory's: make it a folder
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_backend_uri())
    migrate.upgrade(db)
    message(f"database at revision {migrate.current_revision(db)}")
    db.dispose()


@db_app.command("current")
def current(
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
    backend_uri: Annotated[str | None, typer.Option(help="Metadata database URI.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"revision", "head"} as JSON.')
    ] = False,
) -> None:
    """Print the database's schema revision and this code's newest.

    Reads only: where no SQLite file exists yet it creates none, says so on stderr and
    prints `(no database)` (`"revision": null` in JSON, as for an empty database); `cairn db
    upgrade`, or the server's first start, creates it.
    """
    from cairn.store.metadata import migrate
    from cairn.store.metadata.database import Database

    settings = _settings(data_dir=data_dir, backend_uri=backend_uri)
    db = Database(settings.resolved_backend_uri())
    try:
        missing = migrate.absent(db)
        revision = None if missing else migrate.current_revision(db)
    finally:
        db.dispose()
    head = migrate.head_revision()
    if missing:
        message(
            f"no metadata database at {missing} yet: `cairn db upgrade`, or the server's "
            "first start, creates it"
        )
    if as_json:
        print_json({"revision": revision, "head": head})
    else:
        typer.echo(f"{'(no database)' if missing else revision or '(empty)'} (code: {head})")

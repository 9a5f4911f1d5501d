"""``cairn export``, ``cairn import DIR``, ``cairn import mlflow``: moving registries."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from cairn.cli.common import Quiet, client, quiet
from cairn.cli.output import err, message, print_json
from cairn.client.importing import (
    FAILED,
    LEFT_OUT,
    SKIPPED,
    ImportSummary,
    ItemResult,
    Reporter,
)

MIB = 1 << 20
SummaryJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
]


class _Amount(ProgressColumn):
    """``3/10`` for versions, ``1.2/4.0 MiB`` for bytes."""

    def render(self, task: Task) -> Text:
        total = int(task.total or 0)
        if task.fields.get("unit") == "bytes":
            return Text(f"{task.completed / MIB:.1f}/{total / MIB:.1f} MiB")
        return Text(f"{int(task.completed)}/{total}")


class CliReporter(Reporter):
    """Two bars on stderr (versions done; bytes of the current step), problems as lines.

    While the source is listed, the versions bar says how much is listed so far. In a dry
    run the bars end there (they leave no trace), and the plan goes to stdout, one line per
    model, version or alias; to stderr with ``as_json`` (stdout is then the summary's JSON
    alone), unless quiet.
    """

    def __init__(self, *, enabled: bool, dry_run: bool = False, as_json: bool = False) -> None:
        self._bar = Progress(
            TextColumn("{task.description:<40.40}"),
            BarColumn(),
            _Amount(),
            console=err,
            disable=not enabled,
            transient=dry_run,
        )
        self._shown = False
        self._dry_run = dry_run
        self._plan_to_stderr = as_json
        self._quiet = not enabled
        self._lock = threading.Lock()
        self._versions: TaskID = self._bar.add_task("versions", total=0)
        self._bytes: TaskID = self._bar.add_task("", total=0, unit="bytes", visible=False)
        self.progress = _BytesProgress(self)

    def __enter__(self) -> CliReporter:
        self._bar.start()
        self._shown = True
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bar.update(self._versions, description="versions")
        self._stop()

    def _stop(self) -> None:
        if self._shown:  # Progress.stop prints a blank line off a terminal each time
            self._shown = False
            self._bar.stop()

    def listing(self, models: int, versions: int) -> None:
        with self._lock:
            what = f"listing: {models} models, {versions} versions"
            self._bar.update(self._versions, description=what, refresh=True)

    def expect(self, versions: int) -> None:
        with self._lock:
            total = self._bar.tasks[self._versions].total or 0
            self._bar.update(self._versions, total=total + versions)
            self._bar.update(self._versions, description="versions")
        if self._dry_run:
            self._stop()  # the plan follows, line by line

    def start(self, name: str, version: int, what: str) -> None:
        with self._lock:
            self._bar.update(self._versions, description=f"{what} {name} v{version}")

    def done(self, result: ItemResult) -> None:
        with self._lock:
            if result.version is not None and result.alias is None:
                self._bar.advance(self._versions, 1)
        if result.outcome == LEFT_OUT:
            return  # its model's problem says how many
        if self._dry_run and not (self._plan_to_stderr and self._quiet):
            verb = {SKIPPED: "skip: ", FAILED: "FAILED: "}.get(result.outcome, "")
            typer.echo(f"{result.label}: {verb}{result.message}", err=self._plan_to_stderr)
        elif result.outcome == FAILED:
            self._bar.console.print(
                Text.assemble(("FAILED", "red"), f" {result.label}: {result.message}")
            )

    # the bytes bar, driven through ``_BytesProgress``
    def _begin(self, description: str, total: int) -> None:
        with self._lock:
            self._bar.reset(self._bytes, total=total, description=f"  {description}")
            self._bar.update(self._bytes, visible=True)

    def _advance(self, n: int) -> None:
        with self._lock:
            self._bar.advance(self._bytes, n)

    def _end(self) -> None:
        with self._lock:
            self._bar.update(self._bytes, visible=False)


class _BytesProgress:
    """The transfer ``Progress`` protocol, drawn as the reporter's bytes bar."""

    def __init__(self, owner: CliReporter) -> None:
        self._owner = owner

    def begin(self, description: str, total: int) -> None:
        self._owner._begin(description, total)

    def advance(self, n: int) -> None:
        self._owner._advance(n)

    def end(self) -> None:
        self._owner._end()


def _finish(summary: Any, as_json: bool) -> None:
    if as_json:
        print_json(summary.to_json())
    else:
        message(summary.describe())
    if summary.problems:
        raise typer.Exit(1)


# -- cairn export ----------------------------------------------------------------------


EXPORT_HELP = (
    "Write models, versions and their files to a new folder, for backup or promotion.\n\n"
    "DIR gets cairn-export.jsonl (a format header, then each model followed by its "
    "versions: numbers, metadata, stage, aliases, file manifests; one JSON object per "
    "line) and blobs/sha256/ab/<hex> (each file once, unless --metadata-only). It is "
    "written under a temporary name beside DIR and renamed when complete. Alias history "
    "and deleted versions are left out; each model's version counter is kept, so a "
    "restored registry does not hand out the numbers of deleted or purged versions "
    "again. Restore with `cairn import DIR`. Exit status 1 if a file could not be "
    "exported."
)


def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to create (must not exist).")],
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Only this model; repeatable.")
    ] = None,
    metadata_only: Annotated[
        bool,
        typer.Option("--metadata-only", help="Leave the files out: metadata and manifests only."),
    ] = False,
    as_json: SummaryJson = False,
    quiet_flag: Quiet = False,
) -> None:
    """Write models, versions and files to a new folder (help: ``EXPORT_HELP``)."""
    from cairn.client.archive import export_registry

    sdk = client(ctx)
    with CliReporter(enabled=not quiet(ctx)) as reporter:
        summary = export_registry(
            sdk, out, names=model or [], metadata_only=metadata_only, reporter=reporter
        )
    if not as_json:
        message(f"exported to {out}")
    _finish(summary, as_json)


# -- cairn import ----------------------------------------------------------------------


class _ImportGroup(typer.core.TyperGroup):
    """``cairn import DIR`` is short for ``cairn import dir DIR``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["dir", *args]
        return super().resolve_command(ctx, args)


import_app = typer.Typer(
    cls=_ImportGroup,
    no_args_is_help=True,
    help=(
        "Bring models in: from a `cairn export` folder, or from MLflow.\n\n"
        "`cairn import DIR` restores a `cairn export` folder; `cairn import mlflow "
        "--tracking-uri URI` migrates an MLflow Model Registry. Both keep version numbers, "
        "can be run again (nothing is duplicated; an interrupted run resumes), and exit with "
        "status 1 if anything failed."
    ),
)


@import_app.command(
    "dir",
    help=(
        "Restore a `cairn export` folder (also: `cairn import DIR`).\n\n"
        "Versions keep their numbers and digests; those already present are skipped, and "
        "aliases, stages and descriptions are brought in line. Every blob is re-hashed "
        "before it is sent: a version with a missing or corrupt blob is not made READY "
        "(it is recorded as FAILED, keeping its number, and reported)."
    ),
)
def import_dir(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="A folder from `cairn export`.")],
    dry_run: DryRun = False,
    as_json: SummaryJson = False,
    quiet_flag: Quiet = False,
) -> None:
    from cairn.client.archive_import import ArchiveImporter

    sdk = client(ctx)
    with CliReporter(enabled=not quiet(ctx), dry_run=dry_run, as_json=as_json) as reporter:
        summary = ArchiveImporter(sdk, folder, reporter).run(dry_run=dry_run)
    _finish(summary, as_json)


@import_app.command(
    "mlflow",
    help=(
        "Migrate an MLflow Model Registry: models, versions (same numbers) and their "
        "files.\n\n"
        "Needs the MLflow client (pip install 'mlflow>=3'). For every registered model "
        "(prompts left out): description, tags, aliases, and every version with its "
        "number, description, tags, stage, run id, run link, source (kept as text), "
        "creation time and creator. Each version's files are downloaded here from "
        "wherever MLflow keeps them and stored content-addressed in the Cairn that --uri "
        "names. A version whose files cannot be downloaded is reported and recorded as "
        "FAILED (the next run retries it); the rest goes on. A version already imported "
        "from the same source is skipped without downloading."
    ),
)
def import_mlflow(
    ctx: typer.Context,
    tracking_uri: Annotated[
        str, typer.Option(help="MLflow tracking server (artifacts are downloaded through it).")
    ],
    registry_uri: Annotated[
        str | None, typer.Option(help="MLflow registry, if not the tracking server.")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Only this model; repeatable.")
    ] = None,
    dry_run: DryRun = False,
    no_files: Annotated[
        bool,
        typer.Option(
            "--no-files", help="Metadata only: no files are copied; source is kept as text."
        ),
    ] = False,
    as_json: SummaryJson = False,
    quiet_flag: Quiet = False,
) -> None:
    from cairn.client.mlflow_import import MlflowImporter
    from cairn.client.mlflow_source import MlflowSource

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    sdk = client(ctx)
    source = MlflowSource(tracking_uri, registry_uri)
    importer = MlflowImporter(sdk, source, files=not no_files)
    with CliReporter(enabled=not quiet(ctx), dry_run=dry_run, as_json=as_json) as reporter:
        importer.reporter = reporter
        summary: ImportSummary = importer.run(model or [], dry_run=dry_run)
    _finish(summary, as_json)

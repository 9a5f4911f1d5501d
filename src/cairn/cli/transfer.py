"""``cairn push``, ``cairn pull``, ``cairn gc``, ``cairn verify``: the bytes of versions."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cairn.cli.common import Json, Quiet, Yes, client, parse_metrics, parse_pairs, quiet
from cairn.cli.lineage import Datasets, Parents, Relation, lineage_options
from cairn.cli.output import err, message, print_json, show_version
from cairn.client.push_pull import TransferStats
from cairn.domain.artifacts import MAX_VERIFY_JOBS


class RichProgress:
    """The transfer ``Progress`` protocol drawn as a Rich bar on stderr (thread-safe)."""

    def __init__(self, enabled: bool) -> None:
        self._bar = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
            transient=False,
        )
        self._task: TaskID | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bar.stop()

    def begin(self, description: str, total: int) -> None:
        with self._lock:
            self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int) -> None:
        with self._lock:
            if self._task is not None:
                self._bar.advance(self._task, n)

    def end(self) -> None:
        with self._lock:
            if self._task is not None:
                task = self._bar.tasks[-1]
                self._bar.update(self._task, completed=task.total)
            self._task = None


def push(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file or a folder (pushed recursively).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")],
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="KEY=NUMBER; repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    description: Annotated[str, typer.Option(help="Markdown description.")] = "",
    semver: Annotated[str | None, typer.Option(help="Semantic version label.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Training run id (opaque text).")] = None,
    create_model: Annotated[
        bool, typer.Option(help="Register the model first if it does not exist.")
    ] = True,
    if_changed: Annotated[
        bool,
        typer.Option(
            "--if-changed",
            help="Create no version when the latest READY one has exactly these files "
            "(it is shown instead; --alias still points at it).",
        ),
    ] = False,
    dataset: Datasets = None,
    parent: Parents = None,
    relation: Relation = "other",
    as_json: Json = False,
    quiet_flag: Quiet = False,
) -> None:
    """Upload files as a new version: hashes locally, sends only what the server lacks.

    --dataset and --parent are recorded as the new version's lineage (`cairn lineage`).
    """
    inputs = lineage_options(dataset, parent, relation)  # checked before anything is made
    sdk = client(ctx)
    if create_model:
        sdk.ensure_model(model)
    with RichProgress(not quiet(ctx)) as progress:
        version = sdk.push(
            path,
            name=model,
            alias=alias,
            params=parse_pairs("param", param),
            metrics=parse_metrics(metric),
            tags=parse_pairs("tag", tag),
            description=description,
            semver=semver,
            run_id=run_id,
            progress=progress,
            if_changed=if_changed,
            lineage=inputs,
        )
    stats = sdk.last_transfer
    if stats is not None and not stats.created and not quiet(ctx):
        message(
            f"unchanged: {version.name} version {version.version} has the same "
            f"{stats.files} file(s); no version created"
        )
    elif stats is not None and not quiet(ctx):
        message(
            f"pushed {version.name} version {version.version}: {stats.files} file(s), "
            f"{stats.bytes} bytes{_moved(stats, 'sent', 'already stored')}"
        )
    show_version(version, as_json)


def pull(
    ctx: typer.Context,
    model_uri: Annotated[
        str, typer.Argument(help="models:/NAME/VERSION, @ALIAS, @SEMVER-RANGE or /latest.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to write (default ./NAME-vN).")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Blob cache (env CAIRN_CACHE_DIR, default ~/.cache/cairn).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was pulled as JSON instead of the folder.")
    ] = False,
    quiet_flag: Quiet = False,
    override_quarantine: Annotated[
        bool,
        typer.Option(
            "--override-quarantine",
            help="Download a version quarantined by its scan anyway (needs MANAGE on the "
            "model; every file read is audited).",
        ),
    ] = False,
    include: Annotated[
        list[str] | None,
        typer.Option(
            help="Only files matching this pattern (*.json, tokenizer/, model-0000?.bin); "
            "repeatable. * crosses folders; a trailing / is a whole folder.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Leave out files matching this pattern; repeatable.")
    ] = None,
) -> None:
    """Download a version's files, verified, through the local cache.

    With --include and --exclude, only some of them: `cairn pull models:/llm@prod
    --include '*.json' --include tokenizer/` fetches the configuration and the tokenizer
    and no weights.
    """
    sdk = client(ctx)
    with RichProgress(not quiet(ctx)) as progress:
        folder = sdk.pull(
            model_uri,
            out,
            cache_dir=cache_dir,
            progress=progress,
            override_quarantine=override_quarantine,
            include=include or (),
            exclude=exclude or (),
        )
    stats = sdk.last_transfer
    assert stats is not None  # set by every pull that returns
    if as_json:
        print_json(
            {
                "name": stats.name,
                "version": stats.version,
                "path": str(folder.resolve()),
                "files": stats.files,
                "bytes": stats.bytes,
                "downloaded_files": stats.transferred_files,
                "downloaded_bytes": stats.transferred_bytes,
            }
        )
        return
    if not quiet(ctx):
        message(
            f"{stats.files} file(s), {stats.bytes} bytes in {folder}"
            f"{_moved(stats, 'downloaded', 'from the cache')}"
        )
    typer.echo(str(folder))


def _moved(stats: TransferStats, verb: str, elsewhere: str) -> str:
    """How much of a push or pull went over the wire, as the end of its summary line."""
    if stats.files == 0:
        return ""
    if stats.transferred_files == 0:
        return f"; none {verb}, all {elsewhere}"
    if stats.transferred_files == stats.files:
        return f"; all {verb}"
    return (
        f"; {verb} {stats.transferred_files} file(s), {stats.transferred_bytes} bytes, "
        f"the rest {elsewhere}"
    )


SHOWN_USERS = 20  # versions named per bad blob in verify's text (--json has them all)


def gc(
    ctx: typer.Context,
    yes: Yes = False,
    grace: Annotated[
        int | None, typer.Option(help="Keep unreferenced blobs younger than this (seconds).")
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Prune every model without a policy of its own (cairn versions retention) to "
            "its newest N versions first (soft deletes; default: CAIRN_KEEP_VERSIONS). "
            "Versions an alias, a stage, a live deployment, a lineage child of those or an "
            "upload holds stay.",
        ),
    ] = None,
    keep_days: Annotated[
        float | None,
        typer.Option(min=0, help="With --keep: versions younger than this many days stay."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Apply the retention policies, then reclaim blobs no version uses. Dry run unless
    --yes.

    Also deletes finished webhook deliveries and monitoring feedback points older than
    CAIRN_WEBHOOK_DELIVERY_RETENTION_DAYS (default 30) and CAIRN_FEEDBACK_RETENTION_DAYS
    (default 0: kept for ever)."""
    from cairn.client.local import LocalClient

    sdk = client(ctx)
    if not isinstance(sdk, LocalClient):
        raise typer.BadParameter(
            "gc runs on the server's data: use --uri DATA_DIR", param_hint="--uri"
        )
    if keep_days is not None and keep is None:
        raise typer.BadParameter("--keep-days goes with --keep", param_hint="--keep-days")
    report = sdk.gc(dry_run=not yes, grace_s=grace, keep=keep, keep_days=keep_days)
    if as_json:
        print_json(
            {
                "dry_run": report.dry_run,
                "blobs": [{"digest": b.digest, "size": b.size} for b in report.blobs],
                "bytes": report.bytes,
                "purged_versions": [list(v) for v in report.purged_versions],
                "failed_versions": [list(v) for v in report.failed_versions],
                "pruned_versions": [list(v) for v in report.pruned_versions],
                "stale_uploads": report.stale_uploads,
                "webhook_deliveries": report.webhook_deliveries,
                "feedback_points": report.feedback_points,
            }
        )
        return
    if report.pruned_versions:
        done = "would prune" if report.dry_run else "pruned (soft-deleted)"
        models = len({name for name, _ in report.pruned_versions})
        message(f"{done} {len(report.pruned_versions)} version(s) of {models} model(s)")
    rows = report.webhook_deliveries or report.feedback_points
    if rows:
        done = "would delete" if report.dry_run else "deleted"
        message(
            f"{done} {report.webhook_deliveries} finished webhook delivery(ies) and "
            f"{report.feedback_points} feedback point(s) past their retention"
        )
    verb = "would reclaim" if report.dry_run else "reclaimed"
    message(f"{verb} {len(report.blobs)} blob(s), {report.bytes} bytes")
    if report.dry_run and (report.blobs or report.pruned_versions or rows):
        message("run again with --yes to delete them")


def verify(
    ctx: typer.Context,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=MAX_VERIFY_JOBS,
            help="Blobs re-hashed at once (more helps on SSDs and object stores, and "
            "where cores outnumber them).",
        ),
    ] = 2,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            min=0,
            max=36500,
            help="Only blobs last verified more than this many days ago, or never: a scrub "
            "spread over runs (`--older-than 30` nightly re-hashes each blob about monthly).",
        ),
    ] = None,
    as_json: Json = False,
    quiet_flag: Quiet = False,
) -> None:
    """Re-hash every stored blob; report the ones whose bytes changed (exit 1 if any)."""
    from cairn.client.local import LocalClient

    sdk = client(ctx)
    if not isinstance(sdk, LocalClient):
        raise typer.BadParameter(
            "verify runs on the server's data: use --uri DATA_DIR", param_hint="--uri"
        )
    with RichProgress(not quiet(ctx)) as progress:
        age = None if older_than is None else older_than * 86400
        report = sdk.verify(progress=progress, jobs=jobs, older_than_s=age)
    bad = [*report.corrupt, *report.missing]
    if as_json:
        print_json(
            {
                "checked": report.checked,
                "bytes": report.bytes,
                "corrupt": [
                    {"digest": b.digest, "versions": [list(v) for v in b.versions]}
                    for b in report.corrupt
                ],
                "missing": [
                    {"digest": b.digest, "versions": [list(v) for v in b.versions]}
                    for b in report.missing
                ],
            }
        )
    else:
        message(f"checked {report.checked} blob(s), {report.bytes} bytes")
        for kind, items in (("CORRUPT", report.corrupt), ("MISSING", report.missing)):
            for b in items:
                users = ", ".join(f"{n} v{v}" for n, v in b.versions[:SHOWN_USERS]) or "no version"
                if len(b.versions) > SHOWN_USERS:
                    users += f" and {len(b.versions) - SHOWN_USERS} more (--json lists them all)"
                message(f"{kind} {b.digest} used by {users}")
    if bad:
        raise typer.Exit(1)

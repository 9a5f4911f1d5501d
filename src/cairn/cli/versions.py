"""``cairn versions``: model versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer

from cairn.cli.common import (
    AllPages,
    Json,
    MaxResults,
    PageToken,
    Yes,
    as_of_option,
    client,
    confirm,
    every_page,
    in_utc,
    parse_metrics,
    parse_pairs,
)
from cairn.cli.lineage import Datasets, Parents, Relation, lineage_options
from cairn.cli.output import (
    message,
    out,
    print_json,
    record_table,
    show_files,
    show_version,
    show_versions,
)
from cairn.domain.artifacts import FileLink, Retention
from cairn.domain.codec import prune_to_json, retention_to_json
from cairn.domain.uris import parse_model_uri

app = typer.Typer(help="Create, find, change and delete model versions.", no_args_is_help=True)

OrderBy = Annotated[list[str] | None, typer.Option(help="FIELD [ASC|DESC]; repeatable.")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="KEY=NUMBER; repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    description: Annotated[str, typer.Option(help="Markdown description.")] = "",
    semver: Annotated[str | None, typer.Option(help="Semantic version label, e.g. 1.4.0.")] = None,
    source: Annotated[str | None, typer.Option(help="Where it came from (opaque text).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Training run id (opaque text).")] = None,
    run_link: Annotated[str | None, typer.Option(help="Link to the run (opaque text).")] = None,
    dataset: Datasets = None,
    parent: Parents = None,
    relation: Relation = "other",
    as_json: Json = False,
) -> None:
    """Create the next version of model NAME (metadata only; `cairn push` uploads files).

    --dataset and --parent are recorded as its lineage (`cairn lineage`), with it.
    """
    version = client(ctx).create_version(
        name,
        description=description,
        params=parse_pairs("param", param),
        metrics=parse_metrics(metric),
        tags=parse_pairs("tag", tag),
        semver=semver,
        source=source,
        run_id=run_id,
        run_link=run_link,
        lineage=lineage_options(dataset, parent, relation),
    )
    show_version(version, as_json)


@app.command("get")
def get(
    ctx: typer.Context,
    model_uri: str,
    as_of: Annotated[
        datetime | None,
        as_of_option("For models:/NAME@ALIAS: the version it pointed at then (UTC if no zone)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Show the version a URI names: models:/NAME/3, models:/NAME@ALIAS, models:/NAME/latest.

    models:/NAME@RANGE names the highest version labelled (--semver) in a semver range:
    models:/NAME@^1.4, @~1.4.2, @1.x, "@>=1.2 <2", or @* for the highest release.
    """
    as_of = in_utc(as_of)
    show_version(client(ctx).resolve(model_uri, as_of=as_of), as_json)


@app.command("files")
def files(
    ctx: typer.Context,
    model_uri: str,
    links: Annotated[
        bool,
        typer.Option(
            "--links",
            help="Add presigned links that download each file straight from the object store "
            "(valid an hour; check the bytes against the digest).",
        ),
    ] = False,
    override_quarantine: Annotated[
        bool,
        typer.Option(
            "--override-quarantine",
            help="Links to a version quarantined by its scan anyway (needs MANAGE on the model; "
            "each link given is audited).",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """List the files of the version a URI names: path, size, digest."""
    sdk = client(ctx)
    version = sdk.resolve(model_uri)
    if links:
        found = sdk.file_links(
            version.name, version.version, override_quarantine=override_quarantine
        )
    else:
        found = [FileLink(f, None) for f in version.files]
    show_files(found, as_json, with_links=links)


@app.command("list")
def list_(
    ctx: typer.Context,
    name: str,
    order_by: OrderBy = None,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    include_deleted: Annotated[bool, typer.Option(help="Show soft-deleted versions.")] = False,
    as_json: Json = False,
) -> None:
    """List the versions of model NAME, newest first."""
    sdk = client(ctx)
    page = every_page(
        lambda token: sdk.list_versions(
            name,
            order_by=order_by,
            max_results=max_results,
            page_token=token,
            include_deleted=include_deleted,
            files=as_json,  # the table shows no files: a page of large manifests stays small
        ),
        page_token,
        all_pages,
    )
    show_versions(page.items, as_json, page.next_page_token)


@app.command("search")
def search(
    ctx: typer.Context,
    filter: str,
    order_by: OrderBy = None,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    as_json: Json = False,
) -> None:
    """Search versions of all models: "metrics.auc >= 0.9 AND tags.team = 'risk'"."""
    sdk = client(ctx)
    page = every_page(
        lambda token: sdk.search_versions(
            filter, order_by=order_by, max_results=max_results, page_token=token, files=as_json
        ),
        page_token,
        all_pages,
    )
    show_versions(page.items, as_json, page.next_page_token)


@app.command("update")
def update(
    ctx: typer.Context,
    model_uri: str,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    semver: Annotated[str | None, typer.Option(help="Semantic version label.")] = None,
    as_json: Json = False,
) -> None:
    """Change a version's description or semantic version label."""
    target = client(ctx).resolve(model_uri)
    updated = client(ctx).update_version(
        target.name, target.version, description=description, semver=semver
    )
    show_version(updated, as_json)


@app.command("tag")
def tag(ctx: typer.Context, model_uri: str, key_value: str, as_json: Json = False) -> None:
    """Set a tag on a version: cairn versions tag models:/NAME/3 KEY=VALUE."""
    ((key, value),) = parse_pairs("tag", [key_value]).items()
    target = client(ctx).resolve(model_uri)
    show_version(client(ctx).set_version_tag(target.name, target.version, key, value), as_json)


@app.command("untag")
def untag(ctx: typer.Context, model_uri: str, key: str, as_json: Json = False) -> None:
    """Delete a tag from a version."""
    target = client(ctx).resolve(model_uri)
    show_version(client(ctx).delete_version_tag(target.name, target.version, key), as_json)


@app.command("stage")
def stage(
    ctx: typer.Context,
    model_uri: str,
    stage: Annotated[str, typer.Argument(help="None, Staging, Production or Archived.")],
    archive_existing: Annotated[
        bool, typer.Option(help="Archive the other versions in that stage.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Move a version to an MLflow-style stage."""
    target = client(ctx).resolve(model_uri)
    moved = client(ctx).transition_stage(
        target.name, target.version, stage, archive_existing_versions=archive_existing
    )
    show_version(moved, as_json)


@app.command("delete")
def delete(
    ctx: typer.Context,
    model_uri: str,
    purge: Annotated[
        bool, typer.Option(help="Delete for good: no restore; gc may then reclaim its bytes.")
    ] = False,
    yes: Yes = False,
) -> None:
    """Soft-delete a version (its aliases are removed; restore brings it back). A version a
    live deployment serves is refused: move or retire the deployment first."""
    ref = parse_model_uri(model_uri)
    if purge and ref.version is not None:
        name, number = ref.name, ref.version  # purge also reaches already-deleted versions
    else:
        target = client(ctx).resolve(model_uri)
        name, number = target.name, target.version
    what = "Purge (no restore)" if purge else "Delete"
    confirm(f"{what} version {number} of {name!r}?", yes)
    if purge:
        client(ctx).purge_version(name, number)
        message(f"purged version {number} of {name!r}")
    else:
        client(ctx).delete_version(name, number)
        message(f"deleted version {number} of {name!r}")


@app.command("prune")
def prune(
    ctx: typer.Context,
    name: str,
    keep: Annotated[int, typer.Option(min=1, help="How many of the newest READY versions stay.")],
    keep_days: Annotated[
        float | None,
        typer.Option(min=0, help="Versions created within this many days stay too."),
    ] = None,
    purge: Annotated[
        bool, typer.Option(help="Delete for good: no restore; gc may then reclaim the bytes.")
    ] = False,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Only versions this filter matches may go, e.g. \"tags.run = 'scratch'\" "
            "(docs/search.md).",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete them (without it: a dry run).")
    ] = False,
    as_json: Json = False,
) -> None:
    """Delete the versions of model NAME older than its newest --keep READY ones, and
    its FAILED ones wherever they are, except those an alias, the Staging or
    Production stage, a live deployment or an upload in progress holds, the lineage
    parents (but through retrain) of versions those hold, and those younger than
    --keep-days; with --filter, only among the versions it matches (bulk deletion:
    `--keep 1 --filter "tags.run = 'scratch'"`). Dry run unless --yes; soft
    (restorable) unless --purge."""
    report = client(ctx).prune_versions(
        name, keep=keep, keep_days=keep_days, dry_run=not yes, purge=purge, filter=filter_
    )
    if as_json:
        print_json(prune_to_json(report))
        return
    verb = "purge" if report.purge else "delete"
    done = f"would {verb}" if report.dry_run else f"{verb}d"
    listed = f": {_version_ranges(report.pruned)}" if report.pruned else ""
    matching = "" if report.filter is None else f" matching {report.filter}"
    message(f"{done} {len(report.pruned)} version(s){matching} of {report.model!r}{listed}")
    if report.protected:
        held = "an alias, a stage, a deployment, a lineage child or an upload"
        if keep_days is not None:
            held = "an alias, a stage, a deployment, a lineage child, an upload or --keep-days"
        message(f"kept though older ({held} holds them): {_version_ranges(report.protected)}")
    if report.pruned:
        when = "now" if report.purge else "once they are purged"
        message(
            f"{report.bytes} bytes are held by those versions alone (gc may reclaim them {when})"
        )
    if report.dry_run and report.pruned:
        message("run again with --yes to delete them")


@app.command("retention")
def retention(
    ctx: typer.Context,
    name: str,
    keep: Annotated[
        int | None,
        typer.Option(min=1, help="Keep the newest N READY versions; gc prunes the rest."),
    ] = None,
    keep_days: Annotated[
        float | None,
        typer.Option(min=0, help="With --keep: versions created within this many days stay."),
    ] = None,
    keep_all: Annotated[
        bool, typer.Option("--keep-all", help="Keep every version, whatever the instance's.")
    ] = False,
    inherit: Annotated[
        bool, typer.Option("--inherit", help="Drop the model's own policy: the instance's.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Show or set how many versions of model NAME gc keeps.

    A model's own policy replaces the instance's (CAIRN_KEEP_VERSIONS, or gc --keep): each
    `cairn gc --yes` keeps the newest --keep READY versions and those from the last
    --keep-days, and deletes the others (soft: restorable until purged) by the rule of `versions
    prune`: a version an alias, the Staging or Production stage, a live deployment, a
    lineage child of those or an unfinished upload holds always stays. Without options it
    shows the policy. Setting one needs MANAGE.
    """
    chosen = [keep is not None, keep_all, inherit]
    if sum(chosen) > 1:
        raise typer.BadParameter("give one of --keep, --keep-all and --inherit")
    if keep_days is not None and keep is None:
        raise typer.BadParameter("--keep-days goes with --keep: how many versions stay")
    sdk = client(ctx)
    if keep is not None or keep_all:
        policy = sdk.set_retention(name, keep=keep, keep_days=keep_days)
    elif inherit:
        policy = sdk.clear_retention(name)
    else:
        policy = sdk.get_retention(name)
    if as_json:
        print_json(retention_to_json(policy))
        return
    table = record_table()
    table.add_row("model", policy.name)
    table.add_row(
        "own policy", "none: the instance's applies" if policy.own is None else _kept(policy.own)
    )
    table.add_row("gc keeps", _kept(policy.effective))
    out.print(table)


def _kept(r: Retention) -> str:
    if r.keep is None:
        return "every version"
    days = "" if r.keep_days is None else f" and any from the last {r.keep_days:g} day(s)"
    return f"the newest {r.keep} version(s){days}"


def _version_ranges(numbers: Sequence[int]) -> str:
    """``1-3, 5, 7-8`` for [1, 2, 3, 5, 7, 8] (sorted)."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


@app.command("restore")
def restore(ctx: typer.Context, model_uri: str, as_json: Json = False) -> None:
    """Restore a soft-deleted version: models:/NAME/VERSION."""
    ref = parse_model_uri(model_uri)
    if ref.version is None:
        raise typer.BadParameter("restore needs models:/NAME/VERSION")
    show_version(client(ctx).restore_version(ref.name, ref.version), as_json)

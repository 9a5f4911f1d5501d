"""``cairn deployments`` (where versions run) and ``cairn feedback`` (what they measured)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

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
    in_utc,
    parse_metrics,
    parse_pairs,
)
from cairn.cli.output import DataTable, _more, message, out, print_json, record_table, when
from cairn.domain.deployments import (
    Deployment,
    DeploymentEvent,
    deployment_to_json,
    event_to_json,
    point_to_json,
    receipt_to_json,
    summary_to_json,
)
from cairn.domain.uris import parse_model_uri
from cairn.errors import InvalidParameter

deployments_app = typer.Typer(
    help="Where versions run: record, move, retire and trace deployments.", no_args_is_help=True
)
feedback_app = typer.Typer(
    help="Monitoring feedback: observations posted against a deployment, linked to versions.",
    no_args_is_help=True,
)

Expect = Annotated[
    int | None,
    typer.Option(min=0, help="Only if it serves this version now (0: new or retired)."),
]
Reason = Annotated[str, typer.Option(help="Why: kept in the history.")]
# the API's own times (microseconds, Z) as well as a plain date or time
TIME_FORMATS = [
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
]
Since = Annotated[
    datetime | None, typer.Option(formats=TIME_FORMATS, help="From this time (UTC if no zone).")
]
Until = Annotated[
    datetime | None,
    typer.Option(formats=TIME_FORMATS, help="Before this time (UTC if no zone)."),
]


def _show(d: Deployment, as_json: bool) -> None:
    if as_json:
        print_json(deployment_to_json(d))
        return
    table = record_table()
    serves = "(retired)" if d.version is None else f"models:/{d.model}/{d.version}"
    table.add_row("name", d.name)
    table.add_row("environment", d.environment)
    table.add_row("serves", serves + (f"  (through @{d.alias})" if d.alias else ""))
    table.add_row("url", d.url or "-")
    table.add_row("created", f"{when(d.created_at)} by {d.created_by or '?'}")
    table.add_row("updated", when(d.updated_at))
    if d.retired_at is not None:
        table.add_row("retired", when(d.retired_at))
    out.print(table)


def _show_events(events: Sequence[DeploymentEvent], as_json: bool) -> None:
    if as_json:
        print_json([event_to_json(e) for e in events])
        return
    table = DataTable("from", "until", "deployment", "env", "model", "version", "by", "reason")
    for e in events:
        version = "(retired)" if e.to_version is None else str(e.to_version)
        if e.alias:
            version += f" @{e.alias}"
        table.add_row(
            when(e.at),
            when(e.until, "now"),
            e.deployment,
            e.environment,
            e.model,
            version,
            e.actor or "?",
            e.reason,
        )
    out.print(table)


# -- cairn deployments ------------------------------------------------------------------


@deployments_app.command("set")
def set_(
    ctx: typer.Context,
    name: str,
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION or models:/NAME@ALIAS")],
    env: Annotated[
        str | None, typer.Option("--env", help="prod, staging, …; needed for a new one.")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Its http(s) address ('' clears it).")] = None,
    expect: Expect = None,
    reason: Reason = "",
    as_json: Json = False,
) -> None:
    """Record that deployment NAME now serves MODEL_URI (an alias is resolved now and kept)."""
    made = client(ctx).set_deployment(
        name, model_uri, environment=env, url=url, expect=expect, reason=reason
    )
    _show(made, as_json)


@deployments_app.command("get")
def get(
    ctx: typer.Context,
    name: str,
    at: Annotated[
        datetime | None,
        typer.Option(
            "--as-of", formats=TIME_FORMATS, help="What it served at this time (UTC if no zone)."
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Show deployment NAME, or with --as-of the change in force at that time."""
    sdk = client(ctx)
    if at is None:
        _show(sdk.get_deployment(name), as_json)
    else:
        _show_events([sdk.deployment_at(name, in_utc(at) or at)], as_json)


@deployments_app.command("list")
def list_(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only those serving this model.")] = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="Only those serving this version (with --model).")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    retired: Annotated[bool, typer.Option(help="Include retired deployments.")] = False,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    as_json: Json = False,
) -> None:
    """Deployments of models you can read, by name."""
    sdk = client(ctx)
    page = every_page(
        lambda token: sdk.list_deployments(
            model=model,
            version=version,
            environment=env,
            retired=retired,
            max_results=max_results,
            page_token=token,
        ),
        page_token,
        all_pages,
    )
    if as_json:
        print_json([deployment_to_json(d) for d in page.items])
    else:
        table = DataTable("name", "env", "model", "version", "alias", "url", "updated")
        for d in page.items:
            table.add_row(
                d.name,
                d.environment,
                d.model,
                "(retired)" if d.version is None else str(d.version),
                f"@{d.alias}" if d.alias else "",
                d.url or "",
                when(d.updated_at),
            )
        out.print(table)
    _more(page.next_page_token)


@deployments_app.command("history")
def history(
    ctx: typer.Context,
    name: str,
    limit: Annotated[int | None, typer.Option(min=1, help="Most recent N changes.")] = None,
    as_json: Json = False,
) -> None:
    """Every change of what deployment NAME serves, newest first, each in force until the next."""
    _show_events(client(ctx).deployment_history(name, limit=limit), as_json)


@deployments_app.command("where")
def where(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int | None, typer.Argument(help="One version; all when omitted.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Most recent N.")] = None,
    as_json: Json = False,
) -> None:
    """Where the versions of model NAME (or VERSION) ran, and when; newest first."""
    _show_events(client(ctx).list_servings(name, version, limit=limit), as_json)


@deployments_app.command("retire")
def retire(
    ctx: typer.Context,
    name: str,
    expect: Expect = None,
    reason: Reason = "",
    yes: Yes = False,
    as_json: Json = False,
) -> None:
    """End deployment NAME: it serves nothing from now on (its history is kept)."""
    confirm(f"Retire deployment {name!r}?", yes)
    retired = client(ctx).retire_deployment(name, expect=expect, reason=reason)
    _show(retired, as_json)
    message(f"retired {name!r}")


# -- cairn feedback ---------------------------------------------------------------------


def _read_points(path: Path) -> list[dict[str, Any]]:
    """A JSON file (a list of points, or ``{"points": [...]}``) or a CSV file with the
    columns key, value, timestamp; any other column is a label."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return list(_csv_points(text.splitlines()))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(f"{path}: not JSON ({exc}); or name a .csv file") from None
    points = data.get("points") if isinstance(data, dict) else data
    if not isinstance(points, list):
        raise InvalidParameter(f"{path}: expected a list of points or {{'points': [...]}}")
    return points


def _csv_points(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    reader = csv.DictReader(lines)
    missing = {"key", "value", "timestamp"} - set(reader.fieldnames or ())
    if missing:
        raise InvalidParameter(f"the CSV file has no column {', '.join(sorted(missing))}")
    for row in reader:
        line = reader.line_num
        try:
            value = float(row["value"])
        except ValueError:
            raise InvalidParameter(f"line {line}: value {row['value']!r} is not a number") from None
        labels = {k: v for k, v in row.items() if k not in ("key", "value", "timestamp") and v}
        yield {"key": row["key"], "value": value, "timestamp": row["timestamp"], "labels": labels}


@feedback_app.command("push")
def push(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The deployment.")],
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Points from a JSON or CSV file.")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE measured --at (now by default).")
    ] = None,
    at: Annotated[
        datetime | None,
        typer.Option(formats=TIME_FORMATS, help="When --metric values were measured (now)."),
    ] = None,
    label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE label of --metric.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="The same key and batch again stores nothing more.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Post observations of deployment NAME; each is linked to the version it served then."""
    points: list[dict[str, Any]] = [] if file is None else _read_points(file)
    when = in_utc(at) or datetime.now(UTC)
    labels = parse_pairs("label", label)
    points += [
        {"key": k, "value": v, "timestamp": when, "labels": labels}
        for k, v in parse_metrics(metric).items()
    ]
    if not points:
        raise InvalidParameter("nothing to post: give --file or --metric KEY=VALUE")
    receipt = client(ctx).push_feedback(name, points, idempotency_key=idempotency_key)
    if as_json:
        print_json(receipt_to_json(receipt))
        return
    linked = ", ".join(f"version {v}: {n}" for v, n in sorted(receipt.versions.items()))
    done = "already stored (replayed)" if receipt.replayed else "stored"
    message(f"{receipt.accepted} points {done} for {receipt.deployment!r} ({linked})")


@feedback_app.command("show")
def show(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A deployment, or models:/NAME/VERSION.")],
    key: Annotated[str | None, typer.Option(help="Only this metric.")] = None,
    since: Since = None,
    until: Until = None,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    as_json: Json = False,
) -> None:
    """The points of a deployment, or of a version (over every deployment), oldest first."""
    sdk = client(ctx)
    window: dict[str, Any] = {"key": key, "since": in_utc(since), "until": in_utc(until)}
    if target.startswith("models:/"):
        ref = parse_model_uri(target)
        if ref.version is None:
            raise InvalidParameter("name a version: models:/NAME/VERSION")
        name, number = ref.name, ref.version

        def fetch(token: str | None) -> Any:
            return sdk.version_feedback(
                name, number, max_results=max_results, page_token=token, **window
            )
    else:

        def fetch(token: str | None) -> Any:
            return sdk.deployment_feedback(
                target, max_results=max_results, page_token=token, **window
            )

    page = every_page(fetch, page_token, all_pages)
    if as_json:
        print_json([point_to_json(p) for p in page.items])
    else:
        table = DataTable("timestamp", "deployment", "version", "key", "value", "labels")
        for p in page.items:
            labels = ", ".join(f"{k}={v}" for k, v in p.labels.items())
            table.add_row(
                when(p.at), p.deployment or "", str(p.version), p.key, f"{p.value:g}", labels
            )
        out.print(table)
    _more(page.next_page_token)


@feedback_app.command("summary")
def summary(
    ctx: typer.Context,
    model_uri: Annotated[
        str, typer.Argument(help="models:/NAME/VERSION, or @ALIAS for the version it names now")
    ],
    deployment: Annotated[
        str | None,
        typer.Option(help="Only this deployment's points (a canary apart from production)."),
    ] = None,
    since: Since = None,
    until: Until = None,
    as_json: Json = False,
) -> None:
    """Per metric: count, min, max, mean and last value of the version's feedback."""
    ref = parse_model_uri(model_uri)
    name, number = ref.name, ref.version
    if number is None:  # an alias, latest, a semver range: the version it names now
        target = client(ctx).resolve(model_uri)
        name, number = target.name, target.version
    found = client(ctx).feedback_summary(
        name, number, since=in_utc(since), until=in_utc(until), deployment=deployment
    )
    if as_json:
        print_json([summary_to_json(s) for s in found])
        return
    table = DataTable("key", "count", "min", "max", "mean", "last", "last at")
    for s in found:
        table.add_row(
            s.key,
            str(s.count),
            f"{s.min:g}",
            f"{s.max:g}",
            f"{s.mean:g}",
            f"{s.last:g}",
            when(s.last_at),
        )
    out.print(table)

"""``cairn audit``: who did what, when, to which model; and is the log intact."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from cairn.cli.common import Json, client
from cairn.cli.output import DataTable, err, out, print_json
from cairn.domain.audit import (
    FROM_END,
    AuditEvent,
    audit_event_to_json,
    audit_report_to_json,
    parse_anchor,
)
from cairn.errors import InvalidParameter

app = typer.Typer(
    help="The audit log: every change and every refused attempt, hash-chained.",
    no_args_is_help=True,
)

MAX_PAGE = 1000


def parse_when(option: str, value: str | None) -> datetime | None:
    """``2026-11-01``, ``2026-11-01T09:30`` or full RFC 3339; no zone means UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidParameter(
            f"{option} {value!r} is not a date or time; use e.g. 2026-11-01 or 2026-11-01T09:30:00Z"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _plain(value: Any) -> str:
    return "-" if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _change(e: AuditEvent) -> str:
    """What changed, compactly: ``key: old → new`` per changed field, or ``old → new``."""
    before, after = e.before, e.after
    if before is None and after is None:
        return ""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
        parts = [f"{k}: {_plain(before.get(k))} → {_plain(after.get(k))}" for k in keys]
    elif isinstance(after, dict) and before is None:
        parts = [f"{k}={_plain(v)}" for k, v in after.items()]
    elif isinstance(before, dict) and after is None:
        parts = [f"{k}={_plain(v)} → -" for k, v in before.items()]
    else:
        parts = [f"{_plain(before)} → {_plain(after)}" if before is not None else _plain(after)]
    return "; ".join(_clip(p) for p in parts)


def show_events(events: list[AuditEvent], as_json: bool) -> None:
    if as_json:
        print_json([audit_event_to_json(e) for e in events])
        return
    table = DataTable("seq", "time (UTC)", "actor", "action", "model", "target", "change")
    for e in events:
        table.add_row(
            str(e.seq),
            e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action if e.outcome == "ok" else Text(f"{e.action} ({e.outcome})", style="red"),
            (e.model or "") + ("" if e.version is None else f" v{e.version}"),
            e.target or "",
            _change(e),
        )
    out.print(table)


@app.command("list")
def list_(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Events of this model.")] = None,
    actor: Annotated[str | None, typer.Option(help="Events by this user or token owner.")] = None,
    action: Annotated[
        str | None,
        typer.Option(help="An action (alias.set) or a family of them (alias, version.tag)."),
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Moves of this alias: who moved it, when, from what.")
    ] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, or denied for refused attempts.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time on (2026-11-01, or RFC 3339; UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (exclusive).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 50,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="Oldest events first (default: newest).")
    ] = False,
    as_json: Json = False,
) -> None:
    """Audit events, newest first. The instance admin sees all; MANAGE on a model shows
    that model's events (--model is then required)."""
    sdk = client(ctx)
    events: list[AuditEvent] = []
    token: str | None = None
    while len(events) < limit:
        page = sdk.list_audit(
            model=model,
            actor=actor,
            action=action,
            alias=alias,
            outcome=outcome,
            since=parse_when("--since", since),
            until=parse_when("--until", until),
            oldest_first=oldest_first,
            max_results=min(limit - len(events), MAX_PAGE),
            page_token=token,
        )
        events.extend(page.items)
        token = page.next_page_token
        if token is None:
            break
    show_events(events, as_json)
    if token is not None and not as_json:
        err.print(f"[dim]more events: raise --limit (now {limit})[/dim]")


def event_line(e: AuditEvent) -> str:
    """One event on one line: seq, time, actor, action, model and version, target."""
    action = e.action if e.outcome == "ok" else f"{e.action} ({e.outcome})"
    about = (e.model or "-") + ("" if e.version is None else f" v{e.version}")
    when = e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "  ".join((str(e.seq), when, e.actor, action, about, e.target or "-"))


def _emit(events: Iterable[AuditEvent], as_json: bool) -> None:
    """Print each event as it comes, one line each, flushed (for ``| jq`` and ``| grep``)."""
    for e in events:
        if as_json:
            line = json.dumps(audit_event_to_json(e), ensure_ascii=False, separators=(",", ":"))
        else:
            line = event_line(e)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


@app.command("tail")
def tail(
    ctx: typer.Context,
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            "--since-seq",
            min=0,
            help="Events after this seq (a cursor: the last seq seen; 0: the log's start). "
            "Default: the log's start, or with --follow its end (only the events to come).",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Events of this model.")] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            metavar="PATTERN",
            help="Events by name, as webhooks select them: alias.set, a family alias.* or "
            "version.tag.*, or *; repeatable. An event's name is its audit action.",
        ),
    ] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, or denied for refused attempts.")] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing events as they land, until Ctrl-C."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per event and line (for jq).")
    ] = False,
) -> None:
    """The audit log as a stream, oldest first: one line per event (seq, time, actor,
    action, model and version, target). Without --follow it prints the events there are
    and exits; with it, it waits for new ones, reconnecting when the server goes away.
    The instance admin sees all; MANAGE on a model shows that model's events (--model)."""
    sdk = client(ctx)
    try:
        if follow:
            start = FROM_END if after is None else after  # as tail -f: what comes next
            _emit(
                sdk.follow_events(after=start, model=model, events=event, outcome=outcome),
                as_json,
            )
            return
        cursor = after or 0
        while True:
            page = sdk.tail_events(
                after=cursor, model=model, events=event, outcome=outcome, max_results=MAX_PAGE
            )
            _emit(page.events, as_json)
            if len(page.events) < MAX_PAGE:
                return
            cursor = page.next_after_seq
    except KeyboardInterrupt:  # the way out of --follow: not a failure
        raise typer.Exit(0) from None
    except BrokenPipeError:  # the reader went away (| head -n 5): done, as for tail -f
        # what is still buffered can go nowhere: let the exit's flush write it to nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(
            metavar="SEQ:HASH",
            help="A head an earlier verify printed, kept elsewhere: the chain must still "
            "pass through it (finds the newest events deleted with the head set back).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Recompute the audit log's hash chain (instance admin); exit 1 if it was tampered with."""
    wanted = None if anchor is None else parse_anchor(anchor)
    report = client(ctx).verify_audit(anchor=wanted)
    if as_json:
        print_json(audit_report_to_json(report))
    elif report.ok:
        out.print(
            f"audit log intact: {report.events} events; head {report.head_seq}:{report.head_hash}",
            highlight=False,
        )
    else:
        out.print(
            Text.assemble(
                ("audit log broken", "red"),
                f" at event {report.first_bad_seq}: {report.reason} "
                f"({report.events} events verified before it)",
            ),
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)

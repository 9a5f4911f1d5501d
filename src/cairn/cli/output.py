"""How the CLI prints: data on stdout (tables, or the API's JSON), messages on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from cairn.domain.artifacts import FileLink
from cairn.domain.codec import (
    alias_event_to_json,
    file_to_json,
    link_to_json,
    model_to_json,
    parse_time,
    version_to_json,
)
from cairn.domain.models import AliasEvent, ModelVersion, RegisteredModel

# Data is printed as it is: a tag value or a file name such as "[/x]" or "[bold]" is not
# Rich markup (it would be restyled, or make the print fail). Messages on stderr are plain
# text too (``message``); only this package's own fixed strings use markup, through
# ``err.print``.
#
# On a terminal (or with COLUMNS set) tables fit its width; in a pipe they are as wide as
# their rows, one line each, for grep and awk (Rich's default there is 80 columns).
_PIPED = not sys.stdout.isatty() and "COLUMNS" not in os.environ
out = Console(soft_wrap=True, markup=False, width=1_000_000 if _PIPED else None)
err = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def when(value: datetime | None, missing: str = "") -> str:
    """A time, in UTC to the second (one without zone is UTC, as the domain keeps them)."""
    if value is None:
        return missing
    return (
        (value if value.tzinfo else value.replace(tzinfo=UTC))
        .astimezone(UTC)
        .strftime("%Y-%m-%d %H:%M:%S")
    )


def stamp(value: str | None, missing: str = "-", *, seconds: bool = True) -> str:
    """A time from the API's JSON (ISO 8601), in UTC, to the second or the minute."""
    parsed = parse_time(value)
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return missing if parsed is None else parsed.astimezone(UTC).strftime(shape)


class ListTable(Table):
    """A table that says ``(none)`` when it has no rows, rather than drawing a header over
    nothing (a record table, without a header, draws as it is)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.show_header and not self.rows:
            yield Text("(none)", style="dim")
            return
        yield from super().__rich_console__(console, options)


class DataTable(ListTable):
    """A table that never cuts a value with '…': one too wide for the terminal (or for
    COLUMNS) folds onto the next lines, so a digest, a path or a name can be read and
    copied whole."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for column in self.columns:
            column.overflow = "fold"
        yield from super().__rich_console__(console, options)


def record_table() -> DataTable:
    """The two-column, borderless table that shows one record (a model, a version ...)."""
    return DataTable(show_header=False, box=None)


def columns_table(*columns: str, keep: tuple[str, ...] = ()) -> Table:
    """A table whose ``keep`` columns (names, ids) never wrap: the others give way."""
    table = ListTable()
    for column in columns:
        table.add_column(column, no_wrap=column in keep)
    return table


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def show_model(model: RegisteredModel, as_json: bool) -> None:
    if as_json:
        print_json(model_to_json(model))
        return
    table = record_table()
    table.add_row("name", model.name)
    table.add_row("description", model.description)
    table.add_row("latest version", str(model.latest_version or "-"))
    table.add_row("aliases", _pairs({f"@{a}": v for a, v in model.aliases.items()}))
    table.add_row("tags", _pairs(dict(model.tags)))
    table.add_row("created", f"{when(model.created_at)} by {model.created_by or '?'}")
    table.add_row("updated", when(model.updated_at))
    if model.deleted_at:
        table.add_row("deleted", when(model.deleted_at))
    out.print(table)


def show_models(models: Sequence[RegisteredModel], as_json: bool, token: str | None) -> None:
    if as_json:
        print_json([model_to_json(m) for m in models])
    else:
        table = DataTable("name", "latest", "aliases", "tags", "updated")
        for m in models:
            aliases = " ".join(f"@{a}={v}" for a, v in m.aliases.items())
            updated = when(m.updated_at)
            table.add_row(
                m.name, str(m.latest_version or "-"), aliases, _pairs(dict(m.tags)), updated
            )
        out.print(table)
    _more(token)


def show_version(version: ModelVersion, as_json: bool) -> None:
    if as_json:
        print_json(version_to_json(version))
        return
    table = record_table()
    table.add_row("model", version.name)
    table.add_row("version", str(version.version))
    table.add_row(
        "status",
        version.status.value + (f" ({version.status_message})" if version.status_message else ""),
    )
    table.add_row("stage", version.stage.value)
    table.add_row("aliases", " ".join(f"@{a}" for a in version.aliases))
    if version.semver:
        table.add_row("semver", version.semver)
    table.add_row("description", version.description)
    table.add_row("params", _pairs(dict(version.params)))
    table.add_row("metrics", _pairs(dict(version.metrics)))
    table.add_row("tags", _pairs(dict(version.tags)))
    for label, value in (
        ("source", version.source),
        ("run id", version.run_id),
        ("run link", version.run_link),
    ):
        if value:
            table.add_row(label, value)
    table.add_row("files", f"{len(version.files)} ({version.size} bytes)")
    if version.digest:
        table.add_row("digest", version.digest)
    table.add_row("created", f"{when(version.created_at)} by {version.created_by or '?'}")
    if version.deleted_at:
        table.add_row("deleted", when(version.deleted_at))
    out.print(table)


def show_versions(versions: Sequence[ModelVersion], as_json: bool, token: str | None) -> None:
    if as_json:
        print_json([version_to_json(v) for v in versions])
    else:
        table = DataTable("model", "version", "status", "stage", "aliases", "metrics", "created")
        for v in versions:
            table.add_row(
                v.name,
                str(v.version),
                v.status.value,
                v.stage.value,
                " ".join(f"@{a}" for a in v.aliases),
                _pairs(dict(v.metrics)),
                when(v.created_at),
            )
        out.print(table)
    _more(token)


def show_alias_events(events: Iterable[AliasEvent], as_json: bool) -> None:
    events = list(events)
    if as_json:
        print_json([alias_event_to_json(e) for e in events])
        return
    table = DataTable("when", "alias", "from", "to", "by")
    for e in events:
        table.add_row(
            when(e.at),
            f"@{e.alias}",
            str(e.from_version or "-"),
            str(e.to_version or "(deleted)"),
            e.actor or "?",
        )
    out.print(table)


def show_files(links: Sequence[FileLink], as_json: bool, *, with_links: bool) -> None:
    """A version's files; ``with_links``: with each one's direct download link."""
    if as_json:
        print_json([link_to_json(k) if with_links else file_to_json(k.file) for k in links])
    else:
        table = DataTable("path", "size", "digest", *(["link"] if with_links else []))
        for link in links:
            f, url = link.file, [link.url or "-"] if with_links else []
            table.add_row(f.path, f"{f.size:,}", f.digest, *url)
        out.print(table)
    if with_links and links and all(link.url is None for link in links):
        message("this registry's store gives no direct links (local disk): use `cairn pull`")


def _more(token: str | None) -> None:
    """Where the next page starts, on stderr: with --json too (stdout stays the JSON alone)."""
    if token:
        err.print(f"[dim]more results: --page-token {token}[/dim]")


def message(text: str) -> None:
    err.print(text, markup=False)

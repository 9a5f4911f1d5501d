"""What every command shares: the client from global options, and k=v parsing."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer

from cairn.cli.output import err
from cairn.client import Client
from cairn.client.base import BaseClient
from cairn.domain.models import Page
from cairn.errors import InvalidParameter

T = TypeVar("T")

# the API's page cap (domain.validation.MAX_PAGE): outside it, a usage error naming the option
MaxResults = Annotated[int | None, typer.Option(min=1, max=1000, help="Page size (1-1000).")]
PageToken = Annotated[str | None, typer.Option(help="Continue a previous listing.")]
AllPages = Annotated[
    bool, typer.Option("--all", help="Every page, not just the first (--max-results sizes them).")
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
# a command's own --quiet, as parameter ``quiet_flag`` (``quiet`` reads it); also a global
# option (``cairn -q push …``): either place silences the command
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or messages on stderr.")
]


def every_page(
    fetch: Callable[[str | None], Page[T]], page_token: str | None, all_pages: bool
) -> Page[T]:
    """``fetch(token)`` once, or with ``--all`` until no page is left (one page in memory
    per request; the listing is the concatenation, and has no next token)."""
    page = fetch(page_token)
    if not all_pages:
        return page
    items = list(page.items)
    while page.next_page_token is not None:
        page = fetch(page.next_page_token)
        items.extend(page.items)
    return Page(items)


def as_of_option(help: str) -> Any:
    """``--as-of`` for a past time: a date, a time, or one with a zone (UTC if none; see
    ``in_utc``)."""
    formats = ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]
    return typer.Option("--as-of", formats=formats, help=help)


def in_utc(value: datetime | None) -> datetime | None:
    """An ``--as-of`` time; one given without a zone is UTC."""
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


def client(ctx: typer.Context) -> BaseClient:
    """The client for ``--uri``/``--token``, opened once per command."""
    state = ctx.find_root().obj
    if state.get("client") is None:
        state["client"] = Client(state["uri"], token=state["token"])
    opened: BaseClient = state["client"]
    return opened


def quiet(ctx: typer.Context) -> bool:
    """Whether ``--quiet`` was given, to ``cairn`` or to the command itself (``Quiet``): no
    progress bars, no messages on stderr."""
    return bool(ctx.params.get("quiet_flag") or ctx.find_root().obj.get("quiet"))


def parse_pairs(kind: str, items: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` options; a key given twice is refused (neither value would be right)."""
    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameter(f"{kind} {item!r} is not of the form KEY=VALUE")
        if key in pairs:
            raise InvalidParameter(
                f"{kind} {key!r} is given twice ({key}={pairs[key]}, {key}={value})"
            )
        pairs[key] = value
    return pairs


def parse_metrics(items: list[str] | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in parse_pairs("metric", items).items():
        try:
            number = float(value)
        except ValueError:
            raise InvalidParameter(f"metric {key}={value!r}: the value is not a number") from None
        if not math.isfinite(number):
            raise InvalidParameter(f"metric {key}={value!r}: the value is not a finite number")
        metrics[key] = number
    return metrics


def confirm(question: str, yes: bool) -> None:
    """Ask, unless ``--yes``. "No" exits 1; no answer at all (Ctrl-C, stdin closed) is
    Click's abort, which ``main`` turns into 130 like any interrupt."""
    if yes:
        return
    if not typer.confirm(question, default=False, err=True):
        err.print("not confirmed; nothing was changed")
        raise typer.Exit(1)

"""The templates (Jinja2, every value escaped) and the helpers they format values with."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined


@functools.cache
def environment() -> Environment:
    """Built on first use (nothing is made at import time), then shared: it is immutable."""
    env = Environment(
        loader=PackageLoader("cairn.ui", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, rfc3339=rfc3339, size=size, shell_quote=shlex.quote, number=number
    )
    env.globals.update(
        web_link=web_link,
        change=change,
        sparkline=sparkline,
        deployment_url=deployment_url,
        model_url=model_url,
        version_url=version_url,
        file_url=file_url,
        alias_url=alias_url,
        link=link,
    )
    return env


def render(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(context)


# -- values ----------------------------------------------------------------------------


def rfc3339(at: datetime | None) -> str:
    """``2026-05-01T12:34:56.789012Z`` (UTC); empty for no time."""
    if at is None:
        return ""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def when(at: datetime | None) -> str:
    """``2026-05-01 12:34:56 UTC``: readable, to the second; empty for no time."""
    if at is None:
        return ""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size(count: int) -> str:
    """``1.5 MiB``; bytes below 1 KiB."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


def number(value: float) -> str:
    """A measured value, to 6 significant digits: ``41.5``, ``0.00213``, ``1.23457e+06``."""
    return f"{value:.6g}"


def change(before: float, now: float) -> str:
    """How ``now`` differs from ``before``: relative (``+12.5%``) when ``before`` is not 0,
    else the difference (``+0.002``). No judgement: whether up is better depends on the key."""
    if before == now:
        return "±0"
    if before == 0:
        return f"{now - before:+.3g}"
    return f"{(now - before) / abs(before) * 100:+.3g}%"


SPARK_WIDTH, SPARK_HEIGHT = 120, 24


def sparkline(values: Sequence[float]) -> str:
    """The ``points`` of an SVG polyline drawing ``values`` left to right in a
    ``SPARK_WIDTH`` by ``SPARK_HEIGHT`` box (highest at the top, a flat series in the
    middle); empty for fewer than 2 values. Numbers only: nothing a page could run."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = high - low
    step = SPARK_WIDTH / (len(values) - 1)
    margin = 2  # the stroke's half width, so that the extremes are not cut
    inner = SPARK_HEIGHT - 2 * margin
    points = []
    for i, value in enumerate(values):
        y = SPARK_HEIGHT / 2 if span == 0 else margin + inner * (high - value) / span
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)


def web_link(url: str | None) -> str | None:
    """``url`` if it is an ``http(s)://`` address a page may link to, else None (shown as
    text): never ``javascript:``, ``data:`` or anything else a click would run."""
    if not url or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


# -- this site's addresses ---------------------------------------------------------------


def _segment(value: object) -> str:
    return quote(str(value), safe="")


def model_url(name: str) -> str:
    return f"/models/{_segment(name)}"


def version_url(name: str, version: int) -> str:
    return f"{model_url(name)}/versions/{_segment(version)}"


def alias_url(name: str, alias: str) -> str:
    return f"{model_url(name)}/aliases/{_segment(alias)}"


def deployment_url(name: str) -> str:
    return f"/deployments/{_segment(name)}"


def file_url(name: str, version: int, path: str) -> str:
    """The API's download of one file (a session cookie authenticates a GET there)."""
    return f"/api/v1{version_url(name, version)}/files/{quote(path, safe='/')}"


def link(path: str, **params: str | None) -> str:
    """``path`` with the query ``params`` that have a value."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{path}?{query}" if query else path

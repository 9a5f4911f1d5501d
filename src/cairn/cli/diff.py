"""``cairn diff``: what changed between two versions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import typer
from rich.text import Text

from cairn.cli.common import Json, as_of_option, client, in_utc
from cairn.cli.output import DataTable, out, print_json
from cairn.domain.diff import FileChange, Kind, ValueChange, VersionDiff
from cairn.domain.diff_codec import diff_to_json
from cairn.domain.mlmodel import SignatureDiff
from cairn.domain.models import ModelVersion
from cairn.domain.tensors import Tensor, TensorChange, TensorDiff


def _label(v: ModelVersion) -> str:
    return f"models:/{v.name}/{v.version}"


def _value(value: str | float | None) -> str:
    if value is None:
        return "-"
    return format(value, ".6g") if isinstance(value, float) else value


def _changes(title: str, changes: tuple[ValueChange, ...], *, deltas: bool = False) -> None:
    if not changes:
        return
    table = DataTable(title, "old", "new", *(["delta"] if deltas else []), box=None)
    for c in changes:
        delta = [] if not deltas else ["-" if c.delta is None else format(c.delta, "+.6g")]
        table.add_row(c.key, _value(c.old), _value(c.new), *delta)
    out.print(table)


def _size(change: FileChange) -> str:
    before = None if change.old is None else f"{change.old.size:,}"
    after = None if change.new is None else f"{change.new.size:,}"
    if before is None or after is None or before == after:
        return after or before or ""
    return f"{before} -> {after}"


def _files(changes: tuple[FileChange, ...]) -> None:
    if not changes:
        return
    table = DataTable("file", "change", "size (bytes)", box=None)
    for c in changes:
        moved = f" (from {c.old.path})" if c.kind is Kind.RENAMED and c.old is not None else ""
        table.add_row(c.path + moved, c.kind.value, _size(c))
    out.print(table)


def _tally(unchanged: str, changes: Iterable[FileChange | TensorChange]) -> str:
    """``unchanged`` and how many changes of each kind, in the order they come."""
    counts = Counter(c.kind.value for c in changes)
    return ", ".join([unchanged, *(f"{n} {kind}" for kind, n in counts.items())])


def _layout(t: Tensor | None) -> str:
    return "-" if t is None else f"{t.dtype} {list(t.shape)}"


def _tensors(t: TensorDiff) -> None:
    summary = _tally(f"{t.unchanged} unchanged ({t.unchanged_bytes:,} bytes)", t.changes)
    out.print(f"tensors: {summary}; {t.changed_bytes:,} bytes new or changed")
    for path, why in t.unreadable:
        out.print(f"not read: {path}: {why}")
    if not t.changes:
        return
    table = DataTable("tensor", "change", "what", "old", "new", "size (bytes)", box=None)
    for c in t.changes:
        either = c.new or c.old
        size = 0 if either is None else either.size
        table.add_row(
            c.name, c.kind.value, " ".join(c.what), _layout(c.old), _layout(c.new), f"{size:,}"
        )
    out.print(table)


def _signature(s: SignatureDiff) -> None:
    for path, why in s.unreadable:
        out.print(f"not read: {path}: {why}")
    if s.old_path is None or s.new_path is None:
        sides = [n for n, p in (("OLD", s.old_path), ("NEW", s.new_path)) if p is not None]
        has = f"only {sides[0]} has one" if sides else "neither has one"
        out.print(f"signature: not compared, {has} (an MLmodel file with a signature)")
        return
    if not s.changes:
        out.print(f"signature: the same ({s.old_path} -> {s.new_path})")
        return
    out.print(
        f"signature: {len(s.changes)} change(s), {s.breaking} breaking for callers of OLD "
        f"({s.old_path} -> {s.new_path})"
    )
    table = DataTable("section", "name", "change", "old", "new", "breaking", box=None)
    for c in s.changes:
        old = "-" if c.old is None else c.old.describe()
        new = "-" if c.new is None else c.new.describe()
        breaking = Text("yes", style="bold red") if c.breaking else Text("no")
        table.add_row(c.section, c.name, c.kind, old, new, breaking)
    out.print(table)


def show_diff(d: VersionDiff) -> None:
    out.print(f"{_label(d.old)} -> {_label(d.new)}")
    if d.identical:
        out.print(f"no differences ({d.unchanged_files} file(s), all the same)")
        return
    files = _tally(f"{d.unchanged_files} unchanged", d.files)
    out.print(
        f"files: {files}; a pull of version {d.new.version} with version {d.old.version} "
        f"cached downloads {d.transfer_bytes:,} bytes"
    )
    _changes("field", d.fields)
    _changes("metric", d.metrics, deltas=True)
    _changes("param", d.params)
    _changes("tag", d.tags)
    _files(d.files)
    if d.tensors is not None:
        _tensors(d.tensors)
    if d.signature is not None:
        _signature(d.signature)


def diff(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(metavar="OLD", help="models:/NAME/VERSION or @ALIAS.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="models:/NAME/VERSION or @ALIAS.")],
    old_as_of: Annotated[
        datetime | None,
        as_of_option("Resolve OLD's alias as of then (UTC if no zone): what changed since."),
    ] = None,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 1 when the versions differ.")
    ] = False,
    tensors: Annotated[
        bool,
        typer.Option(
            "--tensors",
            help="Also compare the tensors of their safetensors files, by name across files.",
        ),
    ] = False,
    signature: Annotated[
        bool,
        typer.Option(
            "--signature",
            help="Also compare the signatures of their MLflow MLmodel files, marking the "
            "changes that break callers of OLD.",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Show what changed from one version to another: fields, metrics, params, tags, files.

    OLD and NEW may be versions of one model or of two (a fine-tune against its base).
    Metrics come with their deltas; files are changed, renamed (the same content at another
    path), added or removed; the summary gives the bytes a pull of NEW would download with
    OLD in the cache. With --as-of, OLD's alias is resolved as of that time, so
    `cairn diff models:/m@production models:/m@production --as-of 2026-11-01` shows what
    changed in production since then.

    With --tensors, the tensors of both versions' safetensors files are matched by name,
    however each is sharded, and shown as changed (dtype, shape or values), added or
    removed: which layers a fine-tune touched. Values are compared on the server, reading
    only tensors that are not at the same place of the same file, up to the first
    differing byte.

    With --signature, the signatures (inputs, outputs, params) of their MLmodel files are
    compared field by field, each change marked breaking when a caller written for OLD
    would fail with NEW or misread it: a new required input, an input made required, a
    removed output, a changed type or shape, a removed param.
    """
    old_as_of = in_utc(old_as_of)
    found = client(ctx).diff_versions(
        old, new, old_as_of=old_as_of, tensors=tensors, signature=signature
    )
    if as_json:
        print_json(diff_to_json(found))
    else:
        show_diff(found)
    if exit_code and not found.identical:
        raise typer.Exit(1)

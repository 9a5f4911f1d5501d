"""Where a search starts: from the value index of one of its tag or param equalities,
or from the page's order (``choose``).

Starting from the index costs one step per row carrying the value; walking in the
page's order costs one step per row until the page is full, each row tested by primary
key, which is linear in the versions when few of them match. Which is cheaper depends on
the value, and neither planner can be trusted to know it on every run: SQLite's
``sqlite3`` module is built without STAT4 (without statistics its planner walks in
order; with them it would always start from the index), and a PostgreSQL statement that
psycopg has prepared may run on a generic plan that knows no value. So Cairn counts.
"""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Select, bindparam, func, select

from cairn.domain.filters import Target
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import registered_models
from cairn.store.metadata.search_compile import (
    Shape,
    key_value_table,
    keyed_equalities,
    name_slot,
    slot_params,
    value_prefixes,
)

DRIVE_LIMIT = 2000  # a tag or param value on fewer rows starts a search
DRIVE_MEMORY_S = 10.0  # how long a connection remembers that choice


class Start(NamedTuple):
    """Where a search starts (``choose``)."""

    indexed: frozenset[int]  # the slots of the equality that starts it, if one does
    drive: bool  # whether one does
    guard: bool = False  # a guess that the model is small: its statement checks it
    small: bool | None = None  # what the model's size said, when it was asked


def choose(
    session: Connection,
    target: Target,
    shape: Shape | None,
    values: tuple[Any, ...],
    include_deleted: bool,
    *,
    guess: bool = False,
) -> Start:
    """Whether the search starts from the value index of one of the filter's top-level
    tag or param equalities (``search_compile``: written ``id IN (…)``), and which.

    Each is counted in the index, stopping at ``DRIVE_LIMIT``: the first with fewer rows
    starts the search (``drive``: the statement keeps the planner off the model's index);
    with none, rows are tested in the page's order, and at least ``DRIVE_LIMIT`` rows
    carry each value, so a page fills quickly. Under OR or NOT an equality bounds
    nothing. A search kept to a model of at most ``DRIVE_LIMIT`` versions (by its
    counter) tests that model's rows without counting, however rare the value: that
    costs no more.

    The answer only picks a plan (a stale one costs time, never a wrong row), so each
    connection remembers it for ``DRIVE_MEMORY_S``: a search repeated meanwhile, as
    dashboards and pipelines repeat theirs, costs no count.

    ``guess``: a search kept to one model does not ask the model's size but takes it to
    be small (most models are), and the answer says so (``guard``): its statement then
    returns rows only if the model is small (``small_guard``), and the caller, given
    none, asks again without guessing (``small`` then says whether the model was small,
    and so whether no row was the answer). A round trip fewer whenever rows come back.
    """
    model = name_slot(shape) if target == "versions" else None
    scope = None if model is None else values[model]
    memory = session.info.setdefault("cairn.search.drive", {})
    now = time.monotonic()
    small: bool | None = None  # the model's size, asked once when first needed
    guessed = False
    for _, name, key, op, slot in keyed_equalities(shape, top=True):
        mine = values[slot : slot + (2 if op == "IN" else 1)]
        remembered = (target, name, key, op, mine, scope, include_deleted, DRIVE_LIMIT)
        expires, drive = memory.get(remembered, (0.0, False))
        if expires < now:
            if guess and scope is not None:
                guessed = True  # taken for a small model's: not asked, not remembered
                continue
            if small is None:
                small = scope is not None and _model_size(session, scope, include_deleted) <= (
                    DRIVE_LIMIT
                )
            params = {"key": key, **slot_params(mine), "limit": DRIVE_LIMIT}
            drive = not small and _counter(target, name, op).scalar(session, params) < DRIVE_LIMIT
            if len(memory) >= 1024:
                memory.clear()
            memory[remembered] = (now + DRIVE_MEMORY_S, drive)
        if drive:
            return Start(frozenset({slot}), True, small=small)
    return Start(frozenset(), False, guard=guessed, small=small)


def small_guard(slot: int, include_deleted: bool) -> ColumnElement[bool]:
    """The guard of a guessed start: the models the filter's ``name = …`` (slot ``slot``)
    names hold at most ``:drive_limit`` versions (``DRIVE_LIMIT``, a parameter so that
    the statement, built once, follows it), by their counters."""
    size = _size(include_deleted, bindparam(f"f{slot}")).scalar_subquery()
    return size <= bindparam("drive_limit")


def _model_size(session: Connection, name: str, include_deleted: bool) -> int:
    """How many versions the models named ``name`` hold, by their counters (0: none)."""
    return int(_MODEL_SIZE[include_deleted].scalar(session, {"name": name}))


def _size(include_deleted: bool, name: Any) -> Select[Any]:
    rm = registered_models.c
    size = select(func.coalesce(func.max(rm.last_version), 0)).where(rm.name_key == name)
    return size if include_deleted else size.where(rm.deleted_at.is_(None))


_MODEL_SIZE = {deleted: Prepared(_size(deleted, bindparam("name"))) for deleted in (False, True)}


@functools.lru_cache(maxsize=16)
def _counter(target: Target, name: str, op: str) -> Prepared:
    """How many rows carry the tag or param value (``:key``, ``f0``), up to ``:limit``;
    only its prefix is compared, which the index alone answers, so the count may exceed
    the exact one, never fall below it."""
    table, _, _ = key_value_table(name, target)
    hits = select(table.c.key).where(value_prefixes(table, 0, op), table.c.key == bindparam("key"))
    return Prepared(select(func.count()).select_from(hits.limit(bindparam("limit")).subquery()))

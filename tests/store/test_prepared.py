"""``Prepared`` runs statements on the driver's cursor and must give what SQLAlchemy's own
execution gives: the same rows, parameters in the right places, the same errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError

from cairn.domain.models import Actor, VersionSpec
from cairn.errors import CairnError, Conflict
from cairn.service.registry import RegistryService
from cairn.store.metadata import prepared
from cairn.store.metadata.database import Database
from cairn.store.metadata.prepared import LONG_LIST, Prepared

meta = MetaData()
probe = Table(
    "prepared_probe",
    meta,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("score", Float),
    Column("flag", Boolean, nullable=False),
)
P = probe.c

ROWS = [
    {"id": 1, "name": "a", "score": 0.5, "flag": True},
    {"id": 2, "name": "b", "score": None, "flag": False},
    {"id": 3, "name": "c", "score": 2.0, "flag": True},
]


@pytest.fixture
def table(db: Database) -> Iterator[Database]:
    db.write(lambda s: meta.create_all(s))
    db.write(lambda s: s.execute(insert(probe), ROWS))
    yield db
    db.write(lambda s: meta.drop_all(s))


def both(db: Database, stmt: object, params: dict[str, object]) -> tuple[list[tuple], list[tuple]]:
    """The rows from SQLAlchemy's execution and from Prepared's, as plain tuples."""
    prepared = Prepared(stmt)  # type: ignore[arg-type]

    def run(s: Connection) -> tuple[list[tuple], list[tuple]]:
        expected = [tuple(r) for r in s.execute(stmt, params)]  # type: ignore[call-overload]
        return expected, [tuple(r) for r in prepared.all(s, params)]

    return db.read(run)


def test_rows_match_sqlalchemys_with_a_parameter_used_twice(table: Database) -> None:
    stmt = select(probe).where(or_(P.id == bindparam("n"), P.id == bindparam("n") + 1))
    expected, got = both(table, stmt.order_by(P.id), {"n": 1})
    assert got == expected
    assert [r[0] for r in got] == [1, 2]


@pytest.mark.parametrize("ids", [[1], [3, 1], [1, 2, 3], [9]])
def test_expanding_lists_of_every_length(table: Database, ids: list[int]) -> None:
    stmt = select(P.name).where(P.id.in_(bindparam("ids", expanding=True))).order_by(P.id)
    expected, got = both(table, stmt, {"ids": ids})
    assert got == expected


LONG = list(range(1, LONG_LIST + 3))  # sent as an array on PostgreSQL


@pytest.mark.parametrize("ids", [[], [2], [3, 1], [1, 2, 3], [9], LONG, [9, *LONG]])
def test_in_and_not_in_lists_including_empty_and_long_ones(table: Database, ids: list[int]) -> None:
    """Short lists run as ``IN``; on PostgreSQL long ones as ``= ANY`` / ``<> ALL`` of one
    array: the same rows either way."""
    listed = bindparam("ids", expanding=True)
    wheres = (
        P.id.in_(listed),
        P.id.not_in(listed),
        P.name.in_(bindparam("names")),
        P.id.in_(ids),  # a list given when the statement is built
        P.id.not_in(ids),
    )
    for where in wheres:
        stmt = select(P.name).where(where, P.id.in_(listed) | (P.id > 0)).order_by(P.id)
        params = {"ids": ids, "names": [chr(ord("a") + i - 1) for i in ids]}
        expected, got = both(table, stmt, params)
        assert got == expected


def test_postgresql_sends_a_long_list_as_one_array(table: Database) -> None:
    """A long list's SQL text does not depend on its length (psycopg parses each distinct
    text, and not at all past 4 KiB); short lists keep one text per length."""
    stmt = select(P.name).where(P.id.in_(bindparam("ids", expanding=True)))
    prepared = Prepared(stmt)

    def sql_for(ids: list[int]) -> str:
        def run(s: Connection) -> str:
            plan, _prepare = prepared._plan(s, {"ids": ids})
            return str(plan.form({"ids": ids}).sql)

        return table.read(run)

    assert sql_for([1]) != sql_for([1, 2])
    long_forms = {sql_for(LONG), sql_for([*LONG, 99])}
    if table.dialect == "postgresql":
        (sql,) = long_forms
        assert "= ANY (" in sql
    else:
        assert len(long_forms) == 2


def test_a_one_plan_statement_keeps_its_long_lists_prepared(table: Database) -> None:
    """The server may then keep one plan for it; other statements' long lists are planned
    for their run (never prepared)."""
    stmt = select(P.name).where(P.id.in_(bindparam("ids", expanding=True))).order_by(P.id)

    def prepare_of(prepared: Prepared, ids: list[int]) -> bool | None:
        return table.read(lambda s: prepared._plan(s, {"ids": ids})[1])

    one_plan, usual = Prepared(stmt, one_plan=True), Prepared(stmt)
    assert prepare_of(one_plan, [1]) is None and prepare_of(usual, [1]) is None
    assert prepare_of(one_plan, LONG) is None
    assert prepare_of(usual, LONG) is (False if table.dialect == "postgresql" else None)
    expected = table.read(lambda s: [tuple(r) for r in s.execute(stmt, {"ids": LONG})])
    for _ in range(8):  # past psycopg's threshold: then a server-side prepared statement
        got = table.read(lambda s: [tuple(r) for r in one_plan.all(s, {"ids": LONG})])
        assert got == expected == [("a",), ("b",), ("c",)]


def test_literals_unions_and_typed_columns(table: Database) -> None:
    stmt = union_all(
        select(literal("x").label("kind"), P.name, P.score).where(P.flag == bindparam("f")),
        select(literal("y"), P.name, P.score).where(P.id == bindparam("n")),
    ).order_by("kind", "name")
    expected, got = both(table, stmt, {"f": True, "n": 2})
    assert got == expected
    assert [r[1] for r in got] == ["a", "c", "b"]
    assert bool(got[0][0] == "x")


def test_rows_are_reached_by_name_and_position(table: Database) -> None:
    stmt = Prepared(select(P.id, P.name.label("label"), P.flag).where(P.id == bindparam("n")))
    row = table.read(lambda s: stmt.first(s, {"n": 3}))
    assert (row.id, row.label, row[1]) == (3, "c", "c")
    assert bool(row.flag) is True
    assert table.read(lambda s: stmt.first(s, {"n": 99})) is None
    assert table.read(lambda s: Prepared(select(P.name).where(P.id == 1)).scalar(s)) == "a"


def test_writes_count_rows_and_take_boolean_parameters(table: Database) -> None:
    stmt = Prepared(update(probe).where(P.flag == bindparam("was")).values(flag=bindparam("now")))
    assert table.write(lambda s: stmt.run(s, {"was": True, "now": False})) == 2
    flags = table.read(lambda s: s.execute(select(P.flag)).scalars().all())
    assert flags == [False, False, False]


def test_a_missing_parameter_is_named(table: Database) -> None:
    stmt = Prepared(select(P.id).where(P.name == bindparam("name")))
    with pytest.raises(TypeError, match="'name'"):
        table.read(lambda s: stmt.all(s, {}))


def test_driver_errors_are_translated_as_sqlalchemys_are(table: Database) -> None:
    stmt = Prepared(
        insert(probe).values(id=bindparam("id"), name=bindparam("name"), flag=bindparam("flag"))
    )
    with pytest.raises(Conflict):  # the driver's error, wrapped, then translated by Database
        table.write(lambda s: stmt.run(s, {"id": 7, "name": "a", "flag": True}))
    # the failed transaction applied nothing, and the database is usable afterwards
    assert table.write(lambda s: stmt.run(s, {"id": 7, "name": "g", "flag": True})) == 1
    bad = Prepared(text("SELECT no_such_column FROM prepared_probe"))
    with pytest.raises(CairnError, match="no_such_column"):
        table.read(lambda s: bad.all(s))
    with table.engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        bad.all(conn)  # as conn.execute would raise it
    assert caught.value.orig is not None


def test_compile_statements_leaves_nothing_to_compile_on_the_hot_paths(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a server worker compiles at start is what its first creates, alias moves and
    reads would otherwise compile while a client waits (only search statements, whose
    shape follows the filter, are built on demand)."""
    for statement in list(prepared._BUILT):
        statement._plans.clear()  # as in a fresh process
    assert service.db.compile_statements() > 30
    compiled: list[str] = []
    plan = prepared._Plan

    class Counting(plan):  # type: ignore[misc,valid-type]
        def __init__(self, stmt: Any, *args: Any) -> None:
            compiled.append(str(stmt).split("\n")[0][:80])
            super().__init__(stmt, *args)

    monkeypatch.setattr(prepared, "_Plan", Counting)
    admin = Actor("alice", is_admin=True, request_id="req-1", client="pytest")
    service.create_model(admin, "fraud", tags={"team": "risk"})
    spec = VersionSpec(source="s3://b/k", tags={"kind": "candidate"}, params={"lr": "0.1"})
    service.create_version(admin, "fraud", spec)
    service.create_version(admin, "fraud", spec)
    service.set_alias(admin, "fraud", "champion", 1)
    service.set_alias(admin, "fraud", "champion", 2)
    assert service.resolve(admin, "models:/fraud@champion").version == 2
    assert service.get_version(admin, "fraud", 1).params == {"lr": "0.1"}
    service.get_model(admin, "fraud")
    assert compiled == []

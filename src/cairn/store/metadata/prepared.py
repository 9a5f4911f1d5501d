"""Statements compiled once per dialect and run straight on the driver's cursor.

SQLAlchemy's execution path (execution context, events, parameter and result
processing, ``Row`` objects) costs 30 to 40 µs per statement on this kind of machine:
ten times what SQLite takes for a point query. The statements every request runs
(authentication, get-by-alias, loading a page of versions, the writes of a create) are
wrapped in ``Prepared``: built once with SQLAlchemy as before, compiled once per dialect
(and per length of each expanding ``IN`` list; on PostgreSQL a long list goes as one
array), then executed on the DB-API cursor of the transaction's own connection, inside the
same transaction.

What SQLAlchemy would have done on the way is kept: the statement's own literal
parameters, the types' bind and result processors (none for Cairn's integer, text and
float columns, but applied when a type has one), driver errors wrapped as SQLAlchemy's
``DBAPIError`` (so ``Database`` retries and translates them as before) and a lost
connection invalidated. Rows are named tuples: ``row.name`` and ``row[0]`` both work.
``echo`` does not log these statements.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast
from weakref import WeakSet

from sqlalchemy import Connection, all_, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, operators, visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

log = logging.getLogger(__name__)

# PostgreSQL: lists longer than this are sent as one array (see ``Prepared._plan``)
LONG_LIST = 10


class _Ref(NamedTuple):
    """Where an argument of the compiled SQL comes from: ``params[name]`` or, for an
    expanding list, ``params[name][item]``."""

    name: str
    item: int | None


class _Form(NamedTuple):
    """One runnable form: the SQL text and how to build its arguments."""

    sql: str
    keys: tuple[str, ...] | None  # the driver's parameter names; None: positional
    sources: tuple[Any, ...]  # per argument: a _Ref to the caller's values, or a constant
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # bind processors, by argument


class _Plan:
    """A statement compiled for one dialect."""

    def __init__(
        self, stmt: ClauseElement, dialect: Dialect, columns: Sequence[str] | None
    ) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=columns)
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params:  # their values would be rendered into the SQL
            raise TypeError("Prepared cannot run statements with literal_execute parameters")
        self.compiled = compiled
        binds = compiled.binds.values()
        self.caller = tuple(b.key for b in binds if b.required)
        self.expanding = tuple(b.key for b in binds if b.required and b.expanding)
        self.processors = {
            b.key: p for b in binds if (p := b.type._cached_bind_processor(dialect)) is not None
        }
        columns = getattr(stmt, "exported_columns", None)
        keys = list(columns.keys()) if columns is not None else []
        # unnamed or repeated columns become _0, _1 ... (reached by position, as in SQLAlchemy)
        row: Any = namedtuple("Row", keys, rename=True) if keys else None
        self.make: Callable[[Sequence[Any]], Any] = row._make if row is not None else tuple
        self.types = [c.type for c in columns or ()]
        self.dialect = dialect
        self.result: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None
        self.result_known = False  # the processors are known after the first run
        self.forms: dict[tuple[int, ...], _Form] = {}

    def result_processors(
        self, description: Sequence[Any]
    ) -> tuple[tuple[int, Callable[[Any], Any]], ...] | None:
        """The types' result processors for the driver's column types (as SQLAlchemy asks
        them: PostgreSQL's depend on the column's type oid), by column index; None when
        there are none."""
        found = (
            t._cached_result_processor(self.dialect, d[1])
            for t, d in zip(self.types, description, strict=True)
        )
        active = tuple((i, p) for i, p in enumerate(found) if p is not None)
        return active or None

    def form(self, params: Mapping[str, Any]) -> _Form:
        lengths = tuple(len(params[name]) for name in self.expanding)
        found = self.forms.get(lengths)
        if found is None:
            found = self.forms[lengths] = self._form(lengths)
        return found

    def _form(self, lengths: tuple[int, ...]) -> _Form:
        """Expand the statement with markers in place of the caller's values, then read
        back which driver argument each marker became."""
        compiled = self.compiled
        probe: dict[str, Any] = dict(compiled.params)
        probe.update((key, _Ref(key, None)) for key in self.caller)
        for name, length in zip(self.expanding, lengths, strict=True):
            probe[name] = [_Ref(name, i) for i in range(length)]
        state = compiled.construct_expanded_state(probe)
        values = state.parameters
        keys = state.positiontup if compiled.positional else list(values)
        assert keys is not None
        sources: list[Any] = []
        processors: list[tuple[int, Callable[[Any], Any]]] = []
        for i, key in enumerate(keys):
            source = values[key]
            bind = source.name if type(source) is _Ref else key
            processor = self.processors.get(bind)
            if processor is not None and type(source) is not _Ref:
                source, processor = processor(source), None
            sources.append(source)
            if processor is not None:
                processors.append((i, processor))
        return _Form(
            state.statement,
            None if compiled.positional else tuple(keys),
            tuple(sources),
            tuple(processors),
        )


def _lists_as_arrays(stmt: ClauseElement) -> ClauseElement:
    """PostgreSQL: ``col IN (:list)`` as ``col = ANY(:list)`` (``NOT IN`` as ``<> ALL``),
    the list sent as one array parameter. The same meaning (NULLs and empty lists
    included), but the SQL text no longer depends on the list's length: psycopg parses a
    query's placeholders once per distinct text (and not at all beyond 4 KiB, which a page
    of 100 ids in five ``IN`` lists exceeds: 40% of a version search's time went there),
    and the planner sees one array instead of one parameter per element."""
    arrays: dict[str, BindParameter[Any]] = {}

    def swap(element: Any, **_kw: Any) -> Any:
        if not (
            isinstance(element, BinaryExpression)
            and isinstance(element.right, BindParameter)
            and element.right.expanding
            and element.operator in (operators.in_op, operators.not_in_op)
        ):
            return None
        list_ = element.right
        array = arrays.get(list_.key)
        if array is None:
            array = arrays[list_.key] = bindparam(
                list_.key,
                list_.value,  # a list given when the statement was built, if any
                type_=ARRAY(list_.type),  # the list's own (a column's, unless it says)
                required=list_.required,
            )
        if element.operator is operators.in_op:
            return element.left == any_(array)
        return element.left != all_(array)

    return cast(ClauseElement, visitors.replacement_traverse(stmt, {}, swap))


class Prepared:
    """A statement built once with SQLAlchemy, run on the driver (see the module docstring)."""

    __slots__ = ("__weakref__", "_plans", "columns", "dialect", "one_plan", "stmt")

    def __init__(
        self,
        stmt: ClauseElement,
        *,
        columns: Sequence[str] | None = None,
        one_plan: bool = False,
        dialect: str | None = None,
    ) -> None:
        """``columns``: for an ``insert(table)`` without values, the columns its rows give
        (as SQLAlchemy takes them from the first row's keys). ``one_plan``: a statement
        whose best plan does not depend on its lists' lengths (lookups by key, each an
        index step), costly to plan: on PostgreSQL its long lists go as arrays that it
        keeps preparing, so that the server may plan it once (see ``_plan``).
        ``dialect``: the one dialect the statement is written for, if it is not for both
        (``compile_all`` leaves it out for the other)."""
        self.stmt = stmt
        self.columns = list(columns) if columns is not None else None
        self.one_plan = one_plan
        self.dialect = dialect
        self._plans: dict[str, _Plan] = {}
        _BUILT.add(self)

    def all(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row, as named tuples."""
        plan, cursor = self._execute(conn, params or {})
        try:
            rows: Sequence[Any] = cursor.fetchall()
            if not plan.result_known:
                plan.result = plan.result_processors(cursor.description)
                plan.result_known = True
        finally:
            cursor.close()
        if plan.result is not None:
            rows = [_processed(plan.result, r) for r in rows]
        make = plan.make
        return [make(r) for r in rows]

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first row, or None."""
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        row = self.first(conn, params)
        return None if row is None else row[0]

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Execute a statement that returns no rows; the number of rows it touched."""
        _, cursor = self._execute(conn, params or {})
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute a statement that returns no rows once per row (the driver's
        ``executemany``); the rows must give the same parameters."""
        if not rows:
            return
        form = self._plan(conn, rows[0])[0].form(rows[0])
        driver_execute(conn, form.sql, [_arguments(form, r) for r in rows], many=True).close()

    def _plan(self, conn: Connection, params: Mapping[str, Any]) -> tuple[_Plan, bool | None]:
        """The plan for ``params`` and psycopg's ``prepare`` for it: on PostgreSQL, a list
        longer than ``LONG_LIST`` goes as an array (``_lists_as_arrays``), planned for
        that run (the server's generic plan for an array, whose length it guesses at 10,
        read a page of 100 versions' child rows 2-3x slower); shorter ones stay ``IN``
        lists, one prepared statement per length, whose plans know the length."""
        plan = self._compiled(conn.dialect)
        if conn.dialect.name != "postgresql" or all(
            len(params[k]) <= LONG_LIST for k in plan.expanding
        ):
            return plan, None
        arrays = self._plans.get("postgresql arrays")
        if arrays is None:
            stmt = _lists_as_arrays(self.stmt)
            arrays = self._plans["postgresql arrays"] = _Plan(stmt, conn.dialect, self.columns)
        return arrays, None if self.one_plan else False

    def _compiled(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _Plan(self.stmt, dialect, self.columns)
        return plan

    def _execute(self, conn: Connection, params: Mapping[str, Any]) -> tuple[_Plan, Any]:
        plan, prepare = self._plan(conn, params)
        form = plan.form(params)
        return plan, driver_execute(conn, form.sql, _arguments(form, params), prepare=prepare)


def per_engine(
    build: Callable[[Callable[[Any], Any]], ClauseElement], *, columns: Sequence[str]
) -> dict[str, Prepared]:
    """One ``Prepared`` per engine, keyed by dialect name, of the statement ``build``
    makes from that engine's ``insert`` construct (``ON CONFLICT`` is spelt per engine)."""
    makers = (("sqlite", sqlite_insert), ("postgresql", pg_insert))
    return {name: Prepared(build(make), columns=columns, dialect=name) for name, make in makers}


class Upsert:
    """INSERT … ON CONFLICT (``keys``) DO UPDATE (``columns``) into ``table`` for either
    engine, whose rows give exactly ``keys + columns``. Built where it is defined (at
    import), so ``compile_all`` finds it."""

    def __init__(self, table: Any, keys: tuple[str, ...], columns: tuple[str, ...]) -> None:
        def build(insert: Callable[[Any], Any]) -> ClauseElement:
            stmt = insert(table)
            changed = {c: getattr(stmt.excluded, c) for c in columns}
            return cast(
                ClauseElement, stmt.on_conflict_do_update(index_elements=keys, set_=changed)
            )

        self._for = per_engine(build, columns=keys + columns)

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        self._for[conn.dialect.name].run_many(conn, rows)


# every statement built and still referenced: those of the stores' modules, built when
# they are imported, and any a caller keeps
_BUILT: WeakSet[Prepared] = WeakSet()


def compile_all(dialect: Dialect) -> int:
    """Compile every statement built so far for ``dialect`` (and its text, when it has no
    lists whose lengths shape it) ahead of its first run; how many were compiled. Without
    this a server worker's first request of each kind compiles the statements it runs,
    5 to 15 ms here, where a later one takes 1 to 2 ms. A statement that does not compile
    for ``dialect`` is left to its first use (where it would fail as before): this only
    saves time, and must never keep a server from starting."""
    count = 0
    for prepared in list(_BUILT):
        if prepared.dialect not in (None, dialect.name):
            continue
        try:
            plan = prepared._compiled(dialect)
        except Exception as exc:  # a warm-up: the statement's first use will tell
            log.warning("not compiled ahead for %s: %s", dialect.name, exc)
            continue
        if not plan.expanding:
            plan.form({})
        count += 1
    return count


def driver_execute(
    conn: Connection, sql: str, args: Any = (), *, many: bool = False, prepare: bool | None = None
) -> Any:
    """Run ``sql`` on a new DB-API cursor of ``conn``'s connection (``executemany`` with
    ``many``; ``prepare``: psycopg's, when not None) and return the cursor; a driver error
    comes out as SQLAlchemy's ``DBAPIError``, as from ``conn.execute``, the connection
    invalidated when it was lost."""
    dialect = conn.dialect
    proxied = conn.connection
    cursor = proxied.cursor()
    try:
        if many:
            cursor.executemany(sql, args)
        elif prepare is None:
            cursor.execute(sql, args)
        else:
            cursor.execute(sql, args, prepare=prepare)  # type: ignore[call-arg]  # psycopg
    except dialect.loaded_dbapi.Error as exc:
        invalidated = dialect.is_disconnect(exc, proxied.dbapi_connection, cursor)
        cursor.close()
        if invalidated:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            args,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=invalidated,
            dialect=dialect,
        ) from exc
    except BaseException:
        cursor.close()
        raise
    return cursor


def _arguments(form: _Form, params: Mapping[str, Any]) -> Any:
    """The driver's arguments: each marker replaced by the caller's value."""
    values: list[Any] = []
    for source in form.sources:
        if type(source) is _Ref:
            try:
                got = params[source.name]
            except KeyError:
                raise TypeError(f"missing parameter {source.name!r}") from None
            values.append(got if source.item is None else got[source.item])
        else:
            values.append(source)
    for i, processor in form.processors:
        values[i] = processor(values[i])
    return tuple(values) if form.keys is None else dict(zip(form.keys, values, strict=True))


def _processed(
    processors: tuple[tuple[int, Callable[[Any], Any]], ...], row: Sequence[Any]
) -> list[Any]:
    """``row`` with its processed columns processed (the others, most, left as they are)."""
    values = list(row)
    for i, processor in processors:
        values[i] = processor(values[i])
    return values

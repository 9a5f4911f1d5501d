"""PostgreSQL: versions and models with their child rows in the same statement.

Every statement is a round trip to PostgreSQL. These statements return each version's
row with its tags, params, metrics, aliases and files aggregated into sorted arrays beside
it (a LATERAL subquery per child table, each an index range scan on the version's id,
whatever the planner knows of the tables): get by alias or by number, a version by id,
a search's page of versions; and a search's page of models with its tags and aliases
(``loaders`` turns their rows into values). SQLite, which
answers in-process, loads the child rows with a second statement instead (its arrays
would be JSON, whose floats are not exact).

A version's files are read only when the statement's ``with_files`` parameter is true
(``WITH_FILES``): one statement serves the readers that show a version's manifest and
those that do not (MLflow's API), for which a version of thousands of files then costs
no more than one of none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, and_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by, psycopg

from cairn.store.metadata.schema import (
    aliases,
    model_tags,
    model_versions,
    registered_models,
    version_files,
    version_metrics,
    version_params,
    version_tags,
)

V = model_versions
M = registered_models
WITH_FILES: Any = bindparam("with_files", type_=Boolean)


def _sorted_arrays(table: Any, name: str, *columns: str, owner: Any, order: str) -> Any:
    sort = table.c[order]
    return (
        select(*(func.array_agg(aggregate_order_by(table.c[c], sort)).label(c) for c in columns))
        .where(owner)
        .lateral(name)
    )


# Each child table: its LATERAL's name, the column its arrays are sorted by, and the
# arrays (column -> label of the row's field).
_CHILD_ARRAYS = (
    (version_tags, "t", "key", {"key": "tag_keys", "value": "tag_values"}),
    (version_params, "p", "key", {"key": "param_keys", "value": "param_values"}),
    (version_metrics, "mt", "key", {"key": "metric_keys", "value": "metric_values"}),
    (aliases, "a", "alias_key", {"alias": "alias_names"}),
    (
        version_files,
        "f",
        "path",
        {"path": "file_paths", "size": "file_sizes", "digest": "file_digests"},
    ),
)


# A model's: its tags, and its aliases with the versions they name.
_MODEL_ARRAYS = (
    (model_tags, "t", "key", {"key": "tag_keys", "value": "tag_values"}),
    (aliases, "a", "alias_key", {"alias": "alias_names", "version": "alias_versions"}),
)


def _owned_by(table: Any, versions: Any, files: Any) -> Any:
    if table is aliases:
        return and_(
            aliases.c.model_id == versions.c.model_id, aliases.c.version == versions.c.version
        )
    owned = table.c.version_id == versions.c.id
    return and_(owned, files) if table is version_files else owned


def _with_children(
    columns: Sequence[Any], source: Any, versions: Any, files: Any = WITH_FILES
) -> Any:
    """The version rows ``columns`` from ``source`` (``versions``, the table or a page of
    it, and what is joined to it) with each version's child rows as sorted arrays beside
    them; its files only where ``files`` (a parameter by default) is true."""
    return _with_arrays(
        columns, source, _CHILD_ARRAYS, lambda table: _owned_by(table, versions, files)
    )


def _with_arrays(columns: Sequence[Any], source: Any, children: Any, owner: Any) -> Any:
    """``columns`` from ``source`` with, for each of ``children`` (table, LATERAL's name,
    sort column, arrays), the rows of the table that ``owner(table)`` gives each row as
    sorted arrays beside it, a LATERAL subquery per table."""
    arrays = []
    for table, name, order, labels in children:
        lateral = _sorted_arrays(table, name, *labels, owner=owner(table), order=order)
        arrays += [lateral.c[column].label(label) for column, label in labels.items()]
        source = source.join(lateral, true())
    return select(*columns, *arrays).select_from(source)


def whole(*where: Any, files: Any = WITH_FILES) -> Any:
    """The versions ``where`` selects, each with its ``model_name`` and its child rows as
    arrays (its files where ``files``)."""
    source = V.join(M, M.c.id == V.c.model_id)
    return _with_children([V, M.c.name.label("model_name")], source, V, files).where(*where)


def whole_sql(*where: Any) -> str:
    """``whole(*where)`` as PostgreSQL text for psycopg, to embed in a statement of
    ``one_trip``'s (``where`` may name that statement's CTEs, as ``literal_column``), its
    files always read."""
    dialect = psycopg.dialect()  # type: ignore[no-untyped-call]
    statement = whole(*where, files=true())
    compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    sql = str(compiled)
    assert "%" not in sql and not compiled.params, "whole_sql: no parameters, no percent"
    return sql


def model_page(rows: Any, order_by: Sequence[Any], *more: Any) -> Any:
    """A search's page of models ``rows`` (a subquery of model rows) with each model's
    tags and aliases as arrays and the columns ``more`` (its latest version), in
    ``order_by`` (``loaders.models_from_rows`` reads its rows)."""
    owned = _with_arrays([rows, *more], rows, _MODEL_ARRAYS, lambda t: t.c.model_id == rows.c.id)
    return owned.order_by(*order_by)


def page(rows: Any, order_by: Sequence[Any]) -> Any:
    """A search's page ``rows`` (a subquery of version rows with ``model_name``) with each
    version's child rows as arrays (its files if ``with_files``), in ``order_by``: the page
    and its children in one statement (``loaders.versions_from_rows`` reads its rows)."""
    return _with_children([rows], rows, rows).order_by(*order_by)

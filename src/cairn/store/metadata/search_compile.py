"""Compile a filter AST (``cairn.domain.filters``) to a SQLAlchemy Core condition.

Every value is a bound parameter; nothing from the filter is formatted into SQL.

Semantics, the same on SQLite and PostgreSQL:

- A comparison is always TRUE or FALSE, never NULL, so ``NOT`` is an exact complement.
  ``!=`` and ``NOT IN`` are defined as ``NOT (=)`` and ``NOT (IN)``: ``tags.k != 'v'``
  matches versions whose tag ``k`` has another value *and* versions without tag ``k``
  (MLflow treats an absent ``mlflow.prompt.is_prompt`` tag as "not equal"). The same
  holds for params, metrics, aliases and the nullable ``run_id``, ``source`` and ``semver``.
  Presence is ``tags.k LIKE '%'``; absence ``NOT tags.k LIKE '%'``.
- ``name`` is a case-insensitive identity: ``=``, ``!=``, ``IN`` compare
  ``name_key(value)`` with the stored key, and ``ILIKE`` matches ``name_key(pattern)``
  against it (Unicode case folding, identical on both engines). ``LIKE`` is
  case-sensitive on the display name. Aliases likewise: ``=``/``IN`` are
  case-insensitive, ``LIKE`` is case-sensitive on the alias as written.
- ``ILIKE`` on other fields folds ASCII case on SQLite (``lower()``) and all case on
  PostgreSQL. LIKE patterns escape with ``\\`` on both engines.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, not_, or_, select
from sqlalchemy.sql.elements import KeyedColumnElement

from cairn.domain.filters import And, Comparison, Expr, Not, Or, Scalar, Target
from cairn.domain.names import alias_key, name_key
from cairn.errors import InvalidFilter
from cairn.store.metadata.schema import (
    aliases,
    model_tags,
    model_versions,
    registered_models,
    version_metrics,
    version_params,
    version_tags,
)

_COMPARATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ESCAPE = "\\"
_MV_COLUMNS = (
    "version", "stage", "status", "created_at", "updated_at", "run_id", "source", "semver",
)  # fmt: skip
_KEYED: dict[str, Table] = {
    "tags": version_tags,
    "params": version_params,
    "metrics": version_metrics,
}


def compile_filter(expr: Expr, target: Target, *, probe: bool = False) -> ColumnElement[bool]:
    """The WHERE condition for ``expr`` over ``model_versions`` joined to
    ``registered_models`` (target ``versions``) or over ``registered_models``.

    ``probe``: the rows to test are few (one model's versions), so each tag, param,
    metric or alias condition is looked up per row by primary key. Its subquery carries
    ``OFFSET 0``, which keeps PostgreSQL from turning it into a join whose plan, on
    tables not analyzed yet, can scan every tag of that key for each row.
    """
    if isinstance(expr, And):
        return and_(*(compile_filter(e, target, probe=probe) for e in expr.operands))
    if isinstance(expr, Or):
        return or_(*(compile_filter(e, target, probe=probe) for e in expr.operands))
    if isinstance(expr, Not):
        return not_(compile_filter(expr.operand, target, probe=probe))
    if expr.op in ("!=", "NOT IN"):
        positive = Comparison(expr.field, "=" if expr.op == "!=" else "IN", expr.value)
        return not_(_comparison(positive, target, probe))
    return _comparison(expr, target, probe)


def names_one_model(expr: Expr | None) -> bool:
    """True when ``expr`` keeps to one model: ``name = '...'`` at its top level."""
    operands = expr.operands if isinstance(expr, And) else (expr,)
    return any(
        isinstance(e, Comparison) and e.field.name == "name" and e.op == "=" for e in operands
    )


def _exists(query: Any, probe: bool) -> ColumnElement[bool]:
    return (query.offset(0) if probe else query).exists()  # type: ignore[no-any-return]


def _values(value: Scalar | tuple[Scalar, ...]) -> tuple[Scalar, ...]:
    return value if isinstance(value, tuple) else (value,)


def _match(column: KeyedColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    """``column op value`` for a positive operator (no ``!=``/``NOT IN``)."""
    if op == "IN":
        return column.in_(list(value))
    if op == "LIKE":
        return column.like(value, escape=_ESCAPE)
    if op == "ILIKE":
        return column.ilike(value, escape=_ESCAPE)
    if op not in _COMPARATORS:
        raise InvalidFilter(f"operator {op} is not supported here")  # pragma: no cover
    condition: ColumnElement[bool] = _COMPARATORS[op](column, value)
    return condition


def _keyed(values: tuple[Scalar, ...], op: str, fold: Any) -> Any:
    folded = tuple(fold(v) for v in values)
    return folded if op == "IN" else folded[0]


def _like_pattern(pattern: str) -> str:
    """Keep a folded pattern well-formed: a trailing lone escape becomes a literal one."""
    if (len(pattern) - len(pattern.rstrip(_ESCAPE))) % 2:
        return pattern + _ESCAPE
    return pattern


def _name(op: str, value: Scalar | tuple[Scalar, ...]) -> ColumnElement[bool]:
    rm = registered_models.c
    if op == "LIKE":
        return _match(rm.name, op, value)
    if op == "ILIKE":
        return _match(rm.name_key, "LIKE", _like_pattern(name_key(str(value))))
    return _match(rm.name_key, op, _keyed(_values(value), op, lambda v: name_key(str(v))))


def _alias(
    op: str, value: Scalar | tuple[Scalar, ...], target: Target, probe: bool
) -> ColumnElement[bool]:
    al = aliases.c
    if op in ("LIKE", "ILIKE"):
        condition = _match(al.alias, op, value)
    else:
        keys = _keyed(_values(value), op, lambda v: alias_key(str(v)))
        condition = _match(al.alias_key, op, keys)
    if target == "models":
        owner = al.model_id == registered_models.c.id
    else:
        owner = and_(
            al.model_id == model_versions.c.model_id, al.version == model_versions.c.version
        )
    return _exists(select(al.model_id).where(owner, condition), probe)


def _comparison(expr: Comparison, target: Target, probe: bool) -> ColumnElement[bool]:
    name, op, value = expr.field.name, expr.op, expr.value
    if name == "name":
        return _name(op, value)
    if name == "alias":
        return _alias(op, value, target, probe)
    if name == "metrics":
        floats = tuple(float(v) for v in _values(value))
        value = floats if op == "IN" else floats[0]
    if name in _KEYED:
        if target == "versions":
            table, owner = _KEYED[name], _KEYED[name].c.version_id == model_versions.c.id
        elif name == "tags":
            table, owner = model_tags, model_tags.c.model_id == registered_models.c.id
        else:
            raise InvalidFilter(f"field {name!r} does not apply to models")
        condition = _match(table.c.value, op, value)
        query = select(table.c.key).where(owner, table.c.key == expr.field.key, condition)
        return _exists(query, probe)
    if target == "models":
        if name not in ("created_at", "updated_at"):
            raise InvalidFilter(f"field {name!r} does not apply to models")
        return _match(registered_models.c[name], op, value)
    if name not in _MV_COLUMNS:
        raise InvalidFilter(f"field {name!r} is not supported")  # pragma: no cover
    column = model_versions.c[name]
    if column.nullable:
        # IS NOT NULL keeps the result TRUE/FALSE, so NOT and != see absent values.
        return and_(column.is_not(None), _match(column, op, value))
    return _match(column, op, value)

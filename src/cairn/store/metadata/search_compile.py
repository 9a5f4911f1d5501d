"""Compile a filter AST (``cairn.domain.filters``) to a SQLAlchemy Core condition.

Every value is a bound parameter; nothing from the filter is formatted into SQL.

A filter is compiled in two steps, so that its SQL is built once per *shape*:
``parameterize`` splits it into its shape (the tree of fields and operators, with
numbered slots where the values were) and its values, already folded the way each field
compares them (name and alias keys, floats for metrics); ``compile_shape`` turns a shape
into SQL whose slot ``i`` is the bound parameter ``f<i>``, and is memoized. Two searches
that differ only in their values (``name = 'a'`` and ``name = 'b'``) share one statement.

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

Tag and param equalities (``=``, ``IN``) are written so that the ``(value prefix, key)``
indexes can find them: the first ``VALUE_PREFIX`` characters of a value are indexed (a
whole value of 5,000 characters would not fit a PostgreSQL index entry), and ``=``
compares the prefix and the rest separately (``value = :v`` beside ``substr(value…)``
would let SQLite substitute the constant into the indexed expression and lose the index).
Such a leaf in ``indexed`` becomes ``id IN (rows with that tag)``, which a planner can
drive from the index; any other stays a per-row lookup (see ``search_drive``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, and_, bindparam, not_, or_, select
from sqlalchemy.sql.elements import KeyedColumnElement

from cairn.domain.filter_lexer import Scalar
from cairn.domain.filters import And, Expr, Not, Or, Target
from cairn.domain.names import alias_key, name_key
from cairn.errors import InvalidFilter
from cairn.store.metadata.schema import (
    VALUE_PREFIX,
    aliases,
    model_tags,
    model_versions,
    registered_models,
    value_prefix,
    value_rest,
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
_PREFIXED = ("tags", "params")
# A filter compares any 64-bit whole number with ``version``, an INTEGER column: its value
# is bound as a BIGINT, or PostgreSQL casts it to the column's type and fails out of its
# range (``version < 3000000000``) where SQLite answers.
_BIND_TYPES = {"version": BigInteger()}


Column = KeyedColumnElement[Any]

# A shape: ("and" | "or", (shapes…)), ("not", shape) or ("cmp", field, key, op, slot), where
# op is positive (``!=`` and ``NOT IN`` become ``not`` around ``=`` and ``IN``). A tag or
# param ``IN`` takes two slots: its values, then their prefixes (``slot + 1``).
Shape = tuple[Any, ...]


def parameterize(expr: Expr) -> tuple[Shape, tuple[Any, ...]]:
    """``expr``'s shape and its values in slot order, folded as their fields compare them."""
    values: list[Any] = []

    def walk(e: Expr) -> Shape:
        if isinstance(e, And | Or):
            return ("and" if isinstance(e, And) else "or", tuple(walk(o) for o in e.operands))
        if isinstance(e, Not):
            return ("not", walk(e.operand))
        op = e.op
        negated = op in ("!=", "NOT IN")
        if negated:
            op = "=" if op == "!=" else "IN"
        values.append(_folded(e.field.name, op, e.value))
        leaf = ("cmp", e.field.name, e.field.key, op, len(values) - 1)
        if op == "IN" and e.field.name in _PREFIXED:
            values.append(tuple(str(v)[:VALUE_PREFIX] for v in values[-1]))
        return ("not", leaf) if negated else leaf

    return walk(expr), tuple(values)


def slot_params(values: tuple[Any, ...]) -> dict[str, Any]:
    """The bound parameters of a compiled shape: ``f<i>`` for slot ``i``."""
    return {f"f{i}": list(v) if isinstance(v, tuple) else v for i, v in enumerate(values)}


def keyed_equalities(shape: Shape | None, *, top: bool = False) -> list[Shape]:
    """The tag and param ``=``/``IN`` leaves of ``shape`` (``top``: only those every match
    must satisfy, at its top level), which their value indexes can find."""
    if shape is None:
        return []
    if shape[0] == "cmp":
        return [shape] if shape[1] in _PREFIXED and shape[3] in ("=", "IN") else []
    if top and shape[0] != "and":
        return []
    parts = shape[1] if shape[0] in ("and", "or") else (shape[1],)
    return [leaf for part in parts for leaf in keyed_equalities(part, top=top)]


def value_prefixes(table: Table, slot: int, op: str) -> ColumnElement[bool]:
    """``table.value`` starts as the value in slot ``slot`` does (``=``), or as one of its
    values (``IN``, their prefixes in slot ``slot + 1``): what the index holds."""
    prefix = value_prefix(table.c.value)
    condition: ColumnElement[bool]
    if op == "IN":
        condition = prefix.in_(bindparam(f"f{slot + 1}", expanding=True))
    else:
        condition = prefix == value_prefix(bindparam(f"f{slot}"))
    return condition


def value_matches(table: Table, slot: int, op: str) -> ColumnElement[bool]:
    """``table.value`` equals the value in slot ``slot`` (``=``) or one of its values
    (``IN``), written for the ``(value prefix, key)`` index (see the module docstring)."""
    value = table.c.value
    if op == "IN":
        return and_(
            value_prefixes(table, slot, op), value.in_(bindparam(f"f{slot}", expanding=True))
        )
    wanted: Any = bindparam(f"f{slot}")
    return and_(value_prefixes(table, slot, op), value_rest(value) == value_rest(wanted))


@functools.lru_cache(maxsize=512)
def compile_shape(
    shape: Shape, target: Target, probe: bool, indexed: frozenset[int] = frozenset()
) -> ColumnElement[bool]:
    """The WHERE condition for a filter of this shape over ``model_versions`` joined to
    ``registered_models`` (target ``versions``) or over ``registered_models``.

    ``probe``: the rows to test are few (one model's versions), so each tag, param,
    metric or alias condition is looked up per row by primary key. Its subquery carries
    ``OFFSET 0``, which keeps PostgreSQL from turning it into a join whose plan, on
    tables not analyzed yet, can scan every tag of that key for each row.
    ``indexed``: the slots of the tag and param equalities that are written as ``id IN
    (…)`` over their value index instead, probe or not (``search_drive.choose`` says which).
    """
    kind = shape[0]
    if kind in ("and", "or"):
        parts = (compile_shape(s, target, probe, indexed) for s in shape[1])
        return and_(*parts) if kind == "and" else or_(*parts)
    if kind == "not":
        return not_(compile_shape(shape[1], target, probe, indexed))
    _, name, key, op, slot = shape
    if slot in indexed:  # a tag or param equality, found through its value index
        table, link, owner = key_value_table(name, target)
        return owner.in_(select(link).where(table.c.key == key, value_matches(table, slot, op)))
    value: Any = bindparam(f"f{slot}", expanding=op == "IN", type_=_BIND_TYPES.get(name))
    return _comparison(name, key, op, value, target, probe)


def name_slot(shape: Shape | None) -> int | None:
    """The slot of the top-level ``name = …`` of a version filter's shape, if it has one
    (``names_one_model``): the filter keeps to the model of that name."""
    if shape is None:
        return None
    for part in shape[1] if shape[0] == "and" else (shape,):
        if part[0] == "cmp" and part[1] == "name" and part[3] == "=":
            return int(part[4])
    return None


def _folded(name: str, op: str, value: Scalar | tuple[Scalar, ...]) -> Any:
    """The value a comparison binds: names and aliases compare by key (``=``/``IN``;
    ``ILIKE`` on names matches the folded pattern), metrics as floats."""
    if name == "name":
        if op == "LIKE":
            return value
        if op == "ILIKE":
            return _like_pattern(name_key(str(value)))
        return _keyed(_values(value), op, lambda v: name_key(str(v)))
    if name == "alias":
        if op in ("LIKE", "ILIKE"):
            return value
        return _keyed(_values(value), op, lambda v: alias_key(str(v)))
    if name == "metrics":
        return _keyed(_values(value), op, float)
    return value


def _exists(query: Any, probe: bool) -> ColumnElement[bool]:
    return (query.offset(0) if probe else query).exists()  # type: ignore[no-any-return]


def _values(value: Scalar | tuple[Scalar, ...]) -> tuple[Scalar, ...]:
    return value if isinstance(value, tuple) else (value,)


def _match(column: KeyedColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    """``column op value`` for a positive operator (no ``!=``/``NOT IN``); ``value`` is a
    bound parameter (expanding for ``IN``)."""
    if op == "IN":
        return column.in_(value)
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


def _name(op: str, value: Any) -> ColumnElement[bool]:
    rm = registered_models.c
    if op == "LIKE":
        return _match(rm.name, op, value)
    if op == "ILIKE":  # the pattern is folded to a key pattern
        return _match(rm.name_key, "LIKE", value)
    return _match(rm.name_key, op, value)


def _alias(op: str, value: Any, target: Target, probe: bool) -> ColumnElement[bool]:
    al = aliases.c
    column = al.alias if op in ("LIKE", "ILIKE") else al.alias_key
    condition = _match(column, op, value)
    if target == "models":
        owner = al.model_id == registered_models.c.id
    else:
        owner = and_(
            al.model_id == model_versions.c.model_id, al.version == model_versions.c.version
        )
    return _exists(select(al.model_id).where(owner, condition), probe)


def key_value_table(name: str, target: Target) -> tuple[Table, Column, Column]:
    """The table of a key/value field, its column naming the row it belongs to, and
    that row's id column (the version's or the model's)."""
    if target == "versions":
        table = _KEYED[name]
        return table, table.c.version_id, model_versions.c.id
    if name == "tags":
        return model_tags, model_tags.c.model_id, registered_models.c.id
    raise InvalidFilter(f"field {name!r} does not apply to models")


def _comparison(
    name: str, key: str | None, op: str, value: Any, target: Target, probe: bool
) -> ColumnElement[bool]:
    if name == "name":
        return _name(op, value)
    if name == "alias":
        return _alias(op, value, target, probe)
    if name in _KEYED:
        table, link, owner = key_value_table(name, target)
        condition = _match(table.c.value, op, value)
        query = select(table.c.key).where(link == owner, table.c.key == key, condition)
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

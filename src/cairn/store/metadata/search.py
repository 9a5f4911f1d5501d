"""Search: filtered, ordered, keyset-paginated id queries over versions and models.

The filter is compiled by ``search_compile``; this module orders and pages. Ordering
always ends with ``id`` (in the direction of the last key), so the order is total and a
page token can name the exact row a page ended on. The next page starts strictly after
that row, however many rows were inserted or deleted meanwhile: no offsets, no skipped or
repeated rows under concurrent writes (beyond the rows that changed).

A page token is URL-safe base64 of JSON ``{"q": fingerprint, "k": [sort values…, id]}``.
The fingerprint covers the target, the canonical filter text, the order and the scope
(model, deleted rows), so a token is refused by any other query. Tokens are not secret:
a forged one only moves where a query the caller may run anyway starts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, FromClause, and_, false, or_, select

from cairn.domain.access import ReadFilter
from cairn.domain.filters import Expr, OrderKey, Target, format_filter
from cairn.errors import InvalidParameter
from cairn.store.metadata.schema import model_versions, registered_models
from cairn.store.metadata.search_compile import compile_filter, names_one_model

MAX_RESULTS_LIMIT = 1000
MAX_TOKEN_LENGTH = 4096
VERSION_ORDER_FIELDS = frozenset({"name", "version", "created_at", "updated_at"})
MODEL_ORDER_FIELDS = frozenset({"name", "created_at", "updated_at"})
DEFAULT_VERSION_ORDER = (OrderKey("name"), OrderKey("version", descending=True))
DEFAULT_MODEL_ORDER = (OrderKey("name"),)
_INT64 = 2**63

Column = ColumnElement[Any]


def search_version_ids(
    session: Connection,
    *,
    expr: Expr | None,
    order_by: Sequence[OrderKey],
    max_results: int,
    page_token: str | None,
    model_id: int | None = None,
    include_deleted: bool = False,
    readable: ReadFilter | None = None,
) -> tuple[list[int], str | None]:
    """Ids of the model versions matching ``expr``, one page, and the next page's token.

    Versions that are deleted, or whose model is deleted, are left out unless
    ``include_deleted``; ``model_id`` keeps to one model's versions. An empty
    ``order_by`` means ``name ASC, version DESC``.
    """
    mv, rm = model_versions.c, registered_models.c
    conditions: list[ColumnElement[bool]] = []
    if not include_deleted:
        conditions += [mv.deleted_at.is_(None), rm.deleted_at.is_(None)]
    if model_id is not None:
        conditions.append(mv.model_id == model_id)
    if readable is not None:
        conditions.append(readable_models(readable))
    if expr is not None:
        one_model = model_id is not None or names_one_model(expr)
        conditions.append(compile_filter(expr, "versions", probe=one_model))
    return _page(
        session,
        target="versions",
        source=model_versions.join(registered_models, rm.id == mv.model_id),
        id_column=mv.id,
        columns={
            "name": rm.name_key,
            "version": mv.version,
            "created_at": mv.created_at,
            "updated_at": mv.updated_at,
        },
        order=_order(order_by, VERSION_ORDER_FIELDS, DEFAULT_VERSION_ORDER),
        conditions=conditions,
        expr=expr,
        max_results=max_results,
        page_token=page_token,
        scope={"model_id": model_id, "include_deleted": include_deleted},
    )


def search_model_ids(
    session: Connection,
    *,
    expr: Expr | None,
    order_by: Sequence[OrderKey],
    max_results: int,
    page_token: str | None,
    include_deleted: bool = False,
    readable: ReadFilter | None = None,
) -> tuple[list[int], str | None]:
    """Ids of the registered models matching ``expr``, one page, and the next page's token.

    Deleted models are left out unless ``include_deleted``. An empty ``order_by`` means
    ``name ASC``.
    """
    rm = registered_models.c
    conditions: list[ColumnElement[bool]] = []
    if not include_deleted:
        conditions.append(rm.deleted_at.is_(None))
    if readable is not None:
        conditions.append(readable_models(readable))
    if expr is not None:
        conditions.append(compile_filter(expr, "models"))
    return _page(
        session,
        target="models",
        source=registered_models,
        id_column=rm.id,
        columns={"name": rm.name_key, "created_at": rm.created_at, "updated_at": rm.updated_at},
        order=_order(order_by, MODEL_ORDER_FIELDS, DEFAULT_MODEL_ORDER),
        conditions=conditions,
        expr=expr,
        max_results=max_results,
        page_token=page_token,
        scope={"include_deleted": include_deleted},
    )


def readable_models(readable: ReadFilter) -> ColumnElement[bool]:
    """The models a caller may read (``readable`` from ``Actor.readable()``), as SQL."""
    rm = registered_models.c
    if readable.empty:
        return false()
    return or_(
        rm.id.in_(readable.model_ids),
        rm.name_key.in_(readable.exact),
        *(rm.name_key.startswith(prefix, autoescape=True) for prefix in readable.prefixes),
    )


def _order(
    order_by: Sequence[OrderKey], allowed: frozenset[str], default: tuple[OrderKey, ...]
) -> tuple[OrderKey, ...]:
    fields = [key.field for key in order_by]
    if any(f not in allowed for f in fields) or len(set(fields)) != len(fields):
        raise InvalidParameter(
            f"order_by {fields} is not valid; use distinct fields among {sorted(allowed)}"
        )
    return tuple(order_by) or default


def _page(
    session: Connection,
    *,
    target: Target,
    source: FromClause,
    id_column: Column,
    columns: Mapping[str, Column],
    order: tuple[OrderKey, ...],
    conditions: list[ColumnElement[bool]],
    expr: Expr | None,
    max_results: int,
    page_token: str | None,
    scope: Mapping[str, object],
) -> tuple[list[int], str | None]:
    if (
        not isinstance(max_results, int)
        or isinstance(max_results, bool)
        or not 1 <= max_results <= MAX_RESULTS_LIMIT
    ):
        raise InvalidParameter(
            f"max_results {max_results!r} is not valid; use 1 to {MAX_RESULTS_LIMIT}"
        )
    keys = [(columns[k.field], k.descending) for k in order]
    keys.append((id_column, order[-1].descending))
    kinds = [str if k.field == "name" else int for k in order] + [int]
    fingerprint = _fingerprint(target, expr, order, scope)
    if page_token:
        conditions = [*conditions, _after(keys, _decode(page_token, fingerprint, kinds))]
    statement = (
        select(id_column, *(column for column, _ in keys[:-1]))
        .select_from(source)
        .where(*conditions)
        .order_by(*(column.desc() if desc else column.asc() for column, desc in keys))
        .limit(max_results + 1)
    )
    rows = session.execute(statement).all()
    ids = [int(row[0]) for row in rows[:max_results]]
    if len(rows) <= max_results:
        return ids, None
    last = rows[max_results - 1]
    return ids, _encode(fingerprint, [*last[1:], last[0]])


def _after(keys: Sequence[tuple[Column, bool]], values: Sequence[object]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order ``keys``: the lexicographic OR-chain
    ``k1 ≻ v1 OR (k1 = v1 AND k2 ≻ v2) OR …``, where ≻ is > for ASC and < for DESC."""
    branches = []
    for i, (column, desc) in enumerate(keys):
        equal = [c == v for (c, _), v in zip(keys[:i], values[:i], strict=True)]
        beyond = column < values[i] if desc else column > values[i]
        branches.append(and_(*equal, beyond))
    return or_(*branches)


def _fingerprint(
    target: Target, expr: Expr | None, order: tuple[OrderKey, ...], scope: Mapping[str, object]
) -> str:
    query = [
        target,
        format_filter(expr) if expr is not None else "",
        [[key.field, key.descending] for key in order],
        dict(scope),
    ]
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _encode(fingerprint: str, values: Sequence[object]) -> str:
    payload = json.dumps({"q": fingerprint, "k": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode(token: str, fingerprint: str, kinds: Sequence[type]) -> list[object]:
    malformed = InvalidParameter(
        "page_token is malformed; pass the next_page_token of the previous page unchanged"
    )
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise malformed
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw)
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise malformed from None
    if not isinstance(data, dict) or not isinstance(data.get("q"), str):
        raise malformed
    if data["q"] != fingerprint:
        raise InvalidParameter(
            "page_token does not belong to this query (its filter, order or scope differ); "
            "repeat the query that returned it, or start again without a page_token"
        )
    values = data.get("k")
    if not isinstance(values, list) or len(values) != len(kinds):
        raise malformed
    for value, kind in zip(values, kinds, strict=True):
        if type(value) is not kind:
            raise malformed
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            raise malformed
        if isinstance(value, str) and (len(value) > 1024 or "\x00" in value):
            raise malformed
    return values

"""Search: filtered, ordered, keyset-paginated queries over versions and models.

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
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    Row,
    and_,
    bindparam,
    false,
    or_,
    select,
)

from cairn.domain.access import ReadFilter
from cairn.domain.filters import Expr, OrderKey, Target, format_filter, names_one_model
from cairn.errors import InvalidParameter
from cairn.store.metadata import search_drive, whole
from cairn.store.metadata.identity_store import held_by
from cairn.store.metadata.loaders import newest_ready
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import grants, model_versions, registered_models
from cairn.store.metadata.search_compile import (
    Shape,
    compile_shape,
    name_slot,
    parameterize,
    slot_params,
)

MAX_RESULTS_LIMIT = 1000
MAX_TOKEN_LENGTH = 4096
VERSION_ORDER_FIELDS = frozenset({"name", "version", "created_at", "updated_at"})
MODEL_ORDER_FIELDS = frozenset({"name", "created_at", "updated_at"})
DEFAULT_VERSION_ORDER = (OrderKey("name"), OrderKey("version", descending=True))
DEFAULT_MODEL_ORDER = (OrderKey("name"),)
_INT64 = 2**63

Column = ColumnElement[Any]


def search_versions_page(
    session: Connection,
    *,
    expr: Expr | None,
    order_by: Sequence[OrderKey],
    max_results: int,
    page_token: str | None,
    model_id: int | None = None,
    include_deleted: bool = False,
    readable: ReadFilter | None = None,
    files: bool = True,
) -> tuple[list[Row[Any]], str | None]:
    """The rows of the model versions matching ``expr`` (each with its ``model_name``), one
    page, in order, and the next page's token (``loaders.versions_from_rows`` makes them
    values, with their files if ``files``).

    Versions that are deleted, or whose model is deleted, are left out unless
    ``include_deleted``; ``model_id`` keeps to one model's versions. An empty
    ``order_by`` means ``name ASC, version DESC``.
    """
    order = _order(order_by, VERSION_ORDER_FIELDS, DEFAULT_VERSION_ORDER)
    one_model = model_id is not None or names_one_model(expr)
    return _page(
        session,
        target="versions",
        order=order,
        expr=expr,
        probe=one_model,
        max_results=max_results,
        page_token=page_token,
        model_id=model_id,
        include_deleted=include_deleted,
        readable=readable,
        files=files,
    )


def version_matches(expr: Expr, model_id: int) -> ColumnElement[bool]:
    """``model_versions.id`` is one of the model's versions that ``expr`` matches, with
    the filter's values bound in: a condition to add to another statement over
    ``model_versions`` (pruning by a filter). The filter is tested on that model's
    versions only, each looked up by key (probe mode), whatever the registry's size."""
    shape, values = parameterize(expr)
    mv, rm = model_versions.c, registered_models.c
    matched = (
        select(mv.id)
        .select_from(model_versions.join(registered_models, rm.id == mv.model_id))
        .where(mv.model_id == model_id, compile_shape(shape, "versions", True))
        .correlate(None)  # its own model_versions, not the outer statement's
        .params(**slot_params(values))
    )
    return mv.id.in_(matched)


def search_models_page(
    session: Connection,
    *,
    expr: Expr | None,
    order_by: Sequence[OrderKey],
    max_results: int,
    page_token: str | None,
    include_deleted: bool = False,
    readable: ReadFilter | None = None,
) -> tuple[list[Row[Any]], str | None]:
    """The rows of the registered models matching ``expr``, one page, in order, and the
    next page's token (``loaders.models_from_rows`` makes them values).

    Deleted models are left out unless ``include_deleted``. An empty ``order_by`` means
    ``name ASC``.
    """
    return _page(
        session,
        target="models",
        order=_order(order_by, MODEL_ORDER_FIELDS, DEFAULT_MODEL_ORDER),
        expr=expr,
        probe=False,
        max_results=max_results,
        page_token=page_token,
        model_id=None,
        include_deleted=include_deleted,
        readable=readable,
    )


def readable_models(readable: ReadFilter) -> ColumnElement[bool]:
    """The models a caller may read (``readable`` from ``Actor.readable()``), as SQL: the
    models its grants name are read from the grants table when they are a user's (a user
    who created thousands of models holds as many grants: no list of their ids)."""
    rm = registered_models.c
    if readable.empty:
        return false()
    named = []
    if readable.model_ids:
        named.append(rm.id.in_(readable.model_ids))
    if readable.holder is not None:
        held = select(grants.c.model_id).where(
            grants.c.model_id.is_not(None), held_by(readable.holder)
        )
        named.append(rm.id.in_(held))
    return or_(
        *named,
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
    order: tuple[OrderKey, ...],
    expr: Expr | None,
    probe: bool,
    max_results: int,
    page_token: str | None,
    model_id: int | None,
    include_deleted: bool,
    readable: ReadFilter | None,
    files: bool = True,
) -> tuple[list[Row[Any]], str | None]:
    if (
        not isinstance(max_results, int)
        or isinstance(max_results, bool)
        or not 1 <= max_results <= MAX_RESULTS_LIMIT
    ):
        raise InvalidParameter(
            f"max_results {max_results!r} is not valid; use 1 to {MAX_RESULTS_LIMIT}"
        )
    kinds = [str if k.field == "name" else int for k in order] + [int]
    scope: dict[str, Any] = {"include_deleted": include_deleted}
    if target == "versions":
        scope["model_id"] = model_id
    fingerprint = _fingerprint(target, expr, order, scope)
    after = decode_page_token(page_token, fingerprint, kinds) if page_token else []
    shape, values = parameterize(expr) if expr is not None else (None, ())
    params = {
        "model_id": model_id,
        **slot_params(values),
        **{f"k{i}": v for i, v in enumerate(after)},
        "limit": max_results + 1,
        "drive_limit": search_drive.DRIVE_LIMIT,
        "with_files": files,
    }

    def rows_from(start: search_drive.Start) -> list[Row[Any]]:
        statement = _statement(
            target,
            shape,
            probe,
            order,
            one_model=model_id is not None,
            include_deleted=include_deleted,
            readable=readable,
            after=bool(after),
            with_children=session.dialect.name == "postgresql",
            indexed=start.indexed,
            drive=start.drive,
            guard=start.guard,
        )
        return statement.all(session, params)

    choose = functools.partial(search_drive.choose, session, target, shape, values)
    start = choose(include_deleted, guess=True)
    rows = rows_from(start)
    if start.guard and not rows:  # none, or the model is too large for the guess
        start = choose(include_deleted)
        if not start.small:
            rows = rows_from(start)
    if len(rows) <= max_results:
        return rows, None
    last = rows[max_results - 1]
    sort_values = [getattr(last, f"sort{i}") for i in range(len(order))]
    return rows[:max_results], encode_page_token(fingerprint, [*sort_values, int(last.id)])


@functools.lru_cache(maxsize=512)
def _statement(
    target: Target,
    shape: Shape | None,
    probe: bool,
    order: tuple[OrderKey, ...],
    *,
    one_model: bool,
    include_deleted: bool,
    readable: ReadFilter | None,
    after: bool,
    with_children: bool = False,
    indexed: frozenset[int] = frozenset(),
    drive: bool = False,
    guard: bool = False,
) -> Prepared:
    """A search's query, built once per shape (filter shape, order, scope, whether a page
    token continues it): the rows themselves (a version's with its ``model_name``) and
    their sort values ``sort<i>``; its values are the parameters ``f<i>`` (the filter's
    slots), ``k<i>`` (the page token's sort values), ``model_id`` and ``limit``.
    ``with_children`` (PostgreSQL): each row with its child rows, in the same statement
    (``whole.page``, ``whole.model_page``), which saves the round trip of a second. ``indexed`` and
    ``drive``: see ``search_drive``; when a tag or param drives, the version's model id is
    written ``model_id + 0``, so that SQLite cannot reach the versions through the
    model's index instead. ``guard``: rows only if the model that ``name = …`` names is
    small (``search_drive.small_guard``)."""
    mv, rm = model_versions.c, registered_models.c
    conditions: list[ColumnElement[bool]] = []
    one_of_each = False  # whether the order's own keys are unique among the rows
    named = name_slot(shape)  # the slot of a top-level ``name = …``
    if target == "versions":
        model_of: Column = mv.model_id + 0 if drive else mv.model_id
        source: FromClause = model_versions.join(registered_models, rm.id == model_of)
        id_column: Column = mv.id
        wanted: list[Any] = [*model_versions.c, rm.name.label("model_name")]
        columns: dict[str, Column] = {
            "name": rm.name_key,
            "version": mv.version,
            "created_at": mv.created_at,
            "updated_at": mv.updated_at,
        }
        if not include_deleted:
            conditions += [mv.deleted_at.is_(None), rm.deleted_at.is_(None)]
        slot = None if one_model else named
        if one_model:
            conditions.append(model_of == bindparam("model_id"))
        elif slot is not None:
            conditions.append(_model_named(model_of, slot, include_deleted))
        # one model's versions: a number is one version (several models of one name, live
        # and deleted, may share numbers)
        one_of_each = any(k.field == "version" for k in order) and (
            one_model or (slot is not None and not include_deleted)
        )
    else:
        source, id_column = registered_models, rm.id
        wanted = list(registered_models.c)
        columns = {"name": rm.name_key, "created_at": rm.created_at, "updated_at": rm.updated_at}
        if not include_deleted:
            conditions.append(rm.deleted_at.is_(None))
    if readable is not None:
        conditions.append(readable_models(readable))
    if shape is not None:
        conditions.append(compile_shape(shape, target, probe, indexed))
    if guard and named is not None:  # a guess is made only for a search that names one
        conditions.append(search_drive.small_guard(named, include_deleted))
    keys = [(columns[k.field], k.descending) for k in order]
    keys.append((id_column, order[-1].descending))
    if after:
        # a token's numbers are any 64-bit ones: bound as BIGINT, as the filter's (the
        # version column is an INTEGER, to which PostgreSQL would cast them)
        after_values = [
            bindparam(f"k{i}", type_=BigInteger if isinstance(column.type, Integer) else None)
            for i, (column, _) in enumerate(keys)
        ]
        conditions.append(_after(keys, after_values))
    sorts = (column.label(f"sort{i}") for i, (column, _) in enumerate(keys[:-1]))
    # the id settles ties; with none to settle, ordering by it too would keep PostgreSQL
    # from reading the page straight off the (model_id, version) index
    by = keys[:-1] if one_of_each else keys
    page = (
        select(*wanted, *sorts)
        .select_from(source)
        .where(*conditions)
        .order_by(*_ordered(by))
        .limit(bindparam("limit"))
    )
    if not with_children:
        return Prepared(page)
    rows = page.subquery("page")  # the same order again, over the page's own columns
    again = [(rows.c[f"sort{i}"], desc) for i, (_, desc) in enumerate(keys[:-1])]
    again.append((rows.c.id, keys[-1][1]))
    if target == "versions":
        return Prepared(whole.page(rows, _ordered(again)), dialect="postgresql")
    latest = newest_ready(rows.c.id, model_versions.c.version).scalar_subquery()
    return Prepared(
        whole.model_page(rows, _ordered(again), latest.label("latest_version")),
        dialect="postgresql",
    )


def _model_named(model_of: Column, slot: int, include_deleted: bool) -> ColumnElement[bool]:
    """The version's model is the one the filter's top-level ``name = …`` names, by id:
    said again beside the join, so that the planner scans that model's versions in
    version order through its ``(model_id, version)`` index and stops at the page's end
    (PostgreSQL sees the id as a constant; through the join it sorted every version of
    the model, 88 ms at 300,000). Deleted models may share a live one's name."""
    named = registered_models.alias("named")
    ids = select(named.c.id).where(named.c.name_key == bindparam(f"f{slot}"))
    if include_deleted:
        return model_of.in_(ids)
    return model_of == ids.where(named.c.deleted_at.is_(None)).scalar_subquery()


def _ordered(keys: Sequence[tuple[Any, bool]]) -> list[Any]:
    return [column.desc() if desc else column.asc() for column, desc in keys]


def _after(keys: Sequence[tuple[Column, bool]], values: Sequence[Any]) -> ColumnElement[bool]:
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


def encode_page_token(fingerprint: str, values: Sequence[object]) -> str:
    """A keyset page token: the last row's sort ``values``, bound to the query's
    ``fingerprint`` (a token of another query is refused). Every paged store uses it."""
    payload = json.dumps({"q": fingerprint, "k": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_page_token(token: str, fingerprint: str, kinds: Sequence[type]) -> list[object]:
    """The values ``encode_page_token`` put in ``token``, checked against the query's
    ``fingerprint`` and the expected ``kinds``; a bad token is ``InvalidParameter``."""
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

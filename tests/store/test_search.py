"""Filter compilation and keyset pagination, on SQLite and PostgreSQL.

Rows are inserted with SQLAlchemy Core: these tests pin the store's query semantics
underneath the service, which has its own tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from sqlalchemy import Connection, CursorResult, Table, func, insert, select, update
from sqlalchemy.orm import Session

from cairn.domain.filters import (
    Expr,
    OrderKey,
    Target,
    names_one_model,
    parse_filter,
    parse_order_by,
)
from cairn.domain.names import name_key
from cairn.errors import InvalidParameter
from cairn.store.metadata import search, search_drive
from cairn.store.metadata.database import Database
from cairn.store.metadata.schema import (
    VALUE_PREFIX,
    aliases,
    model_tags,
    model_versions,
    registered_models,
    version_metrics,
    version_params,
    version_tags,
)
from cairn.store.metadata.search import (
    DEFAULT_VERSION_ORDER,
    MODEL_ORDER_FIELDS,
    VERSION_ORDER_FIELDS,
    search_models_page,
    search_versions_page,
)
from cairn.store.metadata.search_compile import compile_shape, parameterize, slot_params

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
DAY = 86_400_000_000


def _insert(db: Database, table: Table, **values: Any) -> int:
    """Insert one row; return the first column of its primary key."""

    def run(s: Session) -> int:
        result = cast("CursorResult[Any]", s.execute(insert(table).values(**values)))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    return db.write(run)


def version_page(
    db: Database,
    *,
    expr: Expr | None = None,
    order: Sequence[OrderKey] = (),
    size: int = 2,
    token: str | None = None,
    **scope: Any,
) -> tuple[list[int], str | None]:
    return _ids(db, search_versions_page, expr, order, size, token, scope)


def model_page(
    db: Database,
    *,
    expr: Expr | None = None,
    order: Sequence[OrderKey] = (),
    size: int = 2,
    token: str | None = None,
    **scope: Any,
) -> tuple[list[int], str | None]:
    return _ids(db, search_models_page, expr, order, size, token, scope)


def _ids(
    db: Database,
    search: Any,
    expr: Expr | None,
    order: Sequence[OrderKey],
    size: int,
    token: str | None,
    scope: dict[str, Any],
) -> tuple[list[int], str | None]:
    """One page of ``search`` (``search_versions_page`` or ``search_models_page``): the
    ids of its rows, in order, and the next page's token."""
    rows, next_token = db.read(
        lambda s: search(s, expr=expr, order_by=order, max_results=size, page_token=token, **scope)
    )
    return [int(r.id) for r in rows], next_token


def add_model(
    db: Database,
    name: str,
    *,
    at: int = T0,
    tags: Mapping[str, str] | None = None,
    deleted: bool = False,
) -> int:
    model_id = _insert(
        db,
        registered_models,
        name=name,
        name_key=name_key(name),
        created_at=at,
        updated_at=at,
        deleted_at=at if deleted else None,
    )
    for key, value in (tags or {}).items():
        _insert(db, model_tags, model_id=model_id, key=key, value=value)
    return model_id


def add_version(
    db: Database,
    model_id: int,
    version: int,
    *,
    at: int = T0,
    updated: int | None = None,
    status: str = "READY",
    stage: str = "None",
    run_id: str | None = None,
    source: str | None = None,
    semver: str | None = None,
    tags: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    deleted: bool = False,
) -> int:
    version_id = _insert(
        db,
        model_versions,
        model_id=model_id,
        version=version,
        status=status,
        stage=stage,
        run_id=run_id,
        source=source,
        semver=semver,
        created_at=at,
        updated_at=at if updated is None else updated,
        deleted_at=at if deleted else None,
    )
    rm = registered_models.c
    counter = (
        func.max(rm.last_version, version)
        if db.engine.dialect.name == "sqlite"
        else (func.greatest(rm.last_version, version))
    )
    db.write(
        lambda s: s.execute(
            update(registered_models).where(rm.id == model_id).values(last_version=counter)
        )
    )  # the model's counter, as creating the version would move it
    entries = {version_tags: tags, version_params: params, version_metrics: metrics}
    for table, values in entries.items():
        for key, value in (values or {}).items():
            _insert(db, table, version_id=version_id, key=key, value=value)
    return version_id


def add_alias(db: Database, model_id: int, alias: str, version: int) -> None:
    key = alias.lower()
    _insert(
        db, aliases, model_id=model_id, alias=alias, alias_key=key, version=version, updated_at=T0
    )


@dataclass
class Catalog:
    db: Database
    versions: dict[int, tuple[str, int]] = field(default_factory=dict)
    models: dict[int, str] = field(default_factory=dict)

    def versions_matching(
        self, text: str, *, include_deleted: bool = False, model_id: int | None = None
    ) -> set[tuple[str, int]]:
        ids = all_ids(self.db, "versions", text, include_deleted=include_deleted, model_id=model_id)
        assert len(ids) == len(set(ids))
        return {self.versions[i] for i in ids}

    def models_matching(self, text: str, *, include_deleted: bool = False) -> set[str]:
        ids = all_ids(self.db, "models", text, include_deleted=include_deleted)
        return {self.models[i] for i in ids}


def all_ids(
    db: Database,
    target: Target,
    text: str,
    *,
    order_by: Sequence[str] = (),
    page_size: int = 1000,
    **scope: Any,
) -> list[int]:
    """Every id the query returns, following page tokens to the end."""
    expr = parse_filter(text, target)
    fields = VERSION_ORDER_FIELDS if target == "versions" else MODEL_ORDER_FIELDS
    order = parse_order_by(list(order_by), set(fields))
    search = version_page if target == "versions" else model_page
    ids: list[int] = []
    token: str | None = None
    for _ in range(1000):
        page, token = search(db, expr=expr, order=order, size=page_size, token=token, **scope)
        assert len(page) <= page_size
        ids += page
        if token is None:
            return ids
    raise AssertionError("pagination did not end")


@pytest.fixture
def catalog(db: Database) -> Catalog:
    """fraud-detector v1-v3, Fraud-Scorer v1, churn v1 (+ deleted v2), deleted old-model v1."""
    cat = Catalog(db)

    def version(model_id: int, name: str, number: int, **kw: Any) -> None:
        cat.versions[add_version(db, model_id, number, **kw)] = (name, number)

    fd = add_model(db, "fraud-detector", at=T0, tags={"team": "risk"})
    version(
        fd,
        "fraud-detector",
        1,
        at=T0 + 1 * DAY,
        stage="Production",
        run_id="run-a",
        source="models:/m-0123abcd",
        semver="1.0.0",
        tags={"team": "risk", "mlflow.prompt.is_prompt": "false"},
        params={"lr": "0.01"},
        metrics={"auc": 0.91, "loss": 0.2},
    )
    version(
        fd,
        "fraud-detector",
        2,
        at=T0 + 2 * DAY,
        stage="Staging",
        semver="1.1.0",
        tags={"team": "risk"},
        params={"lr": "0.02"},
        metrics={"auc": 0.95},
    )
    version(
        fd,
        "fraud-detector",
        3,
        at=T0 + 3 * DAY,
        status="PENDING",
        run_id="run-b",
        source="s3://bucket/fraud/3",
        tags={"team": "ops"},
        metrics={"auc": 0.85},
    )
    fs = add_model(db, "Fraud-Scorer", at=T0 + DAY, tags={"team": "ml"})
    version(
        fs,
        "Fraud-Scorer",
        1,
        at=T0 + 4 * DAY,
        semver="2.0.0-rc.1",
        tags={"mlflow.prompt.is_prompt": "true"},
        metrics={"auc": 0.99},
    )
    churn = add_model(db, "churn", at=T0 + 2 * DAY)
    version(churn, "churn", 1, at=T0 + 5 * DAY, status="FAILED", stage="Archived")
    version(churn, "churn", 2, at=T0 + 6 * DAY, deleted=True, tags={"team": "risk"})
    old = add_model(db, "old-model", at=T0 + 3 * DAY, tags={"team": "risk"}, deleted=True)
    version(old, "old-model", 1, at=T0 + 7 * DAY, tags={"team": "risk"})
    add_alias(db, fd, "champion", 2)
    add_alias(db, fd, "Prod", 1)
    add_alias(db, fs, "champion", 1)
    add_alias(db, old, "champion", 1)
    cat.models = {fd: "fraud-detector", fs: "Fraud-Scorer", churn: "churn", old: "old-model"}
    return cat


FD1, FD2, FD3 = ("fraud-detector", 1), ("fraud-detector", 2), ("fraud-detector", 3)
FS1, CH1, CH2, OLD1 = ("Fraud-Scorer", 1), ("churn", 1), ("churn", 2), ("old-model", 1)
LIVE = {FD1, FD2, FD3, FS1, CH1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", LIVE),
        # name: identity is case-insensitive; LIKE is case-sensitive; ILIKE folds case.
        ("name = 'FRAUD-DETECTOR'", {FD1, FD2, FD3}),
        ("name = 'fraud-scorer'", {FS1}),
        ("name != 'Fraud-Detector'", {FS1, CH1}),
        ("name IN ('CHURN', 'fraud-scorer')", {FS1, CH1}),
        ("name NOT IN ('CHURN', 'fraud-scorer')", {FD1, FD2, FD3}),
        ("name LIKE 'fraud%'", {FD1, FD2, FD3}),
        ("name LIKE 'Fraud%'", {FS1}),
        ("name LIKE 'FRAUD%'", set()),
        ("name ILIKE 'FRAUD%'", {FD1, FD2, FD3, FS1}),
        ("name LIKE '_hurn'", {CH1}),
        ("name NOT LIKE 'fraud%'", {FS1, CH1}),
        # version and numeric ranges
        ("version = 2", {FD2}),
        ("version >= 2", {FD2, FD3}),
        ("version < 2", {FD1, FS1, CH1}),
        ("version IN (2, 3)", {FD2, FD3}),
        ("version NOT IN (1)", {FD2, FD3}),
        ("metrics.auc >= 0.9", {FD1, FD2, FS1}),
        ("metrics.auc > 0.9 AND metrics.auc < 0.96", {FD1, FD2}),
        ("metrics.auc = 0.95", {FD2}),
        ("metrics.auc <= 0.85", {FD3}),
        ("metrics.auc < 1", {FD1, FD2, FD3, FS1}),
        ("metrics.auc IN (0.85, 0.99)", {FD3, FS1}),
        ("metric.loss != 0.2", {FD2, FD3, FS1, CH1}),
        ("metrics.missing > -1e300", set()),
        # tags: != and NOT IN also match versions without the tag
        ("tags.team = 'risk'", {FD1, FD2}),
        ("tags.team != 'risk'", {FD3, FS1, CH1}),
        ("tags.team IN ('risk', 'ops')", {FD1, FD2, FD3}),
        ("tags.team NOT IN ('risk', 'ops')", {FS1, CH1}),
        ("tags.team LIKE 'r%'", {FD1, FD2}),
        ("tags.team LIKE 'R%'", set()),
        ("tags.team ILIKE 'R%'", {FD1, FD2}),
        ("tags.team LIKE '%'", {FD1, FD2, FD3}),
        ("NOT tags.team LIKE '%'", {FS1, CH1}),
        ("tags.`mlflow.prompt.is_prompt` != 'true'", {FD1, FD2, FD3, CH1}),
        ("tags.mlflow.prompt.is_prompt = 'true'", {FS1}),
        ("tag.TEAM = 'risk'", set()),
        # params
        ("params.lr = '0.01'", {FD1}),
        ("param.lr != '0.01'", {FD2, FD3, FS1, CH1}),
        ("params.lr LIKE '0.0%'", {FD1, FD2}),
        # enumerations
        ("stage = 'production'", {FD1}),
        ("stage != 'None'", {FD1, FD2, CH1}),
        ("stage IN ('staging', 'ARCHIVED')", {FD2, CH1}),
        ("status = 'ready'", {FD1, FD2, FS1}),
        ("status != 'READY'", {FD3, CH1}),
        ("status NOT IN ('READY', 'FAILED')", {FD3}),
        # nullable columns: absent values are "not equal"
        ("run_id = 'run-a'", {FD1}),
        ("run_id != 'run-a'", {FD2, FD3, FS1, CH1}),
        ("run_id NOT IN ('run-a', 'run-b')", {FD2, FS1, CH1}),
        ("run_id LIKE 'run-%'", {FD1, FD3}),
        ("NOT run_id LIKE 'run-%'", {FD2, FS1, CH1}),
        ("source = 's3://bucket/fraud/3'", {FD3}),
        ("source != 's3://bucket/fraud/3'", {FD1, FD2, FS1, CH1}),
        ("source LIKE 'models:/%'", {FD1}),
        ("source ILIKE 'S3://%'", {FD3}),
        ("source IN ('models:/m-0123abcd', 's3://nowhere')", {FD1}),
        ("semver = '1.1.0'", {FD2}),
        ("semver LIKE '1.%'", {FD1, FD2}),
        ("semver != '1.1.0'", {FD1, FD3, FS1, CH1}),
        # aliases: = and IN are case-insensitive; LIKE is case-sensitive on the alias as set
        ("alias = 'champion'", {FD2, FS1}),
        ("alias = 'PROD'", {FD1}),
        ("alias IN ('prod', 'Champion')", {FD1, FD2, FS1}),
        ("alias != 'champion'", {FD1, FD3, CH1}),
        ("alias NOT IN ('champion', 'prod')", {FD3, CH1}),
        ("alias LIKE 'P%'", {FD1}),
        ("alias LIKE 'p%'", set()),
        ("alias ILIKE 'p%'", {FD1}),
        # times
        ("created_at >= '2026-01-03' AND created_at < '2026-01-05T00:00:00Z'", {FD2, FD3}),
        ("created_at >= 1767398400000 AND created_at < 1767571200000", {FD2, FD3}),
        ("created_at = '2026-01-05T00:00:00Z'", {FS1}),
        ("created_at > '2026-01-05T01:00:00+01:00'", {CH1}),
        ("updated_at < '2026-01-03'", {FD1}),
        # precedence and grouping
        ("name = 'churn' OR name = 'fraud-scorer' AND version = 2", {CH1}),
        ("(name = 'churn' OR name = 'fraud-scorer') AND version = 1", {FS1, CH1}),
        ("NOT name = 'churn' AND version = 1", {FD1, FS1}),
        ("NOT (name = 'churn' AND version = 1)", {FD1, FD2, FD3, FS1}),
        ("tags.team = 'risk' AND (metrics.auc > 0.94 OR stage = 'Production')", {FD1, FD2}),
        ("NOT NOT version = 3", {FD3}),
    ],
)
def test_version_filters(catalog: Catalog, text: str, expected: set[tuple[str, int]]) -> None:
    assert catalog.versions_matching(text) == expected


_BEYOND_INT32 = ", ".join(str(2**40 + i) for i in range(12))  # a long list: an array on PG


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # any 64-bit whole number compares, though version numbers are 32-bit columns
        ("version < 3000000000", LIVE),
        ("version = 9223372036854775807", set()),
        ("version != 9223372036854775807", LIVE),
        ("version > -9223372036854775808", LIVE),
        ("version IN (1, 9223372036854775807)", {FD1, FS1, CH1}),
        (f"version IN ({_BEYOND_INT32})", set()),
        (f"version NOT IN ({_BEYOND_INT32})", LIVE),
    ],
)
def test_version_numbers_beyond_32_bits_compare_on_both_engines(
    catalog: Catalog, text: str, expected: set[tuple[str, int]]
) -> None:
    assert catalog.versions_matching(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tags.team = 'risk'",
        "tags.team != 'ops'",
        "run_id = 'run-a'",
        "source LIKE 's3:%'",
        "semver LIKE '1.%'",
        "alias = 'champion'",
        "metrics.auc > 0.9",
        "params.lr IN ('0.01')",
        "name ILIKE 'fraud%' OR stage = 'Archived'",
    ],
)
def test_not_is_an_exact_complement(catalog: Catalog, text: str) -> None:
    matching = catalog.versions_matching(text)
    assert catalog.versions_matching(f"NOT ({text})") == LIVE - matching


def test_deleted_rows_are_excluded_unless_asked(catalog: Catalog) -> None:
    assert catalog.versions_matching("tags.team = 'risk'") == {FD1, FD2}
    everything = catalog.versions_matching("tags.team = 'risk'", include_deleted=True)
    assert everything == {FD1, FD2, CH2, OLD1}
    assert catalog.versions_matching("alias = 'champion'", include_deleted=True) == {FD2, FS1, OLD1}
    assert catalog.models_matching("") == {"fraud-detector", "Fraud-Scorer", "churn"}
    assert "old-model" in catalog.models_matching("", include_deleted=True)


def test_model_scope(catalog: Catalog) -> None:
    churn = next(i for i, n in catalog.models.items() if n == "churn")
    assert catalog.versions_matching("", model_id=churn) == {CH1}
    assert catalog.versions_matching("", model_id=churn, include_deleted=True) == {CH1, CH2}
    assert catalog.versions_matching("version = 1", model_id=churn) == {CH1}


@pytest.mark.parametrize(
    "text",
    [
        "tags.team = 'risk'",
        "tags.team != 'risk'",
        "params.lr IN ('0.01')",
        "metrics.auc > 0.9",
        "alias = 'champion'",
        "NOT alias LIKE '%'",
        "tags.team LIKE '%' OR metrics.auc < 0.9",
    ],
)
def test_one_model_searches_probe_per_row_with_the_same_answers(
    catalog: Catalog, text: str
) -> None:
    """``name = ...`` keeps a search to one model: its key/value conditions become per-row
    lookups (``OFFSET 0`` subqueries) and must answer exactly as the general form does."""
    scoped = f"name = 'fraud-detector' AND ({text})"
    one_model = {v for v in catalog.versions_matching(text) if v[0] == "fraud-detector"}
    assert catalog.versions_matching(scoped) == one_model
    shape, _ = parameterize(parse_filter(scoped, "versions"))
    assert "OFFSET" in str(compile_shape(shape, "versions", probe=True).compile())
    assert names_one_model(parse_filter(scoped, "versions"))
    assert not names_one_model(parse_filter(f"name LIKE 'fraud%' AND ({text})", "versions"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"fraud-detector", "Fraud-Scorer", "churn"}),
        ("name = 'fraud-SCORER'", {"Fraud-Scorer"}),
        ("name LIKE 'F%'", {"Fraud-Scorer"}),
        ("name ILIKE 'f%'", {"fraud-detector", "Fraud-Scorer"}),
        ("tags.team = 'risk'", {"fraud-detector"}),
        ("tags.team != 'risk'", {"Fraud-Scorer", "churn"}),
        ("tags.team LIKE '%'", {"fraud-detector", "Fraud-Scorer"}),
        ("alias = 'CHAMPION'", {"fraud-detector", "Fraud-Scorer"}),
        ("alias = 'prod'", {"fraud-detector"}),
        ("alias != 'prod'", {"Fraud-Scorer", "churn"}),
        ("created_at >= '2026-01-02T00:00:00Z'", {"Fraud-Scorer", "churn"}),
        ("updated_at < 1767312000000", {"fraud-detector"}),
        ("NOT name IN ('churn') AND tags.team IN ('ml', 'x')", {"Fraud-Scorer"}),
    ],
)
def test_model_filters(catalog: Catalog, text: str, expected: set[str]) -> None:
    assert catalog.models_matching(text) == expected


def test_unicode_names_fold_the_same_on_both_engines(db: Database) -> None:
    cat = Catalog(db)
    for name in ("Ärger", "ärger-2", "Straße"):
        cat.models[add_model(db, name)] = name
    assert cat.models_matching("name = 'ÄRGER'") == {"Ärger"}
    assert cat.models_matching("name ILIKE 'är%'") == {"Ärger", "ärger-2"}
    assert cat.models_matching("name LIKE 'Är%'") == {"Ärger"}
    assert cat.models_matching("name ILIKE 'STRASSE'") == {"Straße"}


def test_like_escapes_with_backslash_on_both_engines(db: Database) -> None:
    cat = Catalog(db)
    for name in ("a_b", "axb", "a%b", "a\\b"):
        cat.models[add_model(db, name)] = name
    assert cat.models_matching("name LIKE 'a_b'") == {"a_b", "axb", "a%b", "a\\b"}
    assert cat.models_matching("name LIKE 'a\\_b'") == {"a_b"}
    assert cat.models_matching("name LIKE 'a\\%b'") == {"a%b"}
    assert cat.models_matching("name LIKE 'a\\\\b'") == {"a\\b"}
    assert cat.models_matching("name ILIKE 'A\\_B'") == {"a_b"}


@pytest.mark.parametrize(
    "value",
    [
        "x' OR '1'='1",
        "'; DROP TABLE registered_models; --",
        'x" OR 1=1 --',
        "%' OR name LIKE '%",
        "1; DELETE FROM model_versions",
        "\\' OR 1=1 --",
    ],
)
def test_injection_attempts_match_nothing(catalog: Catalog, value: str) -> None:
    literal = "'" + value.replace("'", "''") + "'"
    for text in (
        f"name = {literal}",
        f"name LIKE {literal}" if not value.endswith("\\") else "name = 'x'",
        f"tags.team = {literal}",
        f"tags.`{value.replace('`', '``')}` = 'risk'",
        f"alias IN ({literal}, 'nope')",
        f"run_id != {literal} AND version = 99",
    ):
        assert catalog.versions_matching(text) == set(), text
    count = catalog.db.read(
        lambda s: s.execute(select(func.count()).select_from(registered_models)).scalar_one()
    )
    assert count == 4


# -- ordering and keyset pagination ------------------------------------------------------


@pytest.fixture
def grid(db: Database) -> dict[int, tuple[str, int, int, int]]:
    """25 versions: 5 models x 5 versions; few distinct times, so ids must break ties.

    Returns id → (name_key, version, created_at, updated_at).
    """
    rows: dict[int, tuple[str, int, int, int]] = {}
    for m, name in enumerate(["delta", "Alpha", "echo", "bravo", "Charlie"]):
        model_id = add_model(db, name, at=T0 + m)
        for v in range(1, 6):
            created = T0 + ((m * 5 + v) % 3) * DAY
            updated = T0 + ((m + v) % 2) * DAY
            vid = add_version(db, model_id, v, at=created, updated=updated)
            rows[vid] = (name.lower(), v, created, updated)
    return rows


_INDEX = {"name": 0, "version": 1, "created_at": 2, "updated_at": 3}


def _expected_order(rows: Mapping[int, tuple[Any, ...]], order: Sequence[OrderKey]) -> list[int]:
    ids = list(rows)
    last_desc = order[-1].descending
    ids.sort(key=lambda i: i, reverse=last_desc)  # the id tie-breaker
    for key in reversed(order):  # stable sorts, least significant key first
        ids.sort(key=lambda i, k=key: rows[i][_INDEX[k.field]], reverse=key.descending)  # type: ignore[misc]
    return ids


@pytest.mark.parametrize(
    "order_by",
    [
        [],
        ["name"],
        ["name DESC"],
        ["created_at"],
        ["created_at DESC"],
        ["created_at ASC", "name DESC"],
        ["updated_at DESC", "created_at ASC"],
        ["version DESC", "updated_at ASC", "created_at DESC"],
        ["name ASC", "version DESC"],
    ],
)
def test_keyset_pagination_visits_every_row_once(
    db: Database, grid: dict[int, tuple[str, int, int, int]], order_by: list[str]
) -> None:
    order = parse_order_by(order_by, set(VERSION_ORDER_FIELDS)) or (
        OrderKey("name"),
        OrderKey("version", descending=True),
    )
    paged = all_ids(db, "versions", "", order_by=order_by, page_size=7)
    assert len(paged) == 25
    assert set(paged) == set(grid)
    assert paged == _expected_order(grid, order)
    assert paged == all_ids(db, "versions", "", order_by=order_by)


def test_model_pagination_orders_names_case_insensitively(db: Database) -> None:
    names = [f"{c}{i}" for i in range(5) for c in ("b", "A", "c", "D", "e")]
    ids = {add_model(db, name, at=T0 + i % 4): name for i, name in enumerate(names)}
    paged = all_ids(db, "models", "", page_size=7)
    assert [ids[i] for i in paged] == sorted(names, key=str.lower)
    by_time = all_ids(db, "models", "", order_by=["created_at DESC"], page_size=7)
    assert len(by_time) == len(set(by_time)) == 25
    times = [(T0 + names.index(ids[i]) % 4) for i in by_time]
    assert times == sorted(times, reverse=True)


def test_pages_follow_the_cursor_through_concurrent_inserts(
    db: Database, grid: dict[int, tuple[str, int, int, int]]
) -> None:
    first, token = version_page(db, size=7)
    assert [grid[i][0] for i in first] == ["alpha"] * 5 + ["bravo"] * 2
    before = add_version(db, add_model(db, "aaa"), 1)  # sorts before the cursor: not seen
    after = add_version(db, add_model(db, "zulu"), 1)  # sorts after it: seen
    rest: list[int] = []
    while token:
        ids, token = version_page(db, size=7, token=token)
        rest += ids
    assert before not in rest
    assert rest[-1] == after
    assert set(first) | set(rest) == set(grid) | {after}


def test_filtered_pagination(db: Database, grid: dict[int, tuple[str, int, int, int]]) -> None:
    text = "version >= 2 AND name != 'echo'"
    ids = all_ids(db, "versions", text, order_by=["created_at DESC"], page_size=7)
    expected = {i for i, row in grid.items() if row[1] >= 2 and row[0] != "echo"}
    assert len(ids) == len(expected) == 16
    assert set(ids) == expected


def _first_token(db: Database, text: str = "", order: Sequence[str] = (), **scope: Any) -> str:
    expr = parse_filter(text, "versions")
    keys = parse_order_by(list(order), set(VERSION_ORDER_FIELDS))
    _, token = version_page(db, expr=expr, order=keys, **scope)
    assert token is not None
    return token


def test_token_from_another_query_is_refused(
    db: Database, grid: dict[int, tuple[str, int, int, int]]
) -> None:
    model_id = db.read(lambda s: s.execute(select(model_versions.c.model_id).limit(1)).scalar())
    token = _first_token(db, "version > 1")
    others: list[tuple[str, list[str], dict[str, Any]]] = [
        ("version > 2", [], {}),
        ("version > 1", ["created_at"], {}),
        ("version > 1", [], {"include_deleted": True}),
        ("version > 1", [], {"model_id": model_id}),
    ]
    for text, order, scope in others:
        expr = parse_filter(text, "versions")
        keys = parse_order_by(order, set(VERSION_ORDER_FIELDS))
        with pytest.raises(InvalidParameter, match="page_token does not belong to this query"):
            version_page(db, expr=expr, order=keys, token=token, **scope)
    with pytest.raises(InvalidParameter, match="does not belong"):
        model_page(db, token=token)
    # The same query spelled differently is the same query.
    ids, _ = version_page(db, expr=parse_filter("VERSION>1", "versions"), token=token)
    assert len(ids) == 2


def _b64(data: object) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_malformed_tokens_are_refused(
    db: Database, grid: dict[int, tuple[str, int, int, int]]
) -> None:
    token = _first_token(db)
    fingerprint = json.loads(base64.urlsafe_b64decode(token + "==="))["q"]
    for bad in [
        "garbage!",
        "é",
        "x" * 5000,
        _b64(b"\xff\xfe"),
        _b64([1, 2]),
        _b64({"q": 7}),
        _b64({"q": fingerprint}),
        _b64({"q": fingerprint, "k": ["a", 1]}),
        _b64({"q": fingerprint, "k": [1, 2, 3]}),
        _b64({"q": fingerprint, "k": ["a", "b", 3]}),
        _b64({"q": fingerprint, "k": ["a", 1.5, 3]}),
        _b64({"q": fingerprint, "k": ["a", True, 3]}),
        _b64({"q": fingerprint, "k": ["a", 1, 2**70]}),
    ]:
        with pytest.raises(InvalidParameter):
            version_page(db, token=bad)
    # A well-formed token naming a row that does not exist still works: it is a position.
    ids, _ = version_page(db, size=30, token=_b64({"q": fingerprint, "k": ["bravo", 3, 0]}))
    assert [grid[i][:2] for i in ids[:3]] == [("bravo", 2), ("bravo", 1), ("charlie", 5)]


def test_a_token_may_name_a_version_beyond_32_bits(
    db: Database, grid: dict[int, tuple[str, int, int, int]]
) -> None:
    # a token is a position, and any 64-bit one is well-formed: past every version of bravo
    fingerprint = json.loads(base64.urlsafe_b64decode(_first_token(db) + "==="))["q"]
    ids, _ = version_page(db, size=30, token=_b64({"q": fingerprint, "k": ["bravo", 2**40, 0]}))
    assert [grid[i][:2] for i in ids[:2]] == [("bravo", 5), ("bravo", 4)]


@pytest.mark.parametrize("size", [0, -1, 1001, True])
def test_max_results_is_bounded(db: Database, size: int) -> None:
    with pytest.raises(InvalidParameter, match="max_results"):
        version_page(db, size=size)
    with pytest.raises(InvalidParameter, match="max_results"):
        model_page(db, size=size)


def test_order_fields_are_checked(db: Database) -> None:
    with pytest.raises(InvalidParameter):
        model_page(db, order=(OrderKey("version"),))
    with pytest.raises(InvalidParameter):
        version_page(db, order=(OrderKey("name"), OrderKey("name", descending=True)))


def test_last_page_has_no_token(db: Database, grid: dict[int, tuple[str, int, int, int]]) -> None:
    ids, token = version_page(db, size=25)
    assert len(ids) == 25
    assert token is None
    ids, token = version_page(db, size=24)
    assert token is not None
    ids, token = version_page(db, size=24, token=token)
    assert len(ids) == 1
    assert token is None


def test_searches_that_differ_only_in_values_share_one_shape() -> None:
    """The SQL of a search is built once per shape: the values are parameters, folded the
    way their fields compare (name and alias keys, floats for metrics)."""
    first, first_values = parameterize(
        parse_filter("name = 'Fraud' AND metrics.auc > 1 AND alias IN ('Prod')", "versions")
    )
    second, second_values = parameterize(
        parse_filter("name = 'churn' AND metrics.auc > 0.5 AND alias IN ('a', 'B')", "versions")
    )
    assert first == second
    assert first_values == ("fraud", 1.0, ("prod",))
    assert second_values == ("churn", 0.5, ("a", "b"))
    negated, values = parameterize(parse_filter("tags.team != 'risk'", "versions"))
    assert negated == ("not", ("cmp", "tags", "team", "=", 0)) and values == ("risk",)
    assert compile_shape(first, "versions", False) is compile_shape(second, "versions", False)


# -- how searches reach their rows: a tag or param equality through the (value prefix, key)
# index when few rows carry the value, a per-row test in the page's order when many do
# (``search_drive``), ``name = …`` through the model's own versions. Both ways must
# answer alike, whatever the values' length or alphabet.

LONG = "a" * VALUE_PREFIX
# values that share their indexed prefix, straddle it with multi-byte characters, or are empty
VALUES = [
    LONG,
    LONG + "x",
    LONG + "y",
    LONG[:-1],
    "é" * (VALUE_PREFIX - 1) + "xü",
    "é" * VALUE_PREFIX,
    "é" * VALUE_PREFIX + "ü",
    "",
    "short",
]


@pytest.fixture
def valued(db: Database) -> dict[int, str]:
    """Model ``m`` with one version per value of ``VALUES`` (tag and param ``k``), and
    model ``other`` with one version carrying every value's neighbour ``short``."""
    model = add_model(db, "m")
    ids = {
        add_version(db, model, n, tags={"k": v}, params={"k": v}): v
        for n, v in enumerate(VALUES, start=1)
    }
    other = add_model(db, "other")
    ids[add_version(db, other, 1, tags={"k": "short"}, params={"k": "short"})] = "short@other"
    return ids


@pytest.fixture(params=["start from the index", "test each row"])
def drive_limit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Either way of finding a tag or param equality's rows, forced: no value is on more
    than two rows and model ``m`` has nine versions, so a limit of 3 starts from the
    index every time; 0, never."""
    limit = 3 if request.param == "start from the index" else 0
    monkeypatch.setattr(search_drive, "DRIVE_LIMIT", limit)
    return str(request.param)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@pytest.mark.parametrize("field", ["tags", "params"])
@pytest.mark.parametrize("scope", ["", "name = 'm' AND "])
def test_equalities_match_whole_values_either_way(
    db: Database, valued: dict[int, str], drive_limit: str, field: str, scope: str
) -> None:
    in_m = {i: v for i, v in valued.items() if not v.endswith("@other")}
    everywhere = {i: v.removesuffix("@other") for i, v in valued.items()}
    values = in_m if scope else everywhere
    for value in VALUES:
        expected = {i for i, v in values.items() if v == value}
        got = set(all_ids(db, "versions", f"{scope}{field}.k = {_quoted(value)}"))
        assert got == expected, (drive_limit, value)
        unequal = set(all_ids(db, "versions", f"{scope}{field}.k != {_quoted(value)}"))
        assert unequal == set(values) - expected
    some = (LONG + "x", "é" * VALUE_PREFIX, "short", "")
    listed = f"{scope}{field}.k IN ({', '.join(map(_quoted, some))})"
    expected = {i for i, v in values.items() if v in some}
    assert set(all_ids(db, "versions", listed)) == expected
    # page by page, in the page's order (one model's pages are ordered without the id)
    for order in ((), ("version ASC",), ("created_at DESC",)):
        paged = all_ids(db, "versions", listed, order_by=order, page_size=2)
        assert paged == all_ids(db, "versions", listed, order_by=order), order
        assert set(paged) == expected


def test_model_tag_equalities_match_whole_values_either_way(db: Database, drive_limit: str) -> None:
    ids = {add_model(db, f"m{n}", tags={"k": v}): v for n, v in enumerate(VALUES)}
    for value in VALUES:
        got = set(all_ids(db, "models", f"tags.k = {_quoted(value)}"))
        assert got == {i for i, v in ids.items() if v == value}, (drive_limit, value)


def _choice(conn: Connection, text: str) -> tuple[frozenset[int], bool]:
    shape, values = parameterize(parse_filter(text, "versions"))
    indexed, drive, *_ = search_drive.choose(conn, "versions", shape, values, False)
    return indexed, drive


def test_the_rarer_top_level_equality_starts_the_search(
    db: Database, valued: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_drive, "DRIVE_LIMIT", 2)  # "short" is on two versions: many
    assert db.read(lambda s: _choice(s, "tags.k = 'short'")) == (frozenset(), False)
    rare = f"tags.k = 'short' AND params.k = {_quoted(LONG[:-1])}"
    assert db.read(lambda s: _choice(s, rare)) == (frozenset({1}), True)
    # under OR or NOT an equality does not bound the matches: nothing starts from it
    nested = f"tags.k = 'short' OR params.k = {_quoted(LONG[:-1])}"
    assert db.read(lambda s: _choice(s, nested)) == (frozenset(), False)
    # model m has 9 versions: with a limit above that, its rows are tested whatever the value
    one_model = f"name = 'm' AND params.k = {_quoted(LONG[:-1])}"
    assert db.read(lambda s: _choice(s, one_model)) == (frozenset({1}), True)
    monkeypatch.setattr(search_drive, "DRIVE_LIMIT", 9)
    assert db.read(lambda s: _choice(s, one_model)) == (frozenset(), False)
    assert db.read(lambda s: _choice(s, f"params.k = {_quoted(LONG[:-1])}")) == (
        frozenset({0}),
        True,
    )
    # the count compares the indexed prefix only: three values share LONG's
    monkeypatch.setattr(search_drive, "DRIVE_LIMIT", 3)
    assert db.read(lambda s: _choice(s, f"params.k = {_quoted(LONG + 'x')}")) == (
        frozenset(),
        False,
    )


def test_a_one_model_search_guesses_the_model_is_small(
    db: Database, valued: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``name = …`` with a tag: the model is taken to be small (tested row by row) and the
    statement checks it; only a search that came back empty asks the model's size, and
    runs again only if the model was too large for the guess."""
    asked: list[str] = []
    size = search_drive._model_size

    def spied(session: Connection, name: str, include_deleted: bool) -> int:
        asked.append(name)
        return size(session, name, include_deleted)

    monkeypatch.setattr(search_drive, "_model_size", spied)
    monkeypatch.setattr(search_drive, "DRIVE_MEMORY_S", 0.0)
    runs: list[search_drive.Start] = []
    statement = search._statement

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(search_drive.Start(kwargs["indexed"], kwargs["drive"], kwargs["guard"]))
        return statement(*args, **kwargs)

    monkeypatch.setattr(search, "_statement", counted)
    short = [i for i, v in valued.items() if v == "short"]
    assert all_ids(db, "versions", "name = 'm' AND tags.k = 'short'") == short
    assert (asked, [r.guard for r in runs]) == ([], [True])  # model m: nine versions
    asked.clear()
    runs.clear()
    assert all_ids(db, "versions", "name = 'm' AND tags.k = 'none'") == []
    assert (asked, [r.guard for r in runs]) == (["m"], [True])  # small: no second run
    asked.clear()
    runs.clear()
    monkeypatch.setattr(search_drive, "DRIVE_LIMIT", 3)  # now m is too large for the guess
    assert all_ids(db, "versions", "name = 'm' AND tags.k = 'short'") == short
    assert asked == ["m"]
    guessed, counted = (frozenset(), False), (frozenset({1}), True)
    assert runs == [search_drive.Start(*guessed, guard=True), search_drive.Start(*counted)]


@pytest.mark.parametrize("memory_s", [search_drive.DRIVE_MEMORY_S, 0.0])
def test_a_connection_remembers_its_choice_for_a_while(
    db: Database, valued: dict[int, str], monkeypatch: pytest.MonkeyPatch, memory_s: float
) -> None:
    """The count only picks a plan: within ``DRIVE_MEMORY_S`` a repeated search reuses
    it, however the rows changed meanwhile (and its answer is still right)."""
    monkeypatch.setattr(search_drive, "DRIVE_LIMIT", 3)
    monkeypatch.setattr(search_drive, "DRIVE_MEMORY_S", memory_s)
    rm = registered_models.c
    other = db.read(lambda s: s.execute(select(rm.id).where(rm.name == "other")).scalar_one())
    with db.engine.connect() as conn:
        assert _choice(conn, "tags.k = 'short'") == (frozenset({0}), True)  # on two rows
        conn.rollback()
        for n in (2, 3):
            add_version(db, other, n, tags={"k": "short"})
        remembered = _choice(conn, "tags.k = 'short'")
        assert remembered == ((frozenset({0}), True) if memory_s else (frozenset(), False))
    assert len(all_ids(db, "versions", "tags.k = 'short'")) == 4


def _plan(conn: Connection, text: str, **scope: Any) -> str:
    """The engine's plan for the version search ``text`` would run (SQLite's ``EXPLAIN
    QUERY PLAN``; PostgreSQL's ``EXPLAIN`` with sequential scans priced out, so that the
    plan shows which index the statement can use on these few rows)."""
    expr = parse_filter(text, "versions")
    shape, values = parameterize(expr)
    indexed, drive, *_ = search_drive.choose(conn, "versions", shape, values, False)
    statement = search._statement(
        "versions",
        shape,
        False,
        DEFAULT_VERSION_ORDER,
        one_model=False,
        include_deleted=scope.get("include_deleted", False),
        readable=None,
        after=False,
        indexed=indexed,
        drive=drive,
    )
    params = {**slot_params(values), "limit": 10}
    compiled = statement.stmt.compile(
        dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
    )
    sql = str(compiled)
    bound = {**compiled.params, **params}
    if conn.dialect.name == "sqlite":
        args = tuple(bound[name] for name in compiled.positiontup or ())
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args).all()
        return "\n".join(str(r[3]) for r in rows)
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql, bound).all())


@pytest.mark.parametrize("field", ["tags", "params"])
def test_a_rare_value_is_found_through_its_value_index(
    db: Database, valued: dict[int, str], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_drive, "DRIVE_LIMIT", 3)  # below model m's nine versions
    table = "version_tags" if field == "tags" else "version_params"
    for text in (f"{field}.k = {_quoted(LONG[:-1])}", f"name = 'm' AND {field}.k = 'short'"):
        plan = db.read(lambda s, text=text: _plan(s, text))
        assert f"ix_{table}_value_key" in plan, plan
        if db.engine.dialect.name == "sqlite":  # the value and its prefix, not the key alone
            assert f"ix_{table}_value_key (<expr>=? AND key=?)" in plan, plan
            assert "model_versions_1" not in plan, plan  # not the model's index instead


def test_name_keeps_to_the_models_of_that_name(db: Database) -> None:
    """``name = …`` is also said by model id; a deleted model may share a live one's name."""
    gone = add_model(db, "twin", deleted=True)
    old = add_version(db, gone, 1)
    live = add_model(db, "Twin")
    new = [add_version(db, live, n) for n in (1, 2)]
    add_version(db, add_model(db, "other"), 1)
    assert all_ids(db, "versions", "name = 'twin'") == new[::-1]
    assert all_ids(db, "versions", "name = 'TWIN'", include_deleted=True) == [new[1], new[0], old]
    assert all_ids(db, "versions", "name = 'nobody'") == []

"""The filter grammar: parsing, type checks, error positions, limits, round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.domain.filters import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_IN_ITEMS,
    TARGET_FIELDS,
    And,
    Comparison,
    Expr,
    Field,
    Not,
    Or,
    OrderKey,
    Target,
    format_filter,
    format_time,
    parse_filter,
    parse_order_by,
)
from cairn.errors import InvalidFilter, InvalidParameter

TARGETS: list[Target] = ["models", "versions"]
NAME = Field("name")
VERSION = Field("version")


def cmp(field: Field, op: str, value: object) -> Comparison:
    return Comparison(field, op, value)  # type: ignore[arg-type]


def parse(text: str, target: Target = "versions") -> Expr | None:
    return parse_filter(text, target)


def error(text: str, target: Target = "versions") -> InvalidFilter:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text, target)
    return info.value


def micros(dt: datetime) -> int:
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# -- fields and operators -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_filter_is_none(text: str) -> None:
    assert parse(text) is None
    assert parse_filter(None, "models") is None


@pytest.mark.parametrize("op", ["=", "!=", "LIKE", "ILIKE"])
@pytest.mark.parametrize("field", ["name", "alias", "run_id", "source", "semver"])
def test_string_fields_take_string_operators(field: str, op: str) -> None:
    assert parse(f"{field} {op} 'x%'") == cmp(Field(field), op, "x%")  # type: ignore[arg-type]


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_numeric_operators(op: str) -> None:
    assert parse(f"metrics.auc {op} 0.5") == cmp(Field("metrics", "auc"), op, 0.5)
    assert parse(f"version {op} 3") == cmp(VERSION, op, 3)


def test_in_and_not_in() -> None:
    assert parse("name IN ('a', \"b\")") == cmp(NAME, "IN", ("a", "b"))
    assert parse("version NOT IN (1,2 , 3)") == cmp(VERSION, "NOT IN", (1, 2, 3))
    assert parse("metrics.x in (1, 2.5e3, -4)") == cmp(Field("metrics", "x"), "IN", (1, 2500.0, -4))


def test_not_like_is_sugar_for_not() -> None:
    assert parse("name NOT LIKE 'a%'") == Not(cmp(NAME, "LIKE", "a%"))
    assert parse("tags.t not ilike 'A%'") == Not(cmp(Field("tags", "t"), "ILIKE", "A%"))


def test_keywords_and_field_names_are_case_insensitive() -> None:
    expected = And((cmp(NAME, "LIKE", "a"), Not(cmp(VERSION, "IN", (1,)))))
    assert parse("NAME like 'a' aNd NoT Version In (1)") == expected


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("tags.team = 'x'", Field("tags", "team")),
        ("tag.team = 'x'", Field("tags", "team")),
        ("params.lr = 'x'", Field("params", "lr")),
        ("param.lr = 'x'", Field("params", "lr")),
        ("tags.a.b = 'x'", Field("tags", "a.b")),
        ("tags.my-key/x_1 = 'x'", Field("tags", "my-key/x_1")),
        ("tags.`mlflow.prompt.is_prompt` = 'x'", Field("tags", "mlflow.prompt.is_prompt")),
        ("tags.`with space` = 'x'", Field("tags", "with space")),
        ("tags.`back``tick` = 'x'", Field("tags", "back`tick")),
        ("tags.\"double quoted\" = 'x'", Field("tags", "double quoted")),
        ("tags.Team = 'x'", Field("tags", "Team")),
        ("TAGS.team = 'x'", Field("tags", "team")),
    ],
)
def test_keyed_fields(text: str, field: Field) -> None:
    assert parse(text) == cmp(field, "=", "x")


def test_metric_prefixes() -> None:
    assert parse("metric.auc>=1") == cmp(Field("metrics", "auc"), ">=", 1)
    assert parse("metrics.auc>=1") == cmp(Field("metrics", "auc"), ">=", 1)


@pytest.mark.parametrize(
    ("literal", "value"),
    [("'it''s'", "it's"), ('"say ""hi"""', 'say "hi"'), ("''", ""), ("'a\"b'", 'a"b')],
)
def test_strings_escape_by_doubling(literal: str, value: str) -> None:
    assert parse(f"tags.t = {literal}") == cmp(Field("tags", "t"), "=", value)


@pytest.mark.parametrize(
    ("literal", "value"),
    [("7", 7), ("-7", -7), ("0.25", 0.25), ("-.5", -0.5), ("1e3", 1000.0), ("2.5E-2", 0.025),
     ("3.", 3.0), (str(2**63 - 1), 2**63 - 1), (str(-(2**63)), -(2**63))],
)  # fmt: skip
def test_numbers(literal: str, value: float) -> None:
    result = parse(f"metrics.m = {literal}")
    assert isinstance(result, Comparison)
    assert result.value == value
    assert type(result.value) is type(value)


def test_stage_and_status_are_canonicalised() -> None:
    assert parse("stage = 'production'") == cmp(Field("stage"), "=", "Production")
    assert parse("stage IN ('none', 'STAGING')") == cmp(Field("stage"), "IN", ("None", "Staging"))
    assert parse("status != 'ready'") == cmp(Field("status"), "!=", "READY")


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("'2026-01-01T00:00:00Z'", datetime(2026, 1, 1, tzinfo=UTC)),
        ("'2026-01-01t12:30:00z'", datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
        ("'2026-01-01T02:00:00+02:00'", datetime(2026, 1, 1, tzinfo=UTC)),
        ("'2025-12-31T20:00:00-04:00'", datetime(2026, 1, 1, tzinfo=UTC)),
        ("'2026-01-01T00:00:00.5Z'", datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("'2026-01-01T00:00:00.123456789Z'", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("'2026-01-01'", datetime(2026, 1, 1, tzinfo=UTC)),
        ("1767225600000", datetime(2026, 1, 1, tzinfo=UTC)),
        ("-1000", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_times_become_microseconds(literal: str, expected: datetime) -> None:
    assert parse(f"created_at >= {literal}") == cmp(Field("created_at"), ">=", micros(expected))
    assert parse(f"updated_at IN ({literal})", "models") == cmp(
        Field("updated_at"), "IN", (micros(expected),)
    )


def test_model_fields() -> None:
    text = "name = 'a' AND tags.t = 'b' AND alias = 'c' AND created_at > 0 AND updated_at < 1"
    expr = parse(text, "models")
    assert isinstance(expr, And)
    assert {c.field.name for c in expr.operands if isinstance(c, Comparison)} == set(
        TARGET_FIELDS["models"]
    )


# -- precedence -------------------------------------------------------------------------


def test_precedence_not_and_or() -> None:
    a, b, c = (cmp(Field("tags", k), "=", "1") for k in "abc")
    assert parse("tags.a = '1' OR tags.b = '1' AND tags.c = '1'") == Or((a, And((b, c))))
    assert parse("tags.a = '1' AND tags.b = '1' OR tags.c = '1'") == Or((And((a, b)), c))
    assert parse("NOT tags.a = '1' AND tags.b = '1'") == And((Not(a), b))
    assert parse("NOT (tags.a = '1' AND tags.b = '1')") == Not(And((a, b)))
    assert parse("(tags.a = '1' OR tags.b = '1') AND tags.c = '1'") == And((Or((a, b)), c))
    assert parse("tags.a = '1' AND (tags.b = '1' AND tags.c = '1')") == And((a, And((b, c))))
    assert parse("NOT NOT tags.a = '1'") == Not(Not(a))
    assert parse("((tags.a = '1'))") == a


# -- errors and their positions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("tags.team foo 'x'", 10, "expected a comparison operator after 'tags.team', found 'foo'"),
        ("tags.team", 9, "found the end of the filter"),
        ("nme = 'x'", 0, "'nme' is not a field"),
        ("name = ", 7, "expected a value after 'name' ="),
        ("name = 'x", 7, "unterminated string"),
        ("name = 'x' AND", 14, "expected a field name, NOT or '('"),
        ("name = 'x' name = 'y'", 11, "expected AND, OR or the end"),
        ("(name = 'x'", 11, "expected ')' to close the '(' at position 0"),
        ("name = 'x')", 10, "expected AND, OR"),
        ("name = 'x' # 1", 11, "unexpected character '#'"),
        ("name == 'x'", 6, "expected a value"),
        ("metrics.auc = 'high'", 14, "'metrics.auc' compares numbers"),
        ("metrics.auc LIKE 'x'", 12, "cannot be compared with LIKE"),
        ("version = 1.5", 10, "compares whole numbers"),
        ("version IN (1, 'two')", 15, "compares numbers"),
        ("name > 'a'", 5, "'name' cannot be compared with >; use =, !=, LIKE, ILIKE, IN, NOT IN"),
        ("name = 5", 7, "compares strings; quote the value"),
        ("params.lr = 0.01", 12, "quote the value"),
        ("stage = 'prod'", 8, "stage 'prod' is not one of"),
        ("stage LIKE 'P%'", 6, "cannot be compared with LIKE"),
        ("status = 'DONE'", 9, "is not PENDING, READY or FAILED"),
        ("created_at > 'yesterday'", 13, "RFC 3339"),
        ("created_at > '2026-01-01T00:00:00'", 13, "RFC 3339"),
        ("created_at > '2026-02-30T00:00:00Z'", 13, "is not valid"),
        ("created_at > 1.5", 13, "takes a time"),
        ("created_at > 999999999999999999", 13, "out of range"),
        ("name IN 'a'", 8, "expected '(' after IN"),
        ("name IN ()", 9, "expected a value"),
        ("name IN ('a' 'b')", 13, "expected ',' or ')' in the IN list"),
        ("name NOT = 'a'", 9, "expected IN, LIKE or ILIKE after NOT"),
        ("tags. = 'a'", 5, "expected a key after 'tags.'"),
        ("tags.`` = 'a'", 5, "1 to 250 characters"),
        ("tags.`a = 'x'", 5, "unterminated key"),
        ("foo.bar = 'x'", 0, "'foo.bar' is not a field"),
        ("metrics.m = 12abc", 12, "malformed number"),
        ("metrics.m = 1e999", 12, "out of range"),
        ("metrics.m = 99999999999999999999", 12, "out of range"),
        ("name LIKE 'a\\'", 10, "ends with a lone '\\'"),
        ("name = 'a\x00'", 7, "control"),
        ("name = '\ud800'", 7, "surrogate"),
        ("AND name = 'x'", 0, "expected a field name"),
    ],
)
def test_error_positions(text: str, position: int, fragment: str) -> None:
    exc = error(text)
    assert exc.position == position, exc.message
    assert fragment in exc.message
    assert exc.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "text", ["version = 1", "params.a = 'x'", "metrics.a > 1", "stage = 'None'", "run_id = 'r'"]
)
def test_version_fields_are_refused_for_models(text: str) -> None:
    exc = error(text, "models")
    assert exc.position == 0
    assert "does not apply to models" in exc.message
    assert "alias, created_at, name, tags.<key>, updated_at" in exc.message


def test_like_escape_is_accepted_when_even() -> None:
    assert parse("name LIKE 'a\\\\'") == cmp(NAME, "LIKE", "a\\\\")
    assert parse("name LIKE 'a\\_b'") == cmp(NAME, "LIKE", "a\\_b")


# -- limits -----------------------------------------------------------------------------


def test_length_limit() -> None:
    text = "name = '" + "x" * (MAX_FILTER_LENGTH - 9) + "'"
    assert len(text) == MAX_FILTER_LENGTH
    assert parse(text) is not None
    assert error(text + " ").position == MAX_FILTER_LENGTH


def test_comparison_limit() -> None:
    ok = " AND ".join(["version = 1"] * MAX_COMPARISONS)
    assert parse(ok) is not None
    exc = error(ok + " OR version = 2")
    assert exc.position == len(ok) + 4
    assert "more than" in exc.message or "over" in exc.message


def test_depth_limit_parentheses() -> None:
    ok = "(" * MAX_DEPTH + "version = 1" + ")" * MAX_DEPTH
    assert parse(ok) == cmp(VERSION, "=", 1)
    deep = "(" * (MAX_DEPTH + 1) + "version = 1" + ")" * (MAX_DEPTH + 1)
    assert error(deep).position == MAX_DEPTH


def test_depth_limit_not() -> None:
    assert parse("NOT " * MAX_DEPTH + "version = 1") is not None
    assert error("NOT " * (MAX_DEPTH + 1) + "version = 1").position == 4 * MAX_DEPTH
    # A long chain fails cleanly, not with a RecursionError.
    assert error("NOT " * 1000 + "version = 1").position == 4 * MAX_DEPTH


def test_in_list_limit() -> None:
    items = ", ".join(["1"] * MAX_IN_ITEMS)
    assert parse(f"version IN ({items})") is not None
    text = f"version IN ({items}, 2)"
    assert error(text).position == text.index(", 2)") + 2


# -- formatting ---------------------------------------------------------------------------


def test_format_is_canonical() -> None:
    expr = parse(
        "name like 'a%' and (tags.`a b` = 'it''s' or not metrics.x in (1, 2.5)) "
        "and created_at >= 1767225600000 and stage = 'staging'"
    )
    assert expr is not None
    assert format_filter(expr) == (
        "name LIKE 'a%' AND (tags.`a b` = 'it''s' OR NOT metrics.x IN (1, 2.5)) "
        "AND created_at >= '2026-01-01T00:00:00Z' AND stage = 'Staging'"
    )


def test_format_time() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time(1) == "1970-01-01T00:00:00.000001Z"
    assert format_time(micros(datetime(1, 1, 1, tzinfo=UTC))) == "0001-01-01T00:00:00Z"


# -- order_by -----------------------------------------------------------------------------

ALLOWED = {"name", "version", "created_at"}


def test_parse_order_by() -> None:
    assert parse_order_by([], ALLOWED) == ()
    assert parse_order_by(["name", "version DESC", " created_at   asc "], ALLOWED) == (
        OrderKey("name"),
        OrderKey("version", descending=True),
        OrderKey("created_at"),
    )


@pytest.mark.parametrize(
    "items",
    [["updated_at"], ["name UP"], ["name ASC DESC"], [""], ["name", "NAME DESC"], "name", [3]],
)
def test_parse_order_by_refuses(items: list[str]) -> None:
    with pytest.raises(InvalidParameter):
        parse_order_by(items, ALLOWED)


# -- properties ---------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
_KEYS = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
_INT64 = st.integers(-(2**63), 2**63 - 1)
_NUMBERS = _INT64 | st.floats(allow_nan=False, allow_infinity=False)
_TIMES = st.integers(
    micros(datetime(1, 1, 1, tzinfo=UTC)), micros(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
)
_STRING_OPS = ["=", "!=", "LIKE", "ILIKE"]
_NUMBER_OPS = ["=", "!=", "<", "<=", ">", ">="]


def _like_safe(value: str) -> bool:
    return (len(value) - len(value.rstrip("\\"))) % 2 == 0


def _comparisons(field: Field, kind: str) -> st.SearchStrategy[Comparison]:
    values: st.SearchStrategy[object]
    ops = _NUMBER_OPS
    if kind == "string":
        values, ops = _TEXT.filter(_like_safe), _STRING_OPS
    elif kind == "stage":
        values, ops = st.sampled_from(["None", "Staging", "Production", "Archived"]), ["=", "!="]
    elif kind == "status":
        values, ops = st.sampled_from(["PENDING", "READY", "FAILED"]), ["=", "!="]
    else:
        values = {"number": _NUMBERS, "integer": _INT64, "time": _TIMES}[kind]
    single = st.builds(cmp, st.just(field), st.sampled_from(ops), values)
    listed = st.builds(
        cmp,
        st.just(field),
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(values, min_size=1, max_size=4).map(tuple),
    )
    return single | listed


_KIND = {"name": "string", "alias": "string", "run_id": "string", "source": "string",
         "semver": "string", "version": "integer", "created_at": "time", "updated_at": "time",
         "stage": "stage", "status": "status"}  # fmt: skip
_KEYED_KIND = {"tags": "string", "params": "string", "metrics": "number"}


def _leaves(target: Target) -> st.SearchStrategy[Comparison]:
    options = [
        _comparisons(Field(name), kind)  # type: ignore[arg-type]
        for name, kind in _KIND.items()
        if name in TARGET_FIELDS[target]
    ]
    options += [
        _KEYS.flatmap(lambda k, n=name, kd=kind: _comparisons(Field(n, k), kd))  # type: ignore[misc]
        for name, kind in _KEYED_KIND.items()
        if name in TARGET_FIELDS[target]
    ]
    return st.one_of(options)


def _depth(expr: Expr) -> int:
    if isinstance(expr, Comparison):
        return 0
    if isinstance(expr, Not):
        return 1 + _depth(expr.operand)
    return 1 + max(_depth(e) for e in expr.operands)


def _exprs(target: Target) -> st.SearchStrategy[Expr]:
    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        group = st.lists(children, min_size=2, max_size=4).map(tuple)
        return group.map(And) | group.map(Or) | children.map(Not)

    return st.recursive(_leaves(target), extend, max_leaves=12).filter(
        lambda e: _depth(e) < MAX_DEPTH
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TARGETS).flatmap(lambda t: st.tuples(st.just(t), _exprs(t))))
def test_format_then_parse_is_identity(case: tuple[Target, Expr]) -> None:
    target, expr = case
    text = format_filter(expr)
    assert parse_filter(text, target) == expr
    assert format_filter(parse_filter(text, target)) == text  # type: ignore[arg-type]


_SOUP = st.lists(
    st.sampled_from(
        ["name", "version", "tags.a", "tags.`b`", "metrics.m", "stage", "status", "created_at",
         "alias", "AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "=", "!=", "<", ">=", "(", ")", ",",
         "'x'", "'Production'", "'READY'", "'2026-01-01T00:00:00Z'", "1", "-2.5", "1e3", "'",
         '"', "`", "\\", "tags.", "\x00", "é"]
    ),
    max_size=30,
).map(" ".join)  # fmt: skip


@settings(max_examples=500)
@given(st.text(max_size=200) | _SOUP, st.sampled_from(TARGETS))
def test_any_text_parses_or_raises_invalid_filter(text: str, target: Target) -> None:
    try:
        expr = parse_filter(text, target)
    except InvalidFilter as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        return
    if expr is not None:
        assert parse_filter(format_filter(expr), target) == expr

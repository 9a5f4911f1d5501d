"""The search filter grammar: text → AST of frozen dataclasses, and back.

::

    filter     := or_expr
    or_expr    := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | '(' or_expr ')' | comparison
    comparison := field op value | field [NOT] IN '(' value ( ',' value )* ')'
                | field NOT (LIKE | ILIKE) value               (sugar for NOT field LIKE …)
    op         := '=' | '!=' | '<' | '<=' | '>' | '>=' | LIKE | ILIKE
    field      := name | version | alias | stage | status | run_id | source | semver
                | created_at | updated_at | (tags|tag|params|param|metrics|metric) '.' key
    key        := bare key ([letters, digits, '_', '-', '.', '/']+) | `quoted` | "quoted"

Keywords and field names are case-insensitive; keys are not. Strings are quoted with
``'`` or ``"`` (a doubled quote stands for itself). ``created_at``/``updated_at`` take an
RFC 3339 string (``'2026-01-01T00:00:00Z'``, or a bare date meaning midnight UTC) or
integer epoch milliseconds; the AST holds microseconds since the epoch. LIKE patterns use
``%`` and ``_`` with ``\\`` as the escape character.

The AST is canonical: stages and statuses are normalised, times are integers, so
``parse_filter(format_filter(ast), target) == ast``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from typing import Literal, TypeAlias, cast, get_args

from cairn.domain.filter_lexer import (
    BARE_KEY,
    Scalar,
    Token,
    format_time,
    micros,
    printable,
    tokenize,
)
from cairn.domain.models import Stage, VersionStatus
from cairn.errors import InvalidFilter, InvalidParameter

MAX_FILTER_LENGTH = 4096
MAX_COMPARISONS = 50
MAX_DEPTH = 20
MAX_IN_ITEMS = 1000

Target = Literal["models", "versions"]
Op = Literal["=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN"]
FieldName = Literal[
    "name", "version", "tags", "params", "metrics", "alias", "stage", "status",
    "created_at", "updated_at", "run_id", "source", "semver",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Field:
    """A field; ``key`` is set exactly for ``tags``, ``params`` and ``metrics``."""

    name: FieldName
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``; ``value`` is a tuple for ``IN`` and ``NOT IN``."""

    field: Field
    op: Op
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


Expr: TypeAlias = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderKey:
    field: str
    descending: bool = False


# Field types: which operators apply and what a value must be.
_KINDS: dict[str, str] = {
    "name": "string", "tags": "string", "params": "string", "alias": "string",
    "run_id": "string", "source": "string", "semver": "string", "metrics": "number",
    "version": "integer", "created_at": "time", "updated_at": "time", "stage": "stage",
    "status": "status",
}  # fmt: skip
_ALL_OPS = ("=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN")
_EQUALITY = ("=", "!=", "IN", "NOT IN")
_ORDERED = (*_EQUALITY, "<", "<=", ">", ">=")
_OPS: dict[str, tuple[str, ...]] = {
    "string": (*_EQUALITY, "LIKE", "ILIKE"), "number": _ORDERED, "integer": _ORDERED,
    "time": _ORDERED, "stage": _EQUALITY, "status": _EQUALITY,
}  # fmt: skip
TARGET_FIELDS: dict[str, frozenset[str]] = {
    "models": frozenset({"name", "tags", "alias", "created_at", "updated_at"}),
    "versions": frozenset(_KINDS),
}
_PREFIXES: dict[str, FieldName] = {
    "tags": "tags", "tag": "tags", "params": "params", "param": "params",
    "metrics": "metrics", "metric": "metrics",
}  # fmt: skip
_PLAIN = frozenset(get_args(FieldName)) - frozenset(_PREFIXES)
_TEXT_WHITESPACE = str.maketrans("", "", "\t\n\r")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "LIKE", "ILIKE", "IN"})


def _expected(what: str, tok: Token) -> InvalidFilter:
    found = "the end of the filter" if tok.kind == "end" else repr(tok.text[:40])
    return InvalidFilter(f"expected {what}, found {found}", tok.pos)


class _Parser:
    def __init__(self, text: str, target: Target) -> None:
        self.tokens = tokenize(text)
        self.i = self.comparisons = self.depth = 0
        self.target = target

    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += tok.kind != "end"
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.upper() in words

    def nested(self, tok: Token, parse: Callable[[], Expr]) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter(f"filter nests deeper than {MAX_DEPTH} levels", tok.pos)
        expr = parse()
        self.depth -= 1
        return expr

    def parse(self) -> Expr:
        expr = self.or_expr()
        if self.peek().kind != "end":
            raise _expected("AND, OR or the end of the filter", self.peek())
        return expr

    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.keyword("OR"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Expr:
        operands = [self.not_expr()]
        while self.keyword("AND"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Expr:
        tok = self.peek()
        if self.keyword("NOT"):
            self.advance()
            return Not(self.nested(tok, self.not_expr))
        if tok.kind == "(":
            self.advance()
            expr = self.nested(tok, self.or_expr)
            if self.peek().kind != ")":
                raise _expected(f"')' to close the '(' at position {tok.pos}", self.peek())
            self.advance()
            return expr
        if tok.kind in ("word", "field") and tok.text.upper() not in _KEYWORDS:
            return self.comparison()
        raise _expected("a field name, NOT or '('", tok)

    def field(self, tok: Token) -> Field:
        head = str(tok.value if tok.kind == "field" else tok.text).lower()
        plain = cast(FieldName, head) if head in _PLAIN else None
        name = _PREFIXES.get(head) if tok.kind == "field" else plain
        allowed = TARGET_FIELDS[self.target]
        if name is None or name not in allowed:
            known = ", ".join(f + ".<key>" if f in _PREFIXES else f for f in sorted(allowed))
            why = "is not a field" if name is None else f"does not apply to {self.target}"
            raise InvalidFilter(f"{tok.text!r} {why}; use {known}", tok.pos)
        return Field(name, tok.key)

    def comparison(self) -> Expr:
        field_tok = self.advance()
        label = field_tok.text
        field = self.field(field_tok)
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise InvalidFilter(f"filter has over {MAX_COMPARISONS} comparisons", field_tok.pos)
        op_tok = self.advance()
        word = op_tok.text.upper() if op_tok.kind == "word" else ""
        if op_tok.kind == "op" or word in ("LIKE", "ILIKE", "IN"):
            op = word or op_tok.text
        elif word == "NOT" and self.keyword("IN", "LIKE", "ILIKE"):
            op = "NOT " + self.advance().text.upper()
        elif word == "NOT":
            raise _expected("IN, LIKE or ILIKE after NOT", self.peek())
        else:
            raise _expected(f"a comparison operator after {label!r}", op_tok)
        kind = _KINDS[field.name]
        positive = op.removeprefix("NOT ") if op != "NOT IN" else op
        if positive not in _OPS[kind]:
            allowed = ", ".join(o for o in _ALL_OPS if o in _OPS[kind])
            raise InvalidFilter(
                f"{label!r} cannot be compared with {op}; use {allowed}", op_tok.pos
            )
        value: Scalar | tuple[Scalar, ...]
        if positive in ("IN", "NOT IN"):
            value = self.in_list(label, kind)
        else:
            value = self.value(label, kind, positive)
        result = Comparison(field, cast(Op, positive), value)
        return Not(result) if positive != op else result

    def in_list(self, label: str, kind: str) -> tuple[Scalar, ...]:
        if self.peek().kind != "(":
            raise _expected("'(' after IN", self.peek())
        self.advance()
        items: list[Scalar] = []
        while True:
            if len(items) == MAX_IN_ITEMS:
                raise InvalidFilter(
                    f"an IN list holds at most {MAX_IN_ITEMS} values", self.peek().pos
                )
            items.append(self.value(label, kind, "IN"))
            sep = self.advance()
            if sep.kind == ")":
                return tuple(items)
            if sep.kind != ",":
                raise _expected("',' or ')' in the IN list", sep)

    def value(self, label: str, kind: str, op: str) -> Scalar:
        tok = self.advance()
        if tok.kind not in ("string", "number"):
            raise _expected(f"a value after {label!r} {op}", tok)
        value, pos = tok.value, tok.pos
        if kind == "time":
            if isinstance(value, float):
                raise InvalidFilter(f"{label!r} takes a time; found {tok.text}", pos)
            return micros(value, pos)
        if kind in ("number", "integer"):
            if isinstance(value, str):
                raise InvalidFilter(f"{label!r} compares numbers; found {tok.text}", pos)
            if kind == "integer" and isinstance(value, float):
                raise InvalidFilter(f"{label!r} compares whole numbers; found {tok.text}", pos)
            return value
        if not isinstance(value, str):
            raise InvalidFilter(f"{label!r} compares strings; quote the value: '{tok.text}'", pos)
        if not printable(value.translate(_TEXT_WHITESPACE)):
            raise InvalidFilter("a string holds a control or unpaired surrogate character", pos)
        if kind == "stage":
            try:
                return Stage.parse(value).value
            except InvalidParameter as exc:
                raise InvalidFilter(exc.message, pos) from None
        if kind == "status":
            if value.upper() not in VersionStatus.__members__:
                raise InvalidFilter(f"status {value!r} is not PENDING, READY or FAILED", pos)
            return value.upper()
        if op in ("LIKE", "ILIKE") and (len(value) - len(value.rstrip("\\"))) % 2:
            raise InvalidFilter("a LIKE pattern ends with a lone '\\' (the escape character)", pos)
        return value


def parse_filter(text: str | None, target: Target) -> Expr | None:
    """Parse a filter for ``target``; ``None`` for an empty one. Raises ``InvalidFilter``."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidFilter("filter must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(
            f"filter is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}",
            MAX_FILTER_LENGTH,
        )
    if not text.strip():
        return None
    return _parse(text, target)


@functools.lru_cache(maxsize=1024)
def _parse(text: str, target: Target) -> Expr:
    """Parsed filters are immutable values: a repeated filter is parsed once."""
    return _Parser(text, target).parse()


def names_one_model(expr: Expr | None) -> bool:
    """True when ``expr`` keeps to one model: ``name = '...'`` at its top level."""
    if expr is None:
        return False
    operands = expr.operands if isinstance(expr, And) else (expr,)
    return any(
        isinstance(e, Comparison) and e.field.name == "name" and e.op == "=" for e in operands
    )


def _format_string(value: str, quote: str = "'") -> str:
    return quote + value.replace(quote, quote * 2) + quote


def _format_scalar(field: Field, value: Scalar) -> str:
    if _KINDS[field.name] == "time" and isinstance(value, int):
        return _format_string(format_time(value))
    if isinstance(value, str):
        return _format_string(value)
    return repr(value)


def format_field(field: Field) -> str:
    if field.key is None:
        return field.name
    if BARE_KEY.fullmatch(field.key):
        return f"{field.name}.{field.key}"
    return f"{field.name}.{_format_string(field.key, '`')}"


def format_filter(expr: Expr) -> str:
    """Print an AST as canonical filter text."""
    if isinstance(expr, Comparison):
        if isinstance(expr.value, tuple):
            value = "(" + ", ".join(_format_scalar(expr.field, v) for v in expr.value) + ")"
        else:
            value = _format_scalar(expr.field, expr.value)
        return f"{format_field(expr.field)} {expr.op} {value}"
    if isinstance(expr, Not):
        inner = format_filter(expr.operand)
        return f"NOT ({inner})" if isinstance(expr.operand, And | Or) else f"NOT {inner}"
    word = " AND " if isinstance(expr, And) else " OR "
    return word.join(
        f"({format_filter(e)})" if isinstance(e, And | Or) else format_filter(e)
        for e in expr.operands
    )


def parse_order_by(items: Sequence[str], allowed: Set[str]) -> tuple[OrderKey, ...]:
    """``["name", "version DESC"]`` → order keys over fields in ``allowed``."""
    if isinstance(items, str):
        raise InvalidParameter("order_by must be a list of strings such as ['name ASC']")
    keys: list[OrderKey] = []
    for item in items:
        parts = item.split() if isinstance(item, str) and len(item) <= 300 else []
        field = parts[0].lower() if parts else ""
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if field not in allowed or len(parts) > 2 or direction not in ("ASC", "DESC"):
            fields = ", ".join(sorted(allowed))
            raise InvalidParameter(
                f"order_by {item!r} is not valid; use one of {fields}, "
                "optionally followed by ASC or DESC (e.g. 'name ASC')"
            )
        if any(k.field == field for k in keys):
            raise InvalidParameter(f"order_by names {field!r} twice")
        keys.append(OrderKey(field, direction == "DESC"))
    return tuple(keys)

"""MLflow's search dialect, translated into Cairn's filter grammar (``cairn.domain.filters``).

MLflow's registry filters are an AND-only list of comparisons::

    name = 'fraud' AND tags.`mlflow.prompt.is_prompt` != 'true' AND version_number >= 3

Attributes: ``name`` (both targets), and for versions ``run_id``, ``source_path`` and
``version_number``; optionally written ``attribute.<key>``. Tags are ``tag.<key>`` or
``tags.<key>``, the key bare or quoted with backticks or double quotes. This module parses
that dialect into Cairn's AST and prints it with ``format_filter``; Cairn's own parser and
compiler then decide what it means (the semantics live there, once). ``OR``, ``NOT`` and
parentheses are refused with MLflow's message. ``tags.k IS [NOT] NULL`` is accepted (MLflow
answers it with an HTML 500) and means an absent (present) tag.

``tags.k != 'v'`` matches, as in MLflow, only what has the tag ``k`` with another value
(MLflow joins the tags table): it becomes ``tags.k LIKE '%' AND tags.k != 'v'``, since in
Cairn's grammar ``!=`` alone also matches an absent tag. The one exception is MLflow's too:
``mlflow.prompt.is_prompt``, whose ``!=`` (the clause MLflow's client appends to every model
search) matches what lacks the tag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.domain.filter_lexer import Scalar
from cairn.domain.filters import (
    MAX_FILTER_LENGTH,
    And,
    Comparison,
    Expr,
    Field,
    FieldName,
    Not,
    Op,
    Target,
    format_filter,
)
from cairn.errors import InvalidParameter

_ATTRIBUTES: dict[Target, dict[str, FieldName]] = {
    "models": {"name": "name"},
    "versions": {
        "name": "name",
        "run_id": "run_id",
        "source_path": "source",
        "version_number": "version",
    },
}
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_TAG_OPS = ("=", "!=", "LIKE", "ILIKE")
_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN")
PROMPT_TAG = "mlflow.prompt.is_prompt"  # absent counts as not 'true' (MLflow's special case)
_ENTITIES = {"attribute": "attribute", "attributes": "attribute", "tag": "tag", "tags": "tag"}
_ORDER_FIELDS: dict[Target, dict[str, str]] = {
    "models": {
        "name": "name",
        "timestamp": "updated_at",  # what MLflow recommends, and its UI sends
        "creation_timestamp": "created_at",
        "last_updated_timestamp": "updated_at",
    },
    "versions": {
        "name": "name",
        "version_number": "version",
        "creation_timestamp": "created_at",
        "last_updated_timestamp": "updated_at",
    },
}

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]*`|"(?:[^"]|"")*"|'(?:[^']|'')*'|[\w.\-/:]+))?)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string, ident, number, op, punct, end
    text: str


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote) if quote in "'\"" else text[1:-1]


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            rest = text[position:].strip()
            raise InvalidParameter(f"Invalid clause(s) in filter string: {rest[:80]}")
        tokens.append(_Token(match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    tokens.append(_Token("end", ""))
    return tokens


class _Parser:
    def __init__(self, text: str, target: Target) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.target = target

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += token.kind != "end"
        return token

    def word(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.text.upper() in words

    def parse(self) -> Expr:
        clauses = self.clauses()
        while self.word("AND"):
            self.take()
            clauses += self.clauses()
        if self.peek().kind != "end":  # OR, NOT, '(' … : only AND-ed comparisons exist
            raise InvalidParameter(f"Invalid clause(s) in filter string: {self.peek().text}")
        return clauses[0] if len(clauses) == 1 else And(tuple(clauses))

    def field(self, token: _Token) -> tuple[Field, str]:
        """The Cairn field and its MLflow kind (string, number or tag)."""
        if token.kind != "ident" or token.text.upper() in ("AND", "OR", "NOT"):
            raise InvalidParameter(f"Invalid clause(s) in filter string: {token.text or 'end'}")
        head, dot, key = token.text.partition(".")
        entity = _ENTITIES.get(head.lower()) if dot else "attribute"
        if entity is None:
            raise InvalidParameter(
                f"Invalid entity type '{head}'. Valid entity types are ('attribute', 'tag', 'tags')"
            )
        if key[:1] in ("`", '"', "'"):
            key = _unquote(key)
        if not dot:
            key = head
        if entity == "tag":
            if not key:
                raise InvalidParameter(f"Invalid tag key in filter string: {token.text}")
            return Field("tags", key), "tag"
        attributes = _ATTRIBUTES[self.target]
        if key not in attributes:
            valid = "{" + ", ".join(repr(k) for k in sorted(attributes)) + "}"
            raise InvalidParameter(
                f"Invalid attribute key '{key}' specified. Valid keys are '{valid}'"
            )
        name = attributes[key]
        return Field(name), "number" if name == "version" else "string"

    def clauses(self) -> list[Expr]:
        """One MLflow comparison, as the Cairn clauses AND-ed in its place."""
        clause = self.comparison()
        if (
            isinstance(clause, Comparison)
            and clause.op == "!="
            and clause.field.name == "tags"
            and clause.field.key != PROMPT_TAG
        ):  # MLflow's tag != needs the tag to be there
            return [Comparison(clause.field, "LIKE", "%"), clause]
        return [clause]

    def comparison(self) -> Expr:
        label = self.peek().text
        field, kind = self.field(self.take())
        token = self.take()
        op = token.text.upper()
        if token.kind == "op":
            op = "!=" if op == "<>" else op
        elif op == "IS" and kind == "tag":
            negated = self.word("NOT")
            if negated:
                self.take()
            if not self.word("NULL"):
                raise InvalidParameter(f"Expected NULL after IS in '{label} IS …'")
            self.take()
            present = Comparison(field, "LIKE", "%")
            return present if negated else Not(present)
        elif op == "NOT" and self.word("IN"):
            self.take()
            op = "NOT IN"
        elif token.kind != "ident" or op not in ("LIKE", "ILIKE", "IN"):
            raise InvalidParameter(f"Invalid comparison for '{label}': {token.text or 'end'}")
        allowed = {"tag": _TAG_OPS, "number": _NUMBER_OPS, "string": _STRING_OPS}[kind]
        if op not in allowed:
            raise InvalidParameter(
                f"Invalid comparator '{op}' for '{label}'; use one of {', '.join(allowed)}"
            )
        if op in ("IN", "NOT IN"):
            return Comparison(field, _op(op), self.values(label, kind))
        return Comparison(field, _op(op), self.value(label, kind))

    def values(self, label: str, kind: str) -> tuple[Scalar, ...]:
        if self.take().text != "(":
            raise InvalidParameter(f"Expected a parenthesised list of values after '{label} IN'")
        items = [self.value(label, kind)]
        while (separator := self.take()).text == ",":
            items.append(self.value(label, kind))
        if separator.text != ")":
            raise InvalidParameter(f"Expected ',' or ')' in the list of values for '{label}'")
        return tuple(items)

    def value(self, label: str, kind: str) -> Scalar:
        token = self.take()
        if kind == "number":
            text = _unquote(token.text) if token.kind == "string" else token.text
            if token.kind in ("string", "number") and text.strip().lstrip("-").isdigit():
                return int(text)
            raise InvalidParameter(f"'{label}' compares whole numbers; got {token.text or 'end'}")
        if token.kind != "string":
            raise InvalidParameter(
                f"Expected a quoted string value for '{label}' (e.g. 'my-value'). "
                f"Got value {token.text or 'end'}"
            )
        return _unquote(token.text)


def _op(text: str) -> Op:
    for op in ("=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN"):
        if op == text:
            return op
    raise InvalidParameter(f"Invalid comparator '{text}'")  # pragma: no cover


def translate_filter(text: str | None, target: Target) -> str | None:
    """An MLflow filter → the same filter in Cairn's grammar (``None`` when empty)."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidParameter(
            f"filter is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}"
        )
    return format_filter(_Parser(text, target).parse())


def translate_order_by(items: Sequence[str], target: Target) -> list[str]:
    """MLflow ``order_by`` clauses → Cairn's, with MLflow's default and tie-breakers: ``name
    ASC`` appended, and for versions ``version DESC``, after a default of the most recently
    updated first. (MLflow sorts models by ``last_updated_timestamp`` when asked for
    ``creation_timestamp``; Cairn sorts by what was asked.)"""
    fields = _ORDER_FIELDS[target]
    order: list[str] = []
    if not items and target == "versions":
        order.append("updated_at DESC")
    for item in items:
        parts = item.split()
        field = parts[0].removeprefix("attribute.") if parts else ""
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if field not in fields or len(parts) > 2 or direction not in ("ASC", "DESC"):
            raise InvalidParameter(
                f"Invalid order_by clause '{item}'. Use one of {', '.join(fields)}, "
                "optionally followed by ASC or DESC."
            )
        order.append(f"{fields[field]} {direction}")
    used = {clause.split()[0] for clause in order}
    if "name" not in used:
        order.append("name ASC")
    if target == "versions" and "version" not in used:
        order.append("version DESC")
    return order

"""The search filter grammar's tokens (``filters.py`` parses them): words, fields with
their keys, quoted strings, numbers, operators, and the times they name.

A string is quoted with ``'`` or ``"`` (a doubled quote stands for itself); a key is bare
(letters, digits, ``_``, ``-``, ``.``, ``/``) or quoted with a backquote or ``"``; a time
is RFC 3339 text or integer epoch milliseconds, held as microseconds since the epoch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeAlias

from cairn.errors import InvalidFilter

MAX_KEY_LENGTH = 250
Scalar: TypeAlias = str | int | float

_WS = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BARE_KEY = re.compile(r"[\w.\-/]+")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NUMBER_TAIL = re.compile(r"[\w.]")
_OP = re.compile(r"!=|<=|>=|=|<|>")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2})))?",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _US
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _US
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, field, string, number, op, (, ), ",", end
    text: str  # the source text, for messages
    pos: int
    value: Scalar = ""  # a string's or number's value; a field's prefix
    key: str | None = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        if m := _WS.match(text, i):
            i = m.end()
        if i >= n:
            tokens.append(Token("end", "", n))
            return tokens
        ch = text[i]
        if ch in "(),":
            tokens.append(Token(ch, ch, i))
            i += 1
        elif m := _OP.match(text, i):
            tokens.append(Token("op", m.group(), i))
            i = m.end()
        elif ch in "'\"":
            value, end = _quoted(text, i, "string")
            tokens.append(Token("string", text[i:end], i, value))
            i = end
        elif m := _NUMBER.match(text, i):
            end = m.end()
            if end < n and _NUMBER_TAIL.match(text, end):
                raise InvalidFilter(f"malformed number {text[i : end + 1]!r}", i)
            tokens.append(Token("number", m.group(), i, _number(m.group(), i)))
            i = end
        elif m := _WORD.match(text, i):
            end = m.end()
            if end < n and text[end] == ".":
                key, end = _key(text, end + 1, m.group())
                tokens.append(Token("field", text[i:end], i, m.group(), key))
            else:
                tokens.append(Token("word", m.group(), i))
            i = end
        else:
            raise InvalidFilter(f"unexpected character {ch!r}", i)


def _quoted(text: str, start: int, what: str) -> tuple[str, int]:
    """Read a quoted run at ``start`` (a doubled quote is literal); return value, end."""
    quote, parts, i = text[start], [], start + 1
    while True:
        j = text.find(quote, i)
        if j < 0:
            raise InvalidFilter(f"unterminated {what}: no closing {quote}", start)
        parts.append(text[i:j])
        if text.startswith(quote * 2, j):
            parts.append(quote)
            i = j + 2
            continue
        return "".join(parts), j + 1


def _key(text: str, start: int, prefix: str) -> tuple[str, int]:
    if start < len(text) and text[start] in '`"':
        key, end = _quoted(text, start, "key")
    elif m := BARE_KEY.match(text, start):
        key, end = m.group(), m.end()
    else:
        raise InvalidFilter(f"expected a key after '{prefix}.'", start)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidFilter(f"a key must be 1 to {MAX_KEY_LENGTH} characters long", start)
    if not printable(key):
        raise InvalidFilter(f"key {key!r} contains a control character", start)
    return key, end


def printable(value: str) -> bool:
    return not any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or c == "\x7f" for c in value)


def _number(literal: str, pos: int) -> int | float:
    if literal.lstrip("-").isdigit():
        number: int | float = int(literal)
        if not -_INT64 <= number < _INT64:
            raise InvalidFilter(f"number {literal} is out of range", pos)
        return number
    number = float(literal)
    if not math.isfinite(number):
        raise InvalidFilter(f"number {literal} is out of range", pos)
    return number


def micros(value: Scalar, pos: int) -> int:
    """RFC 3339 text or integer epoch milliseconds → microseconds since the epoch."""
    if isinstance(value, int):
        micros = value * 1000
    else:
        m = _RFC3339.fullmatch(value) if isinstance(value, str) else None
        if m is None:
            raise InvalidFilter(
                f"expected an RFC 3339 time such as '2026-01-01T00:00:00Z' or integer epoch "
                f"milliseconds, found {value!r}",
                pos,
            )
        y, mo, d, h, mi, s, frac, _z, sign, oh, om = m.groups()
        try:
            offset = timedelta(hours=int(oh or 0), minutes=int(om or 0))
            tz = timezone(-offset if sign == "-" else offset)
            dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), 0, tz)
        except ValueError as exc:
            raise InvalidFilter(f"time {value!r} is not valid: {exc}", pos) from None
        micros = (dt - _EPOCH) // _US + int((frac or "").ljust(6, "0")[:6])
    if not _MIN_US <= micros <= _MAX_US:
        raise InvalidFilter(f"time {value!r} is out of range (years 1 to 9999)", pos)
    return micros


def format_time(micros: int) -> str:
    """Microseconds since the epoch → canonical RFC 3339 UTC text."""
    return (_EPOCH + micros * _US).replace(tzinfo=None).isoformat() + "Z"

"""Semantic versions (SemVer 2.0) and ranges over them, as npm writes them.

A version's ``semver`` label is checked by ``validate_semver`` and ordered by
``sort_key`` (precedence; build metadata ignored). ``parse_range`` reads a range:

- ``1.4.2`` (or ``=1.4.2``): exactly that; ``1.4`` / ``1.4.x`` / ``1.4.*``: any ``1.4.z``;
  ``1`` / ``1.x``: any ``1.y.z``; ``*`` (or nothing): any;
- ``^1.4.2``: compatible, ``>=1.4.2 <2.0.0`` (for ``0.y``: ``^0.4.2`` is ``<0.5.0``, and
  ``^0.0.3`` is ``<0.0.4``); ``~1.4.2``: ``>=1.4.2 <1.5.0`` (``~1``: ``<2.0.0``);
- ``>``, ``>=``, ``<``, ``<=`` before a full or partial version (``>1.4`` is ``>=1.5.0``,
  ``<=1.4`` is ``<1.5.0``);
- comparators separated by spaces must all hold; sets separated by ``||``: any one.

As in npm, a prerelease (``2.0.0-rc.1``) satisfies a range only when a comparator of the
same set names a prerelease of the same ``major.minor.patch`` (``>=2.0.0-rc.0``): ``^1.4``
never picks ``1.5.0-beta``, and ``*`` means the newest release.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from cairn.errors import InvalidParameter

T = TypeVar("T")
Key = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]

_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_PRE = rf"{_IDENT}(?:\.{_IDENT})*"
_BUILD = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
# re.ASCII: digits are 0-9 (\d would take any script's, and int("1\u0661") is 11)
_SEMVER_RE = re.compile(
    rf"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-({_PRE}))?(?:\+({_BUILD}))?", re.ASCII
)
_PART = r"(0|[1-9]\d*|[xX*])"
_COMPARATOR_RE = re.compile(
    rf"(\^|~|>=|<=|>|<|=)?{_PART}(?:\.{_PART}(?:\.{_PART}(?:-({_PRE}))?(?:\+{_BUILD})?)?)?",
    re.ASCII,
)
MAX_RANGE = 256
MAX_SEMVER = 256  # the ``semver`` column's width (npm's limit too)
_COMPARE = {
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
}


def validate_semver(value: object) -> str:
    if isinstance(value, str) and len(value) > MAX_SEMVER:
        raise InvalidParameter(f"semver is {len(value)} characters long; the limit is {MAX_SEMVER}")
    if not isinstance(value, str) or not _SEMVER_RE.fullmatch(value):
        raise InvalidParameter(
            f"semver {value!r} is not a semantic version such as '1.4.0' or '2.0.0-rc.1'"
        )
    return value


def _key(major: int, minor: int, patch: int, pre: str | None) -> Key:
    if pre is None:
        return (major, minor, patch, 1, ())
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (major, minor, patch, 0, parts)


def _parsed(value: str) -> Key | None:
    match = _SEMVER_RE.fullmatch(value)
    if match is None:
        return None
    major, minor, patch, pre, _build = match.groups()
    return _key(int(major), int(minor), int(patch), pre)


def sort_key(value: str) -> Key:
    """Order semantic versions by SemVer 2.0 precedence (build metadata ignored)."""
    key = _parsed(value)
    if key is None:
        raise InvalidParameter(f"semver {value!r} is not a semantic version")
    return key


def order_key(value: str | None) -> str | None:
    """What the database orders a ``semver`` label by: its ``major.minor.patch`` as fixed
    width text (``semver_key``), so that an index finds the highest in a range without
    reading the model's other versions. None for no label (or one that is not SemVer)."""
    key = None if value is None else _parsed(value)
    return None if key is None else _triple_text(key[:3])


def _triple_text(triple: tuple[int, ...]) -> str:
    return ".".join(f"{min(n, _TOP):010d}" for n in triple)


# Larger numbers share this one: the database's cut stays a superset (a capped label sorts
# at the top, where a range bounded below the cap excludes it anyway) and ``newest``,
# which reads the labels themselves, orders them exactly.
_TOP = 10**10 - 1


def _capped(triple: tuple[int, ...], rest: int) -> tuple[int, int, int]:
    """A bound's ``major.minor.patch`` as ``semver_key`` can hold it: from the first number
    at the cap on, the cap, then ``rest`` (0 for a lower bound, the cap for an upper one),
    since every label whose number reaches the cap shares that one key there."""
    out = list(triple)
    for i, n in enumerate(out):
        if n >= _TOP:
            out[i:] = [_TOP] + [rest] * (2 - i)
            break
    major, minor, patch = out
    return major, minor, patch


def _lowest(major: int, minor: int, patch: int) -> Key:
    """Below every version of ``major.minor.patch``, its prereleases included (``-0``)."""
    return _key(major, minor, patch, "0")


@dataclass(frozen=True, slots=True)
class _Bound:
    op: str  # one of >=, >, <, <=, =
    key: Key
    prerelease: bool  # the range names a prerelease of this major.minor.patch

    def holds(self, key: Key) -> bool:
        return bool(_COMPARE[self.op](key, self.key))


@dataclass(frozen=True, slots=True)
class SemverRange:
    text: str
    sets: tuple[tuple[_Bound, ...], ...]

    def matches(self, value: str) -> bool:
        key = sort_key(value)
        return any(_satisfies(bounds, key) for bounds in self.sets)

    def spans(self) -> list[tuple[str, str]]:
        """Per set of comparators, the ``order_key`` span its versions lie in (both ends
        included): a first cut for the database; ``newest`` decides."""
        out = []
        for bounds in self.sets:
            low, high = (0, 0, 0), (_TOP, _TOP, _TOP)
            for b in bounds:
                if b.op in (">=", ">", "=") and (triple := _capped(b.key[:3], 0)) > low:
                    low = triple
                if b.op in ("<", "<=", "=") and (triple := _capped(b.key[:3], _TOP)) < high:
                    high = triple
            if low <= high:
                out.append((_triple_text(low), _triple_text(high)))
        return out

    def newest(self, items: Iterable[T], label: Callable[[T], str]) -> T | None:
        """The item whose label is the highest version in the range (the first of equals)."""
        best: tuple[Key, T] | None = None
        for item in items:
            key = _parsed(label(item))
            if key is None:  # not a semantic version: in no range
                continue
            if any(_satisfies(b, key) for b in self.sets) and (best is None or key > best[0]):
                best = (key, item)
        return None if best is None else best[1]


def _satisfies(bounds: tuple[_Bound, ...], key: Key) -> bool:
    if not all(b.holds(key) for b in bounds):
        return False
    if key[3] == 1:  # a release
        return True
    return any(b.prerelease and b.key[:3] == key[:3] for b in bounds)


def _comparator(text: str, whole: str) -> list[_Bound]:
    match = _COMPARATOR_RE.fullmatch(text)
    if match is None:
        raise InvalidParameter(
            f"semver range {whole!r}: {text!r} is not a version, a partial one (1.4, 1.x) "
            "or one with an operator (^, ~, >=, >, <=, <, =)"
        )
    op, *parts, pre = match.groups()
    wild = [p is None or p in "xX*" for p in parts]
    if any(w and not all(wild[i:]) for i, w in enumerate(wild)):
        raise InvalidParameter(f"semver range {whole!r}: {text!r} has a wildcard before a number")
    if pre is not None and any(wild):
        raise InvalidParameter(
            f"semver range {whole!r}: {text!r} has a prerelease of a partial version"
        )
    given = wild.index(True) if any(wild) else 3  # how many numbers are given
    major, minor, patch = (int(p) if not w else 0 for p, w in zip(parts, wild, strict=True))
    low = _key(major, minor, patch, pre)
    named = pre is not None

    def bound(o: str, key: Key) -> _Bound:
        return _Bound(o, key, named and key[:3] == low[:3])

    def upper_of(level: int) -> Key:
        """Just above every version that agrees on the first ``level`` numbers."""
        if level == 1:
            return _lowest(major + 1, 0, 0)
        if level == 2:
            return _lowest(major, minor + 1, 0)
        return _lowest(major, minor, patch + 1)

    if given == 0:  # *, x: any version ("<*", ">*": none)
        return [bound("<", _lowest(0, 0, 0))] if op in ("<", ">") else []
    if op == "^":
        # the left-most non-zero number of those given may not change
        level = next((i + 1 for i, n in enumerate((major, minor, patch)[:given]) if n), given)
        return [bound(">=", low), bound("<", upper_of(level))]
    if op == "~":
        return [bound(">=", low), bound("<", upper_of(2 if given >= 2 else given))]
    if op in (None, "=") and given == 3:
        return [bound("=", low)]
    if op in (None, "="):
        return [bound(">=", low), bound("<", upper_of(given))]
    if given == 3:
        return [bound(op, low)]
    if op == ">=":
        return [bound(">=", low)]
    if op == "<":
        return [bound("<", low)]
    if op == ">":  # above every version the partial names
        return [bound(">=", upper_of(given))]
    return [bound("<", upper_of(given))]  # "<=": up to the end of what the partial names


def parse_range(text: str) -> SemverRange:
    """A range as npm writes it (see the module docstring)."""
    if not isinstance(text, str) or len(text) > MAX_RANGE:
        raise InvalidParameter(f"a semver range is text of at most {MAX_RANGE} characters")
    sets = []
    for alternative in text.split("||"):
        comparators = re.sub(r"(\^|~|>=|<=|>|<|=)\s+", r"\1", alternative.strip()).split()
        bounds: list[_Bound] = []
        for comparator in comparators:
            bounds += _comparator(comparator, text)
        sets.append(tuple(bounds))
    return SemverRange(text, tuple(sets))

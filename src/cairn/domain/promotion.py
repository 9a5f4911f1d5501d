"""Protected aliases: policies, the gate they add up to, promotion requests and their checks.

Pure rules, no I/O. A policy names models by a grant pattern (``*``, ``risk.*`` or an exact
name, see ``access.pattern_key``) and aliases by an alias pattern (``*``, a prefix ending in
``*`` such as ``prod*``, or an exact alias; case-insensitive). Every policy that matches a
model and an alias applies: together they make one ``Gate`` (the highest role, the most
approvals, every metric condition, and a clean scan or a verified signature if any of them
asks for one), so a narrower policy can only add to a broader one, never relax it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cairn.domain import names
from cairn.domain.access import Role, pattern_key, pattern_matches
from cairn.domain.codec import format_time, parse_time
from cairn.errors import InvalidParameter

MAX_APPROVALS = 10
MAX_CONDITIONS = 20
DEFAULT_MIN_ROLE = Role.MANAGE

OPS: Mapping[str, Any] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_CONDITION_RE = re.compile(r"\s*([^<>=!\s]+)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")
_ALIAS_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class PromotionStatus(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, value: object) -> PromotionStatus:
        try:
            return cls(str(value).lower())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise InvalidParameter(f"status must be one of {allowed}; got {value!r}") from None


# -- metric conditions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """``metric op value``: the version's metric must satisfy it (a missing metric fails)."""

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        names.validate_key("metric", self.metric)
        if self.op not in OPS:
            raise InvalidParameter(f"condition operator {self.op!r} is not one of {', '.join(OPS)}")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise InvalidParameter(f"condition value {self.value!r} is not a number")
        if not math.isfinite(self.value):
            raise InvalidParameter(f"condition value {self.value!r} is not a finite number")

    @property
    def text(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def holds(self, actual: float) -> bool:
        return bool(OPS[self.op](actual, self.value))


def parse_condition(text: str) -> Condition:
    """``auc>=0.9`` or ``loss < 0.2`` (operators: >=, >, <=, <, ==, !=)."""
    match = _CONDITION_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidParameter(
            f"condition {text!r} is not of the form METRIC OP NUMBER, e.g. 'auc>=0.9' "
            f"(OP is one of {', '.join(OPS)})"
        )
    metric, op, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameter(f"condition {text!r}: {raw!r} is not a number") from None
    return Condition(metric, op, value)


def condition_from_json(d: object) -> Condition:
    if not isinstance(d, Mapping) or set(d) != {"metric", "op", "value"}:
        raise InvalidParameter(
            f"a condition is an object with exactly metric, op and value; got {d!r}"
        )
    return Condition(d["metric"], d["op"], d["value"])


def condition_to_json(c: Condition) -> dict[str, Any]:
    return {"metric": c.metric, "op": c.op, "value": c.value}


def validate_conditions(
    items: Iterable[Condition | Mapping[str, Any] | str],
) -> tuple[Condition, ...]:
    conditions: list[Condition] = []
    for item in items:
        if isinstance(item, Condition):
            conditions.append(item)
        elif isinstance(item, str):
            conditions.append(parse_condition(item))
        else:
            conditions.append(condition_from_json(item))
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidParameter(
            f"a policy has at most {MAX_CONDITIONS} metric conditions; got {len(conditions)}"
        )
    return tuple(conditions)


# -- alias patterns ----------------------------------------------------------------------


def alias_pattern_key(pattern: object) -> str:
    """Validate an alias pattern, return its case-insensitive key (``Prod*`` → ``prod*``)."""
    if pattern == "*":
        return "*"
    if isinstance(pattern, str) and pattern.endswith("*"):
        prefix = pattern[:-1]
        if not _ALIAS_PREFIX_RE.fullmatch(prefix):
            raise InvalidParameter(
                f"alias pattern {pattern!r}: use '*', an alias, or an alias prefix followed "
                "by '*' (letters, digits, '_' and '-', starting with a letter)"
            )
        return names.alias_key(prefix) + "*"
    return names.alias_key(names.validate_alias(pattern))


def alias_pattern_matches(pattern: str, alias_key: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return alias_key.startswith(pattern[:-1])
    return alias_key == pattern


# -- policies and the gate they make ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AliasPolicy:
    id: int
    model_pattern: str  # a pattern key
    alias_pattern: str  # an alias pattern key
    min_role: Role
    approvals: int
    conditions: tuple[Condition, ...]
    require_clean_scan: bool
    require_signature: bool
    created_at: datetime
    created_by: str | None
    require_compatible: bool = False  # the new version's signature breaks no caller

    def matches(self, name_key: str, alias: str) -> bool:
        return pattern_matches(self.model_pattern, name_key) and alias_pattern_matches(
            self.alias_pattern, names.alias_key(alias)
        )


def validate_policy_fields(
    model_pattern: object,
    alias_pattern: object,
    min_role: object,
    approvals: object,
    conditions: Iterable[Condition | Mapping[str, Any] | str],
) -> tuple[str, str, Role, int, tuple[Condition, ...]]:
    """The normalised fields of a policy, or ``InvalidParameter`` saying what is wrong."""
    role = min_role if isinstance(min_role, Role) else Role.parse(min_role)
    if role < Role.WRITE:
        raise InvalidParameter("min_role must be WRITE or MANAGE (moving an alias needs WRITE)")
    if isinstance(approvals, bool) or not isinstance(approvals, int):
        raise InvalidParameter(f"approvals must be an integer; got {approvals!r}")
    if not 0 <= approvals <= MAX_APPROVALS:
        raise InvalidParameter(f"approvals must be between 0 and {MAX_APPROVALS}")
    return (
        pattern_key(model_pattern),
        alias_pattern_key(alias_pattern),
        role,
        approvals,
        validate_conditions(conditions),
    )


@dataclass(frozen=True, slots=True)
class Gate:
    """What moving one alias of one model needs: every matching policy, combined."""

    policy_ids: tuple[int, ...]
    min_role: Role
    approvals: int
    conditions: tuple[Condition, ...]
    require_clean_scan: bool
    require_signature: bool
    require_compatible: bool = False


def gate_for(policies: Sequence[AliasPolicy], name_key: str, alias: str) -> Gate | None:
    """The gate of ``alias`` on the model ``name_key``; None when no policy protects it."""
    matching = [p for p in policies if p.matches(name_key, alias)]
    if not matching:
        return None
    conditions: list[Condition] = []
    for p in matching:
        conditions.extend(c for c in p.conditions if c not in conditions)
    return Gate(
        policy_ids=tuple(p.id for p in matching),
        min_role=max(p.min_role for p in matching),
        approvals=max(p.approvals for p in matching),
        conditions=tuple(conditions),
        require_clean_scan=any(p.require_clean_scan for p in matching),
        require_signature=any(p.require_signature for p in matching),
        require_compatible=any(p.require_compatible for p in matching),
    )


# -- requests, approvals, checks ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One gate check as it was evaluated: ``check`` names it, ``detail`` says what was seen."""

    check: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Approval:
    approver: str
    decision: str  # approve | reject
    comment: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    id: int
    name: str
    version: int
    alias: str
    requester: str
    status: PromotionStatus
    comment: str
    checks: tuple[Check, ...]
    approvals: tuple[Approval, ...]
    created_at: datetime
    decided_at: datetime | None

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)


def describe_failures(checks: Iterable[Check]) -> str:
    return "; ".join(f"{c.check}: {c.detail}" for c in checks if not c.passed)


# -- JSON (the API's shapes; the HTTP client and the CLI's --json use the same) ----------


def check_to_json(c: Check) -> dict[str, Any]:
    return {"check": c.check, "passed": c.passed, "detail": c.detail}


def check_from_json(d: Mapping[str, Any]) -> Check:
    return Check(str(d["check"]), bool(d["passed"]), str(d.get("detail", "")))


def policy_to_json(p: AliasPolicy) -> dict[str, Any]:
    return {
        "id": p.id,
        "model_pattern": p.model_pattern,
        "alias_pattern": p.alias_pattern,
        "min_role": p.min_role.name,
        "approvals": p.approvals,
        "conditions": [condition_to_json(c) for c in p.conditions],
        "require_clean_scan": p.require_clean_scan,
        "require_signature": p.require_signature,
        "require_compatible": p.require_compatible,
        "created_at": format_time(p.created_at),
        "created_by": p.created_by,
    }


def policy_from_json(d: Mapping[str, Any]) -> AliasPolicy:
    created = parse_time(d["created_at"])
    assert created is not None
    return AliasPolicy(
        id=int(d["id"]),
        model_pattern=d["model_pattern"],
        alias_pattern=d["alias_pattern"],
        min_role=Role.parse(d["min_role"]),
        approvals=int(d["approvals"]),
        conditions=tuple(condition_from_json(c) for c in d["conditions"]),
        require_clean_scan=bool(d["require_clean_scan"]),
        require_signature=bool(d["require_signature"]),
        created_at=created,
        created_by=d.get("created_by"),
        require_compatible=bool(d.get("require_compatible", False)),  # older exports lack it
    )


def request_to_json(r: PromotionRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "version": r.version,
        "alias": r.alias,
        "requester": r.requester,
        "status": r.status.value,
        "comment": r.comment,
        "checks": [check_to_json(c) for c in r.checks],
        "approvals": [
            {
                "approver": a.approver,
                "decision": a.decision,
                "comment": a.comment,
                "at": format_time(a.at),
            }
            for a in r.approvals
        ],
        "created_at": format_time(r.created_at),
        "decided_at": format_time(r.decided_at),
    }


def request_from_json(d: Mapping[str, Any]) -> PromotionRequest:
    created = parse_time(d["created_at"])
    assert created is not None
    approvals = []
    for a in d["approvals"]:
        at = parse_time(a["at"])
        assert at is not None
        approvals.append(Approval(a["approver"], a["decision"], a.get("comment", ""), at))
    return PromotionRequest(
        id=int(d["id"]),
        name=d["name"],
        version=int(d["version"]),
        alias=d["alias"],
        requester=d["requester"],
        status=PromotionStatus(d["status"]),
        comment=d.get("comment", ""),
        checks=tuple(check_from_json(c) for c in d["checks"]),
        approvals=tuple(approvals),
        created_at=created,
        decided_at=parse_time(d.get("decided_at")),
    )

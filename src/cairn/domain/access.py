"""Who may do what: roles, token scopes, grants and the caller (``Actor``).

Pure rules, no I/O. The service asks ``actor.allows(role, model_id, name_key)`` before
every use case; the API fills the actor in from a token, the local client acts as an
instance administrator (it already holds the data directory).

- Roles on models are ordered: READ < WRITE < MANAGE. ADMIN is the instance role
  (``Actor.is_admin``), not a grant.
- A grant names one model (by id, so a re-created name inherits nothing) or a pattern over
  name keys: ``*``, a prefix ending in ``.*`` or ``-*`` or ``_*`` (``risk.*``), or an exact name.
- A token's scope caps what its holder's grants allow: ``read`` → READ, ``write`` → MANAGE,
  ``admin`` → MANAGE plus the instance role when the user is an administrator.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cairn.domain import names
from cairn.errors import InvalidParameter


class Role(enum.IntEnum):
    READ = 1
    WRITE = 2
    MANAGE = 3

    @classmethod
    def parse(cls, value: object) -> Role:
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise InvalidParameter(f"role must be one of READ, WRITE, MANAGE; got {value!r}")


class Scope(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: object) -> Scope:
        try:
            return cls(str(value).lower())
        except ValueError:
            raise InvalidParameter(
                f"scope must be one of read, write, admin; got {value!r}"
            ) from None

    @property
    def cap(self) -> Role:
        return Role.READ if self is Scope.READ else Role.MANAGE

    def covers(self, other: Scope) -> bool:
        """Whether a token of this scope may do all that one of ``other`` may (read <
        write < admin, the order they are declared in)."""
        order = list(Scope)
        return order.index(self) >= order.index(other)


def pattern_key(pattern: object) -> str:
    """Validate a grant pattern and return it over name keys (``Risk.*`` → ``risk.*``)."""
    if pattern == "*":
        return "*"
    if not isinstance(pattern, str) or not pattern:
        raise InvalidParameter("pattern must be '*', a model name, or a prefix such as 'risk.*'")
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        if not prefix or prefix[-1] not in "._-" or "*" in prefix:
            raise InvalidParameter(
                f"pattern {pattern!r}: '*' may only end a prefix that ends in '.', '-' or '_'"
            )
        names.validate_model_name(prefix[:-1])
        return names.name_key(prefix[:-1]) + prefix[-1] + "*"
    return names.name_key(names.validate_model_name(pattern))


def pattern_matches(pattern: str, name_key: str) -> bool:
    """Does a pattern key (from ``pattern_key``) cover a model's name key?"""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return name_key.startswith(pattern[:-1])
    return name_key == pattern


@dataclass(frozen=True, slots=True)
class Grant:
    role: Role
    model_id: int | None = None
    pattern: str | None = None  # a pattern key

    def covers(self, model_id: int | None, name_key: str) -> bool:
        if self.model_id is not None:
            return model_id is not None and self.model_id == model_id
        return self.pattern is not None and pattern_matches(self.pattern, name_key)


@dataclass(frozen=True, slots=True)
class ReadFilter:
    """The models a caller may read, as a query can express it (any of these)."""

    model_ids: tuple[int, ...] = ()
    exact: tuple[str, ...] = ()  # name keys
    prefixes: tuple[str, ...] = ()  # name-key prefixes
    holder: int | None = None  # a user: also the models its and its groups' grants name

    @property
    def empty(self) -> bool:
        return not (self.model_ids or self.exact or self.prefixes or self.holder is not None)


class Grants:
    """A caller's grants, indexed once (authentication remembers them indexed): the best
    role per model, and the pattern grants. A user who created thousands of models holds
    as many creator grants; finding its role on one model must not scan them all."""

    __slots__ = ("_all", "_by_model", "_patterns", "_readable")

    def __init__(self, grants: Iterable[Grant] = (), *, holder: int | None = None) -> None:
        """``holder``: the user whose grants (its own and its groups') these are, as the
        database has them: queries then read the models they name from there."""
        self._all = tuple(grants)
        by_model: dict[int, Role] = {}
        for g in self._all:
            if g.model_id is not None:
                by_model[g.model_id] = max(g.role, by_model.get(g.model_id, g.role))
        self._by_model = by_model
        self._patterns = tuple(g for g in self._all if g.model_id is None and g.pattern)
        self._readable: ReadFilter | None = None
        if all(g.pattern != "*" for g in self._patterns):
            keys = [g.pattern for g in self._patterns if g.pattern]
            self._readable = ReadFilter(
                model_ids=() if holder is not None else tuple(by_model),
                holder=holder if by_model else None,
                exact=tuple(k for k in keys if not k.endswith("*")),
                prefixes=tuple(k[:-1] for k in keys if k.endswith("*")),
            )

    def role_on(self, model_id: int | None, name_key: str) -> Role | None:
        best = None if model_id is None else self._by_model.get(model_id)
        for g in self._patterns:
            if (best is None or g.role > best) and g.covers(None, name_key):
                best = g.role
        return best

    @property
    def readable(self) -> ReadFilter | None:
        """What READ covers (None: everything)."""
        return self._readable

    def __iter__(self) -> Iterator[Grant]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grants) and other._all == self._all

    def __hash__(self) -> int:
        return hash(self._all)

    def __repr__(self) -> str:
        return f"Grants({self._all!r})"


NO_GRANTS = Grants()


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is making a call, with everything needed to decide what they may do."""

    name: str
    is_admin: bool = False  # the instance role; holds only with an admin-scoped token
    user_id: int | None = None
    scope: Scope = Scope.ADMIN
    grants: Grants = NO_GRANTS
    request_id: str | None = None
    client: str | None = None
    token_id: int | None = None  # the token or session that authenticated the call

    def __post_init__(self) -> None:
        if not isinstance(self.grants, Grants):  # a plain sequence of Grant
            object.__setattr__(self, "grants", Grants(self.grants))

    @property
    def admin(self) -> bool:
        return self.is_admin and self.scope is Scope.ADMIN

    def role_on(self, model_id: int | None, name_key: str) -> Role | None:
        """The caller's effective role on a model (``model_id`` None: a name not yet created)."""
        if self.admin:
            return Role.MANAGE
        best = self.grants.role_on(model_id, name_key)
        return None if best is None else min(best, self.scope.cap)

    def allows(self, role: Role, model_id: int | None, name_key: str) -> bool:
        granted = self.role_on(model_id, name_key)
        return granted is not None and granted >= role

    def readable(self) -> ReadFilter | None:
        """What READ covers, for list and search queries; None means everything."""
        return None if self.admin else self.grants.readable


SYSTEM = Actor("system", is_admin=True)

# The local client's actors are ``local:<os user>``: whoever holds the data directory is
# its administrator. No account can be named so (identity names have no ':').
LOCAL_ACTOR_PREFIX = "local:"

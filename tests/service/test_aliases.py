"""Aliases and their history through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest

from cairn.domain.models import Actor
from cairn.errors import Conflict, InvalidParameter, NotFound
from cairn.service.registry import RegistryService
from cairn.store.metadata.clock import to_datetime

ALICE = Actor("alice", is_admin=True)
BOB = Actor("bob", is_admin=True)


class Clock:
    """A clock the test moves by hand (microseconds)."""

    def __init__(self) -> None:
        self._ticks = itertools.count(1_800_000_000_000_000, 1_000_000)

    def __call__(self) -> int:
        return next(self._ticks)


@pytest.fixture
def svc(service: RegistryService) -> RegistryService:
    service.clock = Clock()
    service.create_model(ALICE, "fraud")
    for _ in range(3):
        service.create_version(ALICE, "fraud")
    return service


def test_set_move_delete_with_history(svc: RegistryService) -> None:
    svc.set_alias(ALICE, "fraud", "production", 1)
    svc.set_alias(BOB, "fraud", "Production", 2)  # same alias, any case
    svc.delete_alias(ALICE, "fraud", "production")
    events = svc.alias_history(ALICE, "fraud", "production")
    assert [(e.from_version, e.to_version, e.actor) for e in events] == [
        (2, None, "alice"),
        (1, 2, "bob"),
        (None, 1, "alice"),
    ]
    with pytest.raises(NotFound):
        svc.delete_alias(ALICE, "fraud", "production")


def test_setting_same_version_records_nothing(svc: RegistryService) -> None:
    svc.set_alias(ALICE, "fraud", "prod", 1)
    svc.set_alias(ALICE, "fraud", "prod", 1)
    assert len(svc.alias_history(ALICE, "fraud", "prod")) == 1


def test_many_aliases_per_version_one_version_per_alias(svc: RegistryService) -> None:
    svc.set_alias(ALICE, "fraud", "champion", 2)
    v = svc.set_alias(ALICE, "fraud", "production", 2)
    assert v.aliases == ("champion", "production")
    assert svc.get_model(ALICE, "fraud").aliases == {"champion": 2, "production": 2}


def test_expect_precondition(svc: RegistryService) -> None:
    svc.set_alias(ALICE, "fraud", "prod", 1, expect=0)
    with pytest.raises(Conflict, match="points at version 1"):
        svc.set_alias(ALICE, "fraud", "prod", 3, expect=2)
    assert svc.resolve(ALICE, "models:/fraud@prod").version == 1
    svc.set_alias(ALICE, "fraud", "prod", 3, expect=1)
    with pytest.raises(Conflict, match="not unset"):
        svc.set_alias(ALICE, "fraud", "prod", 2, expect=0)


def test_resolve_as_of(svc: RegistryService) -> None:
    svc.set_alias(ALICE, "fraud", "prod", 1)  # t1
    svc.set_alias(ALICE, "fraud", "prod", 2)  # t2
    svc.delete_alias(ALICE, "fraud", "prod")  # t3
    events = list(reversed(svc.alias_history(ALICE, "fraud", "prod")))
    t1, t2, t3 = (e.at for e in events)
    assert svc.resolve(ALICE, "models:/fraud@prod", as_of=t1).version == 1
    assert svc.resolve(ALICE, "models:/fraud@prod", as_of=t2).version == 2
    with pytest.raises(NotFound, match="no alias"):
        svc.resolve(ALICE, "models:/fraud@prod", as_of=t3)
    with pytest.raises(NotFound):
        svc.resolve(ALICE, "models:/fraud@prod", as_of=to_datetime(1))
    with pytest.raises(InvalidParameter):
        svc.resolve(ALICE, "models:/fraud/1", as_of=t1)


@pytest.mark.parametrize("bad", ["latest", "V3", "1abc", "has space", "a/b", "x" * 256])
def test_bad_aliases(svc: RegistryService, bad: str) -> None:
    with pytest.raises(InvalidParameter):
        svc.set_alias(ALICE, "fraud", bad, 1)


def test_alias_needs_live_ready_version(svc: RegistryService) -> None:
    with pytest.raises(NotFound):
        svc.set_alias(ALICE, "fraud", "prod", 9)
    svc.delete_version(ALICE, "fraud", 3)
    with pytest.raises(NotFound):
        svc.set_alias(ALICE, "fraud", "prod", 3)


def test_rollback_is_one_call(svc: RegistryService) -> None:
    svc.set_alias(ALICE, "fraud", "prod", 1)
    svc.set_alias(ALICE, "fraud", "prod", 2)
    previous = svc.alias_history(ALICE, "fraud", "prod", limit=1)[0].from_version
    assert previous == 1
    svc.set_alias(ALICE, "fraud", "prod", previous, expect=2)
    assert svc.resolve(ALICE, "models:/fraud@prod").version == 1


def test_history_of_all_aliases(svc: RegistryService) -> None:
    svc.set_alias(ALICE, "fraud", "a", 1)
    svc.set_alias(ALICE, "fraud", "b", 2)
    assert [e.alias for e in svc.alias_history(ALICE, "fraud")] == ["b", "a"]
    with pytest.raises(InvalidParameter):
        svc.alias_history(ALICE, "fraud", limit=0)

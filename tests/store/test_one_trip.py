"""One-statement writes (PostgreSQL, ``one_trip.py``) leave what the usual way leaves.

Each test runs on both databases: on SQLite the services do not try the one-statement way
(``one_trip.available``) and the usual way runs, so the same assertions hold for both.
The spies record, for each call of a one-statement write, whether it did the write, so
the PostgreSQL runs prove which way each case went.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from cairn.domain.access import Grant, Role, Scope
from cairn.domain.audit import AuditReport
from cairn.domain.models import Actor, ModelVersion, VersionSpec
from cairn.errors import AlreadyExists, NotFound, PermissionDenied
from cairn.service.registry import RegistryService
from cairn.store.metadata import audit_store, one_trip
from cairn.store.metadata.audit_store import event_hash, event_template, new_event

ADMIN = Actor("alice", is_admin=True, request_id="req-1", client="pytest")
SPEC = VersionSpec(
    description="a model registered from elsewhere",
    tags={"kind": "fraud", "team": "risque—équipe ☃", "quote": 'a "b" \\ c'},
    params={"lr": "0.1"},
    metrics={"auc": 0.93, "n": 7},
    semver="1.2.3",
    source="s3://bucket/runs/abc/model",
    run_id="abc",
    run_link="https://tracking.example/runs/abc",
)


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """For each call of ``one_trip.<name>``: whether it did the write (True) or declined."""
    seen: list[bool] = []
    real = getattr(one_trip, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(one_trip, name, spy)
    return seen


@pytest.fixture(autouse=True)
def _audit_head(service: RegistryService) -> None:
    """The chain's head row, as a database that has audited anything has it (the test
    databases are emptied between tests; without a head a statement here declines)."""
    with service.db.engine.begin() as conn:
        audit_store.AuditStore(conn)._restore_head()


@pytest.fixture
def took_one_trip(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each version create that could take the one-statement way: whether it did."""
    return _spy(monkeypatch, "create_version")


@pytest.fixture
def model_in_one_trip(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    return _spy(monkeypatch, "create_model")


def _trips(service: RegistryService, *outcomes: bool) -> list[bool]:
    """What the spy records: each call's outcome on PostgreSQL; on SQLite, where the
    services do not try (``one_trip.available``), nothing."""
    return list(outcomes) if service.db.dialect == "postgresql" else []


def _chain_ok(service: RegistryService) -> AuditReport:
    """The audit chain verifies from its first event to its head."""
    report = service.verify_audit(ADMIN)
    assert report.ok, report.reason
    return report


def _same_but_number(a: ModelVersion, b: ModelVersion) -> None:
    fields = {"version", "created_at", "updated_at"}
    left = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name not in fields}
    right = {f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.name not in fields}
    assert left == right


def test_a_file_less_version_is_stored_as_the_usual_way_stores_it(
    service: RegistryService, took_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "fraud")
    fast = service.create_version(ADMIN, "fraud", SPEC)
    # an idempotency key takes the usual way
    usual = service.create_version(ADMIN, "fraud", SPEC, idempotency_key="k1")
    assert took_one_trip == _trips(service, True)
    assert (fast.version, usual.version) == (1, 2)
    _same_but_number(fast, usual)
    assert service.get_version(ADMIN, "fraud", 1) == fast
    _same_but_number(service.get_version(ADMIN, "fraud", 2), fast)
    assert service.get_model(ADMIN, "fraud").latest_version == 2
    reports = [service.get_scan_report(ADMIN, "fraud", n) for n in (1, 2)]
    assert reports[0] == dataclasses.replace(
        reports[1], version=1, scanned_at=reports[0].scanned_at
    )
    assert (reports[0].status, reports[0].quarantined, reports[0].policy_source) == (
        "clean",
        False,
        "instance",
    )
    assert reports[0].action == service.get_scan_policy(ADMIN, "fraud").effective

    events = service.list_audit(ADMIN, action="version.create", oldest_first=True).items
    assert [e.version for e in events] == [1, 2]
    shown = [dataclasses.replace(e, seq=0, version=0, at=fast.created_at, hash="") for e in events]
    assert shown[0] == shown[1]
    assert (events[0].model, events[0].actor, events[0].request_id) == ("fraud", "alice", "req-1")
    assert _chain_ok(service).head_hash == events[-1].hash


def test_the_model_policy_is_the_one_recorded(
    service: RegistryService, took_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "fraud")
    for action in ("label", "reject"):  # neither is the instance's default
        service.set_scan_policy(ADMIN, "fraud", action)
        made = service.create_version(ADMIN, "fraud")
        assert service.get_scan_report(ADMIN, "fraud", made.version).action == action
    assert took_one_trip == _trips(service, True, True)


def test_a_name_spelled_otherwise_takes_the_usual_way(
    service: RegistryService, took_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "Fraud")
    made = service.create_version(ADMIN, "FRAUD", VersionSpec(tags={"a": "b"}))
    assert (made.name, made.version, made.tags) == ("Fraud", 1, {"a": "b"})
    assert took_one_trip == _trips(
        service, False
    )  # the stored name differs: the statement did nothing
    assert service.list_audit(ADMIN, action="version.create").items[0].model == "Fraud"
    _chain_ok(service)


def test_missing_and_deleted_models_are_reported_as_before(
    service: RegistryService, took_one_trip: list[bool]
) -> None:
    with pytest.raises(NotFound, match="nope"):
        service.create_version(ADMIN, "nope")
    service.create_model(ADMIN, "gone")
    service.delete_model(ADMIN, "gone")
    with pytest.raises(NotFound):
        service.create_version(ADMIN, "gone")
    assert took_one_trip == _trips(service, False, False)
    _chain_ok(service)


def test_a_lost_audit_head_is_restored_by_the_usual_way(
    service: RegistryService, took_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "fraud")
    with service.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_head"))
    assert service.create_version(ADMIN, "fraud").version == 1
    assert service.create_version(ADMIN, "fraud").version == 2
    assert took_one_trip == _trips(service, False, True)
    _chain_ok(service)


def test_a_caller_with_a_grant_on_the_model_id_only_takes_the_usual_way(
    service: RegistryService, took_one_trip: list[bool]
) -> None:
    model = service.create_model(ADMIN, "fraud")
    model_id = service.db.read(
        lambda s: s.execute(text("SELECT id FROM registered_models")).scalar_one()
    )
    writer = Actor("bob", scope=Scope.WRITE, grants=(Grant(Role.WRITE, model_id=model_id),))
    assert service.create_version(writer, model.name).version == 1
    assert took_one_trip == []  # its grants do not cover the name whatever the id
    _chain_ok(service)


def test_an_event_template_hashes_as_the_event_does() -> None:
    event = new_event(ADMIN, "version.create", at=123, model_name="fraud", after={"x": "é"})
    template = event_template(event, ("model_id", "seq", "version"))
    assert template is not None
    assert template.holes == ("model_id", "seq", "version")
    filled = template.pieces[0] + "".join(
        f"{value}{piece}" for value, piece in zip((41, 7, 3), template.pieces[1:], strict=True)
    )
    whole = {**event, "model_id": 41, "seq": 7, "version": 3}
    assert audit_store.hashlib.sha256(("0" * 64 + filled).encode()).hexdigest() == event_hash(
        "0" * 64, whole
    )


def test_a_value_spelling_a_stand_in_declines_the_template() -> None:
    stand_in = audit_store._HOLES["seq"]
    event = new_event(ADMIN, "version.create", at=1, after={"n": stand_in})
    assert event_template(event, ("model_id", "seq", "version")) is None


def test_a_model_is_stored_as_the_usual_way_stores_it(
    service: RegistryService, model_in_one_trip: list[bool]
) -> None:
    tags = {"team": "risque—équipe ☃", "tier": 'a "b" \\ c'}
    fast = service.create_model(ADMIN, "fraud", description="d", tags=tags)
    usual = service.create_model(ADMIN, "churn", description="d", tags=tags, idempotency_key="k")
    assert model_in_one_trip == _trips(service, True)
    assert dataclasses.replace(fast, name="churn", created_at=usual.created_at) == (
        dataclasses.replace(usual, updated_at=fast.updated_at)
    )
    assert service.get_model(ADMIN, "fraud") == fast
    events = service.list_audit(ADMIN, action="model.create", oldest_first=True).items
    assert [e.model for e in events] == ["fraud", "churn"]
    assert events[0].after == events[1].after == {"description": "d", "tags": tags}
    _chain_ok(service)


def test_a_taken_name_is_refused_as_before(
    service: RegistryService, model_in_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "fraud")
    with pytest.raises(AlreadyExists):
        service.create_model(ADMIN, "FRAUD")
    assert model_in_one_trip == _trips(service, True, False)
    assert [e.model for e in service.list_audit(ADMIN, action="model.create").items] == ["fraud"]
    _chain_ok(service)


def test_the_creator_gets_their_grant(
    service: RegistryService, model_in_one_trip: list[bool]
) -> None:
    service.create_user(ADMIN, "bob")
    user_id = service.db.read(
        lambda s: s.execute(text("SELECT id FROM users WHERE name = 'bob'")).scalar_one()
    )
    bob = Actor("bob", user_id=user_id, grants=(Grant(Role.WRITE, pattern="team.*"),))
    service.create_model(bob, "team.fraud")
    service.create_model(Actor("carol", scope=Scope.WRITE, grants=bob.grants), "team.churn")
    assert model_in_one_trip == _trips(service, True, True)
    grants = service.list_grants(ADMIN, subject="user:bob")
    assert [(g["model"], g["role"]) for g in grants if g["model"]] == [("team.fraud", "MANAGE")]
    _chain_ok(service)


@pytest.fixture
def alias_in_one_trip(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    return _spy(monkeypatch, "move_alias")


def _alias_trail(service: RegistryService, alias: str) -> tuple[list[Any], list[Any]]:
    """The alias's history (oldest first) and its audit events, with what differs between
    two aliases moved the same way taken out."""
    history = [
        (e.from_version, e.to_version, e.actor)
        for e in reversed(service.alias_history(ADMIN, "fraud", alias))
    ]
    events = [
        (e.action, e.model, e.version, e.before, e.after, e.actor, e.request_id)
        for e in service.list_audit(ADMIN, action="alias.set", oldest_first=True).items
        if e.target == alias
    ]
    return history, events


def test_an_alias_moves_as_the_usual_way_moves_it(
    service: RegistryService, alias_in_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "fraud")
    for _ in range(2):
        service.create_version(ADMIN, "fraud")
    moves = [1, 2, 2, 1]
    for number in moves:  # set, move, a move to where it is (no event), move back
        got = service.set_alias(ADMIN, "fraud", "prod", number)
        assert (got.version, "prod" in got.aliases) == (number, True)
    previous = 0
    for number in moves:  # with the precondition: the usual way
        service.set_alias(ADMIN, "fraud", "canary", number, expect=previous)
        previous = number
    assert alias_in_one_trip == _trips(service, *[True] * len(moves))
    assert _alias_trail(service, "prod") == _alias_trail(service, "canary")
    history, events = _alias_trail(service, "prod")
    assert history == [(None, 1, "alice"), (1, 2, "alice"), (2, 1, "alice")]
    assert [(e[3], e[4]) for e in events] == [(None, 1), (1, 2), (2, 1)]
    assert service.resolve(ADMIN, "models:/fraud@prod").aliases == ("canary", "prod")
    _chain_ok(service)


def test_the_moved_version_is_answered_as_a_read_finds_it(
    service: RegistryService, alias_in_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "fraud")
    service.create_version(ADMIN, "fraud", SPEC)
    service.create_version(ADMIN, "fraud")
    # in alias order and out of it, one moved off another version, one re-spelled in place
    for alias, number in [("z-last", 1), ("a-first", 2), ("a-first", 1), ("Mid", 1), ("mid", 1)]:
        got = service.set_alias(ADMIN, "fraud", alias, number)
        assert got == service.get_version(ADMIN, "fraud", number)
    assert got.aliases == ("a-first", "Mid", "z-last")
    assert alias_in_one_trip == _trips(service, *[True] * 5)


def test_an_alias_moved_while_the_move_waited_is_in_its_answer(
    service: RegistryService, alias_in_one_trip: list[bool]
) -> None:
    """A move that waits for the model's row (another transaction moving another alias)
    answers with that alias too, as a read after both finds the version."""
    service.create_model(ADMIN, "fraud")
    service.create_version(ADMIN, "fraud")
    with service.db.engine.connect() as other:
        other.begin()  # its first write takes the model's row (SQLite: the writer's lock)
        other.execute(
            text(
                "INSERT INTO aliases (model_id, alias_key, alias, version, updated_at) "
                "SELECT id, 'canary', 'canary', 1, updated_at + 1 FROM registered_models "
                "WHERE name = 'fraud'"
            )
        )
        other.execute(text("UPDATE registered_models SET updated_at = updated_at + 1"))
        with ThreadPoolExecutor(1) as pool:
            moving = pool.submit(service.set_alias, ADMIN, "fraud", "prod", 1)
            _until_waiting(service, other)
            other.commit()
            got = moving.result(timeout=30)
    assert got.aliases == ("canary", "prod")
    assert got == service.get_version(ADMIN, "fraud", 1)
    assert alias_in_one_trip == _trips(service, True)


def _until_waiting(service: RegistryService, other: Any) -> None:
    """Returns once another session waits for a lock ``other`` holds (PostgreSQL), or
    after a moment (SQLite, whose writers wait in a busy loop no view shows)."""
    if service.db.dialect == "sqlite":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with service.db.engine.connect() as look:
            waiting = look.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            if waiting.scalar_one():
                return
        time.sleep(0.01)
    raise AssertionError("the move never waited for the model's row")


def test_alias_moves_the_fast_way_cannot_make_take_the_usual_way(
    service: RegistryService, alias_in_one_trip: list[bool]
) -> None:
    service.create_model(ADMIN, "fraud")
    service.create_version(ADMIN, "fraud")
    with pytest.raises(NotFound):
        service.set_alias(ADMIN, "fraud", "prod", 7)
    service.delete_version(ADMIN, "fraud", 1)
    with pytest.raises(NotFound):
        service.set_alias(ADMIN, "fraud", "prod", 1)
    service.create_version(ADMIN, "fraud")
    service.set_policy(ADMIN, "fraud", "prod", approvals=1)  # gates: the usual way
    with pytest.raises(PermissionDenied, match="approval"):
        service.set_alias(ADMIN, "fraud", "prod", 2)
    service.set_alias(ADMIN, "fraud", "canary", 2)
    assert alias_in_one_trip == _trips(service, *[False] * 4)
    assert service.resolve(ADMIN, "models:/fraud@canary").version == 2
    _chain_ok(service)

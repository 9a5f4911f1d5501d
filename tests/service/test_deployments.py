"""Deployments and monitoring feedback, through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from cairn.domain.access import SYSTEM, Actor, Grant, Role
from cairn.domain.deployments import MAX_POINTS, FeedbackPoint
from cairn.errors import AlreadyExists, Conflict, InvalidParameter, NotFound, PermissionDenied
from cairn.service.registry import RegistryService
from cairn.store.metadata.clock import from_datetime
from cairn.store.metadata.schema import audit_events, deployment_events, feedback_points

T0 = datetime(2027, 1, 1, tzinfo=UTC)
WRITER = Actor("wanda", user_id=1, grants=(Grant(Role.WRITE, pattern="risk.*"),))
READER = Actor("rita", user_id=2, grants=(Grant(Role.READ, pattern="risk.*"),))
OUTSIDER = Actor("otto", user_id=3, grants=(Grant(Role.MANAGE, pattern="other.*"),))


class Clock:
    """Set by the test: ``at(minutes)`` is T0 + that many minutes."""

    def __init__(self) -> None:
        self.now = T0

    def at(self, minutes: float) -> None:
        self.now = T0 + timedelta(minutes=minutes)

    def __call__(self) -> int:
        return from_datetime(self.now)


def t(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def clock(service: RegistryService) -> Clock:
    c = Clock()
    service.clock = c
    service.create_model(SYSTEM, "risk.fraud")
    for _ in range(3):
        service.create_version(SYSTEM, "risk.fraud")
    service.set_alias(SYSTEM, "risk.fraud", "production", 2)
    service.create_model(SYSTEM, "other.model")
    service.create_version(SYSTEM, "other.model")
    return c


def count(service: RegistryService, table: Any) -> int:
    with service.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def actions(service: RegistryService) -> list[tuple[str, str | None, int | None]]:
    with service.db.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.target, audit_events.c.version)
            .where(audit_events.c.action.like("deployment.%"))
            .order_by(audit_events.c.seq)
        )
        return [(r.action, r.target, r.version) for r in rows]


def points(*items: tuple[str, float, float]) -> list[FeedbackPoint]:
    return [FeedbackPoint(k, v, t(m)) for k, v, m in items]


def test_record_move_and_history(service: RegistryService, clock: Clock) -> None:
    clock.at(0)
    made = service.set_deployment(
        WRITER,
        "fraud-api-prod",
        "models:/risk.fraud/1",
        environment="prod",
        url="https://fraud.example.com/predict",
        reason="first rollout",
    )
    assert (made.model, made.version, made.alias, made.environment) == (
        "risk.fraud",
        1,
        None,
        "prod",
    )
    assert made.url == "https://fraud.example.com/predict"
    clock.at(10)
    moved = service.set_deployment(WRITER, "fraud-api-prod", "models:/risk.fraud@production")
    assert (moved.version, moved.alias, moved.environment) == (2, "production", "prod")
    history = service.deployment_history(READER, "fraud-api-prod")
    assert [(e.from_version, e.to_version, e.alias, e.actor) for e in history] == [
        (1, 2, "production", "wanda"),
        (None, 1, None, "wanda"),
    ]
    assert history[1].reason == "first rollout"
    assert history[1].until == t(10) and history[0].until is None
    # the same version again changes nothing and writes no history
    clock.at(11)
    service.set_deployment(WRITER, "fraud-api-prod", "models:/risk.fraud@production")
    assert count(service, deployment_events) == 2
    assert actions(service) == [
        ("deployment.set", "fraud-api-prod", 1),
        ("deployment.set", "fraud-api-prod", 2),
    ]


def test_the_precondition_moves_only_from_the_expected_version(
    service: RegistryService, clock: Clock
) -> None:
    service.set_deployment(WRITER, "d", "models:/risk.fraud/1", environment="prod", expect=0)
    with pytest.raises(Conflict, match="serves version 1, not version 2 as expected"):
        service.set_deployment(WRITER, "d", "models:/risk.fraud/3", expect=2)
    with pytest.raises(Conflict, match="not nothing as expected"):
        service.set_deployment(WRITER, "d", "models:/risk.fraud/3", expect=0)
    assert service.get_deployment(READER, "d").version == 1
    assert count(service, deployment_events) == 1
    clock.at(1)
    assert service.set_deployment(WRITER, "d", "models:/risk.fraud/3", expect=1).version == 3
    with pytest.raises(Conflict):
        service.retire_deployment(WRITER, "d", expect=1)
    assert service.get_deployment(READER, "d").version == 3


def test_retire_keeps_the_history_and_set_brings_it_back(
    service: RegistryService, clock: Clock
) -> None:
    service.set_deployment(WRITER, "d", "models:/risk.fraud/1", environment="staging")
    clock.at(5)
    retired = service.retire_deployment(WRITER, "d", reason="traffic moved")
    assert retired.version is None and retired.retired_at == t(5)
    with pytest.raises(Conflict, match="already retired"):
        service.retire_deployment(WRITER, "d")
    assert [d.name for d in service.list_deployments(READER).items] == []
    assert [d.name for d in service.list_deployments(READER, retired=True).items] == ["d"]
    clock.at(7)
    back = service.set_deployment(WRITER, "d", "models:/risk.fraud/2", expect=0)
    assert back.version == 2 and back.retired_at is None
    events = service.deployment_history(READER, "d")
    assert [(e.from_version, e.to_version) for e in events] == [(None, 2), (1, None), (None, 1)]
    assert events[1].reason == "traffic moved"
    assert ("deployment.retire", "d", 1) in actions(service)


def test_what_was_served_at_a_time_and_where_a_version_ran(
    service: RegistryService, clock: Clock
) -> None:
    clock.at(0)
    service.set_deployment(WRITER, "eu", "models:/risk.fraud/1", environment="prod")
    clock.at(1)
    service.set_deployment(WRITER, "us", "models:/risk.fraud/1", environment="prod")
    clock.at(10)
    service.set_deployment(WRITER, "eu", "models:/risk.fraud/2")
    clock.at(20)
    service.retire_deployment(WRITER, "us")
    with pytest.raises(NotFound, match="not recorded yet"):
        service.deployment_at(READER, "eu", t(-1))
    assert service.deployment_at(READER, "eu", t(5)).to_version == 1
    assert service.deployment_at(READER, "eu", t(10)).to_version == 2
    assert service.deployment_at(READER, "us", t(30)).to_version is None
    ran = service.list_servings(READER, "risk.fraud", 1)
    assert [(e.deployment, e.at, e.until) for e in ran] == [
        ("us", t(1), t(20)),
        ("eu", t(0), t(10)),
    ]
    assert [e.deployment for e in service.list_servings(READER, "risk.fraud")] == ["eu", "us", "eu"]
    now = service.list_deployments(READER, model="risk.fraud", version=2).items
    assert [(d.name, d.version) for d in now] == [("eu", 2)]
    assert service.list_deployments(READER, model="risk.fraud", version=1).items == []
    with pytest.raises(NotFound):
        service.list_servings(READER, "risk.fraud", 9)


def test_feedback_is_linked_to_the_version_served_at_each_timestamp(
    service: RegistryService, clock: Clock
) -> None:
    clock.at(0)
    service.set_deployment(WRITER, "d", "models:/risk.fraud/1", environment="prod")
    clock.at(10)
    service.set_deployment(WRITER, "d", "models:/risk.fraud/2")
    clock.at(20)
    batch = points(("latency", 10, 2), ("latency", 30, 9), ("latency", 20, 12), ("drift", 0.5, 15))
    receipt = service.push_feedback(WRITER, "d", batch)
    assert (receipt.accepted, dict(receipt.versions)) == (4, {1: 2, 2: 2})
    v1 = service.version_feedback(READER, "risk.fraud", 1).items
    assert [(p.key, p.value, p.version, p.deployment) for p in v1] == [
        ("latency", 10.0, 1, "d"),
        ("latency", 30.0, 1, "d"),
    ]
    summary = {s.key: s for s in service.feedback_summary(READER, "risk.fraud", 2)}
    assert set(summary) == {"latency", "drift"}
    lat = summary["latency"]
    assert (lat.count, lat.min, lat.max, lat.mean, lat.last) == (1, 20.0, 20.0, 20.0, 20.0)
    summary1 = service.feedback_summary(READER, "risk.fraud", 1)
    assert [(s.key, s.count, s.mean, s.last, s.last_at) for s in summary1] == [
        ("latency", 2, 20.0, 30.0, t(9))
    ]
    page = service.deployment_feedback(READER, "d", max_results=3)
    assert [p.at for p in page.items] == [t(2), t(9), t(12)] and page.next_page_token
    rest = service.deployment_feedback(READER, "d", max_results=3, page_token=page.next_page_token)
    assert [(p.key, p.at) for p in rest.items] == [("drift", t(15))]
    assert rest.next_page_token is None
    windowed = service.deployment_feedback(READER, "d", key="latency", since=t(5), until=t(12))
    assert [p.value for p in windowed.items] == [30.0]
    assert ("deployment.feedback", "d", None) in actions(service)


def test_a_summary_can_keep_to_one_deployment(service: RegistryService, clock: Clock) -> None:
    """A canary and production serve version 1: each one's points can be summarised apart;
    a deployment of another model is refused, one the caller cannot read is not found."""
    clock.at(0)
    service.set_deployment(WRITER, "canary", "models:/risk.fraud/1", environment="staging")
    service.set_deployment(WRITER, "prod", "models:/risk.fraud/1", environment="prod")
    service.set_deployment(SYSTEM, "elsewhere", "models:/other.model/1", environment="prod")
    clock.at(10)
    service.push_feedback(WRITER, "canary", points(("auc", 0.5, 1)))
    service.push_feedback(WRITER, "prod", points(("auc", 0.9, 1), ("auc", 0.7, 2)))
    both = service.feedback_summary(READER, "risk.fraud", 1)
    assert [(s.key, s.count) for s in both] == [("auc", 3)]
    prod = service.feedback_summary(READER, "risk.fraud", 1, deployment="PROD")
    assert [(s.key, s.count, s.mean, s.last) for s in prod] == [("auc", 2, 0.8, 0.7)]
    canary = service.feedback_summary(READER, "risk.fraud", 1, deployment="canary")
    assert [(s.count, s.mean) for s in canary] == [(1, 0.5)]
    with pytest.raises(InvalidParameter, match=r"not a deployment of .other\.model."):
        service.feedback_summary(SYSTEM, "other.model", 1, deployment="prod")
    with pytest.raises(NotFound):
        service.feedback_summary(READER, "risk.fraud", 1, deployment="elsewhere")
    with pytest.raises(InvalidParameter):
        service.feedback_summary(READER, "risk.fraud", 1, deployment="bad/name")


def test_idempotent_reposts_store_nothing_more(service: RegistryService, clock: Clock) -> None:
    service.set_deployment(WRITER, "d", "models:/risk.fraud/1", environment="prod")
    clock.at(5)
    batch = points(("auc", 0.9, 1), ("auc", 0.8, 2))
    first = service.push_feedback(WRITER, "d", batch, idempotency_key="batch-1")
    again = service.push_feedback(WRITER, "d", batch, idempotency_key="batch-1")
    assert not first.replayed and again.replayed and again.accepted == 2
    assert count(service, feedback_points) == 2
    with pytest.raises(Conflict, match="different request"):
        service.push_feedback(WRITER, "d", batch[:1], idempotency_key="batch-1")
    assert count(service, feedback_points) == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([{"key": "auc", "value": math.nan, "timestamp": "2027-01-01T00:01:00Z"}], "not finite"),
        ([{"key": "auc", "value": math.inf, "timestamp": "2027-01-01T00:01:00Z"}], "not finite"),
        ([{"key": "auc", "value": "1", "timestamp": "2027-01-01T00:01:00Z"}], "not a number"),
        ([{"key": "", "value": 1, "timestamp": "2027-01-01T00:01:00Z"}], "non-empty"),
        ([{"key": "k" * 251, "value": 1, "timestamp": "2027-01-01T00:01:00Z"}], "limit is 250"),
        ([{"key": "a", "value": 1, "timestamp": "yesterday"}], "not RFC 3339"),
        ([{"key": "a", "value": 1}], "must have key, value, timestamp"),
        (
            [
                {
                    "key": "a",
                    "value": 1,
                    "timestamp": "2027-01-01T00:01:00Z",
                    "labels": {f"l{i}": "x" for i in range(21)},
                }
            ],
            "limit is 20",
        ),
        (
            [
                {
                    "key": "a",
                    "value": 1,
                    "timestamp": "2027-01-01T00:01:00Z",
                    "labels": {"region": "x" * 257},
                }
            ],
            "limit is 256",
        ),
        ([], "1 to 1000 points"),
        (
            [{"key": "a", "value": 1, "timestamp": "2027-01-01T00:01:00Z"}] * (MAX_POINTS + 1),
            "1 to 1000 points",
        ),
        ([{"key": "a", "value": 1, "timestamp": "2026-12-31T23:00:00Z"}], "served no version"),
        ([{"key": "a", "value": 1, "timestamp": "2027-01-01T00:09:00Z"}], "from the future"),
    ],
)
def test_a_bad_batch_is_refused_whole_and_changes_nothing(
    service: RegistryService, clock: Clock, bad: list[dict[str, Any]], message: str
) -> None:
    service.set_deployment(WRITER, "d", "models:/risk.fraud/1", environment="prod")
    clock.at(5)
    good = {"key": "ok", "value": 1.0, "timestamp": "2027-01-01T00:01:00Z"}
    batch = [good, *bad] if bad and len(bad) <= MAX_POINTS else bad
    before = actions(service)
    with pytest.raises(InvalidParameter, match=message):
        service.push_feedback(WRITER, "d", batch)
    assert count(service, feedback_points) == 0
    assert actions(service) == before


def test_points_while_retired_are_refused(service: RegistryService, clock: Clock) -> None:
    service.set_deployment(WRITER, "d", "models:/risk.fraud/1", environment="prod")
    clock.at(5)
    service.retire_deployment(WRITER, "d")
    clock.at(9)
    with pytest.raises(InvalidParameter, match="served no version"):
        service.push_feedback(WRITER, "d", points(("a", 1, 4), ("a", 2, 6)))
    assert service.push_feedback(WRITER, "d", points(("a", 1, 4))).versions == {1: 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"environment": "prod env"}, "environment"),
        ({"environment": "e" * 65}, "limit is 64"),
        ({"environment": "prod", "url": "ftp://x.example"}, "http:// or https://"),
        ({"environment": "prod", "url": "https://u:p@x.example"}, "user name or password"),
        ({"environment": "prod", "url": "https://"}, "with a host"),
        ({}, "give its environment"),
    ],
)
def test_bad_deployment_fields_are_refused(
    service: RegistryService, clock: Clock, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        service.set_deployment(WRITER, "d", "models:/risk.fraud/1", **kwargs)
    assert count(service, deployment_events) == 0


def test_bad_names_and_targets_are_refused(service: RegistryService, clock: Clock) -> None:
    with pytest.raises(InvalidParameter, match="deployment name"):
        service.set_deployment(WRITER, "a/b", "models:/risk.fraud/1", environment="prod")
    with pytest.raises(InvalidParameter, match="semver range"):
        service.set_deployment(WRITER, "d", "models:/risk.fraud@^1", environment="prod")
    with pytest.raises(NotFound, match="no alias 'canary'"):
        service.set_deployment(WRITER, "d", "models:/risk.fraud@canary", environment="prod")
    with pytest.raises(NotFound):
        service.set_deployment(WRITER, "d", "models:/risk.fraud/9", environment="prod")
    assert count(service, deployment_events) == 0


def test_a_deployment_keeps_its_model(service: RegistryService, clock: Clock) -> None:
    service.set_deployment(SYSTEM, "d", "models:/risk.fraud/1", environment="prod")
    with pytest.raises(Conflict, match="keeps its model"):
        service.set_deployment(SYSTEM, "d", "models:/other.model/1")
    # one who cannot read the model it serves learns only that the name is taken
    with pytest.raises(AlreadyExists, match="already in use") as refused:
        service.set_deployment(OUTSIDER, "d", "models:/other.model/1", environment="prod")
    assert "risk.fraud" not in str(refused.value)


def test_permissions_hide_unreadable_deployments(service: RegistryService, clock: Clock) -> None:
    service.set_deployment(WRITER, "d", "models:/risk.fraud/1", environment="prod")
    service.set_deployment(SYSTEM, "o", "models:/other.model/1", environment="prod")
    with pytest.raises(PermissionDenied):
        service.set_deployment(READER, "d", "models:/risk.fraud/2")
    with pytest.raises(PermissionDenied):
        service.retire_deployment(READER, "d")
    with pytest.raises(PermissionDenied):
        service.push_feedback(READER, "d", points(("a", 1, 0)))
    for call in (
        lambda: service.get_deployment(OUTSIDER, "d"),
        lambda: service.deployment_history(OUTSIDER, "d"),
        lambda: service.deployment_at(OUTSIDER, "d", t(0)),
        lambda: service.deployment_feedback(OUTSIDER, "d"),
        lambda: service.retire_deployment(OUTSIDER, "d"),
        lambda: service.push_feedback(OUTSIDER, "d", points(("a", 1, 0))),
    ):
        with pytest.raises(NotFound, match="deployment 'd' does not exist"):
            call()
    with pytest.raises(NotFound, match="deployment 'ghost' does not exist"):
        service.get_deployment(OUTSIDER, "ghost")
    assert [d.name for d in service.list_deployments(OUTSIDER).items] == ["o"]
    assert [d.name for d in service.list_deployments(READER).items] == ["d"]
    assert [d.name for d in service.list_deployments(SYSTEM).items] == ["d", "o"]
    with pytest.raises(NotFound):
        service.list_servings(OUTSIDER, "risk.fraud")
    assert service.get_deployment(READER, "d").version == 1


def test_a_deleted_model_hides_its_deployments(service: RegistryService, clock: Clock) -> None:
    service.set_deployment(SYSTEM, "d", "models:/risk.fraud/1", environment="prod")
    service.delete_model(SYSTEM, "risk.fraud")
    with pytest.raises(NotFound):
        service.get_deployment(SYSTEM, "d")
    assert service.list_deployments(SYSTEM).items == []


def test_lists_page_by_name(service: RegistryService, clock: Clock) -> None:
    for name in ("c", "a", "b"):
        service.set_deployment(SYSTEM, name, "models:/risk.fraud/1", environment="prod")
    service.set_deployment(SYSTEM, "x", "models:/risk.fraud/1", environment="staging")
    first = service.list_deployments(READER, environment="prod", max_results=2)
    assert [d.name for d in first.items] == ["a", "b"]
    second = service.list_deployments(
        READER, environment="prod", max_results=2, page_token=first.next_page_token
    )
    assert [d.name for d in second.items] == ["c"] and second.next_page_token is None
    with pytest.raises(InvalidParameter, match="does not belong to this query"):
        service.list_deployments(READER, max_results=2, page_token=first.next_page_token)


def test_writers_racing_with_one_precondition_move_it_once(service: RegistryService) -> None:
    """Eight writers each move 'd' from version 1 to their own version, with --expect 1:
    exactly one succeeds, the others are refused, and the history has one move. The
    first writes of a new name race too: one creates it, the others find it."""
    service.create_model(SYSTEM, "m")
    for _ in range(9):
        service.create_version(SYSTEM, "m")

    def create(_: int) -> str:
        try:
            service.set_deployment(SYSTEM, "d", "models:/m/1", environment="prod", expect=0)
        except Conflict:
            return "refused"
        return "created"

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(create, range(8)))
    assert sorted(created) == ["created"] + ["refused"] * 7

    def move(version: int) -> int | None:
        try:
            return service.set_deployment(SYSTEM, "d", f"models:/m/{version}", expect=1).version
        except Conflict:
            return None

    with ThreadPoolExecutor(8) as pool:
        moved = [v for v in pool.map(move, range(2, 10)) if v is not None]
    assert len(moved) == 1
    history = service.deployment_history(SYSTEM, "d")
    assert [(e.from_version, e.to_version) for e in history] == [(1, moved[0]), (None, 1)]
    assert service.get_deployment(SYSTEM, "d").version == moved[0]

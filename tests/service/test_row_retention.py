"""gc's retention of finished webhook deliveries and feedback points
(``service/row_retention.py``), on SQLite and PostgreSQL: deliveries sent for real to a
receiver on loopback, points posted through the service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cairn.domain.access import SYSTEM
from cairn.domain.deployments import FeedbackPoint
from cairn.service import row_retention
from cairn.service.base import Limits
from cairn.service.keyring import KEY_FILE, Keyring
from cairn.service.registry import RegistryService
from cairn.service.webhook_delivery import Dispatcher
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata.clock import from_datetime
from cairn.store.metadata.database import Database
from cairn.store.metadata.deployments_store import DeploymentStore
from cairn.store.metadata.schema import feedback_points

DAY_US = 86_400 * 1_000_000
T0 = datetime(2027, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test sets: ``at(days)`` is T0 plus that many days."""

    def __init__(self) -> None:
        self.now = from_datetime(T0)

    def at(self, days: float) -> None:
        self.now = from_datetime(T0 + timedelta(days=days))

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(db: Database, blob_root: Path, tmp_path: Path, clock: Clock) -> RegistryService:
    limits = Limits(webhook_allow_private=True)  # the receiver is on loopback
    keyring = Keyring(key_file=tmp_path / KEY_FILE)  # webhook secrets are sealed with it
    blobs = LocalBlobStore(blob_root)
    return RegistryService(db, blobs, clock=clock, limits=limits, keyring=keyring)


@pytest.fixture
def dispatcher(svc: RegistryService, clock: Clock) -> Iterator[Dispatcher]:
    d = Dispatcher(
        svc.db, keyring=svc.keyring, allow_private=True, timeout_s=2, max_attempts=1, clock=clock
    )
    yield d
    d.stop()


def statuses(svc: RegistryService) -> list[tuple[str, str]]:
    """(model the delivery's event is about, status) of every delivery of ``hook``."""
    items = svc.list_webhook_deliveries(SYSTEM, "hook", max_results=1000).items
    return sorted((d.payload["model"], d.status) for d in items if d.event == "model.create")


def gc_summary(svc: RegistryService) -> dict[str, Any]:
    (event, *_) = [e for e in svc.list_audit(SYSTEM, max_results=100).items if e.action == "gc.run"]
    assert isinstance(event.after, dict)
    return event.after


def test_gc_deletes_finished_deliveries_past_their_retention_never_pending_ones(
    svc: RegistryService, clock: Clock, receiver: Any, dispatcher: Dispatcher
) -> None:
    svc.create_webhook(SYSTEM, "hook", receiver.url, events=["model.create"])
    svc.create_model(SYSTEM, "a")
    svc.create_model(SYSTEM, "b")
    receiver.script = [200, 500]  # a succeeds; b fails at its one attempt
    clock.at(1)
    assert dispatcher.run_once() == 2
    svc.create_model(SYSTEM, "c")  # queued at day 1, never sent: pending
    assert statuses(svc) == [("a", "succeeded"), ("b", "failed"), ("c", "pending")]

    clock.at(30.5)  # finished 29.5 days ago: within the 30 days kept
    assert svc.gc(SYSTEM, dry_run=False, grace_s=0).webhook_deliveries == 0
    clock.at(40)
    dry = svc.gc(SYSTEM, grace_s=0)
    assert (dry.dry_run, dry.webhook_deliveries) == (True, 2)
    assert len(statuses(svc)) == 3  # a dry run changes nothing
    done = svc.gc(SYSTEM, dry_run=False, grace_s=0)
    assert done.webhook_deliveries == 2
    assert statuses(svc) == [("c", "pending")]  # 39 days old, but still to be sent
    assert gc_summary(svc)["webhook_deliveries"] == 2

    clock.at(41)
    assert dispatcher.run_once() == 1  # c goes out at last: finished now, not 40 days ago
    clock.at(60)
    assert svc.gc(SYSTEM, dry_run=False, grace_s=0).webhook_deliveries == 0
    assert statuses(svc) == [("c", "succeeded")]
    svc.limits = replace(svc.limits, webhook_delivery_retention_s=None)  # 0 days: for ever
    clock.at(1000)
    assert svc.gc(SYSTEM, dry_run=False, grace_s=0).webhook_deliveries == 0
    assert statuses(svc) == [("c", "succeeded")]


def points(*items: tuple[str, float, float]) -> list[FeedbackPoint]:
    """(key, value, days after T0) each."""
    return [FeedbackPoint(k, v, T0 + timedelta(days=d)) for k, v, d in items]


def stored(svc: RegistryService) -> list[tuple[str, float]]:
    query = select(feedback_points.c.key, feedback_points.c.value).order_by(feedback_points.c.at)
    return [(r.key, r.value) for r in svc.db.read(lambda s: s.execute(query).all())]


@pytest.fixture
def fed(svc: RegistryService, clock: Clock) -> RegistryService:
    """Two deployments of m posting points from day 0 to day 45; the clock at day 50."""
    svc.create_model(SYSTEM, "m")
    svc.create_version(SYSTEM, "m")
    svc.create_version(SYSTEM, "m")
    svc.set_deployment(SYSTEM, "m-prod", "models:/m/1", environment="prod")
    svc.set_deployment(SYSTEM, "m-canary", "models:/m/2", environment="canary")
    clock.at(46)
    old = [("lat", float(n), 0.001 * (n + 1)) for n in range(5)]  # day 0, five points
    svc.push_feedback(SYSTEM, "m-prod", points(*old, ("lat", 10, 10), ("lat", 40, 40)))
    svc.push_feedback(SYSTEM, "m-canary", points(("err", 5, 5), ("err", 45, 45)))
    clock.at(50)
    return svc


def test_feedback_is_kept_for_ever_unless_the_setting_is_on(fed: RegistryService) -> None:
    assert fed.limits.feedback_retention_s is None  # the default: 0 days, for ever
    report = fed.gc(SYSTEM, dry_run=False, grace_s=0)
    assert report.feedback_points == 0 and len(stored(fed)) == 9
    assert gc_summary(fed)["feedback_points"] == 0


def test_gc_deletes_feedback_older_than_its_retention_in_batches(
    fed: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(row_retention, "BATCH", 2)  # m-prod's six old points: four batches
    fed.limits = replace(fed.limits, feedback_retention_s=30 * 86_400)  # before day 20 goes
    dry = fed.gc(SYSTEM, grace_s=0)
    assert dry.feedback_points == 7
    assert len(stored(fed)) == 9  # a dry run changes nothing
    done = fed.gc(SYSTEM, dry_run=False, grace_s=0)
    assert done.feedback_points == 7
    assert stored(fed) == [("lat", 40.0), ("err", 45.0)]
    assert gc_summary(fed)["feedback_points"] == 7
    summary = fed.feedback_summary(SYSTEM, "m", 1)
    assert [(s.key, s.count) for s in summary] == [("lat", 1)]
    assert fed.gc(SYSTEM, dry_run=False, grace_s=0).feedback_points == 0


def test_a_feedback_batch_stops_at_its_size(fed: RegistryService) -> None:
    """One batch deletes at most ``BATCH`` rows of one deployment, oldest first."""
    cut = from_datetime(T0 + timedelta(days=20))
    ids = fed.db.read(lambda s: DeploymentStore(s).with_points_before(cut))
    assert len(ids) == 2
    prod = min(ids)  # recorded first
    assert fed.db.write(lambda s: DeploymentStore(s).delete_points_before(prod, cut, 4)) == 4
    assert [v for _, v in stored(fed)][:3] == [4.0, 5.0, 10.0]
    total = fed.db.read(lambda s: DeploymentStore(s).count_points_before(ids, cut))
    assert total == 3  # m-prod's day-0 point and day-10 one, m-canary's day-5 one
    count = select(func.count()).select_from(feedback_points)
    assert fed.db.read(lambda s: s.execute(count).scalar_one()) == 5

"""Migration 0019 (``webhooks.secret`` becomes TEXT for sealed secrets) on both engines:
down and up keep the webhooks, their deliveries and the trigger that queues them (SQLite
rebuilds the table, which the trigger on ``audit_events`` names), and the downgrade
refuses, changing nothing, a stored secret longer than the old column holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from cairn.domain.access import SYSTEM
from cairn.service.base import Limits
from cairn.service.keyring import KEY_FILE, Keyring
from cairn.service.registry import RegistryService
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata import migrate
from cairn.store.metadata.database import Database


def _count(db: Database, table: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _downgrade(db: Database, to: str) -> None:
    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), to)
        conn.commit()


def test_0019_down_and_up_keeps_webhooks_deliveries_and_the_trigger(
    db: Database, tmp_path: Path
) -> None:
    svc = RegistryService(
        db,
        LocalBlobStore(tmp_path / "blobs"),
        limits=Limits(webhook_allow_private=True),
        keyring=Keyring(key_file=tmp_path / KEY_FILE),
    )
    svc.create_webhook(SYSTEM, "long", "http://127.0.0.1:9/", secret="s" * 256)
    svc.create_model(SYSTEM, "queued")
    with db.engine.connect() as conn:
        sealed = conn.execute(text("SELECT secret FROM webhooks")).scalar_one()
    assert len(sealed) > 256  # what the old column could not hold

    with pytest.raises(RuntimeError, match=r"rotate it .* with a shorter secret"):
        _downgrade(db, "0018_deployments")
    assert migrate.current_revision(db) == migrate.HEAD

    svc.rotate_webhook_secret(SYSTEM, "long", secret="whsec_short-enough-0123456789")
    _downgrade(db, "0018_deployments")
    assert migrate.current_revision(db) == "0018_deployments"
    assert (_count(db, "webhooks"), _count(db, "webhook_deliveries")) == (1, 1)
    svc.create_model(SYSTEM, "while-down")  # the trigger still queues
    assert _count(db, "webhook_deliveries") == 2

    migrate.upgrade(db)
    migrate.check_schema(db)
    assert (_count(db, "webhooks"), _count(db, "webhook_deliveries")) == (1, 2)
    svc.create_model(SYSTEM, "after")
    assert _count(db, "webhook_deliveries") == 3
    _, secret = svc.rotate_webhook_secret(SYSTEM, "long", secret="t" * 256)
    assert secret == "t" * 256

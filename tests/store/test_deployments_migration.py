"""Migration 0018 (deployments and feedback) on both engines: down and up again round-trips,
and a downgrade drops what it created (kept apart from test_migrate.py, which other
migrations of the same merge window touch)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from cairn.store.metadata import migrate
from cairn.store.metadata.database import Database

TABLES = {"deployments", "deployment_events", "feedback_points"}


def test_0018_adds_the_deployment_tables_and_its_downgrade_drops_them(db: Database) -> None:
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0017_webhooks")
        conn.commit()
    assert not TABLES & set(inspect(db.engine).get_table_names())
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    migrate.check_schema(db)

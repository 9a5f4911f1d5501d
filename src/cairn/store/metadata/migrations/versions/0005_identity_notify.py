"""PostgreSQL tells every process when users, groups, grants or tokens change

Revision ID: 0005_identity_notify
Revises: 0004_pg_statistics
Create Date: 2026-11-26 22:05:00

Triggers send ``NOTIFY cairn_identity`` (delivered at commit) on any change to ``users``,
``groups``, ``group_members`` and ``grants``, and on a token's deletion or any change to a
token other than its ``last_used_at`` (refreshed every few minutes by use alone). Every
server process listens and forgets what it remembered about tokens
(``store/metadata/identity_watch.py``), whoever made the change: another process, a
script, ``psql``. SQLite needs nothing: its processes remember nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0005_identity_notify"
down_revision = "0004_pg_statistics"
branch_labels = None
depends_on = None

FUNCTION = "cairn_identity_changed"
WHOLE_TABLES = ("users", "groups", "group_members", "grants")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cairn_identity', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    for table in WHOLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )
    op.execute(
        f"CREATE TRIGGER {FUNCTION} AFTER DELETE OR TRUNCATE ON tokens "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
    )
    op.execute(
        f"CREATE TRIGGER {FUNCTION}_update AFTER UPDATE ON tokens FOR EACH ROW "
        "WHEN ((to_jsonb(OLD) - 'last_used_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used_at')) "
        f"EXECUTE FUNCTION {FUNCTION}()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER {FUNCTION}_update ON tokens")
    for table in (*WHOLE_TABLES, "tokens"):
        op.execute(f"DROP TRIGGER {FUNCTION} ON {table}")
    op.execute(f"DROP FUNCTION {FUNCTION}()")

"""SQLite counts the changes to users, groups, grants and tokens

Revision ID: 0007_sqlite_identity_changes
Revises: 0006_grant_notify_user
Create Date: 2026-11-27 03:50:00

What PostgreSQL announces with ``NOTIFY`` (migrations 0005 and 0006) SQLite counts in a
table, ``identity_changes`` (``scope`` → ``n``), kept by triggers whoever writes: a Cairn
process, a script, the ``sqlite3`` shell. ``all`` counts the changes that concern anyone
(users, groups, memberships, a group's grants, a token's deletion or any change to a
token but its ``last_used_at``); ``user:<id>`` those to that user's own grants, and
``users`` all of the latter. Server processes remember what a token stood for while the
counters they read it under stay (``store/metadata/sqlite_watch.py``). PostgreSQL needs
nothing here.
"""

from __future__ import annotations

from alembic import op

revision = "0007_sqlite_identity_changes"
down_revision = "0006_grant_notify_user"
branch_labels = None
depends_on = None

PREFIX = "cairn_identity_"
WHOLE_TABLES = ("users", "groups", "group_members")
# every column of tokens but last_used_at, which use alone refreshes every few minutes
# (a migration that adds a column to tokens adds it to this trigger too)
COUNTED_COLUMNS = (
    "id, user_id, kind, name, prefix, secret_hash, scope, csrf_hash, created_at, expires_at, "
    "revoked_at"
)


def _bump_all() -> str:
    return "UPDATE identity_changes SET n = n + 1 WHERE scope = 'all';"


def _bump_user(row: str) -> str:  # row: NEW or OLD
    scope = f"'user:' || {row}.subject_id"
    return (
        f"INSERT OR IGNORE INTO identity_changes (scope, n) VALUES ({scope}, 0);"  # noqa: S608
        " UPDATE identity_changes SET n = n + 1"
        f" WHERE scope IN ('users', {scope});"
    )


def _triggers() -> dict[str, str]:
    """Trigger name → its definition."""
    found: dict[str, tuple[str, str]] = {}
    for table in WHOLE_TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            found[f"{PREFIX}{table}_{event.lower()}"] = f"AFTER {event} ON {table}", _bump_all()
    found[f"{PREFIX}tokens_delete"] = "AFTER DELETE ON tokens", _bump_all()
    found[f"{PREFIX}tokens_update"] = f"AFTER UPDATE OF {COUNTED_COLUMNS} ON tokens", _bump_all()
    own = "{row}.subject_kind = 'user'"
    same_user = (
        "NEW.subject_kind = 'user' AND OLD.subject_kind = 'user' "
        "AND NEW.subject_id = OLD.subject_id"
    )
    for event, row in (("INSERT", "NEW"), ("DELETE", "OLD")):
        when = own.format(row=row)
        found[f"{PREFIX}grants_{event.lower()}_user"] = (
            f"AFTER {event} ON grants WHEN {when}",
            _bump_user(row),
        )
        found[f"{PREFIX}grants_{event.lower()}"] = (
            f"AFTER {event} ON grants WHEN NOT ({when})",
            _bump_all(),
        )
    found[f"{PREFIX}grants_update_user"] = (
        f"AFTER UPDATE ON grants WHEN {same_user}",
        _bump_user("NEW"),
    )
    found[f"{PREFIX}grants_update"] = f"AFTER UPDATE ON grants WHEN NOT ({same_user})", _bump_all()
    return {
        name: f"CREATE TRIGGER {name} {head} BEGIN {body} END"
        for name, (head, body) in found.items()
    }


TRIGGER_NAMES = tuple(_triggers())


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE identity_changes (scope TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    op.execute("INSERT INTO identity_changes (scope, n) VALUES ('all', 0), ('users', 0)")
    for definition in _triggers().values():
        op.execute(definition)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DROP TABLE identity_changes")

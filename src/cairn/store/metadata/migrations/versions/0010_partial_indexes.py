"""Indexes that a new version does not write

Revision ID: 0010_partial_indexes
Revises: 0009_value_indexes
Create Date: 2026-11-27 16:00:00

Every version create wrote an entry into each of the eight indexes of ``model_versions``
(on SQLite a page each in the write-ahead log that the commit syncs to disk). Two served
no query or only rare ones over a few rows:

- ``ix_model_versions_digest`` served no query at all; it goes.
- ``ix_model_versions_status_created`` served the sweep of stale ``PENDING`` versions,
  a handful among millions. It becomes ``ix_model_versions_pending``, on ``created_at``
  of ``PENDING`` rows only: a version created ``READY`` (every version without files,
  or whose files are all stored) never enters it, one that becomes ``READY`` leaves it.

And the purge of versions deleted long ago, which scanned the whole table, gets
``ix_model_versions_deleted``, on ``deleted_at`` of deleted rows only (live versions,
all but a few, are not in it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_partial_indexes"
down_revision = "0009_value_indexes"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'PENDING'")
_DELETED = sa.text("deleted_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_model_versions_digest", table_name="model_versions")
    op.drop_index("ix_model_versions_status_created", table_name="model_versions")
    op.create_index(
        "ix_model_versions_pending",
        "model_versions",
        ["created_at"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    op.create_index(
        "ix_model_versions_deleted",
        "model_versions",
        ["deleted_at"],
        sqlite_where=_DELETED,
        postgresql_where=_DELETED,
    )


def downgrade() -> None:
    op.drop_index("ix_model_versions_deleted", table_name="model_versions")
    op.drop_index("ix_model_versions_pending", table_name="model_versions")
    op.create_index("ix_model_versions_status_created", "model_versions", ["status", "created_at"])
    op.create_index("ix_model_versions_digest", "model_versions", ["digest"])

"""Tag and param values by index

Revision ID: 0009_value_indexes
Revises: 0008_newest_by_stage
Create Date: 2026-11-27 13:30:00

``tags.commit = 'abc…'`` had to test every version that carries the tag ``commit``
(the indexes held ``(key, owner)``): 230 ms over 300,000 versions on SQLite, growing
with the registry. The indexes now hold ``(key, first 100 characters of the value,
owner)``: an equality is a range of the index, and a key alone still its prefix, so
the new indexes replace the old ones. The value is cut because a whole one (up to 5,000
characters) would not fit a PostgreSQL index entry; queries compare the rest apart.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0009_value_indexes"
down_revision = "0008_newest_by_stage"
branch_labels = None
depends_on = None

# table, owner column, the old index on (key, owner)
_TABLES = (
    ("model_tags", "model_id", "ix_model_tags_key_model_id"),
    ("version_tags", "version_id", "ix_version_tags_key_version_id"),
    ("version_params", "version_id", "ix_version_params_key_version_id"),
)


def upgrade() -> None:
    for table, owner, old in _TABLES:
        prefix = text("substr(value, 1, 100)")  # schema.value_prefix, as it was at 0009
        op.create_index(f"ix_{table}_key_value", table, ["key", prefix, owner])
        op.drop_index(old, table_name=table)


def downgrade() -> None:
    for table, owner, old in _TABLES:
        op.create_index(old, table, ["key", owner])
        op.drop_index(f"ix_{table}_key_value", table_name=table)

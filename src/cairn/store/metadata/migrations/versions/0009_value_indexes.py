"""Tag and param values by index

Revision ID: 0009_value_indexes
Revises: 0008_newest_by_stage
Create Date: 2026-11-27 13:30:00

``tags.commit = 'abc…'`` had to test every version that carries the tag ``commit``
(the indexes held ``(key, owner)``): 230 ms over 300,000 versions on SQLite, growing
with the registry. The indexes now hold ``(first 100 characters of the value, key)``:
an equality is one step down them. The value is cut because a whole one (up to 5,000
characters) would not fit a PostgreSQL index entry; queries compare the rest on the row.
The value comes first and the owner is left out so that the index serves equalities
only: led by the key, PostgreSQL, on tables not analyzed yet, took it for the per-row
lookup by ``(owner, key)`` that the primary key serves, walking every row of the key
for each version. It replaces the ``(key, owner)`` indexes, whose one remaining use,
finding every row of a key (``tags.k LIKE '%'`` over the whole registry), the primary
key and the table serve as well as a scan of a registry-wide key could.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0009_value_indexes"
down_revision = "0008_newest_by_stage"
branch_labels = None
depends_on = None

# table, owner column, the old index on (key, owner), which the downgrade restores
_TABLES = (
    ("model_tags", "model_id", "ix_model_tags_key_model_id"),
    ("version_tags", "version_id", "ix_version_tags_key_version_id"),
    ("version_params", "version_id", "ix_version_params_key_version_id"),
)


def upgrade() -> None:
    for table, _, old in _TABLES:
        prefix = text("substr(value, 1, 100)")  # schema.value_prefix, as it was at 0009
        op.create_index(f"ix_{table}_value_key", table, [prefix, "key"])
        op.drop_index(old, table_name=table)


def downgrade() -> None:
    for table, owner, old in _TABLES:
        op.create_index(old, table, ["key", owner])
        op.drop_index(f"ix_{table}_value_key", table_name=table)

"""Tombstones of the blobs gc is deleting

Revision ID: 0014_blob_tombstones
Revises: 0013_require_compatible
Create Date: 2026-11-29 10:00:00

``blob_tombstones`` holds one row per blob whose ``blobs`` row gc has deleted and whose
bytes it has not yet deleted (or not yet been seen to delete). An upload that would record
such a digest is refused until the tombstone is gone, so it cannot promote a version on
bytes gc is about to delete; a tombstone a crash left behind is finished by the next gc.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_blob_tombstones"
down_revision = "0013_require_compatible"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_tombstones",
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_blob_tombstones")),
    )


def downgrade() -> None:
    op.drop_table("blob_tombstones")

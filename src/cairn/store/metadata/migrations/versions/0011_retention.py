"""A model's own retention policy

Revision ID: 0011_retention
Revises: 0010_partial_indexes
Create Date: 2026-11-28 14:00:00

``model_settings`` gains ``keep_versions`` and ``keep_versions_days``: how many of the
model's newest versions gc keeps (and for how many days any version stays). NULL
``keep_versions``: the instance's policy applies (``CAIRN_KEEP_VERSIONS``); 0: the model
keeps every version, whatever the instance's policy.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_retention"
down_revision = "0010_partial_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_settings") as batch:
        batch.add_column(sa.Column("keep_versions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("keep_versions_days", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_settings") as batch:
        batch.drop_column("keep_versions_days")
        batch.drop_column("keep_versions")

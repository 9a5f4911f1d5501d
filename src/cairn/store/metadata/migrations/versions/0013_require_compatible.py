"""Promotion policies that require a compatible signature

Revision ID: 0013_require_compatible
Revises: 0012_semver_key
Create Date: 2026-11-28 16:40:00

``alias_policies`` gains ``require_compatible``: moving a protected alias then needs the
new version's MLflow signature to break no caller of the version the alias points at
(``domain/mlmodel.py``). Existing policies do not require it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_require_compatible"
down_revision = "0012_semver_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alias_policies") as batch:
        batch.add_column(
            sa.Column("require_compatible", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("alias_policies") as batch:
        batch.drop_column("require_compatible")

"""Lineage: the inputs of a model version

Revision ID: 0016_lineage
Revises: 0015_signer_digest
Create Date: 2026-11-30 00:30:00

``lineage_inputs`` holds one row per input of a version (``version_id``, the child): a
dataset or a code commit (``uri``, ``ref``, ``qualifier``), or a parent version
(``parent_version_id``, the relation in ``qualifier``). Indexed both ways: a version's
inputs (the unique key), a URI's versions (``uri_key``), a parent's children.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_lineage"
down_revision = "0015_signer_digest"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "lineage_inputs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("version_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("input_key", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("uri_key", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("ref", sa.String(length=256), nullable=True),
        sa.Column("qualifier", sa.String(length=16), nullable=True),
        sa.Column("parent_version_id", _ID, nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_lineage_inputs_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_version_id"],
            ["model_versions.id"],
            name=op.f("fk_lineage_inputs_parent_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_inputs")),
        sa.UniqueConstraint(
            "version_id", "input_key", name=op.f("uq_lineage_inputs_version_id_input_key")
        ),
    )
    op.create_index(
        op.f("ix_lineage_inputs_uri_key_id"), "lineage_inputs", ["uri_key", "id"], unique=False
    )
    op.create_index(
        op.f("ix_lineage_inputs_parent_version_id"),
        "lineage_inputs",
        ["parent_version_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("lineage_inputs")

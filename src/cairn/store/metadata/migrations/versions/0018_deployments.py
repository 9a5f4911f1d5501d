"""Deployments and monitoring feedback

Revision ID: 0018_deployments
Revises: 0017_webhooks
Create Date: 2026-11-30 01:00:00

``deployments``: named targets (an environment label, an optional URL) and the version of
one model each serves now (NULL once retired). ``deployment_events``: every change of what
a deployment serves, in force from ``at`` until ``until`` (the next change). ``feedback_points``:
observations posted by monitoring systems, each stored with the version its deployment
served at the point's timestamp.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_deployments"
down_revision = "0017_webhooks"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("model_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_deployments_model_id_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("name_key", name=op.f("uq_deployments_name_key")),
    )
    op.create_index("ix_deployments_model_id_version", "deployments", ["model_id", "version"])
    op.create_table(
        "deployment_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("deployment_id", ID, nullable=False),
        sa.Column("model_id", ID, nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_events_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_deployment_events_model_id_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_events")),
    )
    op.create_index(
        "ix_deployment_events_deployment_id_at", "deployment_events", ["deployment_id", "at", "id"]
    )
    op.create_index(
        "ix_deployment_events_model_id_to_version_at",
        "deployment_events",
        ["model_id", "to_version", "at"],
    )
    op.create_table(
        "feedback_points",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("deployment_id", ID, nullable=False),
        sa.Column("model_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_feedback_points_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_feedback_points_model_id_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_points")),
    )
    op.create_index(
        "ix_feedback_points_deployment_id_at", "feedback_points", ["deployment_id", "at", "id"]
    )
    op.create_index(
        "ix_feedback_points_model_id_version_key_at",
        "feedback_points",
        ["model_id", "version", "key", "at"],
    )


def downgrade() -> None:
    op.drop_table("feedback_points")
    op.drop_table("deployment_events")
    op.drop_table("deployments")

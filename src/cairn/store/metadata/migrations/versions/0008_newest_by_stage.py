"""The newest version of a model in a stage, by index

Revision ID: 0008_newest_by_stage
Revises: 0007_sqlite_identity_changes
Create Date: 2026-11-27 09:00:00

MLflow's ``latest_versions`` (asked for every model of a ``search_registered_models``
page) wants each model's newest READY version in each stage. Over ``(model_id, stage)``
that read every version of the model in the stage to find the newest; over
``(model_id, stage, version)`` it is one step down the index from its end, whatever the
number of versions, and a stage a model has no version in costs one probe. The new index
takes the old one's place (it serves every query the old one did).
"""

from __future__ import annotations

from alembic import op

revision = "0008_newest_by_stage"
down_revision = "0007_sqlite_identity_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_model_versions_model_stage_version", "model_versions", ["model_id", "stage", "version"]
    )
    op.drop_index("ix_model_versions_model_stage", table_name="model_versions")


def downgrade() -> None:
    op.create_index("ix_model_versions_model_stage", "model_versions", ["model_id", "stage"])
    op.drop_index("ix_model_versions_model_stage_version", table_name="model_versions")

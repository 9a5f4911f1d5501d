"""Semver labels in order, by index

Revision ID: 0012_semver_key
Revises: 0011_retention
Create Date: 2026-11-28 15:00:00

``models:/NAME@^1.4`` names the highest version whose ``semver`` label is in a range. By
text, ``1.10.0`` sorts below ``1.9.3``; ``semver_key`` holds the label's
``major.minor.patch`` as fixed-width text (``domain/semver.py``, ``order_key``), and
``ix_model_versions_semver`` (``model_id, semver_key, version``, over labelled versions
only) hands the rows of a range over in the order the query asks, highest first, so the
database reads the top of the range and no more. (Without ``version`` in it, PostgreSQL's
generic plan, which guesses a range holds one row, sorted every row of the range first:
30 ms for 50,000 labels.) Existing
labels are keyed here, by ``_order_key``: a copy of what ``order_key`` computed when this
migration was written, so that a later change to the live one cannot change what this
migration writes (a change of keys takes a migration of its own).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0012_semver_key"
down_revision = "0011_retention"
branch_labels = None
depends_on = None

_LABELLED = sa.text("semver_key IS NOT NULL")

# Frozen here: domain/semver.py's SemVer 2.0 pattern and ``order_key`` as they were
# (tests/store/test_migrate.py checks that they still agree while they are meant to).
_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_PRE = rf"{_IDENT}(?:\.{_IDENT})*"
_BUILD = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_SEMVER_RE = re.compile(
    rf"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-({_PRE}))?(?:\+({_BUILD}))?", re.ASCII
)
_TOP = 10**10 - 1  # larger numbers share this one


def _order_key(value: str | None) -> str | None:
    """A label's ``major.minor.patch`` as fixed-width text; None for no label or one that
    is not SemVer."""
    match = None if value is None else _SEMVER_RE.fullmatch(value)
    if match is None:
        return None
    return ".".join(f"{min(int(n), _TOP):010d}" for n in match.groups()[:3])


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("semver_key", sa.String(length=32), nullable=True))
    versions = sa.table(
        "model_versions", sa.column("id", sa.Integer), sa.column("semver", sa.String)
    )
    conn = op.get_bind()
    labelled = sa.select(versions.c.id, versions.c.semver).where(versions.c.semver.is_not(None))
    rows = conn.execute(labelled).all()
    keyed = [{"row": i, "key": _order_key(label)} for i, label in rows]
    if keyed:
        conn.execute(sa.text("UPDATE model_versions SET semver_key = :key WHERE id = :row"), keyed)
    op.create_index(
        "ix_model_versions_semver",
        "model_versions",
        ["model_id", "semver_key", "version"],
        sqlite_where=_LABELLED,
        postgresql_where=_LABELLED,
    )


def downgrade() -> None:
    op.drop_index("ix_model_versions_semver", table_name="model_versions")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("semver_key")

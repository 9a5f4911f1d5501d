"""Webhook secrets sealed at rest: the column holds ``v1:<key id>:<base64url>``

Revision ID: 0019_secrets
Revises: 0018_deployments
Create Date: 2026-11-30 03:30:00

A webhook's signing secret is now stored sealed with the server's key (AES-256-GCM,
``service/keyring.py``): up to 256 characters of secret become up to about 1,420 of
sealed text, so ``webhooks.secret`` becomes ``TEXT`` (the service bounds what goes in).
Rows are not touched here (a migration has no key): secrets still in the clear keep
working and are sealed by the next server start or ``cairn webhooks reencrypt``.

On SQLite the column's type is changed by rebuilding the table, and SQLite refuses to
rename the rebuilt table into place while a trigger elsewhere (0017's, on
``audit_events``) names ``webhooks``: the triggers that name it are dropped first and
created again, as they were, afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0019_secrets"
down_revision = "0018_deployments"
branch_labels = None
depends_on = None

OLD = sa.String(length=256)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("webhooks", "secret", type_=sa.Text(), existing_nullable=False)
        return
    _without_triggers(lambda: _sqlite_type(sa.Text(), OLD))


def downgrade() -> None:
    bind = op.get_bind()
    longest = bind.execute(sa.text("SELECT max(length(secret)) FROM webhooks")).scalar()
    if longest is not None and longest > OLD.length:
        raise RuntimeError(
            f"a webhook's stored secret is {longest} characters long, more than the "
            f"{OLD.length} the schema before 0019 holds: rotate it (cairn webhooks "
            "rotate-secret) with a shorter secret, or delete the webhook, first"
        )
    if bind.dialect.name == "postgresql":
        op.alter_column(
            "webhooks", "secret", type_=OLD, existing_type=sa.Text(), existing_nullable=False
        )
        return
    _without_triggers(lambda: _sqlite_type(OLD, sa.Text()))


def _sqlite_type(new: sa.types.TypeEngine[str], old: sa.types.TypeEngine[str]) -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column("secret", type_=new, existing_type=old, existing_nullable=False)


def _without_triggers(change: Callable[[], None]) -> None:
    """Run ``change`` with the SQLite triggers that name ``webhooks`` dropped, then create
    them again from their own SQL (in the migration's transaction: all or nothing)."""
    bind = op.get_bind()
    triggers = bind.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name != 'webhooks' AND sql LIKE '%webhooks%' ORDER BY name"
        )
    ).all()
    for name, _sql in triggers:
        bind.exec_driver_sql(f'DROP TRIGGER "{name}"')
    change()
    for _name, sql in triggers:
        bind.exec_driver_sql(sql)  # verbatim: no bind parameters read into it
